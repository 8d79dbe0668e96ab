"""Loss math against hand-computed values and a plain-loop reference; invariances."""

import math

import pytest
import torch

from abcl.config import ConfigError, TrainConfig
from abcl.losses import (AngularBoundaryLoss, CosFaceLoss, CosSCE, SoftmaxCE, build_loss, inter_class_term,
                         intra_class_term)
from abcl.models import ABCLNet, HeadOutput

COS = torch.tensor([[0.8, 0.6, -0.1], [0.2, -0.5, 0.9]])
LABELS = torch.tensor([0, 1])


def out(cos, logits=None):
    return HeadOutput(logits if logits is not None else cos, cos)


def loop_cosface(cos, labels, s, m):
    """Plain Python reference: mean_i -log(e^{s(c_d - m)} / (e^{s(c_d - m)} + sum_{j != d} e^{s c_j}))."""
    total = 0.0
    for row, d in zip(cos.tolist(), labels.tolist()):
        target = math.exp(s * (row[d] - m))
        others = sum(math.exp(s * c) for j, c in enumerate(row) if j != d)
        total += -math.log(target / (target + others))
    return total / len(cos)


def test_softmax_ce_hand_value():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))  # 0.2395
    assert SoftmaxCE()(out(COS[:1], logits), torch.tensor([0])).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.2395, abs=1e-4)


@pytest.mark.parametrize("s,m", [(1.0, 0.0), (5.0, 0.35), (16.0, 0.2), (64.0, 0.5)])
def test_cosface_matches_loop(s, m):
    value = CosFaceLoss(s, m)(out(COS), LABELS).item()
    assert value == pytest.approx(loop_cosface(COS, LABELS, s, m), rel=1e-5)


def test_cos_sce_is_cosface_without_margin():
    assert CosSCE(4.0)(out(COS), LABELS).item() == pytest.approx(loop_cosface(COS, LABELS, 4.0, 0.0), rel=1e-6)


def test_margin_raises_training_loss():
    assert CosFaceLoss(5.0, 0.35)(out(COS), LABELS) > CosSCE(5.0)(out(COS), LABELS)


def test_intra_class_term_hand_value():
    # (1 - 0.8)^2 = 0.04 and (1 - (-0.5))^2 = 2.25 -> mean 1.145
    assert intra_class_term(COS, LABELS).item() == pytest.approx(1.145, abs=1e-6)


def test_inter_class_term_hand_value():
    # C = 3: simplex cosine -1/2. Rival of row 0 is 0.6 -> (0.6 + 0.5)^2 = 1.21;
    # rival of row 1 is 0.9 -> (0.9 + 0.5)^2 = 1.96; mean 1.585
    assert inter_class_term(COS, LABELS).item() == pytest.approx(1.585, abs=1e-6)


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


def test_total_loss_combines_terms_with_ramp():
    loss = AngularBoundaryLoss(CosFaceLoss(5.0, 0.2), k1=512, k2=64)
    base = CosFaceLoss(5.0, 0.2)(out(COS), LABELS).item()
    expected = base + 0.5 * (512 * 1.145 + 64 * 1.585)
    assert loss(out(COS), LABELS, ramp=0.5).item() == pytest.approx(expected, rel=1e-5)
    assert loss(out(COS), LABELS, ramp=0.0).item() == pytest.approx(base, rel=1e-6)


def test_zero_k_equals_plain_ht_sce():
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=0.0, k2=0.0)
    loss = build_loss(cfg)
    assert loss(out(COS), LABELS).item() == pytest.approx(CosFaceLoss(5.0, 0.2)(out(COS), LABELS).item(), abs=0)


@pytest.mark.parametrize("loss", ["cos_sce", "cosface", "ht_sce"])
def test_cosine_logits_invariant_to_feature_norm(loss):
    torch.manual_seed(0)
    model = ABCLNet("small", loss, s=5.0).eval()
    latent = torch.randn(6, 10)
    for scale in (1e-3, 0.5, 7.0, 1e4):
        torch.testing.assert_close(model.head(latent * scale)[0], model.head(latent)[0], rtol=1e-5, atol=1e-5)


def test_inference_logits_have_no_margin(mnist5k):
    torch.manual_seed(0)
    model = ABCLNet("small", "cosface", s=5.0).eval()
    x = mnist5k.test_x[:8].float() / 255
    head = model.head_output(x)
    torch.testing.assert_close(model(x), 5.0 * head.cos)
    assert head.cos.abs().max() <= 1.0 + 1e-6


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
