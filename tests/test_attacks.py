"""Attack budgets, agreement with hand-written references, and the large-s L2 trap."""

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from abcl.attacks import perturb
from abcl.config import AttackSpec, attack_specs
from abcl.evaluate import evaluate_model, predict
from abcl.data import as_float_images

SPECS = attack_specs({
    "fgsm_linf": {"eps": [0.1, 0.3]},
    "bim_linf": {"eps": [0.1, 0.3], "steps": 10},
    "fgsm_l2": {"eps": [1.0, 3.0]},
    "bim_l2": {"eps": [1.0, 3.0], "steps": 10},
})


class TinyLinear(nn.Module):
    """A 784 -> 10 linear classifier: small enough for an exact reference implementation."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def reference_l2(model, x, y, eps, alpha, steps):
    """x_{t+1} = clip01(P_eps(x_t + alpha * g / ||g||_2)), P projecting onto the L2 ball around x."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(adv).double(), y), adv)
        step = grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = adv.detach() + alpha * step - x
        norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * torch.clamp(eps / norms, max=1.0)
        adv = (x + delta).clamp(0, 1).detach()
    return adv


@pytest.fixture(scope="module")
def batch(mnist5k):
    return as_float_images(mnist5k.test_x[:64]), mnist5k.test_y[:64]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.key}-{s.eps:g}")
def test_adversarial_examples_respect_budget_and_pixel_range(trained_cosface, batch, spec):
    model, _ = trained_cosface
    x, y = batch
    adv = perturb(model, spec, x, y)
    delta = (adv - x).flatten(1)
    assert adv.min() >= 0 and adv.max() <= 1
    if spec.norm == "linf":
        assert delta.abs().max() <= spec.eps + 1e-6
    else:
        assert delta.norm(dim=1).max() <= spec.eps * (1 + 1e-5)
    assert delta.abs().max() > 0, "the attack must move the inputs"


@pytest.mark.parametrize("eps,steps", [(1.0, 1), (2.0, 10)])
def test_l2_attacks_match_reference(batch, eps, steps):
    model = TinyLinear().eval()
    x, y = batch
    name = "fgsm" if steps == 1 else "bim"
    spec = AttackSpec(name, "l2", eps, steps=steps)
    ours = perturb(model, spec, x, y)
    reference = reference_l2(model, x, y, eps, spec.alpha, steps)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_linf_fgsm_matches_reference(batch):
    model = TinyLinear().eval()
    x, y = batch
    x_req = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(x_req), y), x_req)
    reference = (x + 0.2 * grad.sign()).clamp(0, 1)
    torch.testing.assert_close(perturb(model, AttackSpec("fgsm", "linf", 0.2), x, y), reference)


def test_adversarial_accuracy_not_above_clean(trained_cosface, mnist5k):
    model, cfg = trained_cosface
    rows = evaluate_model(model, cfg, mnist5k, SPECS, n_test=300, device="cpu")
    clean = rows.loc[rows.attack == "clean", "accuracy"].item()
    assert clean > 0.85
    attacked = rows[rows.attack != "clean"]
    assert (attacked.accuracy <= clean).all()
    # a larger budget never helps, and BIM is at least as strong as FGSM at the largest L-inf budget
    for (_, _), group in attacked.groupby(["attack", "norm"]):
        assert group.sort_values("eps").accuracy.is_monotonic_decreasing
    by = attacked.set_index(["attack", "norm", "eps"]).accuracy
    assert by[("bim", "linf", 0.3)] <= by[("fgsm", "linf", 0.3)]


def test_l2_attack_moves_inputs_of_large_scale_cosine_model(trained_cosface, batch):
    """A saturated cosine head (s = 300) has input gradients near 1e-20: torchattacks' own
    PGD-L2 barely moves the inputs there, ours takes full-length steps."""
    model, _ = trained_cosface
    x, y = batch
    original_s = model.head.s
    model.head.s = 300.0
    try:
        plain = torchattacks.PGDL2(model, eps=2.0, alpha=2.0, steps=1, random_start=False)(x, y)
        ours = perturb(model, AttackSpec("fgsm", "l2", 2.0), x, y)
        plain_move = (plain - x).flatten(1).norm(dim=1).median()
        our_move = (ours - x).flatten(1).norm(dim=1).median()
        assert plain_move < 0.2, "the trap this test guards against should be visible with torchattacks alone"
        assert our_move > 1.0
        assert (predict(model, ours) == y).float().mean() < (predict(model, x) == y).float().mean()
    finally:
        model.head.s = original_s


