import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from abcl.cluster import (
    gpu_on_this_machine,
    load_table,
    model_request,
    rule_request,
    show_group_submission_errors,
)
from abcl.config import (
    ConfigError,
    check_file_order,
    comparison_protocol,
    complete_config,
)
from abcl.plan import (
    ALL_CLAIMS,
    RUN_PATH_REGEX,
    experiment_plan,
    judged,
    refuse_other_training,
    results_dir,
)

# Snakemake merged the config files and --config values key by key, as `abcl validate-config`
# and `abcl plan` do; complete_config, which both call, gives --config strings the schema's types
# and validates before any job is planned: a bad value stops the run with one line naming the key.
try:
    for note in check_file_order(workflow.configfiles):
        print(note, file=sys.stderr)
    completed = complete_config(config)
    config.clear()
    config.update(completed)
    PLAN = experiment_plan(config)
    refuse_other_training(PLAN, results_dir(config))
except ConfigError as err:
    raise WorkflowError(str(err)) from None


envvars:
    "PATH",


# Rules call the `abcl` command installed beside the Python running Snakemake (the project's
# virtualenv), also when that environment was not activated.
os.environ["PATH"] = (
    f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)
DATASET = config["dataset"]
RESULTS = results_dir(config)
MODEL_DIR = f"{RESULTS}/models/{{run}}"  # {run}: a planned model's Run.path
# Where a job runs (auto, cpu, cuda) reaches its command as $ABCL_DEVICE, not as a param of the rules (a
# param change reruns the jobs, and the device is not what they compute). Kernels and threads are
# params: they change CPU results' bits, so a change reruns the jobs. Each command gets the config's
# thread count as a param; the `threads:` directive only tells the scheduler, which may lower it.
os.environ.update(ABCL_DEVICE=config["train"]["device"])
# CUDA graphs change nothing on a CPU: where no job can reach a GPU (device cpu; device auto with
# no GPU requested and none on this machine) the setting is not passed, so toggling it reruns nothing.
GPU_POSSIBLE = config["train"]["device"] == "cuda" or (
    config["train"]["device"] == "auto"
    and (config["train"]["gpu"] > 0 or gpu_on_this_machine())
)
CUDA_GRAPHS = (
    "--cuda-graphs"
    if config["train"]["cuda_graphs"] and GPU_POSSIBLE
    else "--no-cuda-graphs"
)


wildcard_constraints:
    run=RUN_PATH_REGEX,


show_group_submission_errors()

# What a cluster job asks for, measured from finished runs (workflow/resources.yaml, `make resources`).
MEASURED = load_table(workflow.source_path("../resources.yaml"))


def measured(rule):
    """runtime (minutes) and mem_mb that ``rule``'s jobs needed, with headroom."""
    return rule_request(MEASURED, Path(RESULTS).name, rule)


def model_resources(rule):
    """The train or evaluate rule's runtime and mem_mb, per job: adversarially trained models ask
    for their own."""

    def request(wildcards, resource):
        adversarial = planned_run(wildcards).train.adversarial != "none"
        return model_request(MEASURED, Path(RESULTS).name, rule, adversarial)[resource]

    return {
        resource: lambda wildcards, resource=resource: request(wildcards, resource)
        for resource in measured(rule)
    }


def planned_run(wildcards):
    """The plan's record of the model whose directory the wildcard names."""
    return PLAN.at(wildcards.run)


def model_files(output, filename):
    """``filename`` of every model that ``output`` (fig1, fig2, fig3, table) needs."""
    return [f"{RESULTS}/models/{r.path}/{filename}" for r in PLAN.for_output(output)]


def named_files(output, filename):
    """The same files as quoted NAME=PATH arguments: each model's name comes from the plan."""
    return " ".join(
        shlex.quote(f"{r.name}={RESULTS}/models/{r.path}/{filename}")
        for r in PLAN.for_output(output)
    )


# The adversarial grid is built by the named target `adversarial`, and by the default target too
# when the config says so (then claims.md holds claim 5).
ADVERSARIAL_IN_DEFAULT_RUN = (
    bool(PLAN.for_output("adversarial")) and config["adversarial"]["in_default_run"]
)


NO_ADVERSARIAL_GRID = (
    "this config trains no adversarial grid: set adversarial.methods (pgd, trades)"
)
# asked for by name with no grid to build: one line before planning, not an input-function trace
# (the targets are not yet in workflow.dag_settings while the Snakefile is read: the command line)
if "adversarial" in sys.argv[1:] and not PLAN.for_output("adversarial"):
    raise WorkflowError(NO_ADVERSARIAL_GRID)


def adversarial_outputs(wildcards=None):
    if not PLAN.for_output("adversarial"):
        raise WorkflowError(NO_ADVERSARIAL_GRID)
    return [f"{RESULTS}/adversarial.md", f"{RESULTS}/figures/adversarial.png"]


def adversarial_in_default_run(filename):
    """``filename`` of the adversarial grid's models when the default target builds them."""
    return model_files("adversarial", filename) if ADVERSARIAL_IN_DEFAULT_RUN else []


def claims_adversarial_args():
    """claims.md's claim 5: its evaluations, or where its own target builds it."""
    if ADVERSARIAL_IN_DEFAULT_RUN:
        return f"--adversarial {named_files('adversarial', 'eval.csv')}"
    note = (
        "Its grid is a target of its own: `snakemake --cores 2 adversarial` builds "
        f"{RESULTS}/adversarial.md, which holds this claim's verdict."
    )
    return f"--adversarial-note {shlex.quote(note)}"


# A run that judges fewer claims (claims.judge, a specification) plans only the models they compare:
# its targets are claims.md and what those models make, no figure.
JUDGED = judged(config)


def if_planned(output, files):
    """``files`` where the plan has models for ``output``, else none (a claim left unjudged)."""
    return files if PLAN.for_output(output) else []


def flag(name, files):
    """``--name FILE`` for a rule's optional input, "" where it has none (Snakemake hands over
    one file as a string, none as an empty list)."""
    files = [files] if isinstance(files, str) else list(files)
    return f"{name} {' '.join(map(str, files))}" if files else ""


def final_outputs():
    if JUDGED != ALL_CLAIMS:
        return [f"{RESULTS}/claims.md"]
    return [
        f"{RESULTS}/figures/fig1.png",
        f"{RESULTS}/figures/fig2.png",
        f"{RESULTS}/figures/fig3.png",
        f"{RESULTS}/table.md",
        f"{RESULTS}/claims.md",
        f"{RESULTS}/leaderboard.md",
    ] + (adversarial_outputs() if ADVERSARIAL_IN_DEFAULT_RUN else [])
