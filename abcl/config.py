"""Configuration: the workflow config (validated against a JSON schema) and typed run configs."""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from abcl import ABCLError
from abcl.records import config_hash


class ConfigError(ABCLError):
    """The configuration has a bad value; the message names the key."""


class Loss(str, Enum):
    SCE = "sce"
    COS_SCE = "cos_sce"
    COSFACE = "cosface"
    HT_SCE = "ht_sce"


class Arch(str, Enum):
    SMALL = "small"
    ALEXNET = "alexnet"


def parse_enum(enum: type[Enum], value: str, what: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise ConfigError(f"unknown {what} '{value}'; choose one of {allowed}") from None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines one trained model; its hash names the result."""

    loss: str = "sce"
    s: float = 0.0  # scale of the cosine logits (unused by sce)
    m: float = 0.0  # additive cosine margin, training loss only
    k1: float = 0.0  # weight of the intra-class term L_I
    k2: float = 0.0  # weight of the inter-class term L_O
    seed: int = 0
    dataset: str = "mnist5k"
    arch: str = "small"
    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    optimizer: str = "adam"
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    dropout: float = 0.5
    ab_warmup_epochs: float = 1.0

    def __post_init__(self) -> None:
        parse_enum(Loss, self.loss, "loss")
        parse_enum(Arch, self.arch, "arch")
        for name in ("s", "m", "k1", "k2", "lr", "weight_decay", "dropout", "ab_warmup_epochs"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.loss != Loss.SCE.value and self.s <= 0:
            raise ConfigError(f"s must be > 0 for loss '{self.loss}', got {self.s!r}")
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hash(self) -> str:
        return config_hash(self.to_dict())

    def describe(self) -> str:
        return (f"loss={self.loss} s={self.s:g} m={self.m:g} k1={self.k1:g} k2={self.k2:g} "
                f"seed={self.seed} arch={self.arch} dataset={self.dataset}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)


@dataclass(frozen=True)
class AttackSpec:
    """One white-box untargeted attack at one budget, on the model's inference logits."""

    name: str  # fgsm | bim (the paper's) | pgd | apgd_ce | apgd_dlr (adaptive)
    norm: str  # linf | l2
    eps: float
    steps: int = 1
    alpha_factor: float = 2.5
    kurakin_schedule: bool = False
    restarts: int = 1

    @property
    def key(self) -> str:
        return f"{self.name}_{self.norm}"

    @property
    def adaptive(self) -> bool:
        """Beyond the paper's FGSM/BIM: PGD with restarts and APGD (run on the table models only)."""
        return self.name not in ("fgsm", "bim")

    @property
    def alpha(self) -> float:
        return self.eps if self.name == "fgsm" else self.alpha_factor * self.eps / self.steps


def attack_specs(attacks: dict[str, Any]) -> list[AttackSpec]:
    """Check a mapping of attack kind -> options against the schema (the config's ``attacks`` and
    ``adaptive_attacks`` sections), then expand it into one spec per (attack, budget)."""
    _validate_attacks(attacks)
    specs = []
    for kind, options in attacks.items():
        name, norm = kind.rsplit("_", 1)
        for eps in options["eps"]:
            specs.append(AttackSpec(
                name, norm, float(eps),
                steps=int(options.get("steps", 1)),
                alpha_factor=float(options.get("alpha_factor", 2.5)),
                kurakin_schedule=bool(options.get("kurakin_schedule", False)),
                restarts=int(options.get("restarts", 1)),
            ))
    return specs


# ---------------------------------------------------------------- workflow config
def _validate_attacks(attacks: dict[str, Any]) -> None:
    import jsonschema

    spec = schema()
    kinds = {**spec["properties"]["attacks"]["properties"], **spec["properties"]["adaptive_attacks"]["properties"]}
    fragment = {"definitions": spec["definitions"], "type": "object", "additionalProperties": False,
                "properties": kinds}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(fragment).iter_errors(attacks))
    if error is not None:
        raise ConfigError(_one_line(error).replace("config error at '", "attack error at '"))


def schema() -> dict[str, Any]:
    text = resources.files("abcl").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _fill_defaults(instance: Any, node: dict[str, Any], root: dict[str, Any]) -> None:
    if "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(instance, dict):
        return
    for key, sub in node.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, root)


