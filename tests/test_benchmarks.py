"""Every benchmark script answers --help, runs at a tiny size on the CPU, and writes its numbers as
JSON with their provenance (code version, device), atomically. What the numbers are is the
benchmark's business; that they were measured, and where, is checked here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from abcl.records import code_version

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").iterdir() if p.suffix in (".py", ".sh") and p.stem != "common")


def run_script(*args):
    command = ["bash"] if args[0].endswith(".sh") else [sys.executable]  # a script path, or -c CODE
    return subprocess.run([*command, *args], cwd=ROOT, check=True, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def results_of(out: Path, script: str) -> dict:
    """The JSON a run wrote, after checking its provenance and that nothing half-written is left."""
    assert [p.name for p in out.parent.iterdir()] == [out.name], "a temporary file was left behind"
    results = json.loads(out.read_text())
    provenance = results["provenance"]
    assert provenance["script"] == script
    assert provenance["versions"]["abcl"] == code_version() and provenance["versions"]["torch"]
    assert provenance["device"].startswith("cpu (")
    return results


def test_every_script_is_checked_here():
    assert SCRIPTS == ["attack_precision.py", "bench.py", "calibration.py", "compare_fingerprints.py", "fetch_wheels.sh", "gpu_check.sh",
                       "gpu_profile.py", "gpu_smoke.py", "kernel_modes.py", "lr_scaling.py", "pipeline_times.py",
                       "seed_sets.py"]  # calibration.py: test_calibration; seed_sets.py: test_report


# Each (script, *args) runs as __main__, all in one interpreter (torch is imported once); what
# each printed comes back as JSON on the last line.
RUN_EACH = """
import contextlib, io, json, os, runpy, sys
printed = []
for script, *args in json.loads(sys.argv[1]):
    sys.argv, sys.path[0] = [script, *args], os.path.dirname(script)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as done:
            assert done.code in (0, None), script
    printed.append(out.getvalue())
print(json.dumps(printed))
"""


def run_each(*runs: list[str]) -> list[str]:
    """What each run printed; runs are [script path, *args], Python scripts only."""
    return json.loads(run_script("-c", RUN_EACH, json.dumps(runs)).stdout.splitlines()[-1])


def test_every_script_answers_help():
    python = [s for s in SCRIPTS if s.endswith(".py")]
    printed = dict(zip(python, run_each(*([f"benchmarks/{s}", "--help"] for s in python))))
    for script in SCRIPTS:
        if script.endswith(".sh"):
            printed[script] = run_script(f"benchmarks/{script}", "--help").stdout
    for script in SCRIPTS:
        assert len(printed[script].splitlines()) >= 2, script
        assert "usage:" in printed[script] or script.endswith(".sh"), script


TINY_RUNS = {
    "bench.py": ["--epochs", "1", "--batch-sizes", "256", "--bim-n", "200", "--adaptive-config",
                 ".test/config/config.yaml", "--adaptive-n", "10", "--tsne-points", "100"],
    "gpu_profile.py": ["--arch", "small", "--device", "cpu", "--repeats", "2", "--attack-batch", "200",
                       "--skip-startup"],
    "lr_scaling.py": ["--epochs", "1", "--batch-sizes", "512", "--powers", "1"],
}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Each training benchmark at a tiny size on the CPU, all in one interpreter: its JSON's path."""
    outs = {script: tmp_path_factory.mktemp(script.removesuffix(".py")) / "out.json" for script in TINY_RUNS}
    run_each(*([f"benchmarks/{script}", *args, "--out", str(outs[script])] for script, args in TINY_RUNS.items()))
    return outs


@pytest.mark.slow
def test_benchmark_trains_both_ways_and_records_where(tiny_runs):
    results = results_of(tiny_runs["bench.py"], "bench.py")
    assert 0.1 < results["naive_clean_accuracy"] <= 1 and 0.1 < results["abcl_b256_clean_accuracy"] <= 1
    assert results["bim_speedup"] == pytest.approx(results["naive_bim10_s"] / results["abcl_bim10_s"])
    assert results["bim_n_test"] == 200


@pytest.mark.slow
def test_profile_writes_its_step_times(tiny_runs):
    results = results_of(tiny_runs["gpu_profile.py"], "gpu_profile.py")
    assert results["train_b256_nchw_fp32_heuristic_ms_per_step"] > 0


