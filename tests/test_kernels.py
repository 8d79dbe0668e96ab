"""Portable kernels: one short training and an attack give the same bits whatever instruction
sets this CPU's libraries are capped to, and with MKL told that the CPU is not an Intel one; the
fast kernels change with the caps (the caps bite). Across machines: tests/test_fingerprint.py."""

import hashlib
import json
import os
import subprocess
import sys

import shutil

import numpy as np
import pytest

from abcl import kernels
from abcl.config import TrainConfig
from abcl.data import Dataset, save_dataset

# One process per variant: the caps act when a process starts. It trains (7 steps of ABCL) and
# takes latent features of clean and BIM-attacked test images, through the CLI as the workflow does.
DRIVER = """
import sys
from abcl.cli import main
data, out, kernels, train = sys.argv[1:5]
common = ["--data", data, "--device", "cpu", "--threads", "1", "--kernels", kernels]
assert main(["train", "--train-config", train, "--out-dir", out, "--quiet", *common]) == 0
assert main(["features", "--model", out + "/model.pt", "--n-per-set", "64", "--out", out + "/features.npz",
             "--attacks", '{"bim_linf": {"eps": [0.2], "steps": 5, "alpha_factor": 2.5}}', *common]) == 0
"""

# Caps that change what this CPU's libraries run, each as another CPU would: oneDNN at AVX2,
# SSE4.1 or AMX, ATen's AVX2 kernels, MKL's Intel code path capped to SSE4.2 (ignored on AMD),
# MKL's AVX-512 branch asked for, glibc's libm without its AVX2/FMA variants. The portable mode
# overrides the ones it pins; the others must not matter.
CAPS = {
    "native": {},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "onednn-amx": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "mkl-sse42": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "mkl-avx512-branch": {"MKL_CBWR": "AVX512"},
    "glibc-no-avx2": {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F"},
}

# MKL picks some code paths by asking whether the CPU is an Intel one; this library, preloaded,
# answers no, so MKL runs the paths it runs on an AMD CPU (on an AMD EPYC the opposite shim changed
# nothing in portable mode). It cannot stand in for the AMD CPU itself: MKL's square root parted
# the two vendors although the shim changed nothing on either (test_fingerprint checks across
# machines).
NOT_INTEL_SHIM = "int mkl_serv_intel_cpu_true(void) { return 0; }\nint mkl_serv_intel_cpu(void) { return 0; }\n"


@pytest.fixture(scope="module")
def not_intel_shim(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the MKL vendor shim")
    folder = tmp_path_factory.mktemp("shim")
    (folder / "shim.c").write_text(NOT_INTEL_SHIM)
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / "shim.so"), str(folder / "shim.c")], check=True)
    return {"LD_PRELOAD": str(folder / "shim.so")}


@pytest.fixture(scope="module")
def small_data(mnist5k, tmp_path_factory):
    path = tmp_path_factory.mktemp("kernels") / "data.pt"
    save_dataset(Dataset("mnist5k", mnist5k.train_x[:900], mnist5k.train_y[:900],
                         mnist5k.test_x[:64], mnist5k.test_y[:64]), path)
    return path


def _fingerprint(small_data, tmp_path, mode: str, caps: dict[str, str]) -> dict[str, str]:
    out = tmp_path / f"{mode}-{len(list(tmp_path.iterdir()))}"
    train = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512.0, k2=64.0, epochs=1).to_json()
    env = {k: v for k, v in os.environ.items()  # as a fresh shell has it
           if k not in kernels.PORTABLE_ENV and k != "ABCL_KERNELS_SET"}
    subprocess.run([sys.executable, "-c", DRIVER, str(small_data), str(out), mode, train],
                   env={**env, **caps}, check=True, capture_output=True)
    features = np.load(out / "features.npz")
    record = json.loads((out / "train.json").read_text())
    return {"model": hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()[:16],
            "features": hashlib.sha256(features["features"].tobytes()).hexdigest()[:16],
            "kernels": record["kernels"]["kernels"], "aten": record["kernels"]["aten_capability"]}


def test_portable_kernels_give_the_same_bits_under_every_cap(small_data, tmp_path, not_intel_shim):
    prints = {name: _fingerprint(small_data, tmp_path, "portable", caps)
              for name, caps in {**CAPS, "mkl-not-intel": not_intel_shim}.items()}
    assert {p["kernels"] for p in prints.values()} == {kernels.portable_tier()}
    assert len({p["aten"] for p in prints.values()}) == 1  # a capability asked for is overridden
    assert len({(p["model"], p["features"]) for p in prints.values()}) == 1, prints


