"""Real training on mnist5k: it learns, it is reproducible, it fails loudly and cleanly."""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from abcl.config import TrainConfig
from abcl.evaluate import predict
from abcl.models import build_model
from abcl.data import Dataset, as_float_images
from abcl.train import (TrainingDiverged, graphed, load_model, prepare_training, seed_everything,
                        train_model)


def test_small_net_learns_and_records_its_config(mnist5k, tmp_path):
    """(That the same seed reproduces a training is tests/test_reliability.py's business.)"""
    cfg = TrainConfig(loss="sce", epochs=3, seed=7)
    train_model(cfg, mnist5k, tmp_path / "a", device="cpu", progress=False)
    model, loaded_cfg = load_model(tmp_path / "a" / "model.pt")
    assert loaded_cfg == cfg
    accuracy = (predict(model, as_float_images(mnist5k.test_x)) == mnist5k.test_y).float().mean().item()
    assert accuracy >= 0.90, accuracy
    record = json.loads((tmp_path / "a" / "train.json").read_text())
    assert record["config_hash"] == cfg.hash and record["seed"] == 7
    assert {"torch", "torchattacks", "abcl"} <= set(record["versions"])
    assert not (tmp_path / "a" / "checkpoint.pt").exists()


def test_abcl_loss_trains(mnist5k, tmp_path):
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64, epochs=2)
    record = train_model(cfg, mnist5k, tmp_path, device="cpu", progress=False)
    assert record["final_train_accuracy"] > 0.8


def test_each_reading_of_the_method_reaches_the_trained_model(mnist5k, tmp_path):
    """ab_form reaches the head, ht_latent_bias the latent layer, precision the layers' dtype in
    training (bf16 autocast on a CPU too, the GPU's path), and the model still learns."""
    from abcl.train import StepLoss
    small = Dataset(mnist5k.name, mnist5k.train_x[:1024], mnist5k.train_y[:1024], mnist5k.test_x, mnist5k.test_y)
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64, epochs=2, ab_form="linear", ht_latent_bias=True,
                      precision="bf16")
    record = train_model(cfg, small, tmp_path, device="cpu", progress=False)
    assert record["final_train_accuracy"] > 0.3  # 16 steps: well above chance (0.1)
    model, loaded = load_model(tmp_path / "model.pt")
    assert loaded == cfg and model.head.ab_form == "linear" and model.latent_layer.bias is not None
    assert build_model(TrainConfig(loss="ht_sce", s=5.0, k1=512, k2=64)).latent_layer.bias is None  # ours: bias-free
    seen = set()
    hook = model.backbone[0].register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    x, y = as_float_images(small.train_x[:8]), small.train_y[:8]
    StepLoss(model.train(), precision="bf16")(x, y)
    StepLoss(model, precision="auto")(x, y)  # auto on a CPU: float32
    hook.remove()
    assert seen == {torch.bfloat16, torch.float32}


def test_nan_loss_stops_with_epoch_and_config_and_leaves_no_result(mnist5k, tmp_path, monkeypatch):
    from abcl.losses import ABCLoss

    real = ABCLoss.loss_and_logits

    def nan_loss(self, embeddings, labels):
        loss, logits = real(self, embeddings, labels)
        return loss * torch.tensor(float("nan")), logits

    monkeypatch.setattr(ABCLoss, "loss_and_logits", nan_loss)
    cfg = TrainConfig(loss="cosface", s=5.0, m=0.35, epochs=2)
    with pytest.raises(TrainingDiverged, match=r"non-finite training loss \(nan\) in epoch 1 of loss=cosface s=5"):
        train_model(cfg, mnist5k, tmp_path, device="cpu", progress=False)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "train.json").exists()