@pytest.mark.slow
def test_lr_scaling_compares_each_rule_with_the_paper_batch(tiny_runs):
    summary = results_of(tiny_runs["lr_scaling.py"], "lr_scaling.py")["summary"]
    assert [(row["batch_size"], row["lr"]) for row in summary] == [(256, 2e-3), (512, 4e-3)]
    assert summary[1]["gap_points"] == pytest.approx(100 * (summary[1]["mean_accuracy"] - summary[0]["mean_accuracy"]))


@pytest.mark.slow
def test_profile_workers_share_the_device_and_report_a_rate():
    sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_profile import concurrent_steps_per_s
    rate, last_ready = concurrent_steps_per_s("small", 2, steps=3, device="cpu", start_delay=3)
    assert rate > 0 and isinstance(last_ready, float)  # how late a worker was is reported, not judged


@pytest.mark.slow
def test_attack_precision_compares_the_same_network_in_float32_and_bf16(mnist5k, tmp_path):
    from abcl.config import TrainConfig
    from abcl.data import Dataset, save_dataset
    from abcl.train import train_model
    data = Dataset(mnist5k.name, mnist5k.train_x[:512], mnist5k.train_y[:512], mnist5k.test_x, mnist5k.test_y)
    save_dataset(data, tmp_path / "data.pt")
    train_model(TrainConfig(loss="sce", epochs=1), data, tmp_path / "sce", device="cpu", progress=False)
    out = tmp_path / "measured" / "precision"
    out.parent.mkdir()
    run_each(["benchmarks/attack_precision.py", str(tmp_path / "sce" / "model.pt"), "--data",
              str(tmp_path / "data.pt"), "--config", ".test/config/config.yaml", "--out", str(out)])
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [row["evaluation"] for row in rows] == ["clean_none_0", "fgsm_linf_0.2", "bim_linf_0.2", "fgsm_l2_2",
                                                   "bim_l2_2"]
    for row in rows:  # the same 100 images both ways; the difference is what the two accuracies say
        assert row["images"] == 100
        assert row["bf16 − float32, points"] == pytest.approx(row["bf16 %"] - row["float32 %"])
    assert "| bf16 − float32, points |" in " ".join(out.with_suffix(".md").read_text().split())


def test_pipeline_times_sums_the_rules_benchmark_files(tmp_path):
    results = tmp_path / "results"
    for index, seconds in enumerate((2.0, 3.0)):
        model = results / "models" / f"seed~{index}"
        model.mkdir(parents=True)
        (model / "train.benchmark.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:02\n")
        (model / "train.json").write_text(json.dumps({"device": "cpu", "cuda_graphs": False, "wall_time_s": seconds,
                                                      "epoch_seconds": [1.0, 0.5]}))
    (results / "benchmarks").mkdir()
    (results / "benchmarks" / "fig1.tsv").write_text("s\th:m:s\n1.5\t0:00:01\n")
    out = tmp_path / "out" / "times.json"
    out.parent.mkdir()
    run_script("benchmarks/pipeline_times.py", str(results), "--out", str(out))
    stages = {row["stage"]: row for row in results_of(out, "pipeline_times.py")["stages"]}
    assert stages["train"]["jobs"] == 2 and stages["train"]["total_s"] == 5.0 and stages["fig1"]["total_s"] == 1.5


def test_kernel_modes_times_each_mode_in_its_own_process(tmp_path):
    out = tmp_path / "modes.json"
    printed = run_script("benchmarks/kernel_modes.py", "--rounds", "1", "--epochs", "2", "--n-train", "256",
                         "--n-test", "20", "--modes", "fast", "portable", "--out", str(out)).stdout
    results = json.loads(out.read_text())
    ran = {run["mode"]: run["provenance"]["kernels"] for run in results["runs"]}
    assert ran["fast"] == "fast" and ran["portable"].startswith("portable-")
    assert results["summary"]["fast"]["epoch_x_fast"] == 1.0
    portable = results["summary"]["portable"]
    assert portable["evaluation_x_fast"] == pytest.approx(portable["evaluation_s"] / results["summary"]["fast"]["evaluation_s"])
    assert "portable" in printed.splitlines()[-1]


def test_fingerprint_comparison_names_the_computations_that_differ(tmp_path):
    mine, theirs = tmp_path / "mine.txt", tmp_path / "theirs.txt"
    mine.write_text("# header\nmm 128x1568 @ 1568x256       4055be276b78\nsqrt   86c3d01e63ec\nonly mine  000000000000\n")
    theirs.write_text("mm 128x1568 @ 1568x256 4055be276b78\nsqrt ffc81ab1c9af\n")
    printed = run_script("benchmarks/compare_fingerprints.py", str(mine), str(theirs)).stdout
    assert printed.strip() == "2 computations in both; 1 agree, 1 differ: sqrt"
