"""Clean and adversarial accuracy as tidy rows, and latent features for the t-SNE step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from abcl.attacks import perturb
from abcl.config import AttackSpec, TrainConfig
from abcl.data import Dataset
from abcl.records import atomic_path, library_versions
from abcl.train import as_float_images, device_name, resolve_device

@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=images.is_cuda):
        return torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def _test_subset(dataset: Dataset, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(dataset.test_y) if n is None else min(n, len(dataset.test_y))
    return as_float_images(dataset.test_x[:n]), dataset.test_y[:n]


def _row(cfg: TrainConfig, dev: torch.device, **values: Any) -> dict[str, Any]:
    versions = library_versions()
    return {**cfg.to_dict(), **values, "config_hash": cfg.hash,
            "abcl": versions["abcl"], "torch": versions["torch"], "torchattacks": versions["torchattacks"],
            "device": device_name(dev)}


def evaluate_model(model: torch.nn.Module, cfg: TrainConfig, dataset: Dataset, specs: list[AttackSpec],
                   n_test: int | None = None, batch_size: int = 500, device: str = "auto") -> pd.DataFrame:
    """One row for clean accuracy and one per attack spec, with the measured perturbation size."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    images, labels = _test_subset(dataset.to(dev), n_test)
    rows = [_row(cfg, dev, attack="clean", norm="none", eps=0.0, steps=0,
                 accuracy=(predict(model, images) == labels).double().mean().item(), n=len(labels),
                 max_linf=0.0, max_l2=0.0)]
    for spec in specs:
        adversarial = perturb(model, spec, images, labels, batch_size)
        delta = (adversarial - images).flatten(1)
        rows.append(_row(
            cfg, dev, attack=spec.name, norm=spec.norm, eps=spec.eps, steps=spec.steps,
            accuracy=(predict(model, adversarial) == labels).double().mean().item(), n=len(labels),
            max_linf=delta.abs().amax().item(), max_l2=delta.norm(dim=1).amax().item(),
        ))
    return pd.DataFrame(rows)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as part:
        frame.to_csv(part, index=False)


FEATURE_SETS = ("train", "test", "bim_linf", "fgsm_l2")


def extract_features(model: torch.nn.Module, dataset: Dataset, n_per_set: int, bim_linf: AttackSpec,
                     fgsm_l2: AttackSpec, device: str = "auto", seed: int = 0) -> dict[str, np.ndarray]:
    """Latent features (y for sce, y_hat for cosine heads) of a train subset, a test subset and
    the BIM-L-inf and FGSM-L2 adversarial versions of that test subset."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    data = dataset.to(dev)
    pick = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))[:n_per_set].to(dev)
    test_x, test_y = _test_subset(data, n_per_set)
    sets = {
        "train": (as_float_images(data.train_x[pick]), data.train_y[pick]),
        "test": (test_x, test_y),
        "bim_linf": (perturb(model, bim_linf, test_x, test_y), test_y),
        "fgsm_l2": (perturb(model, fgsm_l2, test_x, test_y), test_y),
    }
    features, labels, names, predicted = [], [], [], []
    with torch.no_grad():
        for name, (images, truth) in sets.items():
            features.append(model.features(images).float().cpu().numpy())
            predicted.append(predict(model, images).cpu().numpy())
            labels.append(truth.cpu().numpy())
            names.extend([name] * len(truth))
    return {"features": np.concatenate(features), "labels": np.concatenate(labels),
            "predicted": np.concatenate(predicted), "set": np.array(names)}


def save_features(arrays: dict[str, np.ndarray], cfg: TrainConfig, path: str | Path) -> None:
    with atomic_path(path) as part:
        with open(part, "wb") as handle:
            np.savez(handle, config_hash=np.array(cfg.hash), loss=np.array(cfg.loss), **arrays)

