"""MNIST networks with a K = 10 latent layer and the paper's heads.

Pipeline of every model: pixels x in [0,1] -> normalize -> backbone -> z -> latent y in R^K -> head.
``forward`` returns the inference logits that predictions and attacks use; ``head_output``
adds the cosine matrix c_ij = W_j_hat . y_i_hat that the cosine losses and AB terms need.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from abcl.config import Arch, Loss, TrainConfig

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
LATENT_DIM = 10
NUM_CLASSES = 10


class HeadOutput(NamedTuple):
    logits: torch.Tensor  # inference logits, B x C
    cos: torch.Tensor  # c_ij, B x C, float32


def small_backbone(dropout: float) -> tuple[nn.Sequential, int]:
    """LeNet-size net for CPU runs: conv16(5x5) -> pool -> conv32(5x5) -> pool -> FC256 -> FC128 (= z)."""
    layers = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * 7 * 7, 256), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(256, 128), nn.ReLU(inplace=True),
    )
    return layers, 128


def alexnet_backbone(dropout: float) -> tuple[nn.Sequential, int]:
    """AlexNet-style net for 28x28: five 3x3 convs (64-192-384-256-256) -> FC1024 -> FC512 (= z)."""
    def conv(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]

    layers = nn.Sequential(
        *conv(1, 64), nn.MaxPool2d(2), *conv(64, 192), nn.MaxPool2d(2),
        *conv(192, 384), *conv(384, 256), *conv(256, 256), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(256 * 3 * 3, 1024), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(1024, 512), nn.ReLU(inplace=True),
    )
    return layers, 512


BACKBONES = {Arch.SMALL: small_backbone, Arch.ALEXNET: alexnet_backbone}


def cosine_matrix(latent: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """c_ij = W_j_hat . y_i_hat in float32; W is normalized functionally, never in place."""
    with torch.autocast(latent.device.type, enabled=False):
        return F.normalize(latent.float(), dim=1) @ F.normalize(weight.float(), dim=1).t()


def cosface_logits(cos: torch.Tensor, labels: torch.Tensor | None, s: float, m: float) -> torch.Tensor:
    """s * (c_ij - m * [j == d_i]); with ``labels`` None (inference) the margin is absent."""
    if labels is None or m == 0:
        return s * cos
    return s * (cos - m * F.one_hot(labels, cos.shape[1]).to(cos.dtype))


class LinearHead(nn.Module):
    """Plain softmax head: logits = W y + b."""

    def __init__(self, k: int, c: int):
        super().__init__()
        self.fc = nn.Linear(k, c)

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc(latent).float(), cosine_matrix(latent, self.fc.weight)


class CosineHead(nn.Module):
    """Cosine head: logits = s * c_i, invariant to the feature norm ||y||."""

    def __init__(self, k: int, c: int, s: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c, k))
        nn.init.xavier_uniform_(self.weight)
        self.s = s

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = cosine_matrix(latent, self.weight)
        return self.s * cos, cos


class ABCLNet(nn.Module):
    """Backbone -> latent layer -> head. For ``ht_sce`` z is normalized first (hypersphere
    transformation) and the latent layer is bias-free."""

    def __init__(self, arch: Arch = Arch.SMALL, loss: Loss = Loss.SCE, s: float = 1.0, dropout: float = 0.5):
        super().__init__()
        self.backbone, width = BACKBONES[arch](dropout)
        self.hypersphere = loss == Loss.HT_SCE
        self.latent_layer = nn.Linear(width, LATENT_DIM, bias=not self.hypersphere)
        self.cosine = loss != Loss.SCE
        self.head = CosineHead(LATENT_DIM, NUM_CLASSES, s) if self.cosine else LinearHead(LATENT_DIM, NUM_CLASSES)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        z = self.backbone((x - MNIST_MEAN) / MNIST_STD)
        if self.hypersphere:
            z = F.normalize(z.float(), dim=1).to(z.dtype)
        return self.latent_layer(z)

    def head_output(self, x: torch.Tensor) -> HeadOutput:
        return HeadOutput(*self.head(self.latent(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_output(x).logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Latent features shown by t-SNE: y for sce, y_hat for cosine heads."""
        latent = self.latent(x).float()
        return F.normalize(latent, dim=1) if self.cosine else latent


def build_model(cfg: TrainConfig) -> ABCLNet:
    return ABCLNet(cfg.arch, cfg.loss, s=cfg.s if cfg.loss is not Loss.SCE else 1.0, dropout=cfg.dropout)
