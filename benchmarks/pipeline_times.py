"""Per-stage and total wall time of a workflow run, from the rules' `benchmark:` files, and how
each training spent its time, from the `train.json` records.

    python benchmarks/pipeline_times.py results/mnist
"""

from __future__ import annotations

import json
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


def training_times(results: Path) -> pd.DataFrame:
    """Per training mode (CUDA graphs or not, device): trainings, median first epoch, median later
    epoch and median time outside the epochs (start-up, capture, saves), all inside train_model."""
    rows = []
    for path in results.rglob("train.json"):
        record = json.loads(path.read_text())
        epochs = record["epoch_seconds"]
        rows.append({"device": record["device"], "cuda_graphs": record.get("cuda_graphs", False),
                     "wall_s": record["wall_time_s"], "first_epoch_s": epochs[0],
                     "later_epoch_s": pd.Series(epochs[1:] or epochs).median(),
                     "outside_epochs_s": record["wall_time_s"] - sum(epochs)})
    frame = pd.DataFrame(rows, columns=["device", "cuda_graphs", "wall_s", "first_epoch_s", "later_epoch_s",
                                        "outside_epochs_s"])
    summary = frame.groupby(["device", "cuda_graphs"]).median()
    summary.insert(0, "trainings", frame.groupby(["device", "cuda_graphs"]).size())
    return summary


if __name__ == "__main__":
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results/mnist5k")
    summary = stage_times(results)
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"sum of job times: {summary.total_s.sum():.1f} s (wall time is lower when jobs run in parallel)")
    print("trainings (medians):")
    print(training_times(results).to_string(float_format=lambda v: f"{v:.2f}"))
