"""Where a GPU job's time goes: steady-state step times of training and of one attack step, under
each setting abcl could choose, plus process start-up, a checkpoint save and a kernel profile.

    python benchmarks/gpu_profile.py [--arch alexnet] [--device cuda] [--out profile.json]

The first H200 run (2026-11-27) showed abcl's 10-epoch training at 12.5 s alone and its BIM-10
on 10k images at 3.0 s: far from the ~0.5 s/epoch that resident bf16 training reaches. This
script separates fixed costs (start-up, kernel tuning, saves) from per-step costs, so the next
lease measures the fix rather than guessing. Synthetic inputs: step time does not depend on
the pixel values.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time

import torch

from abcl.attacks import StableGradientView
from abcl.config import TrainConfig
from abcl.losses import build_loss
from abcl.models import build_model
from abcl.train import resolve_device


def timed(device: torch.device, fn, repeats: int, warmup: int) -> float:
    """Median-free mean seconds per call of ``fn`` after ``warmup`` calls, one sync at each end."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def train_step_fn(arch: str, batch: int, device: torch.device, channels_last: bool, bf16: bool):
    cfg = TrainConfig(loss="ht_sce", s=5, m=0.2, k1=512, k2=64, arch=arch, batch_size=batch)
    model = build_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.rand(batch, 1, 28, 28, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model.head_output(images), labels, ramp=1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step, model, optimizer


def attack_step_fn(arch: str, batch: int, device: torch.device, channels_last: bool, stable: bool):
    """One BIM step as torchattacks takes it: forward, input gradient of the cross-entropy."""
    model = build_model(TrainConfig(loss="cosface", s=5, m=0.35, arch=arch)).to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    view = StableGradientView(model) if stable else model
    images = torch.rand(batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step():
        x = images.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(view(x), labels)
        grad, = torch.autograd.grad(loss, x)
        return (x + 0.01 * grad.sign()).clamp(0, 1)
    return step


def startup_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="alexnet")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    results: dict = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__}
    results["startup_import_torch_s"] = startup_seconds("import torch")
    results["startup_import_abcl_cuda_init_s"] = startup_seconds(
        "import torch, abcl.cli, abcl.train, abcl.evaluate; torch.zeros(1, device='cuda' if torch.cuda.is_available() else 'cpu')")

    for autotune in ((False, True) if cuda else (False,)):
        torch.backends.cudnn.benchmark = autotune
        for batch in (256, 512):
            for channels_last, bf16 in ((True, True), (False, True), (False, False)) if cuda else ((False, False),):
                tag = f"train_b{batch}_{'nhwc' if channels_last else 'nchw'}_{'bf16' if bf16 else 'fp32'}" \
                      f"_{'tuned' if autotune else 'heuristic'}"
                step, _, _ = train_step_fn(args.arch, batch, device, channels_last, bf16)
                start = time.perf_counter()
                step()  # first step: allocation and (tuned) kernel selection
                if cuda:
                    torch.cuda.synchronize()
                results[f"{tag}_first_step_s"] = time.perf_counter() - start
                seconds = timed(device, step, args.repeats, warmup=5)
                results[f"{tag}_ms_per_step"] = seconds * 1e3
                results[f"{tag}_s_per_60k_epoch"] = seconds * 60_000 / batch
        for channels_last in ((True, False) if cuda else (False,)):
            for stable in (True, False):
                tag = f"attack_b2000_{'nhwc' if channels_last else 'nchw'}_{'stable' if stable else 'plain'}" \
                      f"_{'tuned' if autotune else 'heuristic'}"
                step = attack_step_fn(args.arch, 2000, device, channels_last, stable)
                seconds = timed(device, step, max(5, args.repeats // 3), warmup=3)
                results[f"{tag}_ms_per_step"] = seconds * 1e3
                results[f"{tag}_bim10_on_10k_s"] = seconds * 10 * 5
        print(json.dumps(results, indent=1), flush=True)

    torch.backends.cudnn.benchmark = cuda
    step, model, optimizer = train_step_fn(args.arch, 256, device, cuda, cuda)
    step()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    start = time.perf_counter()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    results["checkpoint_save_s"] = time.perf_counter() - start
    results["checkpoint_mb"] = buffer.tell() / 1e6

    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(10):
            step()
        if cuda:
            torch.cuda.synchronize()
    sort = "cuda_time_total" if cuda else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=18), flush=True)
    print(json.dumps(results, indent=1))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
