"""The Snakemake workflow: planned job counts, profiles, lint, and a real tiny end-to-end run."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import snakemake_forks

from abcl.config import comparison_protocol, load_config

from abcl.plan import experiment_plan

ROOT = Path(__file__).resolve().parent.parent


def snakemake(*args, cwd=ROOT, check=True, snakefile=ROOT / "workflow" / "Snakefile"):
    """``snakemake [--snakefile SNAKEFILE] ARGS`` in ``cwd``, in a process of its own (forked with
    Snakemake already imported: :mod:`snakemake_forks`)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = snakemake_forks.run([*(["--snakefile", str(snakefile)] if snakefile else []), *args], cwd, env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def planned_jobs(output: str) -> Counter:
    """Job counts per rule from the 'Job stats' table of a dry run."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = Counter()
    for line in table.splitlines():
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def unique_models(config, *outputs):
    plan = experiment_plan(config)
    return {run.path for output in outputs for run in plan.for_output(output)}


@pytest.fixture
def workdir(tmp_path):
    """A fresh working directory holding only the configs (results land in it)."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / ".test", tmp_path / ".test")
    return tmp_path


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/cpu-full.yaml", "config/alexnet.yaml",
                                        "config/paper.yaml"])
def test_dry_run_plans_one_job_per_configuration(workdir, configfile):
    config = load_config(workdir / configfile)
    dry_run = snakemake("-n", "--configfile", configfile, cwd=workdir).stdout
    jobs = planned_jobs(dry_run)
    in_default_run = ("adversarial",) if config["adversarial"]["in_default_run"] else ()
    n_models = len(unique_models(config, "fig1", "fig2", "table", *in_default_run))
    assert jobs["train"] == jobs["evaluate"] == n_models
    # Fig. 3's three models: the first seed's, or every seed's with embed.every_seed
    assert jobs["features"] == jobs["tsne"] == 3 * (len(config["seeds"]) if config["embed"]["every_seed"] else 1)
    assert jobs["prepare_data"] == jobs["fig1"] == jobs["fig2"] == jobs["fig3"] == jobs["table"] == 1
    expected = {"config/config.yaml": 126, "config/cpu-full.yaml": 8 * 20 + 2 * 3, "config/alexnet.yaml": 8 * 10 + 2 * 1,
                "config/paper.yaml": 6 * 6 * 3 + 11 * 3 + 2 * 3 + 2 * 3 * 3}
    assert n_models == expected[configfile]
    results = {"config/config.yaml": "results/mnist5k/", "config/cpu-full.yaml": "results/mnist-cpu-full/",
               "config/alexnet.yaml": "results/mnist5k-alexnet/", "config/paper.yaml": "results/mnist/"}[configfile]
    assert f"output: {results}data/" in dry_run


@pytest.mark.parametrize("profile", ["local", "gpu", "slurm", "slurm-cpu"])
def test_profile_dry_runs(workdir, profile):
    shutil.copytree(ROOT / "profiles", workdir / "profiles")
    result = snakemake("-n", "--profile", f"profiles/{profile}", "--configfile", "config/paper.yaml", cwd=workdir)
    assert planned_jobs(result.stdout)["train"] == 165
    if profile == "slurm":
        assert "group job train" in result.stdout.lower()


def test_bad_config_stops_before_any_job(workdir):
    bad = workdir / "bad.yaml"
    bad.write_text((workdir / "config" / "config.yaml").read_text().replace("fig2_s: [1, 4, 8, 16]", "fig2_s: [1, -4]"))
    result = snakemake("-n", "--configfile", "bad.yaml", cwd=workdir, check=False)
    assert result.returncode != 0
    assert "config error at 'grids/fig2_s/1': -4 is less than or equal to the minimum of 0" in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_one_figure_plans_only_its_jobs(workdir):
    config = load_config(workdir / "config" / "config.yaml")
    jobs = planned_jobs(snakemake("-n", "results/mnist5k/figures/fig2.png", cwd=workdir).stdout)
    n_fig2 = len(experiment_plan(config).for_output("fig2"))
    assert jobs == Counter({"prepare_data": 1, "train": n_fig2, "evaluate": n_fig2, "fig2": 1})


