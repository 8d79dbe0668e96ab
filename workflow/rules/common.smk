import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from abcl.config import (
    RUN_PATH,
    ConfigError,
    experiment_plan,
    results_dir,
    validate_config,
)

# Validate before any job is planned: a bad value stops the run with one line naming the key.
try:
    config.update(validate_config(config))
    PLAN = experiment_plan(config)
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
MODEL_DIR = f"{RESULTS}/models/{RUN_PATH}"
NUMBER = r"[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?"


wildcard_constraints:
    loss="sce|cos_sce|cosface|ht_sce",
    s=NUMBER,
    m=NUMBER,
    k1=NUMBER,
    k2=NUMBER,
    seed="[0-9]+",


def planned_run(wildcards):
    """The plan's record of the model whose directory the wildcards name."""
    return PLAN.at(RUN_PATH.format(**wildcards))


def model_files(output, filename):
    """``filename`` of every model that ``output`` (fig1, fig2, fig3, table) needs."""
    return [f"{RESULTS}/models/{r.path}/{filename}" for r in PLAN.for_output(output)]


def named_files(output, filename):
    """The same files as quoted NAME=PATH arguments: each model's name comes from the plan."""
    return " ".join(
        shlex.quote(f"{r.name}={RESULTS}/models/{r.path}/{filename}")
        for r in PLAN.for_output(output)
    )


def final_outputs():
    return [
        f"{RESULTS}/figures/fig1.png",
        f"{RESULTS}/figures/fig2.png",
        f"{RESULTS}/figures/fig3.png",
        f"{RESULTS}/table.md",
        f"{RESULTS}/claims.md",
        f"{RESULTS}/leaderboard.md",
    ]
