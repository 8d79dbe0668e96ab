"""The paper's losses as drop-in ``nn.Module``s for any network that outputs embeddings.

Each loss owns its class weights W (C x K) and takes embeddings y (B x K), in the style of
pytorch-metric-learning::

    loss_fn = ABCLoss(num_classes=10, embedding_size=128)   # CosFace basis + AB terms, 512/64
    loss = loss_fn(embeddings, labels)                      # training loss
    logits = loss_fn.logits(embeddings)                     # inference logits: predictions, attacks

The pipeline's networks use these same modules as their heads (``abcl.models``). This module
imports torch only.

Notation (docs/method.md): c_ij = cos(theta_ij) = W_j_hat . y_i_hat, d_i the true class,
hat d_i = argmax_{j != d_i} c_ij the most competitive other class, C classes, batch mean over i.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ABCLoss", "HypersphereABCLoss", "hypersphere_transform", "CosFaceLoss", "CosSCELoss", "SoftmaxCELoss",
           "LogitsHead", "BASES", "AB_FORMS",
           "cosine_matrix", "cosface_logits", "intra_class_term", "inter_class_term", "ab_terms"]

BASES = ("sce", "cos_sce", "cosface")


# ---------------------------------------------------------------- formulas
def ce_in_log_space(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """u_i = logsumexp_{j != d_i} z_ij - z_{i,d_i}, per sample, in float64.

    CE_i = log(1 + e^{u_i}) = softplus(u_i), so grad CE = sigmoid(u) grad u: the same direction
    and the same ordering of loss values, but grad u has the true-class term -grad z_{d_i} whole
    however saturated the softmax (sigmoid(u) is what underflows)."""
    z = logits.double()
    rivals = z.masked_fill(F.one_hot(labels, z.shape[1]).bool(), float("-inf"))
    return torch.logsumexp(rivals, dim=1) - z.gather(1, labels[:, None]).squeeze(1)


def cosine_matrix(embeddings: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """c_ij = W_j_hat . y_i_hat in float32 (also under autocast); W is normalized functionally,
    never in place."""
    with torch.autocast(embeddings.device.type, enabled=False):
        return F.normalize(embeddings.float(), dim=1) @ F.normalize(weight.float(), dim=1).t()


def cosface_logits(cos: torch.Tensor, labels: torch.Tensor | None, s: float, m: float) -> torch.Tensor:
    """s * (c_ij - m * [j == d_i]); with ``labels`` None (inference) the margin is absent."""
    if labels is None or m == 0:
        return s * cos
    return s * (cos - m * F.one_hot(labels, cos.shape[1]).to(cos.dtype))


def true_class_cosine(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """c_{i,d_i}."""
    return cos.gather(1, labels[:, None]).squeeze(1)


def rival_cosine(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """c_{i,hat d_i} = max_{j != d_i} c_ij."""
    masked = cos.masked_fill(F.one_hot(labels, cos.shape[1]).bool(), float("-inf"))
    return masked.max(dim=1).values


# How the AB terms read App. B/D (train.ab_form) [ours, each a defensible reading; docs/method.md]:
#   squared     L_I = mean_i (1 - c_{i,d_i})^2,  L_O = mean_i max(0, c_{i,hat d_i} + 1/(C-1))^2   (the default)
#   linear      L_I = mean_i (1 - c_{i,d_i}),    L_O = mean_i max(0, c_{i,hat d_i} + 1/(C-1))
#   all_rivals  L_I as squared,  L_O = mean_i 1/(C-1) sum_{j != d_i} max(0, c_ij + 1/(C-1))^2
AB_FORMS = ("squared", "linear", "all_rivals")


def intra_class_term(cos: torch.Tensor, labels: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """L_I = mean_i (1 - c_{i,d_i})^2 (``squared``, hard samples dominate), else mean_i (1 - c_{i,d_i}):
    zero when every feature lies on its class weight."""
    gap = 1.0 - true_class_cosine(cos, labels)
    return (gap.square() if squared else gap).mean()


def inter_class_term(cos: torch.Tensor, labels: torch.Tensor, squared: bool = True,
                     every_rival: bool = False) -> torch.Tensor:
    """L_O = mean_i max(0, c_{i,hat d_i} + 1/(C-1))^2: zero once the nearest rival is below the
    regular-simplex cosine -1/(C-1). Unsquared without ``squared``; with ``every_rival`` the hinge
    is averaged over every other class j != d_i instead of taken at the nearest one."""
    simplex = 1.0 / (cos.shape[1] - 1)
    if every_rival:
        rivals = ~F.one_hot(labels, cos.shape[1]).bool()
        hinge = F.relu(cos + simplex)
        hinge = (hinge.square() if squared else hinge).masked_fill(~rivals, 0.0)
        return (hinge.sum(dim=1) * simplex).mean()
    hinge = F.relu(rival_cosine(cos, labels) + simplex)
    return (hinge.square() if squared else hinge).mean()


def ab_terms(cos: torch.Tensor, labels: torch.Tensor, form: str = "squared") -> tuple[torch.Tensor, torch.Tensor]:
    """(L_I, L_O) in one of the readings of ``AB_FORMS``."""
    if form not in AB_FORMS:
        raise ValueError(f"unknown AB form '{form}'; choose one of {', '.join(AB_FORMS)}")
    squared = form != "linear"
    return (intra_class_term(cos, labels, squared),
            inter_class_term(cos, labels, squared, every_rival=form == "all_rivals"))


# ---------------------------------------------------------------- modules
class ABCLoss(nn.Module):
    """Angular boundary-oriented cosine loss: a basis loss L_B plus the AB terms,

        L_total = L_B + r * (k1 * L_I + k2 * L_O),   r = min(1, t / warmup_steps),

    t the number of training calls so far (r = 1 without warm-up), L_I and L_O in the reading
    ``ab_form`` (``AB_FORMS``: squared, the default; linear; all_rivals). The basis is one of

    - ``sce``:     L_B = mean_i -log softmax(W y_i + b)_{d_i}
    - ``cos_sce``: L_B = mean_i -log softmax(s * c_i)_{d_i}   (feature norm fixed to s, no margin)
    - ``cosface``: L_B = mean_i -log( e^{s (c_{i,d_i} - m)} / ( e^{s (c_{i,d_i} - m)}
                                      + sum_{j != d_i} e^{s c_ij} ) )   (large margin cosine loss)

    The paper's HT-SCE is ``cosface`` on hypersphere-transformed embeddings (the network
    normalizes its backbone output before a bias-free linear layer to y; see ``abcl.models``).
    The inference logits (``logits``) carry no margin: s * c_i, or W y + b for ``sce``. L_I and
    L_O use c_ij, also for ``sce`` (the cosines of its weight rows). The warm-up counter is a
    buffer, so it is saved and restored with ``state_dict``; it advances in training mode only.
    """

    def __init__(self, num_classes: int, embedding_size: int, basis: str = "cosface", s: float = 5.0,
                 m: float = 0.2, k1: float = 512.0, k2: float = 64.0, warmup_steps: float = 0,
                 ab_form: str = "squared"):
        super().__init__()
        if basis not in BASES:
            raise ValueError(f"unknown basis '{basis}'; choose one of {', '.join(BASES)}")
        if ab_form not in AB_FORMS:
            raise ValueError(f"unknown AB form '{ab_form}'; choose one of {', '.join(AB_FORMS)}")
        self.ab_form = ab_form
        if num_classes < 2 or embedding_size < 1:
            raise ValueError(f"need num_classes >= 2 and embedding_size >= 1, got {num_classes}, {embedding_size}")
        if basis != "sce" and not s > 0:
            raise ValueError(f"a cosine basis needs a scale s > 0, got {s}")
        for name, value in (("m", m), ("k1", k1), ("k2", k2), ("warmup_steps", warmup_steps)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.basis, self.s, self.m, self.k1, self.k2 = basis, float(s), float(m), float(k1), float(k2)
        self.warmup_steps = float(warmup_steps)
        if basis == "sce":
            self.fc = nn.Linear(embedding_size, num_classes)
        else:
            self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
            nn.init.xavier_uniform_(self.weight)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def class_weights(self) -> torch.Tensor:
        """W, C x K."""
        return self.fc.weight if self.basis == "sce" else self.weight

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """c_ij, B x C, float32."""
        return cosine_matrix(embeddings, self.class_weights())

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Inference logits (no margin), float32: for predictions and attacks."""
        return self._logits(embeddings, self.cosine(embeddings))

    def _logits(self, embeddings: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
        return self.fc(embeddings).float() if self.basis == "sce" else self.s * cos

    def ramp(self) -> torch.Tensor | float:
        """r = min(1, t / warmup_steps), as a device tensor (no host sync; CUDA-graph safe)."""
        if self.warmup_steps == 0:
            return 1.0
        return (self.step.float() / self.warmup_steps).clamp(max=1.0)

    def loss_and_logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_total, inference logits) of one batch, sharing the cosine matrix."""
        cos = self.cosine(embeddings)
        logits = self._logits(embeddings, cos)
        if self.basis == "cosface":
            total = F.cross_entropy(cosface_logits(cos, labels, self.s, self.m), labels)
        else:
            total = F.cross_entropy(logits, labels)
        if self.k1 or self.k2:
            ramp = self.ramp()
            intra, inter = ab_terms(cos, labels, self.ab_form)
            if self.k1:
                total = total + ramp * self.k1 * intra
            if self.k2:
                total = total + ramp * self.k2 * inter
        if self.training and torch.is_grad_enabled():
            self.step.add_(1)
        return total, logits

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_total of one batch (a 0-dim float32 tensor)."""
        return self.loss_and_logits(embeddings, labels)[0]

    def as_head(self) -> "LogitsHead":
        """A module mapping embeddings to inference logits with these weights, to put after a
        network: ``nn.Sequential(net, loss_fn.as_head())`` is a classifier attacks can use."""
        return LogitsHead(self)

    def extra_repr(self) -> str:
        weight = self.class_weights()
        return (f"num_classes={weight.shape[0]}, embedding_size={weight.shape[1]}, basis={self.basis}, "
                f"s={self.s}, m={self.m}, k1={self.k1}, k2={self.k2}, warmup_steps={self.warmup_steps}, "
                f"ab_form={self.ab_form}")


