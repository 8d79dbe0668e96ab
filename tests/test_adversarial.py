"""Adversarial training: the training attacks' budgets and direction, the budget warm-up, the
objectives' bookkeeping, a real adversarial training, and the plan's adversarial grid."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from abcl.adversarial import budget, pgd_linf_examples, trades_linf_examples, training_objective
from abcl.config import Adversarial, TrainConfig, load_config
from abcl.plan import experiment_plan
from abcl.data import Dataset, as_float_images
from abcl.evaluate import predict
from abcl.models import build_model
from abcl.train import train_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def batch(mnist5k):
    return as_float_images(mnist5k.test_x[:64]), mnist5k.test_y[:64]


@pytest.mark.parametrize("eps", [0.1, 0.3, torch.tensor(0.2)], ids=["0.1", "0.3", "tensor-0.2"])
@pytest.mark.parametrize("craft", ["pgd", "trades"])
def test_training_attacks_respect_budget_and_pixel_range(trained_cosface, batch, craft, eps):
    model, _ = trained_cosface
    x, y = batch
    torch.manual_seed(0)
    if craft == "pgd":
        adv = pgd_linf_examples(model, x, y, eps, steps=5, step_size=0.05)
    else:
        adv = trades_linf_examples(model, x, eps, steps=5, step_size=0.05)
    assert (adv - x).abs().max() <= float(eps) + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert not adv.requires_grad
    assert (predict(model, adv) == y).float().mean() < (predict(model, x) == y).float().mean()


def plain_ce_pgd(model, x, y, eps, steps, step_size):
    """PGD on float32 cross-entropy, as most adversarial-training code writes it."""
    adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
        adv = torch.min(torch.max(adv.detach() + step_size * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return adv


def test_pgd_training_attack_has_no_saturation_blind_spot(trained_cosface, batch):
    """With a saturated head (s = 300) the float32 CE gradient of a confident image is exactly 0, so
    plain PGD only keeps its random start; ours still ascends and finds adversarial examples."""
    model, _ = trained_cosface
    x, y = batch
    original = model.head.s
    model.head.s = 300.0
    try:
        torch.manual_seed(1)
        plain = plain_ce_pgd(model, x, y, 0.3, steps=10, step_size=0.03)
        torch.manual_seed(1)
        ours = pgd_linf_examples(model, x, y, 0.3, steps=10, step_size=0.03)
        plain_acc = (predict(model, plain) == y).float().mean()
        ours_acc = (predict(model, ours) == y).float().mean()
        assert ours_acc < plain_acc - 0.2
    finally:
        model.head.s = original


def test_budget_ramps_with_the_heads_step_counter():
    cfg = TrainConfig(loss="sce", adversarial="pgd", adv_eps=0.3, adv_step_size=0.01, adv_eps_warmup_epochs=2)
    model = build_model(cfg)
    for step, ramp in [(0, 0.0), (5, 0.25), (10, 0.5), (20, 1.0), (99, 1.0)]:
        model.head.step.fill_(step)
        eps, step_size = budget(model, cfg, steps_per_epoch=10)
        assert float(eps) == pytest.approx(0.3 * ramp) and float(step_size) == pytest.approx(0.01 * ramp)
    assert budget(model, replace(cfg, adv_eps_warmup_epochs=0.0), 10) == (0.3, 0.01)


@pytest.mark.parametrize("method", ["pgd", "trades"])
def test_objective_crafts_in_eval_mode_and_advances_the_warmup_once(batch, method):
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64, adversarial=method, adv_steps=3)
    model = build_model(cfg, steps_per_epoch=10).train()
    modes = []
    model.backbone.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    x, y = batch
    loss, logits = training_objective(cfg, steps_per_epoch=10)(model, x, y)
    loss.backward()
    assert model.training and model.head.step.item() == 1
    assert modes[:3] == [False] * 3 and modes[-1] is True  # attack steps without dropout, the loss step with
    assert torch.isfinite(loss) and logits.shape == (64, 10)
    assert model.latent_layer.weight.grad is not None


def test_adversarial_training_records_its_attack_and_learns(mnist5k, tmp_path):
    data = Dataset("mnist5k", mnist5k.train_x[:1024], mnist5k.train_y[:1024], mnist5k.test_x, mnist5k.test_y)
    cfg = TrainConfig(loss="sce", adversarial="trades", adv_steps=2, adv_step_size=0.15, epochs=2, batch_size=64)
    record = train_model(cfg, data, tmp_path, device="cpu", progress=False)
    assert record["config"]["adversarial"] == "trades" and record["config"]["adv_steps"] == 2
    assert record["config_hash"] != replace(cfg, adversarial="none").hash
    assert record["cuda_graphs"] is False
    first, last = record["history"]
    assert last["loss"] < first["loss"] and last["accuracy"] > 0.3  # chance: 0.1


def test_clean_models_keep_their_hash_and_record():
    clean = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64)
    assert "adversarial" not in clean.to_dict() and "adv_eps" not in clean.to_dict()
    assert clean.hash == TrainConfig.from_dict(clean.to_dict()).hash
    assert replace(clean, adversarial=Adversarial.PGD).hash != clean.hash


def test_plan_has_the_adversarial_grid_under_its_own_names_and_paths():
    config = {**load_config(ROOT / "config" / "config.yaml"), "seeds": [0]}
    plan = experiment_plan(config)
    grid = plan.for_output("adversarial")
    assert [run.name for run in grid] == ["SCE PGD-AT", "CosFace PGD-AT", "ABCL PGD-AT",
                                          "SCE TRADES", "CosFace TRADES", "ABCL TRADES"]
    assert grid[2].path == "at~pgd/" + plan.find("ABCL").path
    assert grid[2].train.k1 == 512 and grid[2].train.adv_steps == config["adversarial"]["steps"]
    assert config["adversarial"]["eps"] in grid[0].attacks["autoattack_linf"]["eps"]
    assert "pgd_linf" not in grid[0].attacks  # the paper's attacks and AutoAttack only
    without = experiment_plan({**config, "adversarial": {**config["adversarial"], "methods": []}})
    assert [r.train.hash for r in without.runs] == [r.train.hash for r in plan.runs if "adversarial" not in r.outputs]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host-device syncs exist on a CUDA GPU only")
@pytest.mark.parametrize("method", ["pgd", "trades"])
def test_adversarial_epoch_has_no_host_sync(mnist5k, method):
    sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_smoke import epoch_syncs
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64, batch_size=256, adversarial=method, adv_steps=3,
                      adv_eps_warmup_epochs=1.0)
    assert epoch_syncs(cfg, mnist5k, "cuda", cuda_graphs=False) == []
