"""Across machines: this CPU's op-by-op fingerprint in each portable tier it runs equals the one
committed in tests/reference/ (made on the machine its header names); a difference names the first
computation where the two machines part. Within one machine: tests/test_kernels.py."""

import subprocess
import sys
from pathlib import Path

import pytest

from abcl import kernels
from abcl.fingerprint import HEADS, first_difference, parse, render

REFERENCE = Path(__file__).parent / "reference"


@pytest.mark.parametrize("tier", list(kernels.TIERS))
def test_this_machine_computes_what_the_reference_machine_computed(tier):
    if not kernels.runs(tier):
        pytest.skip(f"this CPU lacks the instruction sets of {tier}")
    reference = REFERENCE / f"fingerprint-{tier}.txt"
    done = subprocess.run([sys.executable, "-m", "abcl", "fingerprint", "--kernels", tier, "--compare", str(reference)],
                          capture_output=True, text=True)
    made_on = reference.read_text().splitlines()[0]
    assert done.returncode == 0, f"{done.stderr.strip()} (reference {made_on})"
    assert done.stdout.splitlines()[-1] == f"# all {len(parse(reference.read_text()))} computations agree with {reference}"


def test_references_cover_every_tier_and_name_their_machine():
    for tier in kernels.TIERS:
        header = (REFERENCE / f"fingerprint-{tier}.txt").read_text().splitlines()[0]
        assert header.startswith("# ") and f"kernels {tier}:" in header


def test_the_first_difference_is_named():
    reference = [("mm", "aaaaaaaaaaaa"), ("sqrt", "bbbbbbbbbbbb"), ("adam", "cccccccccccc")]
    assert parse(render(reference)) == reference
    assert first_difference(reference, reference) is None
    mine = [("mm", "aaaaaaaaaaaa"), ("sqrt", "dddddddddddd"), ("adam", "eeeeeeeeeeee")]
    assert first_difference(mine, reference) == "'sqrt' differs (dddddddddddd here, bbbbbbbbbbbb in the reference)"
    assert first_difference(reference[:2], reference) == "2 computations here, 3 in the reference"
    assert first_difference([("conv", "a" * 12)], reference).startswith("the fingerprints list other computations")


def test_cpuid_reads_what_linux_reads_on_a_real_cpu():
    """The CPUID machine code against /proc/cpuinfo, which on a real (not emulated) CPU reports the same."""
    seen = kernels.cpuid_cpu()
    if seen is None or not Path("/proc/cpuinfo").exists():
        pytest.skip("CPUID or /proc/cpuinfo unavailable here")
    assert (seen["cpu_vendor"], seen["cpu_isa"]) == (kernels.cpu()["cpu_vendor"], kernels.cpu()["cpu_isa"])


def test_the_header_names_the_cpu_the_kernels_saw(monkeypatch):
    """Under qemu-user /proc/cpuinfo is the host's: the header then gives CPUID's CPU first."""
    host = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_vendor": "GenuineIntel", "cpu_isa": "avx512"}
    monkeypatch.setattr(kernels, "provenance", lambda: {
        "kernels": "portable-avx2", "aten_capability": "AVX2", "mkl_branch": "COMPATIBLE", "onednn": True,
        "onednn_max_isa": "AVX2", **host})
    monkeypatch.setattr(kernels, "cpuid_cpu", lambda: {"cpu": "AMD EPYC-Rome Processor", "cpu_vendor": "AuthenticAMD",
                                                       "cpu_isa": "avx2"})
    header = kernels.fingerprint_header(("primitives", "heads"))
    assert header.startswith("# CPUID: AMD EPYC-Rome Processor (AuthenticAMD, widest ISA avx2); /proc/cpuinfo: "
                             "Intel(R) Xeon(R) Processor (GenuineIntel, widest ISA avx512), the host's")
    assert header.rstrip().endswith("1 thread; parts primitives, heads")
    monkeypatch.setattr(kernels, "cpuid_cpu", lambda: {**host, "cpu": "Intel Core Processor (Haswell)"})
    assert kernels.fingerprint_header().startswith("# CPUID: Intel Core Processor (Haswell) (GenuineIntel")
    monkeypatch.setattr(kernels, "cpuid_cpu", lambda: {**host, "cpu": " Intel(R)  Xeon(R) Processor"})
    assert "CPUID and /proc/cpuinfo agree" in kernels.fingerprint_header()
    assert "parts" not in kernels.fingerprint_header()


def test_a_part_of_the_fingerprint_keeps_the_inputs_of_the_whole(monkeypatch):
    """heads continues the exact inputs primitives drew, so asking for heads alone still draws them."""
    import abcl.fingerprint as fp
    drawn = []

    def fake(name, count):
        def part(*args):
            drawn.append(name)
            return iter([(f"{name} {i}", "0" * 12) for i in range(count)])
        return part
    monkeypatch.setattr(fp, "primitives", fake("primitive", 2))
    monkeypatch.setattr(fp, "heads", fake("head", 1))
    monkeypatch.setattr(fp, "training_and_attacks", fake("training", 1))
    assert [n for n, _ in fp.fingerprint(("heads",))] == ["head 0"] and drawn == ["primitive", "head"]
    assert [n for n, _ in fp.fingerprint()] == ["primitive 0", "primitive 1", "head 0", "training 0"]
    with pytest.raises(ValueError, match="unknown fingerprint part"):
        fp.fingerprint(("attacks",))


def test_a_part_compares_with_the_same_lines_of_the_reference():
    tier = kernels.portable_tier()
    reference = REFERENCE / f"fingerprint-{tier}.txt"
    done = subprocess.run([sys.executable, "-m", "abcl", "fingerprint", "--kernels", tier, "--parts", "heads",
                           "--compare", str(reference)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"# all {2 * len(HEADS)} computations agree with {reference}"  # steps and BIM per head
    assert done.stdout.splitlines()[0].endswith("; parts heads")