def hypersphere_transform(z: torch.Tensor) -> torch.Tensor:
    """z_hat = z / ||z||: HT-SCE's backbone output on the unit hypersphere (computed in float32)."""
    return F.normalize(z.float(), dim=1).to(z.dtype)


class HypersphereABCLoss(nn.Module):
    """The paper's ABCL, HT-SCE + AB, on the features z of any backbone:

        z_hat = z / ||z||,   y = W_l z_hat   (bias-free latent layer, K = ``latent_size``),
        L_total = L_B + r * (k1 * L_I + k2 * L_O)   with the ``cosface`` basis on y (:class:`ABCLoss`).

    It owns the latent layer and the class weights: the pipeline's ABCL model computes the same
    after its backbone (``abcl.models.ABCLNet`` with ``hypersphere``). Defaults are the paper's
    settings as config/config.yaml reads them: s = 5, m = 0.2, k1 = 512, k2 = 64, K = C.
    """

    def __init__(self, feature_size: int, num_classes: int, latent_size: int | None = None, s: float = 5.0,
                 m: float = 0.2, k1: float = 512.0, k2: float = 64.0, warmup_steps: float = 0):
        super().__init__()
        latent_size = latent_size or num_classes
        self.latent_layer = nn.Linear(feature_size, latent_size, bias=False)
        self.loss = ABCLoss(num_classes, latent_size, basis="cosface", s=s, m=m, k1=k1, k2=k2,
                            warmup_steps=warmup_steps)

    def latent(self, features: torch.Tensor) -> torch.Tensor:
        """y = W_l z_hat."""
        return self.latent_layer(hypersphere_transform(features))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_total of one batch."""
        return self.loss(self.latent(features), labels)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Inference logits s * c_i (no margin), for predictions and attacks."""
        return self.loss.logits(self.latent(features))

    def as_head(self) -> "LogitsHead":
        """Features -> inference logits: ``nn.Sequential(backbone, loss_fn.as_head())`` classifies."""
        return LogitsHead(self)


