"""Training: whole splits resident on the device, seeded, resumable, one JSON record per model."""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from abcl import ABCLError, kernels
from abcl.adversarial import Objective, natural, training_objective
from abcl.config import Adversarial, TrainConfig
from abcl.data import Dataset, as_float_images
from abcl.device import device_name, on_device, resolve_device
from abcl.models import ABCLNet, build_model
from abcl.records import library_versions, save_torch, write_json

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
RECORD = "train.json"


class TrainingDiverged(ABCLError):
    """The loss became NaN or infinite."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    # One fused kernel updates every parameter, instead of a dozen elementwise passes (CUDA: a dozen
    # launches; CPU: 2.5 of a 48 ms step). On the CPU its square root is the vector unit's, correctly
    # rounded, not MKL's vector math (which differs between Intel and AMD: abcl.kernels).
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                               weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"shuffle": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(state["shuffle"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches only: every step has the same shape, so cuDNN tunes its kernels once and a
    different random remainder (< one batch) sits out each epoch."""
    return max(1, n_train // batch_size)


class StepLoss(nn.Module):
    """The differentiable half of a training step: forward pass (bf16 on a GPU) and loss (the head's AB
    warm-up counter advancing on the device), one module so that a CUDA graph can hold both.
    Returns the loss and the number of correct predictions on the examples the loss saw (the
    adversarial ones under PGD-AT)."""

    def __init__(self, model: ABCLNet, objective: Objective = natural, precision: str = "auto"):
        super().__init__()
        self.model, self.objective, self.precision = model, objective, precision

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        # train.precision: auto is bf16 on a GPU only; bf16 also on a CPU (the GPU's path, to compare)
        bf16 = self.precision == "bf16" or (self.precision == "auto" and images.is_cuda)
        # no autocast weight cache: each weight is cast once per step anyway, and CUDA graphs need it off
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            loss, logits = self.objective(self.model, images, labels)
        return loss, (logits.detach().argmax(1) == labels).sum()


def graphed(step: StepLoss, images: torch.Tensor, labels: torch.Tensor) -> StepLoss:
    """``step`` with its forward and backward passes captured as CUDA graphs, each replayed as one
    launch: a 10-epoch MNIST training is launch-bound (~100 small kernels per pass), not
    compute-bound. ``images`` and ``labels`` are one batch's shapes (copied: the graph keeps its
    own input buffers). The capture's warm-up passes draw dropout masks and advance the AB
    warm-up counter, so both are put back: a graphed training draws and ramps as an eager one."""
    cuda_rng = torch.cuda.get_rng_state(images.device)
    counter = step.model.head.step
    start = counter.clone()
    step = torch.cuda.make_graphed_callables(step, (images.clone(), labels.clone()), allow_unused_input=True)
    counter.copy_(start)
    torch.cuda.set_rng_state(cuda_rng, images.device)
    return step


def resident_images(data: Dataset) -> torch.Tensor:
    """The training images as float pixels on their device, converted once (188 MB for 60k), not
    per batch. With one channel, NCHW and channels_last are the same bytes: no layout change."""
    return as_float_images(data.train_x)


@dataclass
class Training:
    """What one training run steps through: the model, its step (eager or graphed), optimizer and
    schedule, the device-resident training split and the shuffle generator."""

    cfg: TrainConfig
    model: ABCLNet
    step: StepLoss
    optimizer: torch.optim.Optimizer
    scheduler: Any
    images: torch.Tensor
    labels: torch.Tensor
    shuffle: torch.Generator
    cuda_graphs: bool

    def epoch(self, epoch: int) -> torch.Tensor:
        """One pass over the training split; [mean loss, accuracy] as one device tensor, so that
        nothing inside the pass waits for the device (the caller reads both with one sync)."""
        cfg, dev, n_train = self.cfg, self.labels.device, len(self.labels)
        steps = steps_per_epoch(n_train, cfg.batch_size)
        self.step.train()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        order = torch.randperm(n_train, device=dev, generator=self.shuffle)
        for i in range(steps):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            loss, hits = self.step(self.images[idx], self.labels[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            loss_sum += loss.detach() * len(idx)
            correct += hits
        seen = min(n_train, steps * cfg.batch_size)
        return torch.stack([loss_sum.double(), correct.double()]) / seen

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": _rng_state(self.shuffle)}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _restore_rng(state["rng"], self.shuffle)


def prepare_training(cfg: TrainConfig, dataset: Dataset, dev: torch.device, cuda_graphs: bool = False) -> Training:
    """A freshly seeded training of ``cfg`` with ``dataset`` moved to ``dev``; CUDA graphs (CUDA
    only: elsewhere the training runs eagerly) are captured here, before a checkpoint's random
    state is restored, so resumed runs draw as fresh ones."""
    seed_everything(cfg.seed)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    data = dataset.to(dev)
    steps = steps_per_epoch(len(data.train_y), cfg.batch_size)
    model = on_device(build_model(cfg, steps), dev)
    step = StepLoss(model, training_objective(cfg, steps), cfg.precision)
    optimizer = _optimizer(cfg, model)
    scheduler = _scheduler(cfg, optimizer, cfg.epochs * steps)
    shuffle = torch.Generator(device=dev).manual_seed(cfg.seed)
    images = resident_images(data)
    # adversarial steps run an attack loop with its own autograd calls: eager only
    cuda_graphs = cuda_graphs and dev.type == "cuda" and cfg.adversarial is Adversarial.NONE
    if cuda_graphs:
        batch = slice(0, min(cfg.batch_size, len(images)))
        step = graphed(step, images[batch], data.train_y[batch])
    return Training(cfg, model, step, optimizer, scheduler, images, data.train_y, shuffle, cuda_graphs)


def train_model(cfg: TrainConfig, dataset: Dataset, out_dir: str | Path, device: str = "auto",
                progress: bool = True, cuda_graphs: bool = False, checkpoint_every_s: float = 30.0) -> dict[str, Any]:
    """Train one model; write ``model.pt`` and ``train.json`` into ``out_dir``; return the record.

    A ``checkpoint.pt``, written at the end of an epoch once ``checkpoint_every_s`` seconds have
    passed since the last one (0: every epoch), lets a killed job resume where it stopped; a
    short GPU training then skips the saves (model and Adam state: ~60 MB each for the AlexNet).
    ``cuda_graphs`` replays each step's forward and backward pass as CUDA graphs (see
    :func:`graphed`); it applies on CUDA only, and the record says whether it was used.
    """
    started = time.perf_counter()
    run = prepare_training(cfg, dataset, resolve_device(device), cuda_graphs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    start_epoch, history, epoch_seconds, elapsed_before = 0, [], [], 0.0
    checkpoint_path = out_dir / CHECKPOINT
    if checkpoint_path.exists():
        ckpt = torch.load(checkpoint_path, map_location=run.labels.device, weights_only=True)
        if ckpt["config_hash"] == cfg.hash:
            run.restore(ckpt)
            start_epoch, history, elapsed_before = ckpt["epoch"], ckpt["history"], ckpt["elapsed_s"]
            epoch_seconds = ckpt.get("epoch_seconds", [])

    last_saved = time.perf_counter()
    # a bar in a terminal; in a log file (a workflow job) one plain line per epoch instead
    bar_shown = progress and sys.stderr.isatty()
    bar = tqdm(range(start_epoch, cfg.epochs), desc=f"train {cfg.loss} seed {cfg.seed}", disable=not bar_shown,
               initial=start_epoch, total=cfg.epochs, mininterval=1.0)
    for epoch in bar:
        epoch_started = time.perf_counter()
        epoch_loss, epoch_acc = run.epoch(epoch).tolist()  # the epoch's one sync
        epoch_seconds.append(time.perf_counter() - epoch_started)
        if not math.isfinite(epoch_loss):
            raise TrainingDiverged(f"non-finite training loss ({epoch_loss}) in epoch {epoch + 1} of {cfg.describe()}")
        history.append({"epoch": epoch + 1, "loss": epoch_loss, "accuracy": epoch_acc})
        bar.set_postfix(loss=f"{epoch_loss:.4f}", acc=f"{epoch_acc:.4f}")
        if progress and not bar_shown:
            print(f"epoch {epoch + 1}/{cfg.epochs}: loss {epoch_loss:.4f}, train accuracy {epoch_acc:.4f}, "
                  f"{epoch_seconds[-1]:.1f} s, {elapsed_before + time.perf_counter() - started:.1f} s elapsed",
                  file=sys.stderr, flush=True)
        if epoch + 1 < cfg.epochs and time.perf_counter() - last_saved >= checkpoint_every_s:
            save_torch({"config_hash": cfg.hash, "epoch": epoch + 1, "history": history,
                        "epoch_seconds": epoch_seconds, "elapsed_s": elapsed_before + time.perf_counter() - started,
                        **run.state()}, checkpoint_path)
            last_saved = time.perf_counter()

    record = {
        "config": cfg.to_dict(), "config_hash": cfg.hash, "seed": cfg.seed,
        "versions": library_versions(), "device": device_name(run.labels.device), "kernels": kernels.provenance(),
        "wall_time_s": elapsed_before + time.perf_counter() - started,
        "cuda_graphs": run.cuda_graphs, "resumed_from_epoch": start_epoch, "history": history,
        "epoch_seconds": epoch_seconds,
        "final_train_loss": history[-1]["loss"], "final_train_accuracy": history[-1]["accuracy"],
    }
    save_model(run.model, cfg, out_dir / MODEL)
    write_json(out_dir / RECORD, record)
    checkpoint_path.unlink(missing_ok=True)
    return record


def save_model(model: ABCLNet, cfg: TrainConfig, path: str | Path) -> None:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_torch({"config": cfg.to_dict(), "state_dict": state}, path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ABCLNet, TrainConfig]:
    """A trained model in eval mode and the config that made it (safe: weights_only)."""
    path = Path(path)
    if not path.exists():
        raise ABCLError(f"{path}: model not found; train it first")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise ABCLError(f"{path}: not a readable model checkpoint ({type(err).__name__})") from None
    cfg = TrainConfig.from_dict(blob["config"])
    model = on_device(build_model(cfg), torch.device(device))
    model.load_state_dict(blob["state_dict"])
    return model.eval(), cfg
