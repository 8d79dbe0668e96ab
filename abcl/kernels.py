"""CPU kernels: portable (pinned to give the same bits on Intel and AMD CPUs of a tier: shown on an
Intel Xeon and AMD EPYC Zen 3 and Zen 4, docs/reproducibility.md) or fast (whatever this CPU does best).

PyTorch picks its CPU kernels by instruction set, and the libraries under it pick code paths by
CPU, so the same seed trains different weights on different CPUs (and the difference grows
chaotically over epochs). ``portable`` pins every choice that depends on the CPU, in the widest
of three tiers that the CPU runs (:func:`portable_tier`); each tier gives its own bits, the same
on every CPU that runs it:

- ``portable-avx512`` (AVX-512 F/BW/VL/DQ: Intel Xeon since Skylake-SP, 2017; AMD since Zen 4,
  2022): ATen's AVX-512 kernels, oneDNN's convolutions capped to AVX512_CORE.
- ``portable-avx2`` (AVX2 and FMA, no AVX-512: Intel since Haswell, 2013; AMD Zen 1-3): ATen's
  AVX2 kernels, oneDNN capped to AVX2.
- ``portable-baseline`` (every other x86-64 CPU): ATen's baseline kernels, oneDNN off
  (convolutions through ATen's im2col and MKL's GEMM); about 4x slower per epoch.

The tier is read from /proc/cpuinfo; where there is none (macOS, Windows) the CPU gets
``portable-baseline``. Off x86-64 torch has no MKL, so no promise holds across architectures.

Every tier runs MKL's COMPATIBLE branch for GEMM (``MKL_CBWR=COMPATIBLE``: its other branches
take other paths on AMD than on Intel), NNPACK off, and ``aten::sqrt`` on the CPU computes the
IEEE 754 correctly rounded square root (:func:`_pin_sqrt`): ATen sends float32 square roots to
MKL's vector math, whose COMPATIBLE branch gave other bits on an AMD EPYC than on an Intel Xeon
(benchmarks/measured/fingerprints-2026-12-05.md). A correctly rounded result is one number,
whatever computes it. The other vector-math functions the pipeline calls (exp, log, tanh,
logsumexp) agreed between those two machines, and so did every convolution, pooling, softmax,
dropout and random-number kernel at the same instruction set.

Thread counts are not pinned here: a reduction splits by thread count, so the count (``--threads``)
is part of what reproduces. On a GPU neither mode changes anything, and nothing is promised bit
for bit there (docs/reproducibility.md).

:func:`select` must run before torch computes anything: ATen reads its capability on the first
operator call, MKL its branch on its first call, oneDNN its ISA cap on its first primitive. The CLI
calls it before it imports the rest.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from pathlib import Path
from typing import Any

from abcl import ABCLError

# portable: the widest tier this CPU runs
MODES = ("portable", "portable-avx512", "portable-avx2", "portable-baseline", "fast")
TIERS = {  # the environment each tier pins, and the CPU flags it needs
    "portable-avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "portable-avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "portable-baseline": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
}
TIER_FLAGS = {"portable-avx512": {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"},
              "portable-avx2": {"avx2", "fma"}, "portable-baseline": set()}
# abcl fingerprint's parts, in order: under emulation (qemu-user, hundreds of times slower)
# `make fingerprint-emulated` runs the first two; "training" (an epoch of real digits, then every
# attack on the trained net) costs most of the rest
FINGERPRINT_PARTS = ("primitives", "heads", "training")
PORTABLE_ENV = sorted({name for env in TIERS.values() for name in env})  # what a portable parent may pass on
_MKL_CBWR_BRANCH, _MKL_CBWR_COMPATIBLE = 1, 3  # mkl_cbwr_get's "what" and the COMPATIBLE branch code
_MKL_BRANCHES = {0: "unset", 1: "off", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
                 9: "AVX", 10: "AVX2", 12: "AVX512", 13: "AVX512_E1"}
_selected: str | None = None  # the mode select() resolved, for provenance
_SET_BY_US = "ABCL_KERNELS_SET"  # the variables a portable parent set, so that a child may unset exactly those


def runs(tier: str) -> bool:
    """Whether this CPU has the instruction sets of ``tier``."""
    x86 = platform.machine() in ("x86_64", "AMD64")
    return tier == "portable-baseline" or (x86 and TIER_FLAGS[tier] <= cpu_flags())


def portable_tier() -> str:
    """The widest portable tier this CPU runs."""
    return next(tier for tier in TIERS if runs(tier))


def resolve(mode: str) -> str:
    """The concrete mode ``mode`` runs here (``portable`` becomes this CPU's tier)."""
    if mode not in MODES:
        raise ABCLError(f"unknown kernels {mode!r}: use one of {', '.join(MODES)}")
    if mode == "portable":
        return portable_tier()
    if mode in TIERS and not runs(mode):
        raise ABCLError(f"kernels {mode} need a CPU with {', '.join(sorted(TIER_FLAGS[mode] - cpu_flags()))}, "
                        f"which this one lacks: use kernels: portable (here: {portable_tier()})")
    return mode


def select(mode: str) -> str:
    """Use the ``mode`` kernels in this process, from now on; returns the concrete mode."""
    global _selected
    concrete = resolve(mode)
    env = TIERS.get(concrete, {})
    for name in os.environ.pop(_SET_BY_US, "").split():
        if name not in env:
            os.environ.pop(name, None)  # a portable parent set it; a variable the user set stays
    os.environ.update(env)
    if env:
        os.environ[_SET_BY_US] = " ".join(sorted(env))
    import torch

    torch.backends.mkldnn.enabled = concrete == "fast" or "ONEDNN_MAX_CPU_ISA" in env  # capped, or off
    torch.backends.nnpack.set_flags(concrete == "fast")
    _selected = concrete
    if concrete == "fast":
        return concrete
    _mkl_set_compatible()
    if torch.backends.cpu.get_cpu_capability() != env["ATEN_CPU_CAPABILITY"].upper():
        raise ABCLError(f"{concrete} kernels must be chosen before torch runs its first operator; set "
                        f"ATEN_CPU_CAPABILITY={env['ATEN_CPU_CAPABILITY']} before starting Python, or use kernels: fast")
    _pin_sqrt()
    return concrete


@functools.cache
def _pin_sqrt() -> None:
    """``aten::sqrt`` (and its in-place and out= forms) on the CPU through numpy's ``sqrt``: the
    hardware's correctly rounded square root (IEEE 754 requires it), instead of MKL's vector math.
    Below autograd: the backward pass is untouched (it divides by the saved result)."""
    import warnings

    import numpy as np
    import torch

    def rounded(x: torch.Tensor) -> torch.Tensor:
        """The correctly rounded root of ``x`` in ``x``'s layout (0-d, empty and strided included)."""
        x = x.detach().resolve_conj().resolve_neg()
        dtype = x.dtype if x.is_floating_point() or x.is_complex() else torch.get_default_dtype()
        # bfloat16/float16 from the float32 root: double rounding of a square root from 24 to 8 or
        # 11 bits is exact (24 >= 2p + 2), so the result is still the correctly rounded one
        wide = x.to(torch.float32) if dtype in (torch.bfloat16, torch.float16) else x.to(dtype)
        values = wide.contiguous().numpy()
        root = torch.from_numpy(np.sqrt(values, out=np.empty_like(values)))
        return torch.empty_like(x, dtype=dtype).copy_(root)

    def sqrt_(x):
        if not x.is_floating_point() and not x.is_complex():
            raise RuntimeError(f"result type Float can't be cast to the desired output type {x.dtype}")
        return x.copy_(rounded(x))

    def sqrt_out(x, *, out):
        result = rounded(x)
        if not torch.can_cast(result.dtype, out.dtype):
            raise RuntimeError(f"result type {result.dtype} can't be cast to the desired output type {out.dtype}")
        if out.shape != result.shape:
            out.resize_(result.shape)
        return out.copy_(result)

    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overriding a previously registered kernel": that is the point
        library.impl("sqrt", rounded, "CPU")
        library.impl("sqrt_", sqrt_, "CPU")
        library.impl("sqrt.out", sqrt_out, "CPU")
    _pin_sqrt.library = library  # the registration lives as long as the Library object


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


@functools.cache
def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_flags() -> set[str]:
    """This CPU's instruction-set flags as Linux lists them (empty elsewhere)."""
    return set(_cpuinfo().get("flags", "").split())


# cpuid(leaf, subleaf, uint32 out[4]) in x86-64 machine code (System V ABI): push rbx; mov eax, edi;
# mov ecx, esi; mov r8, rdx; cpuid; mov [r8], eax; mov [r8+4], ebx; mov [r8+8], ecx; mov [r8+12], edx;
# pop rbx; ret
_CPUID_CODE = bytes.fromhex("53 89f8 89f1 4989d0 0fa2 418900 41895804 41894808 4189500c 5b c3")


@functools.cache
def _cpuid_function():
    """The CPUID instruction as a callable, or None where it cannot run (not x86-64, no
    executable memory). py-cpuinfo would do, but it prefers /proc/cpuinfo, which under user-mode
    emulation (qemu-user) describes the host, not the CPU the process runs on."""
    import mmap
    if platform.machine() not in ("x86_64", "AMD64") or os.name != "posix":
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):  # W^X policies refuse a writable, executable page
        return None
    page.write(_CPUID_CODE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    function = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(address)
    function.page = page  # the page lives as long as the function

    def cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
        out = (ctypes.c_uint32 * 4)()
        function(leaf, subleaf, out)
        return tuple(out)  # eax, ebx, ecx, edx
    return cpuid


@functools.lru_cache(maxsize=1)
def cpuid_cpu() -> dict[str, str] | None:
    """The CPU as the CPUID instruction reports it to this process (what ATen, MKL and oneDNN
    read): vendor, brand string and widest vector ISA; None where CPUID cannot be run."""
    cpuid = _cpuid_function()
    if cpuid is None:
        return None
    top, ebx, ecx, edx = cpuid(0)
    vendor = b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx)).decode("ascii", "replace")
    brand = ""
    if cpuid(0x80000000)[0] >= 0x80000004:
        brand = b"".join(r.to_bytes(4, "little") for leaf in range(0x80000002, 0x80000005) for r in cpuid(leaf))
        brand = brand.split(b"\0", 1)[0].decode("ascii", "replace").strip()
    leaf1_ecx = cpuid(1)[2] if top >= 1 else 0
    leaf7_ebx = cpuid(7)[1] if top >= 7 else 0
    # Linux's flag names for the CPUID bits cpu() reads, so that the two name one ISA alike
    flags = {flag for flag, on in (("avx512f", leaf7_ebx >> 16 & 1), ("avx2", leaf7_ebx >> 5 & 1),
                                   ("avx", leaf1_ecx >> 28 & 1), ("sse4_2", leaf1_ecx >> 20 & 1)) if on}
    return {"cpu": brand or "unknown", "cpu_vendor": vendor, "cpu_isa": _widest_isa(flags)}


