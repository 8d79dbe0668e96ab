"""The cluster path without a cluster: measured per-rule requests, the profiles' requests as sbatch
would get them, and the conda environment generated from the lock."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from abcl import ABCLError
from abcl.cluster import load_table, measure, request, rule_request, write_table

ROOT = Path(__file__).resolve().parent.parent
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def benchmark(path: Path, seconds: float, rss: float) -> None:
    """A rule's benchmark file, in a results folder marked as a finished run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t0\n")
    results = next(parent for parent in path.parents if parent.name in ("models", "benchmarks")).parent
    (results / "claims.md").write_text("# finished\n")


def test_request_adds_headroom_as_the_formula_says():
    # runtime: ceil(2 * 150 / 60) + 2 = 7 min; mem: 1.5 * 1000 + 512 = 2012 -> 2048 MB
    assert request(150, 1000) == {"runtime": 7, "mem_mb": 2048}
    assert request(0.5, 0) == {"runtime": 3, "mem_mb": 512}


def test_measure_takes_each_rules_longest_and_largest_job(tmp_path):
    run = tmp_path / "mnist5k"
    benchmark(run / "models" / "a" / "train.benchmark.tsv", 100, 800)
    benchmark(run / "models" / "b" / "train.benchmark.tsv", 40, 900)
    benchmark(run / "models" / "a" / "eval.benchmark.tsv", 10, 300)
    benchmark(run / "benchmarks" / "fig1.tsv", 3, 200)
    table = measure(run)
    assert table["train"] == {**request(100, 900), "jobs": 2, "longest_s": 100, "max_rss_mb": 900}
    assert set(table) == {"kernels", "train", "evaluate", "fig1"} and table["kernels"] == "unknown"


def test_a_run_without_measurements_takes_the_largest_request(tmp_path):
    for name, seconds in (("small", 30), ("large", 600)):
        benchmark(tmp_path / name / "models" / "a" / "train.benchmark.tsv", seconds, 500)
    out = tmp_path / "resources.yaml"
    write_table([tmp_path / "small", tmp_path / "large"], out)
    table = load_table(out)
    assert rule_request(table, "small", "train") == {"runtime": 3, "mem_mb": 1280}
    assert rule_request(table, "mnist", "train") == {"runtime": 22, "mem_mb": 1280}
    assert rule_request(table, "mnist", "tsne") == {}


def test_a_rerun_merges_and_never_shrinks_another_folders_request(tmp_path):
    """`make resources` after a default run alone keeps the other configs' rows and estimates."""
    benchmark(tmp_path / "mnist5k" / "models" / "a" / "train.benchmark.tsv", 30, 500)
    benchmark(tmp_path / "mnist-cpu-full" / "models" / "a" / "train.benchmark.tsv", 900, 900)
    out = tmp_path / "resources.yaml"
    write_table([tmp_path / "mnist5k", tmp_path / "mnist-cpu-full"], out)
    out.write_text(out.read_text().replace("estimated: {}", "estimated:\n  mnist:\n    train: {runtime: 30, mem_mb: 8192}"))
    benchmark(tmp_path / "mnist5k" / "models" / "a" / "train.benchmark.tsv", 60, 500)
    write_table([tmp_path / "mnist5k"], out)
    table = load_table(out)
    assert rule_request(table, "mnist5k", "train") == request(60, 500)
    assert rule_request(table, "mnist-cpu-full", "train") == request(900, 900)
    assert rule_request(table, "mnist", "train") == {"runtime": 30, "mem_mb": 8192}  # its estimate
    assert rule_request(table, "fashion-mnist", "train") == {"runtime": 32, "mem_mb": 8192}  # the largest


def test_a_folder_without_benchmarks_is_a_clear_error(tmp_path):
    (tmp_path / "claims.md").write_text("# finished\n")
    with pytest.raises(ABCLError, match="no benchmark files"):
        measure(tmp_path)