def test_cuda_graphs_apply_on_cuda_only(mnist5k, tmp_path):
    cfg = TrainConfig(loss="sce", epochs=1, seed=3)
    eager = train_model(cfg, mnist5k, tmp_path / "eager", device="cpu", progress=False)
    asked = train_model(cfg, mnist5k, tmp_path / "asked", device="cpu", progress=False, cuda_graphs=True)
    assert asked["cuda_graphs"] is False and eager["cuda_graphs"] is False
    assert asked["history"] == eager["history"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_training_follows_eager_training(mnist5k, tmp_path):
    """Same dropout masks and batches, so only kernel rounding separates the two trajectories."""
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64, epochs=2, batch_size=256)
    eager = train_model(cfg, mnist5k, tmp_path / "eager", device="cuda", progress=False)
    graphs = train_model(cfg, mnist5k, tmp_path / "graphs", device="cuda", progress=False, cuda_graphs=True)
    assert graphs["cuda_graphs"] is True
    for a, b in zip(eager["history"], graphs["history"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=0.1) and abs(a["accuracy"] - b["accuracy"]) < 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host-device syncs exist on a CUDA GPU only")
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_a_gpu_training_epoch_never_waits_for_the_device(mnist5k, cuda_graphs):
    """One sync per epoch, after it (Training.epoch returns its sums on the device)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.gpu_smoke import epoch_syncs
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64, batch_size=256)
    assert epoch_syncs(cfg, mnist5k, "cuda", cuda_graphs) == []


def test_epoch_loss_and_accuracy_are_means_over_the_images_seen_when_one_batch_holds_them_all(mnist5k, tmp_path):
    cfg = TrainConfig(loss="sce", epochs=1, batch_size=8192, dropout=0.0, seed=5)  # one step: its loss precedes the update
    record = train_model(cfg, mnist5k, tmp_path, device="cpu", progress=False)
    seed_everything(cfg.seed)
    with torch.no_grad():
        logits = build_model(cfg)(as_float_images(mnist5k.train_x))
    assert record["history"][0]["loss"] == pytest.approx(F.cross_entropy(logits, mnist5k.train_y).item(), rel=1e-4)
    assert record["history"][0]["accuracy"] == pytest.approx((logits.argmax(1) == mnist5k.train_y).double().mean().item())


def emulated_make_graphed_callables(module, sample_args, num_warmup_iters=3, allow_unused_input=False):
    """A CPU stand-in for torch.cuda.make_graphed_callables that keeps its contract: warm-up
    passes that draw random numbers, inputs copied into the sample tensors, and outputs and
    parameter gradients handed back in the same buffers at every call (a replay overwrites them)."""
    params, original, state = tuple(module.parameters()), module.forward, {}
    for _ in range(num_warmup_iters):
        original(*sample_args)

    class Replay(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            for static, given in zip(sample_args, inputs):
                if static.data_ptr() != given.data_ptr():
                    static.copy_(given)
            with torch.enable_grad():
                state["outputs"] = original(*sample_args)
            buffers = state.setdefault("outputs_buffers", [o.detach().clone() for o in state["outputs"]])
            for buffer, output in zip(buffers, state["outputs"]):
                buffer.copy_(output.detach())
            return tuple(buffer.detach() for buffer in buffers)

        @staticmethod
        def backward(ctx, *grads):
            pairs = [(o, g) for o, g in zip(state["outputs"], grads) if o.requires_grad]
            found = torch.autograd.grad([o for o, _ in pairs], params, [g for _, g in pairs], allow_unused=True)
            buffers = state.setdefault("grad_buffers", [torch.zeros_like(p) for p in params])
            for buffer, grad in zip(buffers, found):
                buffer.copy_(grad if grad is not None else torch.zeros_like(buffer))
            return (None,) * len(sample_args) + tuple(buffer.detach() for buffer in buffers)

    module.forward = lambda *args: Replay.apply(*args, *params)
    return module


def test_training_loop_keeps_the_cuda_graph_contract(mnist5k, monkeypatch):
    """With graphs emulated on the CPU (static buffers reused by every call, warm-up draws
    undone), a graphed AB training matches the eager one: the loop reads each output before the
    next call overwrites it, and the capture puts back the random state and the AB warm-up
    counter its warm-up passes advanced."""
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64, epochs=2, seed=4)
    subset = Dataset("mnist5k", mnist5k.train_x[:1024], mnist5k.train_y[:1024], mnist5k.test_x, mnist5k.test_y)

    def history(graphs):
        run = prepare_training(cfg, subset, torch.device("cpu"))
        if graphs:  # as prepare_training does on CUDA: one batch's shapes, before any epoch
            batch = slice(0, cfg.batch_size)
            run.step = graphed(run.step, run.images[batch], run.labels[batch])
        return [run.epoch(epoch).tolist() for epoch in range(cfg.epochs)]

    eager = history(False)
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", emulated_make_graphed_callables)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: torch.get_rng_state())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: torch.set_rng_state(state))
    graphs = history(True)
    for (loss_a, acc_a), (loss_b, acc_b) in zip(eager, graphs):
        assert loss_b == pytest.approx(loss_a, rel=1e-5) and acc_b == pytest.approx(acc_a)
