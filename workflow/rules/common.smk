import json
import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import Paramspace

from abcl.config import (
    EXECUTION_KEYS,
    MODEL_COLUMNS,
    ConfigError,
    TrainConfig,
    comparison_models,
    figure_models,
    validate_config,
)

# Validate before any job is planned: a bad value stops the run with one line naming the key.
try:
    config.update(validate_config(config))
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
RESULTS = f"results/{DATASET}"
MODELS = Paramspace(pd.DataFrame(columns=list(MODEL_COLUMNS)))
MODEL_DIR = f"{RESULTS}/models/{MODELS.wildcard_pattern}"
NUMBER = r"[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?"


wildcard_constraints:
    dataset="mnist5k|mnist|fashion-mnist",
    loss="sce|cos_sce|cosface|ht_sce",
    s=NUMBER,
    m=NUMBER,
    k1=NUMBER,
    k2=NUMBER,
    seed="[0-9]+",


def model_dir(model):
    return f"{RESULTS}/models/{MODELS.wildcard_pattern.format(**model)}"


def model_files(figure, filename):
    return [f"{model_dir(m)}/{filename}" for m in figure_models(config, figure)]


def train_config_json(wildcards):
    """Every training setting of one model; a change reruns that model's training only."""
    cfg = TrainConfig(
        loss=wildcards.loss,
        s=float(wildcards.s),
        m=float(wildcards.m),
        k1=float(wildcards.k1),
        k2=float(wildcards.k2),
        seed=int(wildcards.seed),
        dataset=DATASET,
        **{k: v for k, v in config["train"].items() if k not in EXECUTION_KEYS},
    )
    return json.dumps(cfg.to_dict(), sort_keys=True)


def attacks_json(wildcards):
    """The paper's attacks for every model; the adaptive ones too for the table's models."""
    model = {key: getattr(wildcards, key) for key in MODEL_COLUMNS}
    attacks = dict(config["attacks"])
    if model in figure_models(config, "table"):
        attacks.update(config["adaptive_attacks"])
    return json.dumps(attacks, sort_keys=True)


def fig3_model_dirs():
    """Display name -> directory of the first seed's SCE, CosFace and ABCL models."""
    return {
        name: model_dir(runs[0])
        for name, runs in comparison_models(config).items()
        if name != "HT-SCE"
    }


def fig3_arguments(wildcards, input):
    names = fig3_model_dirs()
    embedding = " ".join(
        f"{name}={input.embeddings[i]}" for i, name in enumerate(names)
    )
    scores = " ".join(f"{name}={input.scores[i]}" for i, name in enumerate(names))
    return f"--embedding {embedding} --scores {scores}"


def final_outputs():
    return [
        f"{RESULTS}/figures/fig1.png",
        f"{RESULTS}/figures/fig2.png",
        f"{RESULTS}/figures/fig3.png",
        f"{RESULTS}/table.md",
        f"{RESULTS}/claims.md",
    ]
