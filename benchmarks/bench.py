"""Benchmark abcl's training, attack evaluation and t-SNE against naive baselines, in one run on
one device, and print times, ratios, achieved FLOP/s and the accuracy of both training paths.

    python benchmarks/bench.py                                   # CPU: mnist5k, small net, ~1 min
    python benchmarks/bench.py --dataset mnist --source DIR --arch alexnet --epochs 3 \\
        --batch-sizes 256 512 1024 2048 --cuda-graphs --adaptive-config config/paper.yaml \\
        --peak-tflops 790 --out bench.json                       # GPU: full MNIST, AlexNet-style net

Naive baseline (what a first PyTorch script does): a per-sample Dataset converting each uint8 image
to float in __getitem__, a DataLoader with batch 128, fp32, every batch copied to the device.
abcl: the whole split resident on the device, batches indexed there, bf16 autocast and
channels_last on GPU, one host-device sync per epoch (abcl.train.train_model), at each batch size
asked for, with Adam's peak learning rate scaled linearly, 2e-3 * batch / 256 (the paper's 2e-3 at
256; see scaled_lr); optionally each batch size again with CUDA graphs (abcl.train.graphed).
(torch.compile was measured once, on an H200: 0.25x for a 3-epoch training, compile time included;
benchmarks/measured/h200-2026-11-27.md.)
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchattacks
from torch.utils.data import DataLoader, Dataset as TorchDataset
from torch.utils.flop_counter import FlopCounterMode

from abcl.attacks import perturb
from abcl.config import AttackSpec, TrainConfig, attack_specs, load_config
from abcl.data import as_float_images, load_dataset
from abcl.device import resolve_device
from abcl.embed import tsne_embedding
from abcl.evaluate import evaluate_model, predict
from abcl.models import build_model
from abcl.train import load_model, seed_everything, train_model
from common import write_results  # benchmarks/common.py, beside this script


class PerSampleImages(TorchDataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index].float() / 255.0, self.labels[index]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_flops_per_image(cfg: TrainConfig, device: torch.device) -> float:
    """Forward + backward FLOPs of one training image, counted by PyTorch's FlopCounterMode."""
    model = build_model(cfg).to(device).train()
    batch = torch.rand(64, 1, 28, 28, device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(batch), torch.zeros(64, dtype=torch.long, device=device)).backward()
    return counter.get_total_flops() / 64


def naive_training(cfg: TrainConfig, dataset, device: torch.device,
                   batch_size: int = 128) -> tuple[float, list[float], torch.nn.Module]:
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device)
    loader = DataLoader(PerSampleImages(dataset.train_x, dataset.train_y), batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * len(loader))
    synchronize(device)
    start = time.perf_counter()
    epoch_seconds = []
    for _ in range(cfg.epochs):
        epoch_start = time.perf_counter()
        model.train()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            _ = loss.item()  # the per-step sync a logging loop does
        epoch_seconds.append(time.perf_counter() - epoch_start)
    synchronize(device)
    return time.perf_counter() - start, epoch_seconds, model.eval()


def naive_bim(model, dataset, device, eps: float, steps: int, n: int | None = None, batch_size: int = 128) -> float:
    loader = DataLoader(PerSampleImages(dataset.test_x[:n], dataset.test_y[:n]), batch_size=batch_size)
    attack = torchattacks.BIM(model, eps=eps, alpha=2.5 * eps / steps, steps=steps)
    synchronize(device)
    start = time.perf_counter()
    for images, labels in loader:
        attack(images.to(device), labels.to(device))
    synchronize(device)
    return time.perf_counter() - start


def accuracy(model, dataset, device) -> float:
    images = as_float_images(dataset.test_x.to(device))
    return (predict(model, images).cpu() == dataset.test_y).float().mean().item()


def scaled_lr(batch_size: int, power: float = 1.0) -> float:
    """Adam's peak learning rate for a batch size: the paper's 2e-3 at 256 times (batch / 256) ** power,
    linear by default (the one-cycle schedule's first 30% is the warm-up linear scaling needs). In 3 epochs on full
    MNIST, square-root scaling lost 2.9 points at batch 2048 on the H200 (AlexNet-style net) and
    1.5 on the CPU (small net), linear scaling 0.65 there (benchmarks/measured/)."""
    return 2e-3 * (batch_size / 256) ** power


