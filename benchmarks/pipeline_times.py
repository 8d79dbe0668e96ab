"""Per-stage and total wall time of a workflow run, from the rules' `benchmark:` files, and how
each training spent its time, from the `train.json` records.

    python benchmarks/pipeline_times.py results/mnist [--out times.json]
"""

from __future__ import annotations

import argparse
import json
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
    """Per training mode (device, CUDA graphs or not, adversarial training or not): trainings,
    median first epoch, median later epoch and median time outside the epochs (start-up,
    capture, saves), all inside train_model."""
    rows = []
    for path in results.rglob("train.json"):
        record = json.loads(path.read_text())
        epochs = record["epoch_seconds"]
        rows.append({"device": record["device"], "cuda_graphs": record.get("cuda_graphs", False),
                     "adversarial": record.get("config", {}).get("adversarial", "none"),
                     "wall_s": record["wall_time_s"], "first_epoch_s": epochs[0],
                     "later_epoch_s": pd.Series(epochs[1:] or epochs).median(),
                     "outside_epochs_s": record["wall_time_s"] - sum(epochs)})
    mode = ["device", "cuda_graphs", "adversarial"]
    frame = pd.DataFrame(rows, columns=[*mode, "wall_s", "first_epoch_s", "later_epoch_s", "outside_epochs_s"])
    summary = frame.groupby(mode).median()
    summary.insert(0, "trainings", frame.groupby(mode).size())
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default="results/mnist5k", help="a workflow's results/<dataset> folder")
    parser.add_argument("--out", help="also write both tables as JSON here")
    args = parser.parse_args()
    results = Path(args.results)
    summary, trainings = stage_times(results), training_times(results)
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"sum of job times: {summary.total_s.sum():.1f} s (wall time is lower when jobs run in parallel)")
    print("trainings (medians):")
    print(trainings.to_string(float_format=lambda v: f"{v:.2f}"))
    if args.out:
        import torch
        from common import write_results  # benchmarks/common.py, beside this script
        write_results({"stages": summary.reset_index().to_dict("records"),
                       "trainings": trainings.reset_index().to_dict("records")}, args.out, torch.device("cpu"))


if __name__ == "__main__":
    main()
