"""Per-stage and total wall time of a workflow run, from the rules' `benchmark:` files.

    python benchmarks/pipeline_times.py results/mnist
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def stage_times(results: Path) -> pd.DataFrame:
    rows = []
    for path in results.rglob("*.tsv"):
        stage = path.stem.removesuffix(".benchmark") if path.parent.name == "benchmarks" else path.name.split(".")[0]
        rows.append({"stage": stage, "seconds": pd.read_csv(path, sep="\t")["s"].iloc[-1]})
    frame = pd.DataFrame(rows, columns=["stage", "seconds"])
    summary = frame.groupby("stage").seconds.agg(jobs="count", total_s="sum", mean_s="mean")
    summary["share"] = summary.total_s / summary.total_s.sum()
    return summary.sort_values("total_s", ascending=False)


if __name__ == "__main__":
    summary = stage_times(Path(sys.argv[1] if len(sys.argv) > 1 else "results/mnist5k"))
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"sum of job times: {summary.total_s.sum():.1f} s (wall time is lower when jobs run in parallel)")
