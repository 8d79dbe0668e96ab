"""Faults: a killed training resumes exactly, reruns reproduce, concurrent runs are refused."""

import json
import signal
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import snakemake_forks
import torch

from abcl.cli import main
from abcl.config import TrainConfig
from abcl.data import save_dataset
from abcl.evaluate import evaluate_model
from abcl.config import attack_specs
from abcl.train import load_model, train_model

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 900  # a test that would otherwise wait forever fails after this


@pytest.fixture(scope="module")
def prepared(mnist5k, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist5k.pt"
    save_dataset(mnist5k, path)
    return path


def train_command(cfg, data, out_dir, quiet=True):
    return [sys.executable, "-m", "abcl", "train", "--train-config", json.dumps(cfg.to_dict()),
            "--data", str(data), "--out-dir", str(out_dir), "--device", "cpu", "--threads", "1",
            *(["--quiet"] if quiet else []), "--checkpoint-every", "0"]


def checkpoint_epoch(path):
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except Exception:
        return 0


@pytest.mark.slow
def test_sigkilled_training_resumes_to_identical_metrics(prepared, tmp_path):
    cfg = TrainConfig(loss="ht_sce", s=5.0, m=0.2, k1=512, k2=64, epochs=2, seed=3)
    reference, resumed = tmp_path / "uninterrupted", tmp_path / "killed"
    # the uninterrupted run and the one to be killed side by side (one thread each)
    uninterrupted = subprocess.Popen(train_command(cfg, prepared, reference, quiet=False), stderr=subprocess.PIPE,
                                     text=True)
    job = subprocess.Popen(train_command(cfg, prepared, resumed))
    # no deadline: on a busy machine the epochs just come later
    while checkpoint_epoch(resumed / "checkpoint.pt") < 1 and job.poll() is None:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    killed_at = checkpoint_epoch(resumed / "checkpoint.pt")
    assert killed_at == 1, "the job must be killed mid-run, in its last epoch"
    assert not (resumed / "model.pt").exists() and not (resumed / "train.json").exists()
    rerun = subprocess.Popen(train_command(cfg, prepared, resumed))  # while the reference finishes

    logged = uninterrupted.communicate()[1]
    assert uninterrupted.returncode == 0, logged[-2000:]
    # not a terminal, as in a workflow job's log: a plain line per epoch, no progress bar
    lines = [line for line in logged.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all(line.endswith(" s elapsed") and "train accuracy" in line for line in lines)
    assert "\r" not in logged

    assert rerun.wait() == 0
    first = json.loads((reference / "train.json").read_text())
    second = json.loads((resumed / "train.json").read_text())
    assert second["resumed_from_epoch"] == killed_at
    assert second["history"] == first["history"]
    a, _ = load_model(reference / "model.pt")
    b, _ = load_model(resumed / "model.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_checkpoint_of_another_config_is_not_resumed(mnist5k, tmp_path):
    # a checkpoint written by a different configuration (restoring it would fail: it holds no state)
    torch.save({"config_hash": "0" * 12, "epoch": 2}, tmp_path / "checkpoint.pt")
    record = train_model(TrainConfig(loss="sce", epochs=1, seed=1), mnist5k, tmp_path, device="cpu", progress=False)
    assert record["resumed_from_epoch"] == 0 and len(record["history"]) == 1
    assert not (tmp_path / "checkpoint.pt").exists()


def test_same_config_and_seed_give_identical_evaluation_csv(mnist5k, tmp_path):
    cfg = TrainConfig(loss="cosface", s=5.0, m=0.35, epochs=1, seed=5)
    specs = attack_specs({"fgsm_linf": {"eps": [0.2]}, "bim_l2": {"eps": [2.0], "steps": 3}})
    frames, histories, weights = [], [], []
    for run in ("a", "b"):
        histories.append(train_model(cfg, mnist5k, tmp_path / run, device="cpu", progress=False)["history"])
        model, _ = load_model(tmp_path / run / "model.pt")
        weights.append(model.state_dict())
        frame = evaluate_model(model, cfg, mnist5k, specs, n_test=200, device="cpu")
        frame.to_csv(tmp_path / run / "eval.csv", index=False)
        frames.append((tmp_path / run / "eval.csv").read_text())
    assert frames[0] == frames[1] and histories[0] == histories[1]
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
    rows = pd.read_csv(tmp_path / "a" / "eval.csv")
    for column in ("config_hash", "seed", "abcl", "torch", "torchattacks", "loss", "s", "m", "k1", "k2"):
        assert rows[column].notna().all(), column
    assert (rows.config_hash == cfg.hash).all()


def test_second_snakemake_on_same_directory_is_refused(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    lock_dir = tmp_path / ".snakemake" / "locks"
    args = ["--snakefile", str(ROOT / "workflow" / "Snakefile"), "--cores", "1", "results/mnist5k/data/mnist5k.pt"]
    first = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while not (lock_dir.exists() and any(lock_dir.iterdir())) and first.poll() is None:
            time.sleep(0.05)
        assert lock_dir.exists() and any(lock_dir.iterdir()), "the first run must hold its lock"
        second = snakemake_forks.run(args, tmp_path)
        assert second.returncode != 0
        assert "LockException" in second.stdout + second.stderr or "Directory cannot be locked" in (
            second.stdout + second.stderr)
    finally:
        first.wait()
    assert first.returncode == 0
    assert (tmp_path / "results" / "mnist5k" / "data" / "mnist5k.pt").exists()


def test_killed_evaluation_leaves_no_result(prepared, trained_cosface, tmp_path):
    from abcl.train import save_model
    model, cfg = trained_cosface
    save_model(model, cfg, tmp_path / "model.pt")
    out = tmp_path / "eval.csv"
    # a million steps: whenever the kill comes, the evaluation has not finished
    attacks = json.dumps({"bim_linf": {"eps": [0.1, 0.2, 0.3], "steps": 1_000_000}})
    job = subprocess.Popen([sys.executable, "-m", "abcl", "evaluate", "--model", str(tmp_path / "model.pt"),
                            "--data", str(prepared), "--attacks", attacks, "--device", "cpu", "--out", str(out)],
                           stdout=subprocess.PIPE, text=True)
    # killed once it is attacking (its progress line for the clean pass is out), whenever that is;
    # a guard against a hang should that line never come, not a deadline
    guard = threading.Timer(HANG_GUARD_S, job.kill)
    guard.start()
    try:
        started = next((line for line in job.stdout if ": clean: accuracy " in line), None)
    finally:
        guard.cancel()
    assert started and job.poll() is None, "the evaluation should be attacking, still running"
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".csv")]


def test_unknown_profile_key_is_refused(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "profiles" / "typo").mkdir(parents=True)
    (tmp_path / "profiles" / "typo" / "config.yaml").write_text("cores: 2\nrerun-incompleet: true\n")
    result = snakemake_forks.run(["--snakefile", str(ROOT / "workflow" / "Snakefile"), "-n", "--profile", "profiles/typo"],
                                 tmp_path)
    assert result.returncode != 0
    assert "rerun-incompleet" in result.stderr


@pytest.mark.parametrize("arguments,message", [
    (["--run", "ArcFace"], "abcl train: error: no run named 'ArcFace' in the plan; runs: HT-SCE, HT-SCE+AB 0/64"),
    (["--run", "ABCL", "--seed", "70"], "abcl train: error: no run named 'ABCL' with seed 70 in the plan"),
    (["--train-config", "{\"loss\": \"arcface\"}"],
     "abcl train: error: training config error at 'loss': 'arcface' is not one of: sce, cos_sce, cosface, ht_sce"),
    (["--train-config", "{\"loss\": \"ht_sce\", \"s\": 5, \"k1\": -512}"],
     "abcl train: error: training config error at 'k1': -512 is less than the minimum of 0"),
    (["--train-config", "{\"loss\": \"sce\", \"epoch\": 3}"], "abcl train: error: unknown training key(s) epoch"),
])
def test_cli_bad_training_input_is_one_line_and_writes_nothing(prepared, tmp_path, capsys, arguments, message):
    """The entry point `abcl` runs, in this process (a subprocess would only add torch's import)."""
    out_dir = tmp_path / "model"
    code = main(["train", "--config", str(ROOT / "config" / "config.yaml"), *arguments, "--data", str(prepared),
                 "--out-dir", str(out_dir)])
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.strip() == stderr.strip().splitlines()[0]
    assert message in stderr and "Traceback" not in stderr
    assert not out_dir.exists()
