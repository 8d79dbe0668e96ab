"""Which peak learning rate keeps a large batch as accurate as the paper's batch 256 in the
benchmark's short schedule: Adam one-cycle at 2e-3 * (batch / 256) ** power, for each batch size,
power and seed, clean test accuracy beside batch 256.

    python benchmarks/lr_scaling.py --dataset mnist --source data-cache/mnist-gz --epochs 3 \\
        --batch-sizes 512 1024 2048 --powers 0.5 1 --seeds 0 1

One table row per run, then the mean per (batch, power) and its gap to batch 256 in points.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from bench import abcl_training, accuracy, scaled_lr  # benchmarks/bench.py, beside this script
from common import write_results

from abcl.config import TrainConfig
from abcl.data import load_dataset
from abcl.device import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--source")
    parser.add_argument("--arch", default="small")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--powers", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="also write the runs and the summary as JSON here")
    args = parser.parse_args()
    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, source=args.source)
    runs = [(256, 1.0)] + [(batch, power) for batch in args.batch_sizes for power in args.powers]
    found: dict[tuple[int, float], list[float]] = {}
    print("| batch | lr | seed | clean acc. | train s |\n|---|---|---|---|---|")
    for seed in args.seeds:
        for batch, power in runs:
            cfg = TrainConfig(loss="sce", dataset=args.dataset, arch=args.arch, epochs=args.epochs,
                              batch_size=batch, lr=scaled_lr(batch, power), seed=seed)
            seconds, _, model = abcl_training(cfg, dataset, device)
            found.setdefault((batch, power), []).append(accuracy(model, dataset, device))
            print(f"| {batch} | {cfg.lr:.4g} | {seed} | {found[batch, power][-1]:.2%} | {seconds:.1f} |", flush=True)
    base = np.mean(found[256, 1.0])
    summary = [{"batch_size": batch, "power": power, "lr": scaled_lr(batch, power), "seeds": len(accuracies),
                "mean_accuracy": float(np.mean(accuracies)), "gap_points": float(100 * (np.mean(accuracies) - base))}
               for (batch, power), accuracies in found.items()]
    print("\n| batch | lr rule | mean clean acc. | gap to batch 256 (points) |\n|---|---|---|---|")
    for row in summary:
        rule = "paper" if row["batch_size"] == 256 else f"(b/256)^{row['power']:g}"
        print(f"| {row['batch_size']} | {rule} | {row['mean_accuracy']:.2%} | {row['gap_points']:+.2f} |")
    write_results({"epochs": args.epochs, "summary": summary}, args.out, device)
    if device.type == "cpu":
        print(f"\n{torch.get_num_threads()} CPU threads")


if __name__ == "__main__":
    main()
