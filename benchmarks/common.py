"""What every benchmark script shares: where its numbers came from, and an atomic JSON file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from abcl.device import device_name
from abcl.records import library_versions, write_json


def provenance(device: torch.device) -> dict[str, Any]:
    """Code version, library versions, device and command line of a benchmark run."""
    name = device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return {"script": Path(sys.argv[0]).name, "argv": sys.argv[1:], "device": name, "versions": library_versions()}


def write_results(results: dict[str, Any], out: str | None, device: torch.device) -> None:
    """``results`` with their provenance as JSON at ``out`` (atomically: a killed run leaves the
    last complete file, never half of one)."""
    if out:
        write_json(out, {"provenance": provenance(device), **results})
