"""Across machines: this CPU's op-by-op fingerprint in each portable tier it runs equals the one
committed in tests/reference/ (made on the machine its header names); a difference names the first
computation where the two machines part. Within one machine: tests/test_kernels.py."""

import subprocess
import sys
from pathlib import Path

import pytest

from abcl import kernels
from abcl.fingerprint import first_difference, parse, render

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