def test_cuda_graphs_reach_gpu_trainings_and_rerun_nothing_on_a_cpu(workdir):
    """Where a job can reach a GPU (device cuda) the setting reaches each training, without
    renaming its model; where none can (device cpu) it changes no command, so toggling it reruns
    nothing."""
    import yaml
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    target = "results/mnist5k/figures/fig2.png"
    commands = {}
    for device in ("cuda", "cpu"):
        for graphs in (False, True):
            config["train"].update(device=device, cuda_graphs=graphs)
            (workdir / "graphs.yaml").write_text(yaml.safe_dump(config))
            printed = snakemake("-n", "-p", target, "--configfile", "graphs.yaml", cwd=workdir).stdout
            commands[device, graphs] = sorted(line for line in printed.splitlines() if "abcl train" in line)
    eager, graphed = commands["cuda", False], commands["cuda", True]
    assert eager and len(graphed) == len(eager)
    for one, other in zip(eager, graphed):
        assert "--no-cuda-graphs" in one and "--cuda-graphs" in other.replace("--no-cuda-graphs", "")
        assert one.replace("--no-cuda-graphs", "--cuda-graphs") == other
    assert commands["cpu", False] == commands["cpu", True] and "--no-cuda-graphs" in commands["cpu", True][0]


def test_every_command_receives_what_its_plan_record_says(workdir):
    """Train and evaluate commands carry the record's training config and attacks; the table,
    masking, claims, Fig. 3 and adversarial-grid commands name each model as the plan does."""
    printed = snakemake("-n", "-p", "--forceall", "all", "adversarial", cwd=workdir).stdout
    commands = [line.split("Shell command: ", 1)[-1].strip() for line in printed.splitlines()]
    commands = [line for line in commands if line.startswith("abcl ")]
    plan_config = load_config(workdir / "config" / "config.yaml")
    plan = experiment_plan(plan_config)

    def command_of(verb, run, filename):
        return next(c for c in commands if c.startswith(f"abcl {verb} ") and f"/models/{run.path}/{filename}" in c)

    for run in plan.runs:
        assert f"--train-config '{run.train.to_json()}'" in command_of("train", run, "model.pt")
        assert f"--attacks '{run.attacks_json()}'" in command_of("evaluate", run, "model.pt")
        full = run.seed == plan_config["seeds"][0]  # eval.full_seeds: 1, the first seed
        adaptive = "pgd_linf" in run.attacks
        assert adaptive == ("table" in run.outputs and full)
        assert ("autoattack_linf" in run.attacks) == ("table" in run.outputs and full or "adversarial" in run.outputs)
        if "fig3" in run.outputs:
            assert f"--attacks '{run.embed_attacks_json()}'" in command_of("features", run, "model.pt")
    for verb, output in (("table", "table"), ("masking", "table"), ("claims", "table"), ("claims", "fig1"),
                         ("fig3", "fig3"), ("adversarial", "adversarial"), ("fig-adversarial", "adversarial")):
        command = next(c for c in commands if c.startswith(f"abcl {verb} "))
        filename = "tsne.csv" if verb == "fig3" else "eval.csv"
        for run in plan.for_output(output):
            assert shlex.quote(f"{run.name}=results/mnist5k/models/{run.path}/{filename}") in command


