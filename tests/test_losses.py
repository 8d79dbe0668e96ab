"""Loss math against hand-computed values, a plain per-sample loop and an independent
implementation (pytorch-metric-learning); invariances; the losses as a drop-in library."""

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml

from abcl.config import ConfigError, TrainConfig
from abcl.losses import (AB_FORMS, ABCLoss, CosFaceLoss, CosSCELoss, SoftmaxCELoss, ab_terms, cosface_logits,
                         inter_class_term, intra_class_term)
from abcl.models import build_model

COS = torch.tensor([[0.8, 0.6, -0.1], [0.2, -0.5, 0.9]])
LABELS = torch.tensor([0, 1])


def loop_cosface(cos, labels, s, m):
    """Plain Python reference: mean_i -log(e^{s(c_d - m)} / (e^{s(c_d - m)} + sum_{j != d} e^{s c_j}))."""
    total = 0.0
    for row, d in zip(cos.tolist(), labels.tolist()):
        target = math.exp(s * (row[d] - m))
        others = sum(math.exp(s * c) for j, c in enumerate(row) if j != d)
        total += -math.log(target / (target + others))
    return total / len(cos)


def loop_abcl(loss: ABCLoss, embeddings: torch.Tensor, labels: torch.Tensor, ramp: float = 1.0) -> float:
    """ABCLoss's formula one sample at a time in Python floats (float64), from docs/method.md."""
    weights = loss.class_weights().detach().double().tolist()
    bias = loss.fc.bias.detach().double().tolist() if loss.basis == "sce" else None
    n_classes, total = len(weights), 0.0
    for y, d in zip(embeddings.detach().double().tolist(), labels.tolist()):
        norm_y = math.sqrt(sum(v * v for v in y))
        cos = [sum(a * b for a, b in zip(y, w)) / (norm_y * math.sqrt(sum(b * b for b in w))) for w in weights]
        if loss.basis == "sce":
            z = [sum(a * b for a, b in zip(y, w)) + b0 for w, b0 in zip(weights, bias)]
        else:
            margin = loss.m if loss.basis == "cosface" else 0.0
            z = [loss.s * (c - (margin if j == d else 0.0)) for j, c in enumerate(cos)]
        top = max(z)
        basis = -(z[d] - top - math.log(sum(math.exp(v - top) for v in z)))
        power = 1 if loss.ab_form == "linear" else 2
        intra = (1.0 - cos[d]) ** power
        hinges = [max(0.0, c + 1.0 / (n_classes - 1)) ** power for j, c in enumerate(cos) if j != d]
        inter = sum(hinges) / (n_classes - 1) if loss.ab_form == "all_rivals" else max(hinges)
        total += basis + ramp * (loss.k1 * intra + loss.k2 * inter)
    return total / len(labels)


def test_softmax_ce_hand_value():
    loss = SoftmaxCELoss(num_classes=3, embedding_size=2)
    with torch.no_grad():
        loss.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        loss.fc.bias.zero_()
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))  # logits (2, 0, 0): 0.2395
    assert loss(torch.tensor([[2.0, 0.0]]), torch.tensor([0])).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.2395, abs=1e-4)


@pytest.mark.parametrize("s,m", [(1.0, 0.0), (5.0, 0.35), (16.0, 0.2), (64.0, 0.5)])
def test_cosface_formula_matches_loop(s, m):
    value = F.cross_entropy(cosface_logits(COS, LABELS, s, m), LABELS).item()
    assert value == pytest.approx(loop_cosface(COS, LABELS, s, m), rel=1e-5)


def test_intra_class_term_hand_value():
    # (1 - 0.8)^2 = 0.04 and (1 - (-0.5))^2 = 2.25 -> mean 1.145
    assert intra_class_term(COS, LABELS).item() == pytest.approx(1.145, abs=1e-6)


