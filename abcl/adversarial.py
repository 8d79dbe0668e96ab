"""Adversarial training with any basis loss and the AB terms: PGD-AT and TRADES.

Where the losses apply [ours]:

- ``pgd`` (Madry et al. 2018): min_theta E_(x,d) L_total(x', d) with x' = PGD in the L-inf ball
  of radius eps ascending u(x') = logsumexp_{j != d} z_j(x') - z_d(x') on the *inference* logits
  z (the cross-entropy's direction, without margin and without the AB terms), not L_total itself:
  the attack plays the evaluation's adversary, and the margin and AB terms belong to the training
  objective only. The basis loss and the AB terms act on the adversarial examples' features only:
  Madry's objective replaces the clean loss by the worst-case one, and the AB terms are part of
  that loss (they pull the features the attack pushed outwards back towards their class weight).
- ``trades`` (Zhang et al. 2019): L_total(x, d) + beta * KL(p(x) || p(x')), x' maximizing the KL.
  The basis loss and the AB terms act on the clean features (TRADES' natural term, the one that
  places the decision boundary); the KL term compares the inference softmax of x and x' (no
  margin: the regularizer is about predictions, and predictions carry no margin).

A budget warm-up (``adv_eps_warmup_epochs``) ramps eps and the step from 0: a short PGD training
at eps 0.3 otherwise stays at chance level (seen on mnist5k: loss 2.31, accuracy 0.10 after two
epochs). The examples are crafted in eval mode (dropout off, as both papers' code does), ascending in log
space (no saturation blind spot; :func:`abcl.losses.ce_in_log_space`), on the device without a host sync; crafting
never advances the AB warm-up, the loss step does once.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from abcl.config import Adversarial, TrainConfig
from abcl.losses import ce_in_log_space
from abcl.models import ABCLNet

# ---------------------------------------------------------------- the attacks inside training
# Hand-written, not torchattacks: its attacks check the input range with a host sync per call and
# toggle the model's mode; these run on the device without a sync and leave the mode to the caller.
Budget = float | torch.Tensor  # a 0-dim device tensor while a budget ramps up: no host sync


def _project_linf(adv: torch.Tensor, images: torch.Tensor, eps: Budget) -> torch.Tensor:
    return torch.minimum(torch.maximum(adv, images - eps), images + eps).clamp_(0.0, 1.0)


def _linf_ascent(objective, start: torch.Tensor, images: torch.Tensor, eps: Budget, steps: int,
                 step_size: Budget) -> torch.Tensor:
    """``steps`` times x' <- Proj_{B(x, eps) and [0,1]}(x' + step_size * sign(grad_x' objective(x')))."""
    adv = _project_linf(start, images, eps)
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(objective(adv), adv)
        adv = _project_linf(adv.detach() + step_size * grad.sign(), images, eps)
    return adv.detach()


def pgd_linf_examples(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: Budget,
                      steps: int, step_size: Budget) -> torch.Tensor:
    """Madry et al.'s PGD: x' uniform in the L-inf ball, then signed steps ascending
    u = :func:`ce_in_log_space` (the CE's direction without its saturation blind spot)."""
    start = images + (2 * torch.rand_like(images) - 1) * eps
    return _linf_ascent(lambda adv: ce_in_log_space(model(adv).float(), labels).sum(), start, images, eps,
                        steps, step_size)


def trades_linf_examples(model: torch.nn.Module, images: torch.Tensor, eps: Budget, steps: int,
                         step_size: Budget) -> torch.Tensor:
    """TRADES' inner maximization (Zhang et al.): x' = x + 0.001 N(0, I), then signed steps
    ascending KL(p(x) || p(x')), computed from log-probabilities in float32, projected as PGD's."""
    with torch.no_grad():
        target = F.log_softmax(model(images).float(), dim=1)

    def divergence(adv: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(model(adv).float(), dim=1), target, log_target=True, reduction="sum")
    return _linf_ascent(divergence, images + 0.001 * torch.randn_like(images), images, eps, steps, step_size)


Objective = Callable[[ABCLNet, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def natural(model: ABCLNet, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L_total on the clean batch."""
    return model.training_loss(images, labels)


def _in_eval_mode(model: ABCLNet, craft: Callable[[], torch.Tensor]) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return craft()
    finally:
        model.train(was_training)


def budget(model: ABCLNet, cfg: TrainConfig, steps_per_epoch: int) -> tuple[Budget, Budget]:
    """(eps, step size) of the training attack at the current step t (the head's step counter):
    r * (adv_eps, adv_step_size), r = min(1, t / (adv_eps_warmup_epochs * steps_per_epoch))."""
    if cfg.adv_eps_warmup_epochs == 0:
        return cfg.adv_eps, cfg.adv_step_size
    ramp = (model.head.step.float() / (cfg.adv_eps_warmup_epochs * steps_per_epoch)).clamp(max=1.0)
    return cfg.adv_eps * ramp, cfg.adv_step_size * ramp


def pgd_training(cfg: TrainConfig, steps_per_epoch: int) -> Objective:
    """L_total on PGD examples (budget ``adv_eps``, ``adv_steps`` steps of ``adv_step_size``)."""
    def objective(model: ABCLNet, images: torch.Tensor, labels: torch.Tensor):
        eps, step_size = budget(model, cfg, steps_per_epoch)
        adv = _in_eval_mode(model, lambda: pgd_linf_examples(model, images, labels, eps, cfg.adv_steps, step_size))
        return model.training_loss(adv, labels)
    return objective


def trades_training(cfg: TrainConfig, steps_per_epoch: int) -> Objective:
    """L_total(clean) + trades_beta * KL(p(clean) || p(adversarial)), batch mean."""
    def objective(model: ABCLNet, images: torch.Tensor, labels: torch.Tensor):
        eps, step_size = budget(model, cfg, steps_per_epoch)
        adv = _in_eval_mode(model, lambda: trades_linf_examples(model, images, eps, cfg.adv_steps, step_size))
        loss, logits = model.training_loss(images, labels)
        divergence = F.kl_div(F.log_softmax(model(adv).float(), dim=1), F.log_softmax(logits, dim=1),
                              log_target=True, reduction="batchmean")
        return loss + cfg.trades_beta * divergence, logits
    return objective


def training_objective(cfg: TrainConfig, steps_per_epoch: int = 1) -> Objective:
    """What one training step minimizes, by ``cfg.adversarial``."""
    if cfg.adversarial is Adversarial.PGD:
        return pgd_training(cfg, steps_per_epoch)
    if cfg.adversarial is Adversarial.TRADES:
        return trades_training(cfg, steps_per_epoch)
    return natural