def _widest_isa(flags: set[str]) -> str:
    return next((name for flag, name in (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"),
                                         ("sse4_2", "sse4.2")) if flag in flags), "baseline")


@functools.lru_cache(maxsize=1)
def cpu() -> dict[str, str]:
    """This machine's CPU: model name, vendor and widest vector instruction set."""
    info = _cpuinfo()
    return {"cpu": info.get("model name") or platform.processor() or platform.machine(),
            "cpu_vendor": info.get("vendor_id", "unknown"), "cpu_isa": _widest_isa(cpu_flags())}


def fingerprint_header(parts: tuple[str, ...] = FINGERPRINT_PARTS) -> str:
    """A fingerprint's first line: the CPU as CPUID tells this process (what ATen, MKL and oneDNN
    read), /proc/cpuinfo's where it says otherwise (the host's, under user-mode emulation), the
    capability ATen runs and the kernels' settings."""
    machine, seen = provenance(), cpuid_cpu()
    told = f"{machine['cpu']} ({machine['cpu_vendor']}, widest ISA {machine['cpu_isa']})"
    if seen is None:
        where = f"{told} from /proc/cpuinfo (CPUID unread)"
    elif (seen["cpu"].split(), seen["cpu_vendor"], seen["cpu_isa"]) == (
            machine["cpu"].split(), machine["cpu_vendor"], machine["cpu_isa"]):
        where = f"{seen['cpu']} ({seen['cpu_vendor']}, widest ISA {seen['cpu_isa']}; CPUID and /proc/cpuinfo agree)"
    else:
        where = (f"CPUID: {seen['cpu']} ({seen['cpu_vendor']}, widest ISA {seen['cpu_isa']}); /proc/cpuinfo: {told}, "
                 "the host's under user-mode emulation (or a kernel that hides instruction sets)")
    onednn = f"on, max ISA {machine['onednn_max_isa']}" if machine["onednn"] else "off"
    only = "" if tuple(parts) == FINGERPRINT_PARTS else f"; parts {', '.join(parts)}"
    return (f"# {where}; kernels {machine['kernels']}: ATen {machine['aten_capability']}, MKL {machine['mkl_branch']}, "
            f"oneDNN {onednn}; 1 thread{only}\n")


def provenance() -> dict[str, Any]:
    """What decided this process's CPU numbers: kernel mode, ATen capability, MKL branch, oneDNN
    and its ISA cap, NNPACK, threads, and the CPU. Recorded beside every result."""
    import torch

    return {"kernels": _selected or "fast",  # nothing pinned: torch's own choice
            "aten_capability": torch.backends.cpu.get_cpu_capability(), "mkl_branch": _mkl_branch(),
            "onednn": bool(torch.backends.mkldnn.enabled),
            "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),
            "nnpack": bool(torch._C._get_nnpack_enabled()), "threads": torch.get_num_threads(), **cpu()}
