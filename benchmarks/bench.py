"""Benchmark abcl's training, attack evaluation and t-SNE against naive baselines, in one run on
one device, and print times, ratios, achieved FLOP/s and the accuracy of both training paths.

    python benchmarks/bench.py                                   # CPU: mnist5k, small net, ~1 min
    python benchmarks/bench.py --dataset mnist --source DIR --arch alexnet --epochs 2 \\
        --batch-size 512 --peak-tflops 989 --out bench.json      # GPU: full MNIST, AlexNet-style net

Naive baseline (what a first PyTorch script does): a per-sample Dataset converting each uint8 image
to float in __getitem__, a DataLoader with batch 128, fp32, every batch copied to the device.
abcl: the whole split resident on the device, batches indexed there, bf16 autocast and
channels_last on GPU, one host-device sync per epoch (abcl.train.train_model).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchattacks
from torch.utils.data import DataLoader, Dataset as TorchDataset
from torch.utils.flop_counter import FlopCounterMode

from abcl.attacks import perturb
from abcl.config import AttackSpec, TrainConfig
from abcl.data import load_dataset
from abcl.embed import tsne_embedding
from abcl.evaluate import predict
from abcl.models import build_model
from abcl.train import as_float_images, load_model, resolve_device, seed_everything, train_model


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


def naive_training(cfg: TrainConfig, dataset, device: torch.device, batch_size: int = 128) -> tuple[float, torch.nn.Module]:
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device)
    loader = DataLoader(PerSampleImages(dataset.train_x, dataset.train_y), batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * len(loader))
    synchronize(device)
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        model.train()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            _ = loss.item()  # the per-step sync a logging loop does
    synchronize(device)
    return time.perf_counter() - start, model.eval()


def naive_bim(model, dataset, device, eps: float, steps: int, batch_size: int = 128) -> float:
    loader = DataLoader(PerSampleImages(dataset.test_x, dataset.test_y), batch_size=batch_size)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--source", help="IDX folder for mnist / fashion-mnist")
    parser.add_argument("--arch", default="small", choices=["small", "alexnet"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128,
                        help="abcl's batch size (the naive loop uses 128; on a GPU abcl pays off at 512)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for the fraction of peak")
    parser.add_argument("--tsne-points", type=int, default=2000)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, source=args.source)
    cfg = TrainConfig(loss="sce", dataset=args.dataset, arch=args.arch, epochs=args.epochs,
                      batch_size=args.batch_size, lr=2e-3)
    n_train = len(dataset.train_y)
    flops = train_flops_per_image(cfg, device) * n_train * cfg.epochs
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)",
               "dataset": args.dataset, "n_train": n_train, "arch": args.arch, "epochs": args.epochs,
               "abcl_batch_size": args.batch_size, "naive_batch_size": 128, "train_tflop": flops / 1e12}

    naive_s, naive_model = naive_training(cfg, dataset, device)
    with tempfile.TemporaryDirectory() as tmp:
        synchronize(device)
        start = time.perf_counter()
        train_model(cfg, dataset, tmp, device=str(device), progress=False)
        synchronize(device)
        abcl_s = time.perf_counter() - start
        abcl_model, _ = load_model(f"{tmp}/model.pt", device)
    results.update({
        "naive_train_s": naive_s, "abcl_train_s": abcl_s, "train_speedup": naive_s / abcl_s,
        "naive_s_per_epoch": naive_s / cfg.epochs, "abcl_s_per_epoch": abcl_s / cfg.epochs,
        "abcl_achieved_tflops": flops / abcl_s / 1e12,
        "naive_clean_accuracy": accuracy(naive_model, dataset, device),
        "abcl_clean_accuracy": accuracy(abcl_model, dataset, device),
    })
    if args.peak_tflops:
        results["abcl_fraction_of_peak"] = results["abcl_achieved_tflops"] / args.peak_tflops

    spec = AttackSpec("bim", "linf", 0.2, steps=10)
    results["naive_bim10_s"] = naive_bim(abcl_model, dataset, device, spec.eps, spec.steps)
    images, labels = as_float_images(dataset.test_x.to(device)), dataset.test_y.to(device)
    synchronize(device)
    start = time.perf_counter()
    perturb(abcl_model, spec, images, labels, batch_size=2000 if device.type == "cuda" else 128)
    synchronize(device)
    results["abcl_bim10_s"] = time.perf_counter() - start
    results["bim_speedup"] = results["naive_bim10_s"] / results["abcl_bim10_s"]

    with torch.no_grad():
        features = abcl_model.features(images[:args.tsne_points]).float().cpu().numpy()
    for label, threads in (("tsne_sklearn_1thread_s", 1), ("tsne_sklearn_allcores_s", -1)):
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
    results["tsne_points"] = len(features)

    width = max(map(len, results))
    for key, value in results.items():
        shown = f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else value
        print(f"{key:<{width}}  {shown}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