def test_inter_class_term_hand_value():
    # C = 3: simplex cosine -1/2. Rival of row 0 is 0.6 -> (0.6 + 0.5)^2 = 1.21;
    # rival of row 1 is 0.9 -> (0.9 + 0.5)^2 = 1.96; mean 1.585
    assert inter_class_term(COS, LABELS).item() == pytest.approx(1.585, abs=1e-6)


# (L_I, L_O) of COS by hand for each reading of the AB terms; C = 3, so the simplex cosine is -1/2
#   linear:     L_I = mean(1 - 0.8, 1 + 0.5) = 0.85;  L_O = mean(0.6 + 0.5, 0.9 + 0.5) = 1.25
#   all_rivals: L_I = 1.145 (squared);  L_O = mean((1.1^2 + 0.4^2) / 2, (0.7^2 + 1.4^2) / 2)
#                                             = mean(0.685, 1.225) = 0.955
AB_BY_HAND = {"squared": (1.145, 1.585), "linear": (0.85, 1.25), "all_rivals": (1.145, 0.955)}


@pytest.mark.parametrize("form", AB_FORMS)
def test_each_reading_of_the_ab_terms_hand_value(form):
    intra, inter = ab_terms(COS, LABELS, form)
    assert (intra.item(), inter.item()) == pytest.approx(AB_BY_HAND[form], abs=1e-6)


@pytest.mark.parametrize("form", AB_FORMS)
def test_every_reading_is_zero_at_the_regular_simplex_and_positive_away(form):
    simplex = -1.0 / 9
    optimum = torch.full((4, 10), simplex)
    labels = torch.tensor([0, 3, 5, 9])
    optimum[torch.arange(4), labels] = 1.0
    assert [t.item() for t in ab_terms(optimum, labels, form)] == [0.0, 0.0]
    away = optimum.clone()
    away[0, 0], away[1, 5] = 0.4, 0.2
    assert all(t.item() > 0 for t in ab_terms(away, labels, form))


def test_an_unknown_ab_form_is_refused():
    with pytest.raises(ValueError, match="unknown AB form 'cubed'"):
        ABCLoss(10, 10, ab_form="cubed")


@pytest.mark.parametrize("form", AB_FORMS)
def test_abcl_loss_in_each_ab_form_matches_the_loop(form):
    torch.manual_seed(5)
    loss = ABCLoss(7, 12, basis="cosface", s=5.0, m=0.2, k1=512.0, k2=64.0, ab_form=form)
    embeddings, labels = torch.randn(9, 12), torch.randint(0, 7, (9,))
    assert loss(embeddings, labels).item() == pytest.approx(loop_abcl(loss, embeddings, labels), rel=1e-5)


def test_ab_terms_zero_at_optimum_positive_away():
    simplex = -1.0 / 9
    optimum = torch.full((4, 10), simplex)
    labels = torch.tensor([0, 3, 5, 9])
    optimum[torch.arange(4), labels] = 1.0
    assert intra_class_term(optimum, labels).item() == 0.0
    assert inter_class_term(optimum, labels).item() == 0.0
    away = optimum.clone()
    away[0, 1] = 0.3
    away[1, 3] = 0.7
    assert intra_class_term(away, labels).item() > 0
    assert inter_class_term(away, labels).item() > 0


LOSSES = {
    "sce": lambda: SoftmaxCELoss(7, 12),
    "cos_sce": lambda: CosSCELoss(7, 12, s=4.0),
    "cosface": lambda: CosFaceLoss(7, 12, s=5.0, m=0.35),
    "sce+AB": lambda: ABCLoss(7, 12, basis="sce", k1=3.0, k2=2.0),
    "cos_sce+AB": lambda: ABCLoss(7, 12, basis="cos_sce", s=8.0, k1=512.0, k2=64.0),
    "ABCL": lambda: ABCLoss(7, 12),
}


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "bf16-autocast"])
def test_losses_match_per_sample_loop(name, autocast):
    torch.manual_seed(1)
    loss = LOSSES[name]()
    embeddings, labels = torch.randn(16, 12) * 3, torch.randint(0, 7, (16,))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        value = loss(embeddings, labels)
    assert value.dtype == torch.float32
    # cosines and the loss stay float32 under autocast; only sce's W y + b runs in bf16
    rel = 2e-2 if autocast and loss.basis == "sce" else 1e-5
    assert value.item() == pytest.approx(loop_abcl(loss, embeddings, labels), rel=rel)


