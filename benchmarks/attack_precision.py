"""What attacking in bf16 changes: the same trained networks under the same FGSM and BIM attacks,
the model computed in float32 (as every evaluation now runs) and under bf16 autocast (as the GPU
path attacked before), accuracy side by side, with McNemar's exact test on the paired test images.

bf16 autocast on the CPU computes the convolutions and linear layers in bf16 as the GPU's did; the
cosines and the loss stay in float32 either way (``abcl.losses.cosine_matrix``). A coarser input
gradient can leave more images standing, i.e. overstate robustness.

    python benchmarks/attack_precision.py MODEL.pt [MODEL.pt ...] --data results/mnist5k-alexnet/data/mnist5k.pt \\
        [--config config/alexnet.yaml] [--out benchmarks/measured/attack-precision-DATE]

Attacks: the config's FGSM and BIM at their middle budgets, on its ``eval.n_test`` images. Writes
OUT.json (every number and the provenance) and OUT.md (the table).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abcl import kernels  # noqa: E402

kernels.select("portable")  # before torch computes anything, as every workflow job does

import torch  # noqa: E402

from abcl.config import attack_specs, load_config  # noqa: E402

from abcl.plan import middle_budgets
from abcl.data import load_prepared  # noqa: E402
from abcl.evaluate import evaluate  # noqa: E402
from abcl.tables import markdown  # noqa: E402
from abcl.train import load_model  # noqa: E402
from benchmarks.common import write_results  # noqa: E402

PRECISIONS = {"float32": torch.float32, "bf16": torch.bfloat16}


def mcnemar_p(a, b) -> float:
    """Two-sided exact McNemar: of the images the two precisions disagree on, does either side win
    more than a fair coin would?"""
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return float(stats.binomtest(only_b, only_a + only_b).pvalue) if only_a + only_b else 1.0


def compare(model_path: str, data, specs, n_test: int, batch_size: int) -> list[dict]:
    """One row per evaluation: accuracy in float32 and in bf16, the difference, and McNemar's p."""
    model, cfg = load_model(model_path)
    runs = {}  # precision -> (its evaluation, seconds)
    for name, dtype in PRECISIONS.items():
        started = time.perf_counter()
        found = evaluate(model, cfg, data, specs, n_test=n_test, batch_size=batch_size, device="cpu", dtype=dtype)
        runs[name] = (found, time.perf_counter() - started)
    (f32, f32_s), (bf16, bf16_s) = runs["float32"], runs["bf16"]
    rows = []
    for key in f32.correct:
        a, b = f32.correct[key], bf16.correct[key]
        rows.append({"model": f"{cfg.loss} k1={cfg.k1:g} k2={cfg.k2:g} seed {cfg.seed}", "arch": str(cfg.arch),
                     "evaluation": key, "images": len(a), "float32 %": 100 * a.mean(), "bf16 %": 100 * b.mean(),
                     "bf16 − float32, points": 100 * (b.mean() - a.mean()),
                     "images that differ": int((a != b).sum()), "McNemar p": mcnemar_p(a, b),
                     "float32 s": f32_s, "bf16 s": bf16_s})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model.pt files of trained networks")
    parser.add_argument("--data", required=True, help="a prepared dataset (results/<run>/data/<dataset>.pt)")
    parser.add_argument("--config", default="config/alexnet.yaml", help="attacks and test images come from it")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    specs = attack_specs(middle_budgets(config["attacks"]))
    data = load_prepared(args.data)
    rows = [row for path in args.models
            for row in compare(path, data, specs, config["eval"]["n_test"], config["eval"]["batch_size"])]
    table = pd.DataFrame(rows)
    shown = table.drop(columns=["float32 s", "bf16 s"]).round(
        {"float32 %": 1, "bf16 %": 1, "bf16 − float32, points": 1})
    shown["McNemar p"] = shown["McNemar p"].map(lambda p: f"{p:.2g}")
    text = markdown(shown)
    print(text)
    if args.out:
        write_results({"rows": rows, "config": args.config, "models": args.models}, f"{args.out}.json",
                      torch.device("cpu"))
        Path(f"{args.out}.md").write_text(text)


if __name__ == "__main__":
    main()
