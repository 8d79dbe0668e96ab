"""White-box attacks on the inference logits, built on torchattacks: the paper's FGSM and BIM
(L-inf and L2), PGD with random restarts, APGD, Square (score-based, gradient-free) and
AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square).

Inputs are pixels in [0,1] (the model normalizes inside ``forward``), so budgets are in pixel
space. Every cross-entropy attack ascends the cross-entropy in log space (:func:`ce_in_log_space`):
with a cosine head and a large scale s the softmax saturates, 1 - p_y falls below float64's 2^-53,
and the true-class term of grad CE = (p - e_y) grad z rounds to exactly 0; what is left points
along the rivals' logits only (median cosine 0.91 with grad CE, minimum -0.44, measured on a
CosFace s = 64 model), and the model
looks more robust than it is.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torchattacks
from torch import nn

from abcl.config import AttackSpec
from abcl.device import model_precision
from abcl.losses import ce_in_log_space


class _CEInLogSpace(torch.autograd.Function):
    """Identity on the logits; backward hands back grad_z sum_i u_i in place of the incoming
    cross-entropy gradient (p - e_y) / B, a positive multiple per sample of the same direction.
    Only valid where the one loss downstream is the untargeted CE of ``labels``."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits.detach(), labels)
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, labels = ctx.saved_tensors
        with torch.enable_grad():
            z = logits.requires_grad_(True)
            direction, = torch.autograd.grad(ce_in_log_space(z, labels).sum(), z)
        return direction.to(grad.dtype), None


class AttackView(nn.Module):
    """The model as attacks see it, computing in ``dtype`` (float32 on every device, also inside a
    caller's autocast; bfloat16 only to measure what it changes) and handing out float32 logits
    (FAB needs them). While :meth:`ascending_ce` is active, the cross-entropy gradient through it is the log-space
    one, whose entries are O(1): float32 carries it without underflow."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.model = model
        self.dtype = dtype
        self._labels: torch.Tensor | None = None
        # torchattacks restores the *view's* mode after each call: a fresh module is in training
        # mode, which would leave the wrapped model with dropout switched on
        self.train(model.training)

    @contextlib.contextmanager
    def ascending_ce(self, labels: torch.Tensor) -> Iterator[None]:
        """For an attack that takes the CE of ``labels`` on whole batches (FGSM, BIM, PGD)."""
        self._labels = labels
        try:
            yield
        finally:
            self._labels = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with model_precision(images.device.type, self.dtype):
            logits = self.model(images)
        logits = logits.float()
        return logits if self._labels is None else _CEInLogSpace.apply(logits, self._labels)


class APGDLogSpaceCE(torchattacks.APGD):
    """torchattacks' APGD-CE maximizing u = :func:`ce_in_log_space` instead of CE: u is monotone
    in CE, so every accepted step and step-size halving is the same, and its gradient never
    underflows. APGD attacks subsets of a batch, so the loss, not the view, carries the fix:
    torchattacks reads its per-sample loss from ``dlr_loss`` when ``loss='dlr'``, and that hook
    returns u here."""

    def __init__(self, model: nn.Module, **kwargs):
        super().__init__(model, loss="dlr", **kwargs)

    def dlr_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ce_in_log_space(x, y)


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


NORMS = {"linf": "Linf", "l2": "L2"}


def apgd(model: nn.Module, norm: str, eps: float, steps: int, loss: str, restarts: int) -> torchattacks.Attack:
    """Auto-PGD (Croce and Hein 2020): step size adapted from the loss trajectory; ``loss`` is
    'ce' (in log space) or the scale-invariant 'dlr' = -(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3)."""
    if loss == "ce":
        return APGDLogSpaceCE(model, norm=NORMS[norm], eps=eps, steps=steps, n_restarts=restarts, seed=0)
    return torchattacks.APGD(model, norm=NORMS[norm], eps=eps, steps=steps, n_restarts=restarts, loss=loss, seed=0)


def square(model: nn.Module, norm: str, eps: float, queries: int) -> torchattacks.Attack:
    """Square attack (Andriushchenko et al. 2020): random square-shaped updates kept when they
    lower the margin z_y - max_{j!=y} z_j. It reads logits only, never a gradient, so masked
    gradients cannot fool it."""
    return torchattacks.Square(model, norm=NORMS[norm], eps=eps, n_queries=queries, n_restarts=1, seed=0)


def autoattack(model: nn.Module, norm: str, eps: float, steps: int, queries: int) -> torchattacks.Attack:
    """torchattacks' AutoAttack(version="standard"): APGD-CE, APGD-T, FAB-T and Square in turn,
    each on the images the ones before it did not fool. Its APGD-CE is swapped for
    :class:`APGDLogSpaceCE` with the same settings, so the log-space cross-entropy reaches it;
    ``steps`` sets the iterations of APGD-CE, APGD-T and FAB-T (torchattacks: 10; the original
    AutoAttack: 100), ``queries`` Square's budget."""
    attack = torchattacks.AutoAttack(model, norm=NORMS[norm], eps=eps, version="standard", n_classes=10, seed=0)
    parts = attack._autoattack.attacks
    assert isinstance(parts[0], torchattacks.APGD) and parts[0].loss == "ce", "torchattacks changed AutoAttack"
    parts[0] = APGDLogSpaceCE(model, norm=NORMS[norm], eps=eps, steps=steps, n_restarts=1, seed=parts[0].seed)
    for part in parts[1:3]:
        part.steps = steps
    parts[3].n_queries = queries
    return attack