def test_cosface_equals_pytorch_metric_learning():
    """Independent implementation: with k1 = k2 = 0, the same weights, s and m give the same loss
    and the same gradients (pytorch-metric-learning keeps W as K x C)."""
    torch.manual_seed(2)
    ours = CosFaceLoss(num_classes=10, embedding_size=16, s=5.0, m=0.35)
    theirs = pml.CosFaceLoss(num_classes=10, embedding_size=16, margin=0.35, scale=5.0)
    with torch.no_grad():
        theirs.W.copy_(ours.weight.t())
    embeddings, labels = torch.randn(32, 16), torch.randint(0, 10, (32,))
    ours_in, theirs_in = embeddings.clone().requires_grad_(), embeddings.clone().requires_grad_()
    ours_value, theirs_value = ours(ours_in, labels), theirs(theirs_in, labels)
    ours_value.backward()
    theirs_value.backward()
    torch.testing.assert_close(ours_value, theirs_value, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.weight.grad, theirs.W.grad.t(), rtol=1e-5, atol=1e-7)


def test_warmup_ramps_ab_terms_in_training_only_and_is_saved():
    torch.manual_seed(3)
    loss = ABCLoss(5, 8, k1=512.0, k2=64.0, warmup_steps=2)
    embeddings, labels = torch.randn(6, 8), torch.randint(0, 5, (6,))
    for ramp in (0.0, 0.5, 1.0, 1.0):  # r = min(1, t / 2) for t = 0, 1, 2, 3
        assert loss(embeddings, labels).item() == pytest.approx(loop_abcl(loss, embeddings, labels, ramp), rel=1e-5)
    assert loss.step.item() == 4
    loss.eval()
    loss(embeddings, labels)
    with torch.no_grad():
        loss.train()(embeddings, labels)
    assert loss.step.item() == 4
    resumed = ABCLoss(5, 8, k1=512.0, k2=64.0, warmup_steps=2)
    resumed.load_state_dict(loss.state_dict())
    assert resumed.step.item() == 4


def test_zero_k_equals_plain_cosface():
    torch.manual_seed(4)
    plain, abcl = CosFaceLoss(10, 10, s=5.0, m=0.2), ABCLoss(10, 10, s=5.0, m=0.2, k1=0.0, k2=0.0)
    abcl.load_state_dict(plain.state_dict())
    embeddings, labels = torch.randn(8, 10), torch.randint(0, 10, (8,))
    assert abcl(embeddings, labels).item() == plain(embeddings, labels).item()


@pytest.mark.parametrize("loss", ["cos_sce", "cosface", "ht_sce"])
def test_cosine_logits_invariant_to_feature_norm(loss):
    torch.manual_seed(0)
    head = build_model(TrainConfig(loss=loss, s=5.0)).eval().head
    latent = torch.randn(6, 10)
    for scale in (1e-3, 0.5, 7.0, 1e4):
        torch.testing.assert_close(head.logits(latent * scale), head.logits(latent), rtol=1e-5, atol=1e-5)


def test_inference_logits_have_no_margin(mnist5k):
    torch.manual_seed(0)
    model = build_model(TrainConfig(loss="cosface", s=5.0, m=0.35)).eval()
    x = mnist5k.test_x[:8].float() / 255
    cos = model.head.cosine(model.latent(x))
    torch.testing.assert_close(model(x), 5.0 * cos)
    assert cos.abs().max() <= 1.0 + 1e-6