def test_lint_passes():
    result = snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_snakefmt_check():
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "workflow/"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_tiny_end_to_end_run_builds_everything_then_has_nothing_to_do(workdir):
    snakemake("--cores", "2", "--configfile", ".test/config/config.yaml", cwd=workdir)
    results = workdir / "results" / "mnist5k-test"
    for name in ("fig1", "fig2", "fig3", "adversarial"):
        for ext in ("png", "pdf"):
            path = results / "figures" / f"{name}.{ext}"
            assert path.stat().st_size > 10_000, path
    table = (results / "table.md").read_text()
    rows = {cells[0]: cells for cells in ([c.strip() for c in row.strip("|").split("|")]
                                          for row in table.splitlines() if row.startswith("|"))}
    assert [name for name in rows if name != "model" and not name.startswith((":", "-"))] == \
        ["SCE", "CosFace", "HT-SCE", "ABCL"]  # the plan's names, in its order
    assert float(rows["SCE"][2]) > 50, "one epoch of real training must beat chance by far"
    again = snakemake("--cores", "2", "--configfile", ".test/config/config.yaml", cwd=workdir)
    assert "Nothing to be done" in again.stdout + again.stderr
    # where a job runs is not what it computes: nothing reruns; other training settings in the
    # same folder are refused with one line, before any job
    assert load_config(workdir / ".test" / "config" / "config.yaml")["train"]["device"] == "cpu"  # the run's own
    moved = snakemake("-n", "--configfile", ".test/config/config.yaml", "--config", "train={device: auto}", cwd=workdir)
    assert "Nothing to be done" in moved.stdout + moved.stderr
    graphs = snakemake("-n", "--configfile", ".test/config/config.yaml", "--config", "train={cuda_graphs: true}",
                       cwd=workdir)  # a setting of the GPU's, on a CPU run
    assert "Nothing to be done" in graphs.stdout + graphs.stderr
    longer = snakemake("-n", "--configfile", ".test/config/config.yaml", "--config", "train={epochs: 2}",
                       cwd=workdir, check=False)
    assert longer.returncode != 0
    assert "results/mnist5k-test holds" in longer.stdout + longer.stderr and "epochs 1 -> 2" in longer.stdout + longer.stderr
    for name in ("claims.md", "masking.csv", "separability.csv", "table.csv", "leaderboard.csv", "adversarial.csv"):
        assert (results / name).stat().st_size > 100, name
    # one seed: no comparison over seeds, so abcl power has nothing to pool yet
    assert (results / "comparisons.csv").read_text().splitlines()[0].startswith("claim,comparison,kind,margin,settings,seed,a,b")
    # the rule records the config's comparison protocol, which abcl power pools runs by (one seed here: no rows)
    forced = snakemake("-n", "-p", "--configfile", ".test/config/config.yaml", "--forcerun", "claims", cwd=workdir)
    protocol = comparison_protocol(load_config(workdir / ".test" / "config" / "config.yaml"))
    assert f"--protocol {protocol}" in forced.stdout + forced.stderr
    claims = (results / "claims.md").read_text()
    assert "**Verdict: NOT SHOWN**" in claims and "McNemar exact on 100 items" in claims  # one seed
    assert "one seed: each comparison is about two trained networks" in claims and "Holm" in claims
    assert "**Subset.** These models, the LeNet-size `small` net" in claims and "trained on 4,000 images" in claims
    assert "**Network:** the LeNet-size `small` net (ours" in claims  # a verdict names the network that made it
    assert "| comparisons: for, against, open |" in " ".join(claims.split())
    claim5 = claims[claims.index("## Claim 5"):]
    assert "ABCL vs SCE (PGD-AT), AutoAttack L∞ ε=0.2 (3 it., 30 q.)" in claim5
    adversarial = (results / "adversarial.md").read_text()
    assert "| ABCL PGD-AT " in adversarial and "| SCE PGD-AT " in adversarial and "AutoAttack L∞ ε=0.3" in adversarial
    leaderboard = (results / "leaderboard.md").read_text()
    assert "AutoAttack L∞ ε=0.2 (3 it., 30 q.) (%)" in leaderboard and "| ABCL " in leaderboard
    sce = next(results.glob("models/loss~sce/*/*/*/*/seed~0"))  # each long step logs as it goes
    assert re.search(r"s\] evaluate .*: attack \d+/\d+ fgsm linf eps=0.2: accuracy", (sce / "eval.log").read_text())
    assert "adversarial set bim_linf" in (sce / "features.log").read_text()
    assert re.search(r"t-SNE .*: 400 points, perplexity 10", (sce / "tsne.log").read_text())
    assert (sce / "train.log").read_text().count("epoch 1/1") == 1
    correct = np.load(sce / "correct.npz")
    assert correct["clean_none_0"].shape == (100,) and correct["autoattack_linf_0.2"].shape == (30,)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline_times import stage_times, training_times
    stages, trainings = stage_times(results), training_times(results)
    n_models = len(unique_models(load_config(workdir / ".test" / "config" / "config.yaml"), "fig1", "fig2", "table",
                                 "adversarial"))
    assert stages.loc["train", "jobs"] == stages.loc["eval", "jobs"] == n_models
    assert trainings.loc[("cpu", False)].trainings.sum() == n_models
    assert set(trainings.loc[("cpu", False)].index) == {"none", "pgd"}
    clean = trainings.loc[("cpu", False, "none")]
    assert 0 < clean.later_epoch_s < clean.wall_s

    # one more s in Fig. 2's grid: only that model is trained, and only what depends on it is redrawn
    grown = workdir / ".test" / "grown.yaml"
    grown.write_text((workdir / ".test" / "config" / "config.yaml").read_text().replace("fig2_s: [8]", "fig2_s: [4, 8]"))
    plan = planned_jobs(snakemake("-n", "--configfile", str(grown), cwd=workdir).stdout)
    assert plan == Counter({"train": 1, "evaluate": 1, "fig2": 1, "claims": 1, "all": 1})

    report = snakemake("--report", "report.html", "--configfile", ".test/config/config.yaml", cwd=workdir)
    assert (workdir / "report.html").stat().st_size > 100_000, report.stdout[-2000:]


