"""Where a GPU job's time goes: steady-state step times of training and of one attack step, under
each setting abcl could choose; the training step captured as a CUDA graph (whole, and as abcl
captures it); the card's training throughput with 1, 4 and 8 processes sharing it; process
start-up, a checkpoint save and kernel profiles of a training and an attack step.

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
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from abcl.config import TrainConfig
from abcl.models import build_model
from abcl.device import resolve_device
from abcl.train import StepLoss, graphed


ROOT = Path(__file__).resolve().parent.parent  # the workers import benchmarks.gpu_profile from here


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, fn, repeats: int, warmup: int) -> float:
    """Mean seconds per call of ``fn`` after ``warmup`` calls, one sync at each end."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def training_setup(arch: str, batch: int, device: torch.device, channels_last: bool, capturable: bool = False,
                   fused: bool = False):
    """HT-SCE + AB model, loss, Adam and one synthetic batch: the workload of every train variant."""
    cfg = TrainConfig(loss="ht_sce", s=5, m=0.2, k1=512, k2=64, arch=arch, batch_size=batch)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(cfg).to(device).to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=capturable, fused=fused)
    images = torch.rand(batch, 1, 28, 28, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch,), device=device)
    return model, optimizer, images, labels


def train_step_fn(arch: str, batch: int, device: torch.device, channels_last: bool, bf16: bool):
    model, optimizer, images, labels = training_setup(arch, batch, device, channels_last)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model.training_loss(images, labels)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step, model, optimizer


def graphed_train_step_fn(arch: str, batch: int, device: torch.device):
    """The same step (channels_last, bf16) captured once as a CUDA graph and replayed: what
    removing every kernel-launch and Python overhead would give (Adam with capturable=True;
    a fresh batch is copied into the static input before each replay, as training would)."""
    model, optimizer, source, labels = training_setup(arch, batch, device, True, capturable=True)
    static_x = source.clone()

    def step():
        optimizer.zero_grad(set_to_none=False)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model.training_loss(static_x, labels)[0]
        loss.backward()
        optimizer.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()

    def replay():
        static_x.copy_(source)
        graph.replay()
    return replay


def abcl_graphed_step_fn(arch: str, batch: int, device: torch.device):
    """abcl's own graphed step (abcl.train.graphed: forward and backward as CUDA graphs, fused
    Adam eager), a fresh batch gathered from a resident set each step, as train_model does."""
    model, optimizer, _, _ = training_setup(arch, batch, device, True, fused=True)
    images = torch.rand(8 * batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (8 * batch,), device=device)
    step = graphed(StepLoss(model), images[:batch], labels[:batch])
    picks = itertools.cycle([torch.randperm(8 * batch, device=device)[:batch] for _ in range(8)])

    def train_step():
        idx = next(picks)
        loss, _ = step(images[idx], labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return train_step


CONCURRENT_WORKER = """
import sys, time, torch
sys.path.insert(0, '.')
from benchmarks.gpu_profile import abcl_graphed_step_fn, train_step_fn
device = torch.device(sys.argv[4])
cuda = device.type == 'cuda'
step = abcl_graphed_step_fn(sys.argv[1], 256, device) if cuda else train_step_fn(sys.argv[1], 256, device, False, False)[0]
for _ in range(5):
    step()
if cuda:
    torch.cuda.synchronize()
ready = time.time()
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
for _ in range(int(sys.argv[3])):
    step()
if cuda:
    torch.cuda.synchronize()
print(ready, time.time())
"""


def concurrent_steps_per_s(arch: str, processes: int, steps: int = 300, device: str = "cuda",
                           start_delay: float = 20.0) -> tuple[float, float]:
    """Training steps per second of the card when ``processes`` trainings share it (all start
    their timed steps at one agreed wall-clock instant, after their start-up); on CUDA each runs
    abcl's graphed step, as the workflow's jobs do with train.cuda_graphs. Also returns how late
    the slowest worker was ready (> 0: it started late and the rate reads low)."""
    start_at = time.time() + start_delay
    jobs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WORKER, arch, str(start_at), str(steps), device],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(processes)]
    ready, ends = zip(*(map(float, job.communicate()[0].split()[-2:]) for job in jobs))
    return processes * steps / (max(ends) - start_at), max(ready) - start_at


