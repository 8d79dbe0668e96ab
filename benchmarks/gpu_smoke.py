"""Fail fast on a lent GPU: every GPU code path of abcl once, on a small slice of full MNIST.

    python benchmarks/gpu_smoke.py data-cache/mnist-gz [--device cuda|cpu] [--out smoke.json]

Trains the AlexNet-style net with HT-SCE + AB terms for one epoch on 4,096 images (bf16 autocast,
channels_last, the AB ramp), eagerly and with CUDA graphs (their losses must agree), counts the
host-device syncs inside one epoch of each (reported, not fatal: abcl's epoch should have none),
then runs one attack of each family, the gradient report and feature extraction on 500 test
images. Exits non-zero at the first failure, so a broken path costs seconds of the lease instead
of the whole pipeline run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from dataclasses import replace

import torch

from abcl.config import AttackSpec, TrainConfig
from abcl.data import Dataset, load_dataset
from abcl.evaluate import evaluate_model, extract_features, gradient_report
from abcl.train import load_model, prepare_training, train_model


def host_syncs(fn) -> list[str]:
    """The synchronizing CUDA calls ``fn`` makes (PyTorch's sync debug mode), as warning texts."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [str(w.message) for w in caught if "synchronizing" in str(w.message)]


def epoch_syncs(cfg: TrainConfig, data: Dataset, device: str, cuda_graphs: bool) -> list[str]:
    """Syncs inside the second epoch of a training (the first tunes cuDNN's kernels)."""
    run = prepare_training(replace(cfg, epochs=2), data, torch.device(device), cuda_graphs=cuda_graphs)
    run.epoch(0)
    torch.cuda.synchronize()
    return host_syncs(lambda: run.epoch(1))


def main(source: str, device: str = "cuda", out: str | None = None) -> None:
    start = time.perf_counter()
    full = load_dataset("mnist", source=source)
    data = Dataset("mnist", full.train_x[:4096], full.train_y[:4096], full.test_x[:500], full.test_y[:500])
    cfg = TrainConfig(loss="ht_sce", s=5, m=0.2, k1=512, k2=64, dataset="mnist", arch="alexnet", epochs=1,
                      batch_size=256)
    specs = [AttackSpec("fgsm", "l2", 2.0), AttackSpec("bim", "linf", 0.2, steps=10),
             AttackSpec("pgd", "l2", 2.0, steps=10, restarts=2), AttackSpec("apgd_dlr", "linf", 0.2, steps=10)]
    with tempfile.TemporaryDirectory() as tmp:
        record = train_model(cfg, data, tmp, device=device, progress=False)
        model, _ = load_model(f"{tmp}/model.pt", device)
        graphs = train_model(cfg, data, f"{tmp}/graphs", device=device, progress=False, cuda_graphs=True)
    eager_loss, graphs_loss = record["final_train_loss"], graphs["final_train_loss"]
    if abs(graphs_loss - eager_loss) > 0.1 * abs(eager_loss):
        sys.exit(f"CUDA-graph training diverged from eager: loss {graphs_loss:.4f} vs {eager_loss:.4f}")
    for mode in ("eager", "graphed") if torch.device(device).type == "cuda" else ():
        try:  # a diagnostic: its own failure must not stop the stages after the smoke test
            found = epoch_syncs(cfg, data, device, mode == "graphed")
            print(f"host-device syncs in one {mode} epoch: {len(found)}" + (f" (first: {found[0][:200]})" if found else ""))
        except Exception as err:
            print(f"host-device sync count of a {mode} epoch failed: {type(err).__name__}: {err}"[:300])
    rows = evaluate_model(model, cfg, data, specs, batch_size=250, device=device)
    grads = gradient_report(model, cfg, data, device=device)
    feats = extract_features(model, data, 200, [specs[1], specs[0]], device=device)
    seconds = time.perf_counter() - start
    print(f"smoke ok in {seconds:.1f} s on {record['device']}: "
          f"train acc {record['final_train_accuracy']:.3f}, loss {eager_loss:.4f} in {record['wall_time_s']:.1f} s; "
          f"with CUDA graphs ({graphs['cuda_graphs']}) loss {graphs_loss:.4f} in {graphs['wall_time_s']:.1f} s; "
          + ", ".join(f"{r.attack} {r.norm} {r.eps:g}: {r.accuracy:.3f}" for r in rows.itertuples())
          + f"; vanished gradients {grads.frac_vanished_gradient.iloc[0]:.3f}; features {feats['features'].shape}")
    from common import write_results  # benchmarks/common.py, beside this script
    write_results({"seconds": seconds, "train_loss": eager_loss, "graphed_train_loss": graphs_loss,
                   "cuda_graphs_used": graphs["cuda_graphs"], "accuracy": rows.set_index(["attack", "norm", "eps"])
                   .accuracy.rename(lambda key: " ".join(map(str, key))).to_dict(),
                   "frac_vanished_gradient": float(grads.frac_vanished_gradient.iloc[0])}, out, torch.device(device))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="folder of the four full-MNIST IDX files (.gz or not)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    main(args.source, args.device, args.out)