def test_a_config_file_alone_is_the_whole_config(workdir):
    """--configfile FILE is not merged onto config/config.yaml: what FILE leaves out, it leaves out."""
    import yaml
    custom = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    custom["adaptive_attacks"] = {k: v for k, v in custom["adaptive_attacks"].items() if not k.startswith("autoattack")}
    custom["tag"] = "custom"
    (workdir / "custom.yaml").write_text(yaml.safe_dump(custom))
    planned = snakemake("-n", "-p", "--configfile", "custom.yaml", cwd=workdir).stdout
    assert "results/mnist5k-custom/" in planned and "apgd_ce_linf" in planned and "autoattack" not in planned
    overlay = snakemake("-n", "-p", "--configfile", "config/config.yaml", "custom.yaml",
                        "--config", "seeds=[0,1]", "tag=null", cwd=workdir).stdout
    assert "results/mnist5k/" in overlay and "seed~1/" in overlay and "seed~2/" not in overlay


def test_cpu_full_takes_fashion_mnist_with_one_override(workdir):
    """config/cpu-full.yaml's comment promises Fashion-MNIST with one --config override."""
    dry_run = snakemake("-n", "--configfile", "config/cpu-full.yaml", "--config", "dataset=fashion-mnist",
                        cwd=workdir).stdout
    assert "output: results/fashion-mnist-cpu-full/data/fashion-mnist.pt" in dry_run
    assert planned_jobs(dry_run)["train"] == 8 * 20 + 2 * 3  # 8 compared models x 20 seeds, 2 drawn-only x 3


@pytest.mark.parametrize("configfile", ["config/paper.yaml", ".test/config/config.yaml"])
def test_dry_run_needs_no_torch(workdir, configfile):
    """What `pip install .[workflow]` gives (snakemake, pandas, PyYAML, jsonschema) plans every
    config: here the heavy packages are made unimportable in the planning process."""
    heavy = ["torch", "torchvision", "torchattacks", "seaborn", "matplotlib", "sklearn", "scipy", "mlxtend"]
    code = (f"import sys; sys.modules.update(dict.fromkeys({heavy!r})); from snakemake.cli import main; "
            f"sys.argv = ['snakemake', '--snakefile', {str(ROOT / 'workflow' / 'Snakefile')!r}, '-n', "
            f"'--configfile', {configfile!r}]; main()")
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert planned_jobs(result.stdout)["train"] > 0