def _one_line(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        return f"config error at '{where}': {error.message} (allowed: {', '.join(sorted(error.schema['properties']))})"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"config error at '{where}': {error.instance!r} is not one of: {allowed}"
    return f"config error at '{where}': {error.message}"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check ``config`` against the schema; return a copy with defaults filled in.

    Raises ConfigError with one line naming the first offending key.
    """
    import jsonschema

    spec = schema()
    validator = jsonschema.Draft202012Validator(spec)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise ConfigError(_one_line(errors[0]))
    filled = copy.deepcopy(config)
    _fill_defaults(filled, spec, spec)
    if filled["dataset"] == "mnist5k" and (filled.get("data_source") or filled.get("download")):
        raise ConfigError("config error at 'dataset': mnist5k is embedded; data_source and download must be null")
    if filled["dataset"] == "mnist" and not (filled.get("data_source") or filled.get("download")):
        raise ConfigError("config error at 'data_source': full MNIST needs data_source (a folder of IDX files) "
                          "or download: npm | torchvision")
    return filled


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    return validate_config(raw)


# how a job runs on its machine, not what model it trains: outside TrainConfig and its hash
EXECUTION_KEYS = ("device", "threads", "gpu", "cuda_graphs")


def train_config(config: dict[str, Any], loss: str, seed: int, s: float | None = None,
                 k1: float = 0.0, k2: float = 0.0) -> TrainConfig:
    """The TrainConfig of one model of the workflow: loss defaults from ``config``, overrides given."""
    loss = parse_enum(Loss, loss, "loss").value
    params = dict(config["losses"].get(loss, {}))
    if s is not None:
        params["s"] = s
    train = {k: v for k, v in config["train"].items() if k not in EXECUTION_KEYS}
    return TrainConfig(loss=loss, s=float(params.get("s", 0.0)), m=float(params.get("m", 0.0)),
                       k1=float(k1), k2=float(k2), seed=int(seed), dataset=config["dataset"], **train)



# ---------------------------------------------------------------- which models each output needs
MODEL_COLUMNS = ("loss", "s", "m", "k1", "k2", "seed")


def _model(config: dict[str, Any], loss: str, seed: int, s: float | None = None,
           k1: float = 0.0, k2: float = 0.0) -> dict[str, str]:
    cfg = train_config(config, loss, seed, s=s, k1=k1, k2=k2)
    return {"loss": cfg.loss, "s": f"{cfg.s:g}", "m": f"{cfg.m:g}", "k1": f"{cfg.k1:g}",
            "k2": f"{cfg.k2:g}", "seed": str(cfg.seed)}


def comparison_models(config: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """The four models of Fig. 3 and the table, by display name, one entry per seed."""
    ab = config["abcl"]
    return {
        "SCE": [_model(config, "sce", seed) for seed in config["seeds"]],
        "CosFace": [_model(config, "cosface", seed) for seed in config["seeds"]],
        "HT-SCE": [_model(config, "ht_sce", seed) for seed in config["seeds"]],
        "ABCL": [_model(config, "ht_sce", seed, k1=ab["k1"], k2=ab["k2"]) for seed in config["seeds"]],
    }


def figure_models(config: dict[str, Any], figure: str) -> list[dict[str, str]]:
    """Every model (as path-ready strings) that ``figure`` (fig1, fig2, fig3, table) needs."""
    seeds, grids = config["seeds"], config["grids"]
    if figure == "fig1":
        return [_model(config, "ht_sce", seed, k1=k1, k2=k2)
                for k1 in grids["fig1_k1"] for k2 in grids["fig1_k2"] for seed in seeds]
    if figure == "fig2":
        return [_model(config, "cos_sce", seed, s=s) for s in grids["fig2_s"] for seed in seeds]
    models = comparison_models(config)
    if figure == "fig3":  # t-SNE of the first seed's SCE, CosFace and ABCL models
        return [models[name][0] for name in ("SCE", "CosFace", "ABCL")]
    if figure == "table":
        return [m for runs in models.values() for m in runs]
    raise ConfigError(f"unknown figure '{figure}'; choose fig1, fig2, fig3 or table")
