"""Portable kernels: one short training and an attack give the same bits whatever instruction
sets this CPU's libraries are capped to; the fast kernels change with the caps (the caps bite)."""

import hashlib
import json
import os
import subprocess
import sys

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

# Caps that change what this CPU's libraries run, each as another CPU would: oneDNN at AVX2 or
# SSE4.1, ATen's AVX2 kernels, MKL's Intel code path capped to SSE4.2 (ignored on AMD), glibc's
# libm without its AVX2/FMA variants.
CAPS = {
    "native": {},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "mkl-sse42": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "glibc-no-avx2": {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F"},
}


@pytest.fixture(scope="module")
def small_data(mnist5k, tmp_path_factory):
    path = tmp_path_factory.mktemp("kernels") / "data.pt"
    save_dataset(Dataset("mnist5k", mnist5k.train_x[:900], mnist5k.train_y[:900],
                         mnist5k.test_x[:64], mnist5k.test_y[:64]), path)
    return path


def _fingerprint(small_data, tmp_path, mode: str, caps: dict[str, str]) -> dict[str, str]:
    out = tmp_path / f"{mode}-{len(list(tmp_path.iterdir()))}"
    train = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512.0, k2=64.0, epochs=1).to_json()
    env = {k: v for k, v in os.environ.items() if k not in kernels.PORTABLE_ENV}  # as a fresh shell has it
    subprocess.run([sys.executable, "-c", DRIVER, str(small_data), str(out), mode, train],
                   env={**env, **caps}, check=True, capture_output=True)
    features = np.load(out / "features.npz")
    record = json.loads((out / "train.json").read_text())
    return {"model": hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()[:16],
            "features": hashlib.sha256(features["features"].tobytes()).hexdigest()[:16],
            "kernels": record["kernels"]["kernels"], "aten": record["kernels"]["aten_capability"]}


def test_portable_kernels_give_the_same_bits_under_every_cap(small_data, tmp_path):
    prints = {name: _fingerprint(small_data, tmp_path, "portable", caps) for name, caps in CAPS.items()}
    assert {p["kernels"] for p in prints.values()} == {"portable"}
    assert {p["aten"] for p in prints.values()} == {"DEFAULT"}  # a capability asked for is overridden
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


def test_provenance_names_the_cpu_and_the_kernels():
    record = kernels.provenance()
    assert record["kernels"] == "portable"  # conftest selects them, as every workflow job does
    assert record["mkl_branch"] in ("COMPATIBLE", "absent")
    assert not record["onednn"] and not record["nnpack"]
    assert record["cpu"] and record["cpu_isa"] in ("avx512", "avx2", "avx", "sse4.2", "baseline")
