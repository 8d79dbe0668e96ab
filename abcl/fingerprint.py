"""Op-by-op fingerprint of what a training and an attack compute on this CPU, to compare machines.

Each line names one computation and the first 12 hex digits of the SHA-256 of its result's bytes:
the primitives a training step and an attack are made of (matmul, vector math, softmax,
convolutions forward and backward, max-pool, dropout, random numbers, Adam), each of the project's
heads after three Adam steps and under BIM, each attack family the evaluations run, and one short
training on real digits through :func:`abcl.train.train_model`. Inputs come from integers (a seeded
``randint``), so the same bits reach every kernel setting; a difference comes from the kernels.

Two machines in the same environment (``requirements/lock.txt``) and the same kernel mode that
print the same lines compute those ops bit for bit alike; the first line that differs is where
they part. ``tests/reference/fingerprint-<mode>.txt`` holds the lines that the machine named in
their header printed; ``tests/test_fingerprint.py`` compares this machine with them. The
primitives are those of the probe that found where an AMD EPYC and an Intel Xeon parted
(docs/reproducibility.md), so its files and these lines can be read side by side.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from abcl.config import AttackSpec, TrainConfig
from abcl.kernels import FINGERPRINT_PARTS as PARTS

HEADS = {"SCE": dict(loss="sce"), "Cos-SCE s=4": dict(loss="cos_sce", s=4.0),
         "CosFace": dict(loss="cosface", s=5.0, m=0.35), "HT-SCE": dict(loss="ht_sce", s=5.0, m=0.2),
         "ABCL": dict(loss="ht_sce", s=5.0, m=0.2, k1=512.0, k2=64.0)}
# every attack family of the evaluations, at small budgets (L2 ones take square roots of norms)
ATTACKS = [AttackSpec("fgsm", "linf", 0.2), AttackSpec("bim", "linf", 0.2, steps=5),
           AttackSpec("fgsm", "l2", 2.0), AttackSpec("bim", "l2", 2.0, steps=5),
           AttackSpec("pgd", "linf", 0.2, steps=5, restarts=2), AttackSpec("apgd_ce", "l2", 2.0, steps=10),
           AttackSpec("apgd_dlr", "linf", 0.2, steps=10), AttackSpec("square", "l2", 2.0, queries=30),
           AttackSpec("autoattack", "l2", 2.0, steps=3, queries=20)]


def digest(*tensors: torch.Tensor) -> str:
    """The first 12 hex digits of the SHA-256 of the tensors' bytes, each in its own dtype."""
    m = hashlib.sha256()
    for t in tensors:
        m.update(t.detach().contiguous().numpy().tobytes())
    return m.hexdigest()[:12]


class Exact:
    """Inputs made from integers by one seeded generator: the same bits under every kernel setting
    (``torch.randn`` and ``uniform_`` themselves differ between ATen's baseline and AVX2 builds)."""

    def __init__(self, seed: int = 1234):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, *shape: int, scale: float = 1.0, low: float = -1.0) -> torch.Tensor:
        n = torch.randint(0, 1 << 20, shape, generator=self.generator, dtype=torch.int64)
        return (n.double() / (1 << 20) * (1 - low) + low).float() * scale