def test_fast_kernels_change_with_the_caps(small_data, tmp_path):
    """The same variants in fast mode differ from the portable bits and among themselves: the caps
    reach the kernels, so the equality above is not for want of a change."""
    native = _fingerprint(small_data, tmp_path, "fast", {})
    capped = _fingerprint(small_data, tmp_path, "fast", CAPS["onednn-sse41"])
    portable = _fingerprint(small_data, tmp_path, "portable", {})
    assert native["kernels"] == capped["kernels"] == "fast"
    assert native["model"] != portable["model"]
    assert native["model"] != capped["model"]


def test_unknown_kernels_are_refused():
    with pytest.raises(kernels.ABCLError, match="unknown kernels 'turbo'"):
        kernels.select("turbo")


def test_a_tier_this_cpu_cannot_run_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"sse4_2", "avx2", "fma"})
    assert kernels.portable_tier() == "portable-avx2"
    with pytest.raises(kernels.ABCLError, match="portable-avx512 need a CPU with avx512bw, avx512dq, avx512f, "
                                                "avx512vl, which this one lacks: use kernels: portable "
                                                r"\(here: portable-avx2\)"):
        kernels.resolve("portable-avx512")
    monkeypatch.setattr(kernels, "cpu_flags", lambda: {"sse4_2", "avx"})
    assert kernels.resolve("portable") == "portable-baseline"


def test_pinned_square_root_is_the_correctly_rounded_one():
    """Every float32 square root, in each form ATen offers, equals the float64 root rounded to
    float32 (exact for square roots: 53 >= 2 * 24 + 2), including where MKL's vector math was off."""
    import torch

    values = torch.rand(70007, dtype=torch.float64).mul(1e4).float()
    exact = values.double().sqrt().float()
    out = torch.empty_like(values)
    torch.sqrt(values, out=out)
    assert torch.equal(values.sqrt(), exact) and torch.equal(values.clone().sqrt_(), exact) and torch.equal(out, exact)
    assert torch.equal(values.view(7, -1).t().sqrt(), exact.view(7, -1).t())  # strided input
    grad = values[:9].clone().requires_grad_(True)
    grad.sqrt().sum().backward()  # autograd is untouched: d sqrt(x) = 1 / (2 sqrt(x))
    assert torch.allclose(grad.grad, 0.5 / exact[:9])
    assert values.to(torch.bfloat16).sqrt().dtype == torch.bfloat16
    assert torch.tensor(4.0).sqrt().item() == 2.0 and torch.empty(0).sqrt().shape == (0,)  # 0-d and empty
    last = values[:120].view(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    assert last.sqrt().is_contiguous(memory_format=torch.channels_last)  # the layout the next op expects
    assert torch.equal(torch.arange(4).sqrt(), torch.arange(4).double().sqrt().float())  # integers: floats
    with pytest.raises(RuntimeError, match="can't be cast"):
        torch.arange(4).sqrt_()


def test_provenance_names_the_cpu_and_the_kernels():
    record = kernels.provenance()
    assert record["kernels"] == kernels.portable_tier()  # conftest selects portable, as every workflow job does
    assert record["mkl_branch"] in ("COMPATIBLE", "absent")
    assert record["onednn"] == (record["kernels"] != "portable-baseline") and not record["nnpack"]
    assert record["cpu"] and record["cpu_isa"] in ("avx512", "avx2", "avx", "sse4.2", "baseline")


def test_the_config_takes_every_mode_the_command_takes():
    from abcl.config import schema
    assert schema()["properties"]["train"]["properties"]["kernels"]["enum"] == list(kernels.MODES)


def test_a_fast_child_of_a_portable_parent_unsets_only_what_the_parent_set(monkeypatch):
    """fast after portable drops the variables portable set, never one the user set on purpose."""
    monkeypatch.setenv("ABCL_KERNELS_SET", "ATEN_CPU_CAPABILITY MKL_CBWR ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    kernels.select("fast")
    assert not {"ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ABCL_KERNELS_SET"} & set(os.environ)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")  # the user's own, with no marker
    kernels.select("fast")
    assert os.environ["MKL_CBWR"] == "COMPATIBLE"
    kernels.select("portable")  # back as conftest left it (torch keeps the kernels it started with)