def test_a_run_in_progress_never_sizes_a_request(tmp_path, capsys):
    """A run still going has measured only its shorter jobs: `abcl resources` (make resources,
    which names every folder that exists) skips it and keeps its requests as they were."""
    from abcl.cli import main
    benchmark(tmp_path / "mnist-cpu-full" / "models" / "a" / "eval.benchmark.tsv", 62, 900)
    (tmp_path / "mnist-cpu-full" / "claims.md").unlink()
    with pytest.raises(ABCLError, match="not a finished run .no claims.md."):
        measure(tmp_path / "mnist-cpu-full")
    benchmark(tmp_path / "mnist5k" / "models" / "a" / "eval.benchmark.tsv", 20, 500)
    out = tmp_path / "resources.yaml"
    out.write_text("estimated:\n  mnist-cpu-full:\n    basis: x\n    evaluate: {estimated_s: 2621, runtime: 90, mem_mb: 2304}\n")
    assert main(["resources", str(tmp_path / "mnist-cpu-full"), str(tmp_path / "mnist5k"), "--out", str(out)]) == 0
    assert "mnist-cpu-full: skipped, not a finished run" in capsys.readouterr().out
    table = load_table(out)
    assert "mnist-cpu-full" not in table["measured"] and rule_request(table, "mnist-cpu-full", "evaluate")["runtime"] == 90


def test_kernel_bound_rules_are_sized_for_the_slowest_portable_tier(tmp_path):
    """Measured in portable-avx512, a training asks for what portable-baseline (a node without
    AVX2 picks it) would take; t-SNE (scikit-learn) and the reports are not scaled."""
    from abcl.cluster import SLOWEST_TIER, TIER_SLOWDOWN
    run = tmp_path / "mnist5k"
    benchmark(run / "models" / "a" / "train.benchmark.tsv", 30, 500)
    benchmark(run / "models" / "a" / "tsne.benchmark.tsv", 30, 500)
    benchmark(run / "benchmarks" / "fig1.tsv", 30, 500)
    (run / "models" / "a" / "train.json").write_text(json.dumps({"device": "cpu", "kernels": {"kernels": "portable-avx512"}}))
    table = measure(run)
    assert table["kernels"] == "portable-avx512" and TIER_SLOWDOWN["portable-avx512"] > 3
    assert table["train"]["sized_s"] == pytest.approx(30 * TIER_SLOWDOWN["portable-avx512"])
    assert table["train"]["runtime"] == request(30 * TIER_SLOWDOWN["portable-avx512"], 500)["runtime"]
    assert "sized_s" not in table["tsne"] and table["fig1"]["runtime"] == request(30, 500)["runtime"]
    assert TIER_SLOWDOWN[SLOWEST_TIER] == 1.0


def test_tier_slowdowns_are_the_measured_ones_rounded_up():
    """TIER_SLOWDOWN against the side-by-side measurement it cites: portable-baseline's mean epoch
    (the first apart, which warms up) over each tier's, rounded up to 0.1."""
    from statistics import mean
    from abcl.cluster import SLOWEST_TIER, TIER_SLOWDOWN
    runs = json.loads((ROOT / "benchmarks" / "measured" / "kernel-modes-2026-12-05.json").read_text())["runs"]
    epoch = {mode: mean(mean(r["epoch_seconds"][1:]) for r in runs if r["mode"] == mode) for mode in TIER_SLOWDOWN}
    for mode, factor in TIER_SLOWDOWN.items():
        ratio = epoch[SLOWEST_TIER] / epoch[mode]
        assert ratio <= factor < ratio + 0.1 + 1e-9, (mode, ratio, factor)


def test_the_shipped_table_covers_every_cluster_rule():
    table = load_table(ROOT / "workflow" / "resources.yaml")
    for rule in ("train", "evaluate", "features", "tsne"):
        assert rule_request(table, "mnist", rule)["runtime"] >= 3
    # the paper config, not yet run, asks for its stated estimate: an adversarially trained paper
    # model alone is about 12 minutes on one H200 (docs/benchmarks.md), so train asks for more
    assert "mnist" not in table["measured"] and rule_request(table, "mnist", "train")["runtime"] >= 24


@pytest.mark.parametrize("profile", ["profiles/slurm", "profiles/slurm-cpu"])
def test_slurm_profiles_leave_requests_to_the_workflow(profile):
    """Both plan the paper config (tests/test_workflow.py::test_profile_dry_runs)."""
    settings = yaml.safe_load((ROOT / profile / "config.yaml").read_text())
    assert settings["slurm-status-command"] == "squeue"  # see the profile: sacct's "CANCELLED by 0"
    assert "cpus_per_task" not in str(settings) and "runtime" not in str(settings.get("default-resources", {}))