def test_attacks_leave_the_model_in_eval_mode(trained_cosface, batch):
    model, _ = trained_cosface
    x, y = batch
    for spec in SPECS[:2]:
        perturb(model, spec, x, y)
        assert not model.training
        assert not any(m.training for m in model.modules())


def exact_ce_direction(model, x, y):
    """grad_x CE written without the softmax that saturates: with q the softmax over the rivals,
    grad CE is parallel to sum_{j != y} q_j (grad z_j - grad z_y), from the logit Jacobian in float64."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    jacobian = torch.stack([torch.autograd.grad(logits[:, j].sum(), x, retain_graph=True)[0].flatten(1)
                            for j in range(logits.shape[1])], dim=1).double()  # B x C x D
    z = logits.detach().double()
    rival = ~F.one_hot(y, z.shape[1]).bool()
    q = torch.softmax(z.masked_fill(~rival, float("-inf")), dim=1)
    true = jacobian[torch.arange(len(y)), y]
    return torch.einsum("bc,bcd->bd", q, jacobian) - true


def attack_direction(view_or_model, x, y, ascending=True):
    """The input gradient an attack steps along: the CE of the logits that attacks see."""
    from abcl.attacks import AttackView
    x = x.clone().requires_grad_(True)
    if isinstance(view_or_model, AttackView) and ascending:
        with view_or_model.ascending_ce(y):
            loss = F.cross_entropy(view_or_model(x), y)
    else:
        loss = F.cross_entropy(view_or_model(x).double(), y)
    return torch.autograd.grad(loss, x)[0].flatten(1).double()


@pytest.fixture
def saturated(trained_cosface, request):
    model, _ = trained_cosface
    original = model.head.s
    model.head.s = request.param
    yield model
    model.head.s = original


@pytest.mark.parametrize("saturated", [64.0, 300.0], indirect=True, ids=["s=64", "s=300"])
def test_ce_direction_is_exact_on_saturated_logits(saturated, mnist5k):
    from abcl.attacks import AttackView
    x, y = as_float_images(mnist5k.test_x[:100]), mnist5k.test_y[:100]
    p_true = torch.softmax(saturated(x).double(), 1).gather(1, y[:, None])
    assert (1 - p_true == 0).float().mean() > 0.3, "the logits must saturate float64 for this test to mean anything"
    exact = exact_ce_direction(saturated, x, y)
    ours = F.cosine_similarity(attack_direction(AttackView(saturated), x, y), exact)
    assert ours.min() >= 0.9999, ours.topk(3, largest=False).values
    # the float64 cross-entropy the attacks used before: the true-class term is gone where p_y rounds to 1
    naive = F.cosine_similarity(attack_direction(saturated, x, y, ascending=False), exact)
    assert naive.min() < 0.9999


@pytest.mark.parametrize("saturated", [64.0], indirect=True, ids=["s=64"])
def test_robust_accuracy_agrees_with_an_exact_direction_loop(saturated, mnist5k):
    x, y = as_float_images(mnist5k.test_x[:200]), mnist5k.test_y[:200]
    spec = AttackSpec("bim", "l2", 2.0, steps=10)
    adv = x.clone()
    for _ in range(spec.steps):  # BIM-L2 along the exact direction, projected by hand
        step = exact_ce_direction(saturated, adv, y).float().view_as(x)
        step = step / step.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = adv + spec.alpha * step - x
        delta = delta * (spec.eps / delta.flatten(1).norm(dim=1)).clamp(max=1).view(-1, 1, 1, 1)
        adv = (x + delta).clamp(0, 1).detach()
    reference = (predict(saturated, adv) == y).float().mean()
    ours = (predict(saturated, perturb(saturated, spec, x, y)) == y).float().mean()
    assert abs(ours - reference) <= 0.01


def test_apgd_ce_and_autoattack_carry_the_log_space_cross_entropy(trained_cosface, batch):
    from abcl.attacks import APGDLogSpaceCE, AttackView, build_attack, ce_in_log_space
    model, cfg = trained_cosface
    x, y = batch
    logits = model(x)
    torch.testing.assert_close(ce_in_log_space(logits, y).exp().log1p(), F.cross_entropy(logits.double(), y,
                                                                                          reduction="none"))
    view = AttackView(model)
    autoattack = build_attack(view, AttackSpec("autoattack", "linf", 0.2, steps=3, queries=20))
    parts = autoattack._autoattack.attacks
    assert isinstance(parts[0], APGDLogSpaceCE) and [p.steps for p in parts[:3]] == [3, 3, 3]
    assert parts[3].n_queries == 20
    rows = evaluate_model(model, cfg, _Data(x, y), attack_specs({
        "apgd_ce_linf": {"eps": [0.2], "steps": 3}, "autoattack_linf": {"eps": [0.2], "steps": 3, "queries": 20},
        "square_linf": {"eps": [0.2], "queries": 20}}), device="cpu").set_index("attack")
    assert rows.loc["autoattack", "accuracy"] <= min(rows.loc["apgd_ce", "accuracy"], rows.loc["clean", "accuracy"])
    assert rows.loc["square", "max_linf"] <= 0.2 + 1e-6 and rows.loc["autoattack", "max_linf"] <= 0.2 + 1e-6


class _Data:
    """The smallest Dataset stand-in evaluate_model needs: a test split (float pixels back to uint8)."""

    def __init__(self, x, y, train: bool = False):
        self.test_x, self.test_y = (x * 255).round().to(torch.uint8), y
        if train:  # extract_features also draws a train subset
            self.train_x, self.train_y = self.test_x, self.test_y


def _layer_dtypes(model: nn.Module) -> tuple[set, list]:
    """Record the dtype each conv and linear layer of ``model`` computes in (its output's)."""
    seen: set = set()
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
               for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return seen, handles


EVERY_KIND = {"fgsm_linf": {"eps": [0.2]}, "bim_linf": {"eps": [0.2], "steps": 2}, "pgd_l2": {"eps": [2.0], "steps": 2},
              "apgd_ce_linf": {"eps": [0.2], "steps": 2}, "square_l2": {"eps": [2.0], "queries": 5},
              "autoattack_linf": {"eps": [0.2], "steps": 2, "queries": 5}}


@pytest.mark.parametrize("outside", ["a caller's bf16 autocast", "tensors that say they are on CUDA"])
def test_evaluation_attacks_compute_the_model_in_float32(trained_cosface, batch, monkeypatch, outside):
    """On a GPU the network trains under bf16 autocast; evaluation must not: every attack, prediction
    and feature computes every layer in float32. The GPU path used to switch autocast on where
    ``images.is_cuda``; without a GPU here, both ways bf16 could reach the model are tried: a caller's
    autocast around the evaluation, and tensors reporting CUDA. The dtype is read off the model's own
    layers."""
    import contextlib

    from abcl.evaluate import evaluate, extract_features
    model, cfg = trained_cosface
    x, y = batch
    seen, handles = _layer_dtypes(model)
    if outside == "tensors that say they are on CUDA":
        monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
        context = contextlib.nullcontext()
    else:
        context = torch.autocast("cpu", dtype=torch.bfloat16)
    try:
        with context:
            evaluate(model, cfg, _Data(x[:16], y[:16]), attack_specs(EVERY_KIND), device="cpu")
            extract_features(model, _Data(x[:16], y[:16], train=True), 8,
                             attack_specs({"bim_linf": {"eps": [0.2], "steps": 2}}), device="cpu")
    finally:
        for handle in handles:
            handle.remove()
    assert seen == {torch.float32}


def test_bf16_evaluation_reaches_the_model_only_when_asked(trained_cosface, batch):
    """The bf16 path exists to measure what it changes (benchmarks/attack_precision.py): asked for,
    bf16 does reach the layers, so the float32 test above could fail."""
    from abcl.evaluate import evaluate
    model, cfg = trained_cosface
    x, y = batch
    seen, handles = _layer_dtypes(model)
    try:
        evaluate(model, cfg, _Data(x[:16], y[:16]), attack_specs({"bim_linf": {"eps": [0.2], "steps": 2}}),
                 device="cpu", dtype=torch.bfloat16)
    finally:
        for handle in handles:
            handle.remove()
    assert torch.bfloat16 in seen


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it)")
def test_evaluation_on_a_cuda_device_attacks_in_float32(trained_cosface, batch):
    from abcl.evaluate import evaluate
    model, cfg = trained_cosface
    x, y = batch
    seen, handles = _layer_dtypes(model)
    try:
        evaluate(model, cfg, _Data(x[:16], y[:16]), attack_specs(EVERY_KIND), device="cuda")
    finally:
        for handle in handles:
            handle.remove()
        model.cpu()
    assert seen == {torch.float32}
