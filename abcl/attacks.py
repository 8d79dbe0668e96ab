"""FGSM and BIM under L-inf and L2, built on torchattacks, attacking the inference logits.

Inputs are pixels in [0,1] (the model normalizes inside ``forward``), so budgets are in
pixel space. Every attack sees the model through :class:`StableGradientView`, which fixes a
quiet failure of cosine heads with a large scale s: the softmax saturates, the input
gradient falls to ~1e-20 and torchattacks' L2 step ``g / (||g|| + 1e-10)`` becomes a no-op
(in float32 the true-class gradient even rounds to exactly 0), so the model looks robust.
"""

from __future__ import annotations

import torch
import torchattacks
from torch import nn

from abcl.config import AttackSpec


class _RowMaxNormalize(torch.autograd.Function):
    """Identity forward; backward divides each sample's logit gradient by its largest entry.

    Each sample's loss depends on its own logits only (eval mode), so a positive per-sample
    factor leaves every attack's step direction unchanged (sign for L-inf, g/||g|| for L2)
    while keeping the gradient far from float32 underflow on its way back to the input.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor) -> torch.Tensor:
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        scale = grad.abs().amax(dim=1, keepdim=True)
        return grad / torch.where(scale > 0, scale, torch.ones_like(scale))


class StableGradientView(nn.Module):
    """The model as attacks should see it: float64 logits (so the cross-entropy gradient keeps
    its true-class term), re-scaled per sample on the way back; bf16 autocast on GPU."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # torchattacks restores the *view's* mode after each call: a fresh module is in training
        # mode, which would leave the wrapped model with dropout switched on
        self.train(model.training)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=images.is_cuda):
            logits = self.model(images)
        return _RowMaxNormalize.apply(logits.double())


def fgsm_linf(model: nn.Module, eps: float) -> torchattacks.Attack:
    """x' = clip_[0,1](x + eps * sign(grad_x CE))."""
    return torchattacks.FGSM(model, eps=eps)


def bim_linf(model: nn.Module, eps: float, steps: int, alpha: float) -> torchattacks.Attack:
    """Iterated FGSM with step alpha, projected to the L-inf ball of radius eps and to [0,1]."""
    return torchattacks.BIM(model, eps=eps, alpha=alpha, steps=steps)


def fgsm_l2(model: nn.Module, eps: float) -> torchattacks.Attack:
    """x' = clip_[0,1](x + eps * g / ||g||_2) per sample: PGD-L2, one step of length eps, no random start."""
    return torchattacks.PGDL2(model, eps=eps, alpha=eps, steps=1, random_start=False,
                              eps_for_division=torch.finfo(torch.float32).tiny)


def bim_l2(model: nn.Module, eps: float, steps: int, alpha: float) -> torchattacks.Attack:
    """Iterated normalized-gradient steps of length alpha, projected to the L2 ball and to [0,1]."""
    return torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=False,
                              eps_for_division=torch.finfo(torch.float32).tiny)


def pgd_linf(model: nn.Module, eps: float, steps: int, alpha: float) -> torchattacks.Attack:
    """BIM from a uniformly random start in the L-inf ball (Madry et al. 2018)."""
    return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)


def pgd_l2(model: nn.Module, eps: float, steps: int, alpha: float) -> torchattacks.Attack:
    """BIM-L2 from a random start in the L2 ball."""
    return torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=True,
                              eps_for_division=torch.finfo(torch.float32).tiny)


def apgd(model: nn.Module, norm: str, eps: float, steps: int, loss: str, restarts: int) -> torchattacks.Attack:
    """Auto-PGD (Croce and Hein 2020): step size adapted from the loss trajectory; ``loss`` is
    'ce' or the scale-invariant 'dlr' = -(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3)."""
    return torchattacks.APGD(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, steps=steps,
                             n_restarts=restarts, loss=loss, seed=0)


def build_attack(model: nn.Module, spec: AttackSpec) -> torchattacks.Attack:
    view = StableGradientView(model)
    if spec.key == "fgsm_linf":
        return fgsm_linf(view, spec.eps)
    if spec.key == "bim_linf":  # with Kurakin's schedule the spec holds his steps and alpha = 1/255
        return bim_linf(view, spec.eps, spec.steps, spec.alpha)
    if spec.key == "fgsm_l2":
        return fgsm_l2(view, spec.eps)
    if spec.key == "bim_l2":
        return bim_l2(view, spec.eps, spec.steps, spec.alpha)
    if spec.key == "pgd_linf":
        return pgd_linf(view, spec.eps, spec.steps, spec.alpha)
    if spec.key == "pgd_l2":
        return pgd_l2(view, spec.eps, spec.steps, spec.alpha)
    if spec.name in ("apgd_ce", "apgd_dlr"):
        return apgd(view, spec.norm, spec.eps, spec.steps, spec.name.removeprefix("apgd_"), spec.restarts)
    raise ValueError(f"unknown attack '{spec.key}'")


@torch.no_grad()
def _misclassified(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=images.is_cuda):
        return model(images).argmax(1) != labels


def _worst_of_restarts(model: nn.Module, attack: torchattacks.Attack, spec: AttackSpec,
                       images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sample, the first restart that fools the model, else the first restart's point. Each
    restart after the first attacks only the samples no restart has fooled yet (as APGD does
    internally), so restarts cost little once most samples fall."""
    if spec.restarts == 1 or spec.name.startswith("apgd"):
        return attack(images, labels)
    torch.manual_seed(0)  # random starts reproducible run to run
    best = attack(images, labels)
    alive = ~_misclassified(model, best, labels)
    for _ in range(1, spec.restarts):
        index = alive.nonzero().squeeze(1)
        if len(index) == 0:
            break
        adversarial = attack(images[index], labels[index])
        fooled = _misclassified(model, adversarial, labels[index])
        best[index[fooled]] = adversarial[fooled]
        alive[index[fooled]] = False
    return best


def perturb(model: nn.Module, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor,
            batch_size: int = 500) -> torch.Tensor:
    """Adversarial versions of ``images`` (float in [0,1]), computed batch by batch on their device."""
    attack = build_attack(model, spec)
    return torch.cat([_worst_of_restarts(model, attack, spec, images[i:i + batch_size], labels[i:i + batch_size])
                      for i in range(0, len(images), batch_size)])
