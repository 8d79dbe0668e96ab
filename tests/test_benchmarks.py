"""The benchmark and the profile run on the CPU at a small size, and report what they promise."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args):
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True, timeout=300,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_benchmark_compares_naive_and_abcl_training_attacks_and_tsne(tmp_path):
    out = tmp_path / "bench.json"
    run_script("benchmarks/bench.py", "--epochs", "2", "--batch-sizes", "128", "256", "--cuda-graphs", "--floor-epochs", "1",
               "--adaptive-config", "config/config.yaml", "--adaptive-n", "50", "--tsne-points", "200",
               "--out", str(out))
    results = json.loads(out.read_text())
    assert results["n_train"] == 4000 and results["train_tflop"] > 0
    for tag in ("naive", "abcl_b128", "abcl_b256"):
        assert 0.1 < results[f"{tag}_clean_accuracy"] <= 1.0  # trained, not chance (10%)
    for tag in ("abcl_b128", "abcl_b256"):
        # two epochs: the total holds the first, the second (the steady one) and the rest
        epochs = results[f"{tag}_first_epoch_s"] + results[f"{tag}_steady_s_per_epoch"]
        assert results[f"{tag}_train_s"] == pytest.approx(epochs + results[f"{tag}_outside_epochs_s"])
        assert results[f"{tag}_outside_epochs_s"] >= 0
        assert results[f"{tag}_speedup"] == pytest.approx(results["naive_train_s"] / results[f"{tag}_train_s"])
    for tag in ("abcl_b128_graphs", "abcl_b256_graphs"):  # asked for, but a CPU trains eagerly
        assert results[f"{tag}_cuda_graphs_used"] is False and results[f"{tag}_train_s"] > 0
    assert results["fastest_abcl_variant"] in ("abcl_b128", "abcl_b256", "abcl_b128_graphs", "abcl_b256_graphs")
    assert results["paper_sce_epochs"] == 1 and isinstance(results["paper_sce_meets_99.2"], bool)
    assert results["paper_sce_cuda_graphs"] is False
    assert results["adaptive_n_test"] == 50 and results["adaptive_s"] > 0
    assert results["bim_speedup"] == pytest.approx(results["naive_bim10_s"] / results["abcl_bim10_s"])
    assert results["tsne_points"] == 200 and results["tsne_sklearn_allcores_s"] > 0


@pytest.mark.slow
def test_profile_times_every_cpu_setting(tmp_path):
    out = tmp_path / "profile.json"
    run_script("benchmarks/gpu_profile.py", "--arch", "small", "--device", "cpu", "--repeats", "2", "--out", str(out))
    results = json.loads(out.read_text())
    for batch in (256, 512):
        assert results[f"train_b{batch}_nchw_fp32_heuristic_ms_per_step"] > 0
    assert results["attack_b2000_nchw_stable_heuristic_ms_per_step"] > 0
    assert results["checkpoint_mb"] > 1 and results["startup_import_torch_s"] > 0


@pytest.mark.slow
def test_profile_workers_share_the_device_and_report_a_rate():
    sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_profile import concurrent_steps_per_s
    rate, last_ready = concurrent_steps_per_s("small", 2, steps=3, device="cpu")
    assert rate > 0 and last_ready < 0  # both workers ready before the agreed start


@pytest.mark.slow
def test_lr_scaling_compares_each_rule_with_the_paper_batch(tmp_path):
    out = tmp_path / "lr.json"
    run_script("benchmarks/lr_scaling.py", "--epochs", "1", "--batch-sizes", "512", "--powers", "0.5", "1",
               "--out", str(out))
    summary = json.loads(out.read_text())["summary"]
    assert [(row["batch_size"], row["power"]) for row in summary] == [(256, 1.0), (512, 0.5), (512, 1.0)]
    assert [row["lr"] for row in summary] == pytest.approx([2e-3, 2e-3 * 2 ** 0.5, 4e-3])
    assert summary[0]["gap_points"] == 0 and all(0.1 < row["mean_accuracy"] <= 1 for row in summary)
    for row in summary[1:]:
        assert row["gap_points"] == pytest.approx(100 * (row["mean_accuracy"] - summary[0]["mean_accuracy"]))
