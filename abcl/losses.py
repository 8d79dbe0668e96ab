"""Basis losses L_B and the angular-boundary (AB) terms, one small class per formula.

Notation (SPEC.md): c_ij = cos(theta_ij) = W_j_hat . y_i_hat, d_i the true class,
hat d_i = argmax_{j != d_i} c_ij the most competitive other class, C classes, batch mean over i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from abcl.config import Loss, TrainConfig
from abcl.models import HeadOutput, cosface_logits


@dataclass(frozen=True)
class SoftmaxCE:
    """``sce``: L = mean_i -log softmax(W y_i + b)_{d_i}."""

    def __call__(self, out: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.logits.float(), labels)


@dataclass(frozen=True)
class CosSCE:
    """``cos_sce``: L = mean_i -log softmax(s * c_i)_{d_i}, i.e. ||y|| fixed to s, no margin."""

    s: float

    def __call__(self, out: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.s * out.cos, labels)


@dataclass(frozen=True)
class CosFaceLoss:
    """``cosface`` and ``ht_sce`` (on hypersphere-transformed features): large margin cosine loss

    L = mean_i -log( e^{s (c_{i,d_i} - m)} / ( e^{s (c_{i,d_i} - m)} + sum_{j != d_i} e^{s c_ij} ) ).
    """

    s: float
    m: float

    def __call__(self, out: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(cosface_logits(out.cos, labels, self.s, self.m), labels)


def true_class_cosine(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """c_{i,d_i}."""
    return cos.gather(1, labels[:, None]).squeeze(1)


def rival_cosine(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """c_{i,hat d_i} = max_{j != d_i} c_ij."""
    masked = cos.masked_fill(F.one_hot(labels, cos.shape[1]).bool(), float("-inf"))
    return masked.max(dim=1).values


def intra_class_term(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_I = mean_i (1 - c_{i,d_i})^2: zero when every feature lies on its class weight."""
    return (1.0 - true_class_cosine(cos, labels)).square().mean()


def inter_class_term(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_O = mean_i max(0, c_{i,hat d_i} + 1/(C-1))^2: zero once the nearest rival is below the
    regular-simplex cosine -1/(C-1)."""
    simplex = 1.0 / (cos.shape[1] - 1)
    return F.relu(rival_cosine(cos, labels) + simplex).square().mean()


@dataclass(frozen=True)
class AngularBoundaryLoss:
    """L_total = L_B + ramp * (k1 * L_I + k2 * L_O), ramp in [0, 1] warming the AB terms up."""

    basis: SoftmaxCE | CosSCE | CosFaceLoss
    k1: float = 0.0
    k2: float = 0.0

    def __call__(self, out: HeadOutput, labels: torch.Tensor, ramp: float | torch.Tensor = 1.0) -> torch.Tensor:
        total = self.basis(out, labels)
        if self.k1:
            total = total + ramp * self.k1 * intra_class_term(out.cos, labels)
        if self.k2:
            total = total + ramp * self.k2 * inter_class_term(out.cos, labels)
        return total


BASIS_LOSSES = {
    Loss.SCE: lambda cfg: SoftmaxCE(),
    Loss.COS_SCE: lambda cfg: CosSCE(cfg.s),
    Loss.COSFACE: lambda cfg: CosFaceLoss(cfg.s, cfg.m),
    Loss.HT_SCE: lambda cfg: CosFaceLoss(cfg.s, cfg.m),
}


def build_loss(cfg: TrainConfig) -> AngularBoundaryLoss:
    """The training loss named by ``cfg.loss`` plus its AB terms (k1 = k2 = 0: the basis alone)."""
    basis = BASIS_LOSSES[cfg.loss](cfg)
    return AngularBoundaryLoss(basis, cfg.k1, cfg.k2)
