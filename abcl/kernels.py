"""CPU kernels: portable (the same bits on every x86-64 CPU) or fast (whatever this CPU does best).

PyTorch picks its CPU kernels by instruction set, and each library it calls blocks its loops by the
CPU's caches, so the same seed trains different weights on different CPUs (and the difference
grows chaotically over epochs). The portable mode pins every choice that depends on the CPU:

- ATen's baseline kernels (``ATEN_CPU_CAPABILITY=default``), not its AVX2/AVX-512 builds;
- MKL's SSE2 code branch without approximate reciprocals (``MKL_CBWR=COMPATIBLE``: the only
  reproducibility branch MKL keeps on non-Intel CPUs);
- oneDNN and NNPACK off: both size their blocking from the cache sizes, so convolutions go to
  ATen's im2col + MKL GEMM instead.

Thread counts are not pinned here: a reduction splits by thread count, so the count (``--threads``)
is part of what reproduces. On a GPU neither mode changes anything, and nothing is promised bit
for bit there (docs/reproducibility.md).

:func:`select` must run before torch computes anything: ATen reads its capability on the first
operator call, MKL its branch on its first call. The CLI calls it before it imports the rest.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Any

from abcl import ABCLError

MODES = ("portable", "fast")
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
_MKL_CBWR_BRANCH, _MKL_CBWR_COMPATIBLE = 1, 3  # mkl_cbwr_get's "what" and the COMPATIBLE branch code
_MKL_BRANCHES = {0: "unset", 1: "off", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
                 9: "AVX", 10: "AVX2", 12: "AVX512", 13: "AVX512_E1"}


def select(mode: str) -> None:
    """Use the ``portable`` or the ``fast`` kernels in this process, from now on."""
    if mode not in MODES:
        raise ABCLError(f"unknown kernels {mode!r}: use one of {', '.join(MODES)}")
    portable = mode == "portable"
    for name, value in PORTABLE_ENV.items():
        if portable:
            os.environ[name] = value
        elif os.environ.get(name) == value:  # inherited from a portable parent, not asked for
            del os.environ[name]
    import torch

    torch.backends.mkldnn.enabled = not portable
    torch.backends.nnpack.set_flags(not portable)
    if not portable:
        return
    _mkl_set_compatible()
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        raise ABCLError("portable kernels must be chosen before torch runs its first operator; "
                        "set ATEN_CPU_CAPABILITY=default before starting Python, or use kernels: fast")


@functools.cache
def _libtorch() -> ctypes.CDLL | None:
    """libtorch_cpu, loaded once: it carries MKL's reproducibility calls (every eval row asks)."""
    import torch

    path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


def _mkl_branch() -> str:
    """MKL's reproducibility branch as it runs (``absent`` when torch has no MKL)."""
    lib = _libtorch()
    if lib is None or not hasattr(lib, "mkl_serv_cbwr_get"):
        return "absent"
    code = lib.mkl_serv_cbwr_get(_MKL_CBWR_BRANCH)
    return _MKL_BRANCHES.get(code, str(code))


def _mkl_set_compatible() -> None:
    """The COMPATIBLE branch even where MKL_CBWR was read before :func:`select` set it. MKL
    refuses a change after its first call: then the branch it runs must already be COMPATIBLE."""
    lib = _libtorch()
    if lib is None or not hasattr(lib, "mkl_serv_cbwr_set"):
        return
    lib.mkl_serv_cbwr_set(_MKL_CBWR_COMPATIBLE)
    if _mkl_branch() != "COMPATIBLE":
        raise ABCLError(f"MKL already runs its {_mkl_branch()} branch; set MKL_CBWR=COMPATIBLE before "
                        "starting Python, or use kernels: fast")


@functools.lru_cache(maxsize=1)
def cpu() -> dict[str, str]:
    """This machine's CPU: model name, vendor and widest vector instruction set."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(info.get("flags", "").split())
    isa = next((name for flag, name in (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"),
                                        ("sse4_2", "sse4.2")) if flag in flags), "baseline")
    import platform

    return {"cpu": info.get("model name") or platform.processor() or platform.machine(),
            "cpu_vendor": info.get("vendor_id", "unknown"), "cpu_isa": isa}


def provenance() -> dict[str, Any]:
    """What decided this process's CPU numbers: kernel mode, ATen capability, MKL branch, oneDNN,
    NNPACK, threads, and the CPU. Recorded beside every result."""
    import torch

    portable = not torch.backends.mkldnn.enabled and torch.backends.cpu.get_cpu_capability() == "DEFAULT"
    return {"kernels": "portable" if portable else "fast",
            "aten_capability": torch.backends.cpu.get_cpu_capability(), "mkl_branch": _mkl_branch(),
            "onednn": bool(torch.backends.mkldnn.enabled), "nnpack": bool(torch._C._get_nnpack_enabled()),
            "threads": torch.get_num_threads(), **cpu()}