def test_conda_env_is_generated_from_the_lock():
    result = subprocess.run([sys.executable, str(ROOT / "requirements" / "conda_env.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    env = yaml.safe_load((ROOT / "workflow" / "envs" / "abcl.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert all("==" in pin and not pin.startswith("-") for pin in pip)  # no options, no relative paths
    assert "torch==2.14.1" in pip and not any(pin.startswith("torchattacks") for pin in pip)
    post = (ROOT / "workflow" / "envs" / "abcl.post-deploy.sh").read_text()
    assert "torchattacks==3.5.1" in post


@pytest.mark.cluster
def test_conda_env_pip_part_resolves_from_another_directory(tmp_path):
    """pip resolves the environment's pip section, as conda hands it over, to exactly the lock's pins."""
    env = yaml.safe_load((ROOT / "workflow" / "envs" / "abcl.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    (tmp_path / "requirements.txt").write_text("\n".join(pip) + "\n")
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", str(report), "-r", "requirements.txt"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = {f"{i['metadata']['name'].lower().replace('_', '-')}=={i['metadata']['version']}"
              for i in json.loads(report.read_text())["install"]}
    pinned = {pin.lower().replace("_", "-") for pin in pip}
    assert pinned <= chosen
    assert {c.split("==")[0] for c in chosen - pinned} <= {"setuptools"}  # conda's own dependency list has it


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/cpu-full.yaml", "config/alexnet.yaml",
                                        "config/paper.yaml", ".test/config/config.yaml"])
def test_every_request_is_at_least_twice_the_time_it_is_sized_from(configfile):
    """Each job rule of each config, adversarial trainings apart, asks for at least twice the
    longest measured job of its results folder, or twice its stated estimate (with its basis):
    SLURM kills a job at its runtime."""
    from abcl.cluster import ADVERSARIAL_EVALUATE, ADVERSARIAL_TRAIN, seconds_behind
    from abcl.config import load_config
    from abcl.plan import experiment_plan, results_dir
    table = load_table(ROOT / "workflow" / "resources.yaml")
    config = load_config(ROOT / configfile)
    folder = Path(results_dir(config)).name
    rules = ["train", "evaluate", "features", "tsne"]
    if any(run.train.adversarial != "none" for run in experiment_plan(config).runs):
        rules += [ADVERSARIAL_TRAIN, ADVERSARIAL_EVALUATE]  # the `adversarial` target's models, or the default's
    for rule in rules:
        entry = table["measured"].get(folder, {}).get(rule) or table["estimated"].get(folder, {}).get(rule)
        assert entry, f"{folder} has no request for {rule}"
        if "longest_s" in entry:  # measured in the kernels this config runs, which set the times
            measured_in = table["measured"][folder]["kernels"]
            assert measured_in.startswith("portable") == (config["train"]["kernels"].startswith("portable")), \
                (folder, measured_in)
        else:
            assert table["estimated"][folder]["basis"], f"{folder}: an estimate states its basis"
        assert entry["runtime"] * 60 >= 2 * seconds_behind(entry), (folder, rule, entry)


def test_an_adversarially_trained_model_asks_for_its_own_requests():
    from abcl.cluster import model_request
    table = {"measured": {"mnist5k": {"train": {"runtime": 3, "mem_mb": 1792, "longest_s": 20},
                                      "evaluate": {"runtime": 5, "mem_mb": 2048, "longest_s": 60}}},
             "estimated": {"mnist5k": {"basis": "x", "train_adversarial": {"runtime": 30, "mem_mb": 1792,
                                                                            "estimated_s": 820},
                                       "evaluate_adversarial": {"runtime": 18, "mem_mb": 2048, "estimated_s": 480}}}}
    assert model_request(table, "mnist5k", "train", adversarial=False) == {"runtime": 3, "mem_mb": 1792}
    assert model_request(table, "mnist5k", "train", adversarial=True) == {"runtime": 30, "mem_mb": 1792}
    assert model_request(table, "mnist5k", "evaluate", adversarial=True) == {"runtime": 18, "mem_mb": 2048}
    assert model_request(table, "mnist5k", "evaluate", adversarial=False) == {"runtime": 5, "mem_mb": 2048}
    del table["estimated"]["mnist5k"]
    assert model_request(table, "mnist5k", "train", adversarial=True) == {"runtime": 3, "mem_mb": 1792}  # none known
