"""Training epoch and evaluation time per CPU kernel mode, side by side in one run.

Each mode runs in a fresh process (kernels are chosen before torch computes anything), the modes
alternating round by round so that a busy spell of the machine falls on all of them. A worker
trains the default config's ABCL (mnist5k, small net, batch 128, 1 thread) for ``--epochs``
epochs through :func:`abcl.train.train_model` and times one evaluation under the default
config's FGSM and BIM attacks (every budget, 400 test images), as the workflow's jobs run them.

    python benchmarks/kernel_modes.py [--rounds 3] [--epochs 3] [--out benchmarks/measured/kernel-modes-DATE.json]

(``--n-train`` and ``--n-test`` shrink the run for a smoke test; the defaults are the workflow's.)

Printed: per mode the median epoch (the first epoch left out) and evaluation seconds over the
rounds, and each mode's ratio to ``fast``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path



def worker(mode: str, epochs: int, n_train: int | None, n_test: int | None) -> dict:
    from abcl import kernels

    kernels.select(mode)
    import torch

    from abcl.config import attack_specs, load_config
    from abcl.data import Dataset, load_mnist5k
    from abcl.evaluate import evaluate
    from abcl.fingerprint import HEADS
    from abcl.config import TrainConfig
    from abcl.train import load_model, train_model

    torch.set_num_threads(1)
    config = load_config(Path(__file__).parents[1] / "config" / "config.yaml")
    full = load_mnist5k()
    data = Dataset(full.name, full.train_x[:n_train], full.train_y[:n_train], full.test_x, full.test_y)
    cfg = TrainConfig(**HEADS["ABCL"], epochs=epochs)
    with tempfile.TemporaryDirectory() as out:
        record = train_model(cfg, data, out, device="cpu", progress=False)
        model, _ = load_model(Path(out) / "model.pt")
    started = time.perf_counter()
    evaluate(model, cfg, data, attack_specs(config["attacks"]), n_test=n_test or config["eval"]["n_test"],
             batch_size=config["eval"]["batch_size"], device="cpu")
    return {"mode": mode, "provenance": kernels.provenance(), "epoch_seconds": record["epoch_seconds"],
            "evaluation_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="at least 2: the first epoch is left out")
    parser.add_argument("--modes", nargs="+", help="default: fast and every portable tier this CPU runs")
    parser.add_argument("--n-train", type=int, help="training digits (default: all 4,000)")
    parser.add_argument("--n-test", type=int, help="test digits attacked (default: the config's eval.n_test)")
    parser.add_argument("--out")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.modes:
        from abcl import kernels
        args.modes = ["fast", *(tier for tier in kernels.TIERS if kernels.runs(tier))]
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, args.n_train, args.n_test)))
        return
    runs = []
    for round_ in range(args.rounds):
        for mode in args.modes:
            sizes = [f"--{name}={value}" for name, value in (("n-train", args.n_train), ("n-test", args.n_test)) if value]
            done = subprocess.run([sys.executable, __file__, "--worker", mode, "--epochs", str(args.epochs), *sizes],
                                  check=True, capture_output=True, text=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1} {mode}: epochs {[round(s, 2) for s in runs[-1]['epoch_seconds']]} s, "
                  f"evaluation {runs[-1]['evaluation_s']:.1f} s", flush=True)
    summary = {}
    for mode in args.modes:
        mine = [r for r in runs if r["mode"] == mode]
        summary[mode] = {"epoch_s": statistics.median(s for r in mine for s in r["epoch_seconds"][1:]),
                         "evaluation_s": statistics.median(r["evaluation_s"] for r in mine)}
    print(f"{'mode':18s} {'epoch s':>8s} {'x fast':>7s} {'eval s':>8s} {'x fast':>7s}")
    for mode, row in summary.items():
        base = summary.get("fast", row)
        row["epoch_x_fast"] = row["epoch_s"] / base["epoch_s"]
        row["evaluation_x_fast"] = row["evaluation_s"] / base["evaluation_s"]
        print(f"{mode:18s} {row['epoch_s']:8.2f} {row['epoch_x_fast']:7.2f} {row['evaluation_s']:8.1f} "
              f"{row['evaluation_x_fast']:7.2f}")
    if args.out:
        from abcl.records import write_json
        write_json(args.out, {"argv": sys.argv[1:], "cpu": runs[0]["provenance"], "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
