"""Where tensors live: the device a job asks for, its name in records, and a model's layout there."""

from __future__ import annotations

import torch
from torch import nn

from abcl import ABCLError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ABCLError("device 'cuda' requested but no CUDA GPU is visible; use device: auto or cpu")
    return torch.device(name)


def device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def model_precision(device_type: str, dtype: torch.dtype = torch.float32):
    """A context in which a model computes in ``dtype``: float32 switches autocast off, also inside a
    caller's autocast; bfloat16 switches it on. Training on a GPU uses bf16; every evaluation
    (predictions, attacks, features) runs in float32 on every device, as robustness benchmarks
    attack: a bf16 input gradient is a coarser one and can overstate robustness. bf16 evaluation
    exists only to measure that difference (benchmarks/attack_precision.py)."""
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"a model computes in float32 or bfloat16, not {dtype}")
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def on_device(model: nn.Module, dev: torch.device) -> nn.Module:
    """``model`` on ``dev``; channels_last on GPU, where cuDNN's bf16 convolutions run NHWC."""
    model = model.to(dev)
    return model.to(memory_format=torch.channels_last) if dev.type == "cuda" else model