def test_catalog_layout_and_module_use_from_another_directory(workdir, tmp_path):
    """`snakemake -n --directory .test` plans the CI config; another project imports the workflow
    as a module (docs/running.md, "Using the workflow as a module") and plans the default config."""
    in_test_dir = snakemake("-n", "--directory", str(workdir / ".test"), cwd=workdir)
    ci_config = load_config(workdir / ".test" / "config" / "config.yaml")
    assert planned_jobs(in_test_dir.stdout)["train"] == len(unique_models(ci_config, "fig1", "fig2", "table",
                                                                          "adversarial")) == 8
    for name in ("LICENSE", ".snakemake-workflow-catalog.yml"):
        assert (ROOT / name).stat().st_size > 100, name
    assert 'min_version("9.0")' in (ROOT / "workflow" / "Snakefile").read_text()

    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "config.yaml", project / "config" / "config.yaml")
    running = (ROOT / "docs" / "running.md").read_text()
    block = running.split("## Using the workflow as a module", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    snakefile = block.replace('github("<owner>/abcl", path="workflow/Snakefile", tag="<tag>")',
                              repr(str(ROOT / "workflow" / "Snakefile")))
    assert snakefile != block
    (project / "Snakefile").write_text(snakefile)
    planned = planned_jobs(snakemake("-n", cwd=project, snakefile=None).stdout)
    assert planned["abcl_train"] == 126 and planned["abcl_claims"] == 1  # the default plan's 126 trainings


@pytest.mark.parametrize("cores", ["2", "8"])
def test_threads_come_from_the_config_whatever_the_cores(workdir, cores):
    """paper.yaml asks for 4 threads a job: --cores 2 lowers the scheduler's count, never the
    count a job computes with (a reduction splits by it, so it is part of the result)."""
    printed = snakemake("results/mnist/figures/fig2.png", "results/mnist/figures/fig3.png", "-n", "-p", "--cores",
                        cores, "--configfile", "config/paper.yaml", cwd=workdir).stdout
    tsne_threads = load_config(workdir / "config" / "paper.yaml")["embed"]["tsne_threads"]
    for verb, count in (("train", 4), ("evaluate", 4), ("features", 4), ("tsne", tsne_threads)):
        commands = [line for line in printed.splitlines() if f"abcl {verb} " in line]
        assert commands and all(f"--threads {count} " in line for line in commands), verb


def test_the_workflow_refuses_what_validate_config_refuses(workdir):
    """One validator: a whole config after an overlay is refused by both, with the same line;
    tag=123 is a tag for both."""
    from abcl.config import ConfigError, resolve_config
    (workdir / "mine.yaml").write_text("tag: mine\ntrain: {epochs: 2}\n")
    refused = snakemake("-n", "--configfile", "mine.yaml", "config/config.yaml", cwd=workdir, check=False)
    assert refused.returncode != 0
    with pytest.raises(ConfigError) as caught:
        resolve_config([workdir / "mine.yaml", workdir / "config" / "config.yaml"])
    assert str(caught.value) in refused.stdout + refused.stderr
    numbered = snakemake("-n", "--config", "tag=123", cwd=workdir).stdout
    assert "results/mnist5k-123/" in numbered
    empty = snakemake("-n", "adversarial", "--config", "adversarial={methods: []}", cwd=workdir, check=False)
    printed = empty.stdout + empty.stderr
    assert empty.returncode != 0 and "InputFunctionException" not in printed
    assert "this config trains no adversarial grid: set adversarial.methods (pgd, trades)" in printed


def test_a_specification_plans_only_the_models_its_claims_compare_and_no_figure(workdir):
    """claims.judge [2, 4] (config/specifications.yaml's ab-linear): HT-SCE 0/0 and ABCL for claim
    2, the table's four for claim 4, on each seed; claims.md is the target, no figure is drawn."""
    import yaml

    from abcl.specifications import load, overlay
    spec = load(ROOT / "config" / "specifications.yaml")
    path = workdir / "ab-linear.yaml"
    path.write_text(yaml.safe_dump(overlay(spec, "ab-linear")))
    jobs = planned_jobs(snakemake("-n", "--configfile", "config/config.yaml", str(path), cwd=workdir).stdout)
    models = 4 * len(spec["seeds"])  # SCE, CosFace, HT-SCE (Fig. 1's 0/0), ABCL (Fig. 1's 512/64)
    assert jobs == Counter({"prepare_data": 1, "train": models, "evaluate": models, "masking": 1, "claims": 1,
                            "all": 1})
    printed = snakemake("-n", "-p", "--configfile", "config/config.yaml", str(path), "--forcerun", "claims",
                        cwd=workdir).stdout
    assert "abcl claims --judge 2 4 --fig1 " in printed and "--separability" not in printed
    assert "--masking results/mnist5k-spec-ab-linear/masking.csv --correct" in printed