def attack_step_fn(arch: str, batch: int, device: torch.device, channels_last: bool, stable: bool):
    """One BIM step as torchattacks takes it: forward, input gradient of the cross-entropy."""
    from abcl.attacks import AttackView  # here: the card-sharing workers import this module, and train only
    model = build_model(TrainConfig(loss="cosface", s=5, m=0.35, arch=arch)).to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    view = AttackView(model) if stable else model
    images = torch.rand(batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step():
        x = images.clone().requires_grad_(True)
        if stable:  # as abcl's BIM steps: the cross-entropy's gradient in log space
            with view.ascending_ce(labels):
                loss = torch.nn.functional.cross_entropy(view(x), labels)
        else:
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
    parser.add_argument("--attack-batch", type=int, default=2000, help="images per timed attack step")
    parser.add_argument("--skip-startup", action="store_true", help="do not time Python and CUDA start-up")
    parser.add_argument("--out")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    results: dict = {}
    if not args.skip_startup:
        results["startup_import_torch_s"] = startup_seconds("import torch")
        results["startup_import_abcl_cuda_init_s"] = startup_seconds(
            "import torch, abcl.cli, abcl.train, abcl.evaluate; "
            "torch.zeros(1, device='cuda' if torch.cuda.is_available() else 'cpu')")

    for autotune in ((False, True) if cuda else (False,)):
        torch.backends.cudnn.benchmark = autotune
        for batch in (256, 512):
            for channels_last, bf16 in ((True, True), (False, True), (False, False)) if cuda else ((False, False),):
                tag = f"train_b{batch}_{'nhwc' if channels_last else 'nchw'}_{'bf16' if bf16 else 'fp32'}" \
                      f"_{'tuned' if autotune else 'heuristic'}"
                step, _, _ = train_step_fn(args.arch, batch, device, channels_last, bf16)
                start = time.perf_counter()
                step()  # first step: allocation and (tuned) kernel selection
                synchronize(device)
                results[f"{tag}_first_step_s"] = time.perf_counter() - start
                seconds = timed(device, step, args.repeats, warmup=5)
                results[f"{tag}_ms_per_step"] = seconds * 1e3
                results[f"{tag}_s_per_60k_epoch"] = seconds * 60_000 / batch
        for channels_last in ((True, False) if cuda else (False,)):
            for stable in (True, False):
                tag = f"attack_b{args.attack_batch}_{'nhwc' if channels_last else 'nchw'}_{'stable' if stable else 'plain'}" \
                      f"_{'tuned' if autotune else 'heuristic'}"
                step = attack_step_fn(args.arch, args.attack_batch, device, channels_last, stable)
                seconds = timed(device, step, max(5, args.repeats // 3), warmup=3)
                results[f"{tag}_ms_per_step"] = seconds * 1e3
                results[f"{tag}_bim10_on_10k_s"] = seconds * 10 * 10_000 / args.attack_batch
        print(json.dumps(results, indent=1), flush=True)

    if cuda:
        torch.backends.cudnn.benchmark = True
        for batch in (256, 512):
            try:
                seconds = timed(device, graphed_train_step_fn(args.arch, batch, device), args.repeats, warmup=3)
                results[f"train_b{batch}_nhwc_bf16_tuned_cudagraph_ms_per_step"] = seconds * 1e3
                results[f"train_b{batch}_nhwc_bf16_tuned_cudagraph_s_per_60k_epoch"] = seconds * 60_000 / batch
            except Exception as err:  # report, keep going
                results[f"cudagraph_b{batch}_error"] = f"{type(err).__name__}: {err}"[:300]
            try:
                seconds = timed(device, abcl_graphed_step_fn(args.arch, batch, device), args.repeats, warmup=3)
                results[f"train_b{batch}_abcl_graphed_ms_per_step"] = seconds * 1e3
                results[f"train_b{batch}_abcl_graphed_s_per_60k_epoch"] = seconds * 60_000 / batch
            except Exception as err:
                results[f"abcl_graphed_b{batch}_error"] = f"{type(err).__name__}: {err}"[:300]
        print(json.dumps(results, indent=1), flush=True)
        for processes in (1, 4, 8):
            rate, late = concurrent_steps_per_s(args.arch, processes)
            results[f"concurrent_{processes}_processes_steps_per_s"] = rate
            results[f"concurrent_{processes}_processes_last_ready_s"] = late
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
        synchronize(device)
    sort = "cuda_time_total" if cuda else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=18), flush=True)
    # the BIM step as an evaluation job runs it (bf16 through AttackView, log-space CE gradient): which kernels
    # make it 8x slower than the reference (is it the input gradient of conv1?)
    torch.backends.cudnn.benchmark = False
    attack = attack_step_fn(args.arch, args.attack_batch, device, cuda, True)
    attack()
    with profile(activities=activities) as prof:
        for _ in range(5):
            attack()
        synchronize(device)
    print(prof.key_averages().table(sort_by=sort, row_limit=18), flush=True)
    print(json.dumps(results, indent=1))
    from common import write_results  # benchmarks/common.py (this script's folder; workers import the module)
    write_results(results, args.out, device)


if __name__ == "__main__":
    main()