def abcl_training(cfg: TrainConfig, dataset, device: torch.device, cuda_graphs: bool = False):
    """Wall time of abcl.train.train_model (start-up, graph capture and saves included), its
    record and the trained model."""
    with tempfile.TemporaryDirectory() as tmp:
        synchronize(device)
        start = time.perf_counter()
        record = train_model(cfg, dataset, tmp, device=str(device), progress=False, cuda_graphs=cuda_graphs)
        synchronize(device)
        seconds = time.perf_counter() - start
        model, _ = load_model(f"{tmp}/model.pt", device)
    return seconds, record, model


def steady(epoch_seconds: list[float]) -> float:
    """Seconds per epoch once warm: the median epoch after the first (kernel tuning, compile)."""
    return float(np.median(epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds))


def training_results(args, dataset, device: torch.device, results: dict) -> torch.nn.Module:
    """Naive loop at batch 128 against abcl's training at each batch size, then the paper SCE floor."""
    n_train = len(dataset.train_y)
    naive_cfg = TrainConfig(loss="sce", dataset=args.dataset, arch=args.arch, epochs=args.epochs,
                            batch_size=128, lr=2e-3)
    flops = train_flops_per_image(naive_cfg, device) * n_train * args.epochs
    results["train_tflop"] = flops / 1e12
    naive_s, naive_epochs, naive_model = naive_training(naive_cfg, dataset, device)
    results.update({"naive_train_s": naive_s, "naive_s_per_epoch": naive_s / args.epochs,
                    "naive_steady_s_per_epoch": steady(naive_epochs),
                    "naive_clean_accuracy": accuracy(naive_model, dataset, device)})
    best = None
    for batch_size in args.batch_sizes:
        for graphs in (False, True) if args.cuda_graphs else (False,):
            tag, seconds, model = abcl_variant(args, dataset, device, results, batch_size, graphs=graphs)
            if best is None or seconds < best[0]:
                best = (seconds, model, tag)
    results["fastest_abcl_variant"] = best[2]
    results["fastest_speedup"] = naive_s / best[0]
    if args.floor_epochs:
        paper_sce_floor(args, dataset, device, results)
    return best[1]


def abcl_variant(args, dataset, device: torch.device, results: dict, batch_size: int,
                 graphs: bool = False) -> tuple[str, float, torch.nn.Module]:
    """abcl's training at one batch size, its time and accuracy beside the naive loop's."""
    cfg = TrainConfig(loss="sce", dataset=args.dataset, arch=args.arch, epochs=args.epochs,
                      batch_size=batch_size, lr=scaled_lr(batch_size))
    tag = f"abcl_b{batch_size}" + ("_graphs" if graphs else "")
    seconds, record, model = abcl_training(cfg, dataset, device, cuda_graphs=graphs)
    epoch_seconds = record["epoch_seconds"]
    epoch_tflop = results["train_tflop"] / args.epochs
    warm = steady(epoch_seconds)
    results.update({
        f"{tag}_lr": cfg.lr, f"{tag}_train_s": seconds, f"{tag}_s_per_epoch": seconds / args.epochs,
        f"{tag}_first_epoch_s": epoch_seconds[0], f"{tag}_steady_s_per_epoch": warm,
        f"{tag}_outside_epochs_s": seconds - sum(epoch_seconds),
        f"{tag}_speedup": results["naive_train_s"] / seconds,
        f"{tag}_steady_speedup": results["naive_steady_s_per_epoch"] / warm,
        f"{tag}_steady_tflops": epoch_tflop / warm, f"{tag}_clean_accuracy": accuracy(model, dataset, device),
    })
    if graphs:  # on a CPU the graphs do not apply and the variant trains eagerly
        results[f"{tag}_cuda_graphs_used"] = record["cuda_graphs"]
    if args.peak_tflops:
        results[f"{tag}_steady_fraction_of_peak"] = epoch_tflop / warm / args.peak_tflops
    return tag, seconds, model


def paper_sce_floor(args, dataset, device: torch.device, results: dict) -> None:
    """The paper's SCE training (batch 256, Adam one-cycle at 2e-3, bf16 on GPU, CUDA graphs when
    asked for): its clean test accuracy against the 99.2% floor, and the time one workflow
    training job spends training."""
    cfg = TrainConfig(loss="sce", dataset=args.dataset, arch=args.arch, epochs=args.floor_epochs,
                      batch_size=256, lr=2e-3)
    seconds, record, model = abcl_training(cfg, dataset, device, cuda_graphs=args.cuda_graphs)
    clean = accuracy(model, dataset, device)
    results.update({"paper_sce_epochs": cfg.epochs, "paper_sce_cuda_graphs": record["cuda_graphs"],
                    "paper_sce_train_s": seconds,
                    "paper_sce_clean_accuracy": clean, "paper_sce_meets_99.2": clean >= 0.992})