@pytest.mark.parametrize("bad,message", [
    ({"basis": "arcface"}, "unknown basis 'arcface'; choose one of sce, cos_sce, cosface"),
    ({"s": 0.0}, "a cosine basis needs a scale s > 0, got 0.0"),
    ({"k1": -1.0}, "k1 must be >= 0, got -1.0"),
    ({"k2": float("nan")}, "k2 must be >= 0, got nan"),
])
def test_bad_loss_arguments_raise_clear_error(bad, message):
    with pytest.raises(ValueError) as caught:
        ABCLoss(10, 10, **bad)
    assert str(caught.value) == message


def test_import_abcl_losses_pulls_in_torch_only_and_training_no_attack_library():
    heavy = ["snakemake", "seaborn", "torchattacks", "pandas", "matplotlib", "yaml", "jsonschema", "sklearn",
             "torchvision", "abcl.config"]
    # and a training job never imports torchattacks (a second a job, 165 jobs in the paper's grid)
    code = (f"import sys, abcl.losses; print([m for m in {heavy!r} if m in sys.modules]); "
            "import abcl.train; print('torchattacks' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["[]", "False"]


@pytest.mark.parametrize("bad,message", [
    ({"loss": "arcface"}, "training config error at 'loss': 'arcface' is not one of: sce, cos_sce, cosface, ht_sce"),
    ({"loss": "ht_sce", "s": 5.0, "k1": -1.0}, "training config error at 'k1': -1.0 is less than the minimum of 0"),
    ({"loss": "cosface", "s": 0.0}, "training config error at 's': 0.0 is less than or equal to the minimum of 0"),
    ({"loss": "sce", "k2": float("nan")}, "training config error at 'k2': nan is not of type 'number'"),
    ({"loss": "sce", "lr": float("inf")}, "training config error at 'lr': inf is not of type 'number'"),
    ({"loss": "sce", "epochs": 2.5}, "training config error at 'epochs': 2.5 is not of type 'integer'"),
])
def test_bad_loss_configs_raise_clear_error(bad, message):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**bad)
    assert str(caught.value) == message


def test_training_config_parses_enums_once_and_hashes_numbers_alike():
    from abcl.config import Arch, Loss
    cfg = TrainConfig(loss="cosface", s=5, m=0.35)
    assert cfg.loss is Loss.COSFACE and cfg.arch is Arch.SMALL and isinstance(cfg.s, float)
    assert cfg.hash == TrainConfig(loss=Loss.COSFACE, s=5.0, m=0.35).hash
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["loss"] == "cosface"


def test_the_drop_in_abcl_is_the_pipelines_abcl():
    """HypersphereABCLoss after a backbone computes what the pipeline's ABCL model computes:
    normalized backbone output, bias-free latent layer, CosFace basis + AB terms."""
    from abcl.config import TrainConfig
    from abcl.losses import HypersphereABCLoss
    from abcl.models import MNIST_MEAN, MNIST_STD, build_model

    torch.manual_seed(0)
    model = build_model(TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512.0, k2=64.0, ab_warmup_epochs=0.0)).eval()
    drop_in = HypersphereABCLoss(feature_size=128, num_classes=10)  # the paper's defaults
    assert model.latent_layer.bias is None and drop_in.latent_layer.bias is None
    drop_in.latent_layer.weight.data.copy_(model.latent_layer.weight)
    drop_in.loss.weight.data.copy_(model.head.weight)
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    z = model.backbone((x - MNIST_MEAN) / MNIST_STD)
    expected_loss, expected_logits = model.training_loss(x, y)
    torch.testing.assert_close(drop_in(z, y), expected_loss)
    torch.testing.assert_close(torch.nn.Sequential(model.backbone, drop_in.as_head())((x - MNIST_MEAN) / MNIST_STD),
                               expected_logits)
    # the latent features lie on no sphere, the backbone's are put on one: a scaled z changes nothing
    torch.testing.assert_close(drop_in(7.0 * z, y), expected_loss)
    assert (drop_in.loss.k1, drop_in.loss.k2, drop_in.loss.s, drop_in.loss.m) == (512.0, 64.0, 5.0, 0.2)