class LogitsHead(nn.Module):
    """Embeddings -> inference logits of ``loss`` (shares its weights)."""

    def __init__(self, loss: ABCLoss | HypersphereABCLoss):
        super().__init__()
        self.loss = loss

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.loss.logits(embeddings)


class SoftmaxCELoss(ABCLoss):
    """Plain softmax cross-entropy on a linear head: L = mean_i -log softmax(W y_i + b)_{d_i}."""

    def __init__(self, num_classes: int, embedding_size: int):
        super().__init__(num_classes, embedding_size, basis="sce", k1=0.0, k2=0.0)


class CosSCELoss(ABCLoss):
    """Softmax cross-entropy on scaled cosines: L = mean_i -log softmax(s * c_i)_{d_i}."""

    def __init__(self, num_classes: int, embedding_size: int, s: float = 5.0):
        super().__init__(num_classes, embedding_size, basis="cos_sce", s=s, m=0.0, k1=0.0, k2=0.0)


class CosFaceLoss(ABCLoss):
    """Large margin cosine loss (CosFace, Wang et al. 2018):
    L = mean_i -log( e^{s (c_{i,d_i} - m)} / ( e^{s (c_{i,d_i} - m)} + sum_{j != d_i} e^{s c_ij} ) )."""

    def __init__(self, num_classes: int, embedding_size: int, s: float = 5.0, m: float = 0.35):
        super().__init__(num_classes, embedding_size, basis="cosface", s=s, m=m, k1=0.0, k2=0.0)