def attack_results(args, model, dataset, device: torch.device, results: dict) -> None:
    """Naive BIM-10 (torchattacks over a DataLoader, fp32) against abcl.attacks.perturb on the test
    split (its first ``--bim-n`` images); with ``--adaptive-config``, the time of that config's
    adaptive attacks on a subset."""
    # as in an `abcl evaluate` job: no cuDNN autotuning (PGD restarts attack ever-smaller batches,
    # and each new shape would be tuned again); training above switched it on in this process
    torch.backends.cudnn.benchmark = False
    spec = AttackSpec("bim", "linf", 0.2, steps=10)
    n = args.bim_n
    results["bim_n_test"] = len(dataset.test_y[:n])
    results["naive_bim10_s"] = naive_bim(model, dataset, device, spec.eps, spec.steps, n)
    images, labels = as_float_images(dataset.test_x[:n].to(device)), dataset.test_y[:n].to(device)
    batch = 2000 if device.type == "cuda" else 128
    synchronize(device)
    start = time.perf_counter()
    perturb(model, spec, images, labels, batch_size=batch)
    synchronize(device)
    results["abcl_bim10_s"] = time.perf_counter() - start
    results["bim_speedup"] = results["naive_bim10_s"] / results["abcl_bim10_s"]
    if args.adaptive_config:
        specs = attack_specs(load_config(args.adaptive_config)["adaptive_attacks"])
        cfg = TrainConfig(loss="sce", dataset=args.dataset, arch=args.arch)
        start = time.perf_counter()
        rows = evaluate_model(model, cfg, dataset, specs, n_test=args.adaptive_n, batch_size=batch,
                              device=str(device))
        synchronize(device)
        seconds = time.perf_counter() - start
        n = int(rows.n.iloc[0])
        results.update({"adaptive_attacks": len(specs), "adaptive_n_test": n, "adaptive_s": seconds,
                        "adaptive_s_per_10k_images": seconds * 10_000 / n})


def tsne_results(args, model, dataset, device: torch.device, results: dict) -> None:
    images = as_float_images(dataset.test_x[:args.tsne_points].to(device))
    with torch.no_grad():
        features = model.features(images).float().cpu().numpy()
    results["tsne_points"] = len(features)
    runs = [("tsne_sklearn_allcores_s", -1)] + ([("tsne_sklearn_1thread_s", 1)] if len(features) <= 2000 else [])
    for label, threads in runs:
        start = time.perf_counter()
        tsne_embedding(features, threads=threads)
        results[label] = time.perf_counter() - start
    try:
        from openTSNE import TSNE as OpenTSNE
        start = time.perf_counter()
        OpenTSNE(n_jobs=-1, random_state=0).fit(features.astype(np.float64))
        results["tsne_opentsne_allcores_s"] = time.perf_counter() - start
    except ImportError:
        results["tsne_opentsne_allcores_s"] = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--source", help="IDX folder for mnist / fashion-mnist")
    parser.add_argument("--arch", default="small", choices=["small", "alexnet"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128],
                        help="abcl's batch sizes (the naive loop uses 128; on a GPU abcl pays off from 512)")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="train each batch size once more with CUDA graphs (and the accuracy floor with them)")
    parser.add_argument("--floor-epochs", type=int, default=0,
                        help="also train the paper's SCE setting this many epochs and check 99.2%% clean accuracy")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for the fraction of peak")
    parser.add_argument("--bim-n", type=int, help="test images for the BIM-10 timing (default: all)")
    parser.add_argument("--adaptive-config", help="time this workflow config's adaptive attacks on one model")
    parser.add_argument("--adaptive-n", type=int, default=1000, help="test images for the adaptive timing")
    parser.add_argument("--tsne-points", type=int, default=2000)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, source=args.source)
    results = {"dataset": args.dataset, "n_train": len(dataset.train_y),
               "arch": args.arch, "epochs": args.epochs, "naive_batch_size": 128}
    model = training_results(args, dataset, device, results)
    report(results, args.out, device)  # as we go: a time box that cuts the run short keeps what was measured
    attack_results(args, model, dataset, device, results)
    report(results, args.out, device)
    tsne_results(args, model, dataset, device, results)
    report(results, args.out, device)


def report(results: dict, out: str | None, device: torch.device) -> None:
    show(results)
    write_results(results, out, device)


def show(results: dict) -> None:
    width = max(map(len, results))
    print("-" * (width + 12))
    for key, value in results.items():
        shown = f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else value
        print(f"{key:<{width}}  {shown}")


if __name__ == "__main__":
    main()
