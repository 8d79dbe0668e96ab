"""MNIST networks with a K = 10 latent layer and the paper's heads.

Pipeline of every model: pixels x in [0,1] -> normalize -> backbone -> z -> latent y in R^K -> head,
the head being the model's training loss (``abcl.losses``), which owns the class weights.
``forward`` returns the inference logits that predictions and attacks use; ``training_loss``
the loss and those logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from abcl.config import Arch, Loss, TrainConfig
from abcl.losses import ABCLoss, hypersphere_transform

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
LATENT_DIM = 10
NUM_CLASSES = 10


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


HEAD_BASIS = {Loss.SCE: "sce", Loss.COS_SCE: "cos_sce", Loss.COSFACE: "cosface", Loss.HT_SCE: "cosface"}


class ABCLNet(nn.Module):
    """Backbone -> latent layer -> head, the head being the training loss itself (an
    :class:`abcl.losses.ABCLoss` that owns the class weights). With ``hypersphere`` (HT-SCE) z is
    normalized first and the latent layer is bias-free."""

    def __init__(self, head: ABCLoss, arch: Arch = Arch.SMALL, hypersphere: bool = False, dropout: float = 0.5,
                 latent_bias: bool | None = None):
        super().__init__()
        self.backbone, width = BACKBONES[arch](dropout)
        self.hypersphere = hypersphere
        # HT-SCE's latent layer is bias-free unless asked (train.ht_latent_bias); the others' has one
        bias = not hypersphere if latent_bias is None else latent_bias
        self.latent_layer = nn.Linear(width, LATENT_DIM, bias=bias)
        self.head = head
        self.cosine = head.basis != "sce"

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        z = self.backbone((x - MNIST_MEAN) / MNIST_STD)
        return self.latent_layer(hypersphere_transform(z) if self.hypersphere else z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference logits: s * c_i for the cosine heads, W y + b for sce."""
        return self.head.logits(self.latent(x))

    def training_loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_total, inference logits) of a batch; advances the head's AB warm-up in training mode."""
        return self.head.loss_and_logits(self.latent(x), labels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Latent features shown by t-SNE: y for sce, y_hat for cosine heads."""
        latent = self.latent(x).float()
        return F.normalize(latent, dim=1) if self.cosine else latent


def build_head(cfg: TrainConfig, steps_per_epoch: int = 1) -> ABCLoss:
    """The training loss of ``cfg`` as a head; its AB terms warm up over ``ab_warmup_epochs``."""
    basis = HEAD_BASIS[cfg.loss]
    return ABCLoss(NUM_CLASSES, LATENT_DIM, basis=basis, s=cfg.s if basis != "sce" else 0.0, m=cfg.m,
                   k1=cfg.k1, k2=cfg.k2, warmup_steps=cfg.ab_warmup_epochs * steps_per_epoch, ab_form=cfg.ab_form)


def build_model(cfg: TrainConfig, steps_per_epoch: int = 1) -> ABCLNet:
    hypersphere = cfg.loss == Loss.HT_SCE
    return ABCLNet(build_head(cfg, steps_per_epoch), cfg.arch, hypersphere=hypersphere, dropout=cfg.dropout,
                   latent_bias=cfg.ht_latent_bias if hypersphere else None)
