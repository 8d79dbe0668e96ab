"""Clean and adversarial accuracy as tidy rows, and latent features for the t-SNE step."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd
import torch

from abcl import kernels
from abcl.attacks import perturb
from abcl.config import AttackSpec, TrainConfig, evaluation_key
from abcl.data import Dataset, as_float_images
from abcl.device import device_name, model_precision, on_device, resolve_device
from abcl.records import atomic_path, library_versions


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Predicted classes, the model computing in ``dtype`` (float32 unless measuring bf16)."""
    with model_precision(images.device.type, dtype):
        return torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def _test_subset(dataset: Dataset, n: int | None, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images as floats on ``dev`` (only they travel, not the whole dataset)."""
    n = len(dataset.test_y) if n is None else min(n, len(dataset.test_y))
    return as_float_images(dataset.test_x[:n].to(dev)), dataset.test_y[:n].to(dev)


def _row(cfg: TrainConfig, dev: torch.device, **values: Any) -> dict[str, Any]:
    versions, machine = library_versions(), kernels.provenance()
    return {**cfg.to_dict(), **values, "config_hash": cfg.hash,
            "abcl": versions["abcl"], "torch": versions["torch"], "torchattacks": versions["torchattacks"],
            "device": device_name(dev), **{key: machine[key] for key in ROW_PROVENANCE}}


ROW_PROVENANCE = ("kernels", "threads", "cpu", "cpu_isa")  # of kernels.provenance(), in every row
QUERY_ATTACKS = ("square", "autoattack")  # attacks with a query budget (Square, alone or in AutoAttack)


class Evaluation(NamedTuple):
    rows: pd.DataFrame  # one per evaluation (clean, each attack at each budget, worst cases)
    correct: dict[str, np.ndarray]  # per evaluation key: which test images were right, test-set order


def evaluate_model(model: torch.nn.Module, cfg: TrainConfig, dataset: Dataset, specs: list[AttackSpec],
                   n_test: int | None = None, batch_size: int = 500, device: str = "auto",
                   adaptive_n_test: int | None = None) -> pd.DataFrame:
    """The rows of :func:`evaluate`."""
    return evaluate(model, cfg, dataset, specs, n_test, batch_size, device, adaptive_n_test).rows


def evaluate(model: torch.nn.Module, cfg: TrainConfig, dataset: Dataset, specs: list[AttackSpec],
             n_test: int | None = None, batch_size: int = 500, device: str = "auto",
             adaptive_n_test: int | None = None, progress: Callable[[str], None] | None = None,
             dtype: torch.dtype = torch.float32) -> Evaluation:
    """One row for clean accuracy, one per attack spec (with the measured perturbation size), and
    per norm and budget a ``worst_case`` row (:func:`nested_worst_cases`): a sample counts only if
    it survives every attack at that budget or a smaller one of the same norm.

    Adaptive attacks (PGD, APGD, Square, AutoAttack) see only the first ``adaptive_n_test``
    images when it is given: their budget is thousands of passes per image. Every row then also
    gives ``common_accuracy`` over those ``n_common`` images, which every attack saw, so that
    attacks are compared on the same images; worst-case rows are computed on them.

    ``correct`` holds, per evaluation (:func:`abcl.config.evaluation_key`), which test images the
    model got right, in test-set order: paired tests compare models on them. ``progress``, if
    given, is told of each attack as it ends (a long evaluation is not silent in its log).

    The model computes in float32 on every device (``dtype``; bf16 only to measure what it
    changes, benchmarks/attack_precision.py): bf16 is for training.
    """
    progress = progress or (lambda message: None)
    dev = resolve_device(device)
    model = on_device(model, dev).eval()
    images, labels = _test_subset(dataset, n_test, dev)
    n_common = len(labels)
    if adaptive_n_test is not None and any(spec.adaptive for spec in specs):
        n_common = min(adaptive_n_test, n_common)
    clean = predict(model, images, dtype=dtype) == labels

    per_image: dict[str, np.ndarray] = {}

    def row(correct: torch.Tensor, **values: Any) -> dict[str, Any]:
        per_image[evaluation_key(values["attack"], values["norm"], values["eps"])] = correct.cpu().numpy()
        return _row(cfg, dev, **values, accuracy=correct.double().mean().item(), n=len(correct),
                    common_accuracy=correct[:n_common].double().mean().item(), n_common=n_common)

    rows = [row(clean, attack="clean", norm="none", eps=0.0, steps=0, restarts=0, queries=0, max_linf=0.0,
                max_l2=0.0)]
    progress(f"clean: accuracy {rows[-1]['accuracy']:.4f} on {len(labels)} images")
    survived: list[tuple[str, float, torch.Tensor]] = []  # per attack: which common images it left right
    for i, spec in enumerate(specs, 1):
        n = n_common if spec.adaptive else len(labels)
        adversarial = perturb(model, spec, images[:n], labels[:n], batch_size, dtype)
        correct = predict(model, adversarial, dtype=dtype) == labels[:n]
        delta = (adversarial - images[:n]).flatten(1)
        rows.append(row(correct, attack=spec.name, norm=spec.norm, eps=spec.eps, steps=spec.steps,
                        restarts=spec.restarts, queries=spec.queries if spec.name in QUERY_ATTACKS else 0,
                        max_linf=delta.abs().amax().item(), max_l2=delta.norm(dim=1).amax().item()))
        progress(f"attack {i}/{len(specs)} {spec.name} {spec.norm} eps={spec.eps:g}: "
                 f"accuracy {rows[-1]['accuracy']:.4f} on {n} images")
        survived.append((spec.norm, spec.eps, correct[:n_common]))
    adaptive = any(spec.adaptive for spec in specs)  # without them a worst case is FGSM/BIM's alone: none
    for norm, eps, alive in nested_worst_cases(clean[:n_common], survived) if adaptive else []:
        rows.append(row(alive, attack="worst_case", norm=norm, eps=eps, steps=0, restarts=0, queries=0,
                        max_linf=float("nan"), max_l2=float("nan")))
    return Evaluation(pd.DataFrame(rows), per_image)


def nested_worst_cases(clean: torch.Tensor, survived: list[tuple[str, float, torch.Tensor]]
                       ) -> list[tuple[str, float, torch.Tensor]]:
    """Per norm and budget eps, which images survive every attack at every eps' <= eps of that
    norm (and are right when clean): the eps' ball lies inside the eps ball, so whatever an attacker
    finds at eps' it may use at eps, and the worst-case accuracy never rises with eps. ``survived``
    holds (norm, eps, which images the attack left right), all on the same images as ``clean``;
    a budget gets a row only where at least two attacks are included."""
    found = []
    for norm, eps in sorted({(n, e) for n, e, _ in survived}):
        included = [right for n, e, right in survived if n == norm and e <= eps]
        if len(included) > 1:
            alive = clean.clone()
            for right in included:
                alive &= right
            found.append((norm, eps, alive))
    return found


def gradient_report(model: torch.nn.Module, cfg: TrainConfig, dataset: Dataset, n_test: int | None = None,
                    tiny: float = 1e-10, batch_size: int = 500, device: str = "auto") -> pd.DataFrame:
    """How often the plain float32 input gradient of the cross-entropy vanishes (gradient masking).

    This is the gradient a naive attack sees (no StableGradientView): where its L2 norm is below
    ``tiny`` an L2 step g / (||g|| + 1e-10) barely moves and FGSM/BIM lose their direction.
    """
    dev = resolve_device(device)
    model = on_device(model, dev).eval()
    images, labels = _test_subset(dataset, n_test, dev)
    norms = []
    for i in range(0, len(labels), batch_size):
        x = images[i:i + batch_size].clone().requires_grad_(True)
        with model_precision(dev.type):
            logits = model(x).float()
        loss = torch.nn.functional.cross_entropy(logits, labels[i:i + batch_size], reduction="sum")
        grad, = torch.autograd.grad(loss, x)
        norms.append(grad.flatten(1).double().norm(dim=1))
    norms = torch.cat(norms)
    return pd.DataFrame([_row(
        cfg, dev, n=len(labels), tiny_gradient=tiny, frac_zero_gradient=(norms == 0).double().mean().item(),
        frac_vanished_gradient=(norms < tiny).double().mean().item(), median_gradient_norm=norms.median().item(),
    )])


def extract_features(model: torch.nn.Module, dataset: Dataset, n_per_set: int, attacks: list[AttackSpec],
                     device: str = "auto", seed: int = 0,
                     progress: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Latent features (y for sce, y_hat for cosine heads) of a train subset, a test subset and
    one adversarial version of that test subset per attack (a set named by the attack's key,
    e.g. ``bim_linf``)."""
    dev = resolve_device(device)
    model = on_device(model, dev).eval()
    pick = torch.randperm(len(dataset.train_y), generator=torch.Generator().manual_seed(seed))[:n_per_set]
    test_x, test_y = _test_subset(dataset, n_per_set, dev)
    progress = progress or (lambda message: None)
    sets = {"train": (as_float_images(dataset.train_x[pick].to(dev)), dataset.train_y[pick].to(dev)),
            "test": (test_x, test_y)}
    for spec in attacks:
        sets[spec.key] = (perturb(model, spec, test_x, test_y), test_y)
        progress(f"adversarial set {spec.key}: {len(test_y)} images")
    features, labels, names, predicted = [], [], [], []
    with torch.no_grad(), model_precision(dev.type):
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
            np.savez(handle, config_hash=np.array(cfg.hash), loss=np.array(cfg.loss), seed=np.array(cfg.seed),
                     **arrays)