def build_attack(view: AttackView, spec: AttackSpec) -> torchattacks.Attack:
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
    if spec.name == "square":
        return square(view, spec.norm, spec.eps, spec.queries)
    if spec.name == "autoattack":
        return autoattack(view, spec.norm, spec.eps, spec.steps, spec.queries)
    raise ValueError(f"unknown attack '{spec.key}'")


# attacks that take the untargeted CE of whole batches: the view computes its gradient in log space
_WHOLE_BATCH_CE = ("fgsm", "bim", "pgd")


@torch.no_grad()
def _misclassified(view: AttackView, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return view(images).argmax(1) != labels


def _attack_once(view: AttackView, attack: torchattacks.Attack, spec: AttackSpec,
                 images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if spec.name in _WHOLE_BATCH_CE:
        with view.ascending_ce(labels):
            return attack(images, labels)
    return attack(images, labels)  # APGD, Square, AutoAttack carry their own losses


def _worst_of_restarts(view: AttackView, attack: torchattacks.Attack, spec: AttackSpec,
                       images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sample, the first restart that fools the model, else the first restart's point. Each
    restart after the first attacks only the samples no restart has fooled yet (as APGD does
    internally), so restarts cost little once most samples fall."""
    if spec.restarts == 1 or spec.name not in _WHOLE_BATCH_CE:
        return _attack_once(view, attack, spec, images, labels)
    torch.manual_seed(0)  # random starts reproducible run to run
    best = _attack_once(view, attack, spec, images, labels)
    alive = ~_misclassified(view, best, labels)
    for _ in range(1, spec.restarts):
        index = alive.nonzero().squeeze(1)
        if len(index) == 0:
            break
        adversarial = _attack_once(view, attack, spec, images[index], labels[index])
        fooled = _misclassified(view, adversarial, labels[index])
        best[index[fooled]] = adversarial[fooled]
        alive[index[fooled]] = False
    return best


def perturb(model: nn.Module, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor,
            batch_size: int = 500, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Adversarial versions of ``images`` (float in [0,1]), computed batch by batch on their device,
    the model computing in ``dtype`` (:func:`abcl.device.model_precision`)."""
    view = AttackView(model, dtype)
    attack = build_attack(view, spec)
    return torch.cat([_worst_of_restarts(view, attack, spec, images[i:i + batch_size], labels[i:i + batch_size])
                      for i in range(0, len(images), batch_size)])