def primitives(exact: Exact) -> Iterator[tuple[str, str]]:
    x, w1, w2 = exact(128, 1, 28, 28, low=0.0), exact(16, 1, 5, 5, scale=0.3), exact(32, 16, 5, 5, scale=0.08)
    a, b, c, d = exact(128, 1568), exact(1568, 256, scale=0.05), exact(257, 129), exact(129, 63)
    v = exact(1 << 16, scale=8.0)
    yield "mm 128x1568 @ 1568x256", digest(a @ b)
    yield "mm 257x129 @ 129x63", digest(c @ d)
    yield "mm transposed", digest(b.t() @ a.t())
    yield "linear", digest(F.linear(a, b.t().contiguous(), torch.ones(256)))
    for name, op in (("exp", torch.exp), ("log", lambda t: torch.log(t.abs() + 1e-3)), ("tanh", torch.tanh),
                     ("sqrt", lambda t: torch.sqrt(t.abs())), ("sqrt in place", lambda t: t.abs().sqrt_()),
                     ("softmax", lambda t: F.softmax(t.view(-1, 16), dim=1)),
                     ("log_softmax", lambda t: F.log_softmax(t.view(-1, 16), dim=1)),
                     ("logsumexp", lambda t: torch.logsumexp(t.view(-1, 16), dim=1)),
                     ("sum", lambda t: t.sum().reshape(1)), ("normalize", lambda t: F.normalize(t.view(-1, 16), dim=1)),
                     ("vector norm", lambda t: t.view(-1, 256).norm(dim=1)),
                     ("float64 exp, 64 bits", lambda t: t.double().exp()),
                     ("float64 logsumexp, 64 bits", lambda t: torch.logsumexp(t.double().view(-1, 16), dim=1))):
        yield name, digest(op(v))
    # as the shared probe hashes them (rounded to float32), so that its files compare line by line
    yield "float64 logsumexp", digest(torch.logsumexp(v.double().view(-1, 16), dim=1).float())
    xr, w1r, w2r = (t.clone().requires_grad_(True) for t in (x, w1, w2))
    y1 = F.conv2d(xr, w1r, padding=2)
    p1 = F.max_pool2d(F.relu(y1), 2)
    y2 = F.conv2d(p1, w2r, padding=2)
    yield "conv2d 1->16 fwd", digest(y1)
    yield "relu+maxpool fwd", digest(p1)
    yield "conv2d 16->32 fwd", digest(y2)
    loss = F.cross_entropy(y2.mean(dim=(2, 3))[:, :10], torch.arange(128) % 10)
    yield "cross_entropy", digest(loss.reshape(1))
    loss.backward()
    yield "conv2d 16->32 bwd weight", digest(w2r.grad)
    yield "conv2d 1->16 bwd weight", digest(w1r.grad)
    yield "conv/pool bwd input", digest(xr.grad)
    torch.manual_seed(7)
    yield "dropout(0.5)", digest(F.dropout(torch.ones(128, 1568), 0.5, training=True))
    yield "randperm", digest(torch.randperm(4000, generator=torch.Generator().manual_seed(3)).float())
    yield "randn", digest(torch.randn(1000, generator=torch.Generator().manual_seed(3)))
    p = torch.nn.Parameter(torch.randn(1000, generator=torch.Generator().manual_seed(5)))
    opt = torch.optim.Adam([p], lr=2e-3)
    for _ in range(3):
        opt.zero_grad()
        (p.sin() * p).sum().backward()
        opt.step()
    yield "adam 3 steps", digest(p)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(16, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(1568, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    torch.manual_seed(0)
    for module in net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    yield "init (kaiming_uniform)", digest(*net.parameters())
    _with_exact_weights(net, exact)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(net(x), torch.arange(128) % 10).backward()
        opt.step()
    yield "small net, 5 Adam steps", digest(*net.parameters())
    yield "float64 mm", digest((c.double() @ d.double()).float())  # the probe's rounding, as above
    yield "float64 mm, 64 bits", digest(c.double() @ d.double())
    xp = x.clone().requires_grad_(True)
    (F.max_pool2d(xp, 2) * exact(128, 1, 14, 14)).sum().backward()
    yield "max_pool2d bwd", digest(xp.grad)


def _with_exact_weights(model: torch.nn.Module, exact: Exact) -> torch.nn.Module:
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(exact(*prm.shape, scale=0.05))
    return model


def heads(exact: Exact) -> Iterator[tuple[str, str]]:
    """Three Adam steps of each head from exact weights, then a BIM on it."""
    from abcl.attacks import perturb
    from abcl.models import build_model
    from abcl.train import _optimizer

    x, labels = exact(128, 1, 28, 28, low=0.0), torch.arange(128) % 10
    for name, kw in HEADS.items():
        torch.manual_seed(0)
        cfg = TrainConfig(**kw, epochs=1)
        model = _with_exact_weights(build_model(cfg, 10), exact)
        opt = _optimizer(cfg, model)
        model.train()
        for _ in range(3):
            opt.zero_grad()
            model.training_loss(x, labels)[0].backward()
            opt.step()
        yield f"{name}, 3 Adam steps", digest(*model.parameters())
        model.eval()
        yield f"{name}, BIM L-inf", digest(perturb(model, ATTACKS[1], x[:64], labels[:64], 64))


def training_and_attacks(n_train: int = 1024, n_test: int = 64) -> Iterator[tuple[str, str]]:
    """One epoch of ABCL on the first ``n_train`` real digits of mnist5k, as a training job runs it
    (seeded init, shuffling, dropout, OneCycle, Adam), then every attack family on ``n_test`` test
    digits (a trained model: attacks skip the digits it already gets wrong)."""
    from abcl.attacks import perturb
    from abcl.data import Dataset, as_float_images, load_mnist5k
    from abcl.train import load_model, train_model

    full = load_mnist5k()
    data = Dataset("mnist5k", full.train_x[:n_train], full.train_y[:n_train],
                   full.test_x[:n_test], full.test_y[:n_test])
    cfg = TrainConfig(**HEADS["ABCL"], epochs=1)
    with tempfile.TemporaryDirectory() as out:
        train_model(cfg, data, out, device="cpu", progress=False)
        model, _ = load_model(Path(out) / "model.pt")
    model.eval()
    yield f"training ABCL, 1 epoch of {n_train} digits", digest(*model.parameters())
    images = as_float_images(data.test_x)
    for spec in ATTACKS:
        torch.manual_seed(0)
        yield f"trained ABCL, {spec.key} eps={spec.eps:g}", digest(perturb(model, spec, images, data.test_y, n_test))


def fingerprint(parts: tuple[str, ...] = PARTS) -> list[tuple[str, str]]:
    """Every line of the given parts, in order (one thread: the count is part of the result).
    ``heads`` continues the exact inputs where ``primitives`` left them, so it runs them first
    (their lines are left out when not asked for)."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown fingerprint part(s) {', '.join(unknown)}: use {', '.join(PARTS)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exact, lines = Exact(), []
        if "primitives" in parts or "heads" in parts:
            first = list(primitives(exact))
            lines += first if "primitives" in parts else []
        if "heads" in parts:
            lines += heads(exact)
        if "training" in parts:
            lines += training_and_attacks()
    finally:
        torch.set_num_threads(threads)
    return lines


def render(lines: list[tuple[str, str]]) -> str:
    return "".join(f"{name:44s} {value}\n" for name, value in lines)


def parse(text: str) -> list[tuple[str, str]]:
    """The lines of a fingerprint file, header comments (``#``) left out."""
    return [tuple(line.rsplit(None, 1)) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def first_difference(mine: list[tuple[str, str]], reference: list[tuple[str, str]]) -> str | None:
    """The first line where two fingerprints part, in words; None when they agree."""
    for (name, value), (ref_name, ref_value) in zip(mine, reference):
        if name != ref_name:
            return f"the fingerprints list other computations from '{name}' on (reference: '{ref_name}')"
        if value != ref_value:
            return f"'{name}' differs ({value} here, {ref_value} in the reference)"
    if len(mine) != len(reference):
        return f"{len(mine)} computations here, {len(reference)} in the reference"
    return None
