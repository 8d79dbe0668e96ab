"""Configuration: the workflow config, validated against one JSON schema, and the settings types
that the experiment plan (:mod:`abcl.plan`), the workflow, the command line and the reports read.

The schema (``abcl/schemas/config.schema.yaml``) is the one place for defaults and ranges: a
config file, a :class:`TrainConfig` and an attack mapping are each checked against (a part of)
it, and cross-field rules are written there too. :func:`comparison_protocol` hashes what fixes a
claim's numbers beside the trained models.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
import sys
from dataclasses import dataclass, fields
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from abcl import ABCLError
from abcl.records import config_hash


class ConfigError(ABCLError):
    """The configuration has a bad value; the message names the key."""


class Loss(StrEnum):
    SCE = "sce"
    COS_SCE = "cos_sce"
    COSFACE = "cosface"
    HT_SCE = "ht_sce"


class Arch(StrEnum):
    SMALL = "small"
    ALEXNET = "alexnet"


class Optimizer(StrEnum):
    ADAM = "adam"
    SGD = "sgd"


class Schedule(StrEnum):
    ONECYCLE = "onecycle"
    CONSTANT = "constant"


class Adversarial(StrEnum):
    NONE = "none"
    PGD = "pgd"
    TRADES = "trades"


# ---------------------------------------------------------------- the schema
@functools.cache
def schema() -> dict[str, Any]:
    text = resources.files("abcl").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A schema node with its ``$ref`` followed; an ``allOf`` (an attack definition plus the L∞
    bound) as one node whose properties are all of its parts' (the first part's kept per key)."""
    if "$ref" in node:
        return _resolve(schema()["definitions"][node["$ref"].rsplit("/", 1)[-1]])
    if "allOf" in node and "properties" not in node:  # the root's allOf holds cross-field rules only
        parts = [_resolve(part) for part in node["allOf"]]
        properties: dict[str, Any] = {}
        for part in reversed(parts):
            properties.update(part.get("properties", {}))
        return {**parts[0], "properties": properties}
    return node


def _default(node: dict[str, Any]) -> Any:
    """A node's default; one written beside a ``$ref`` wins over the referenced definition's."""
    return copy.deepcopy(node["default"] if "default" in node else _resolve(node).get("default"))


def schema_default(key: str) -> Any:
    """The schema's default of a dotted config key, e.g. ``eval.batch_size``."""
    node = schema()
    for part in key.split("."):
        node = _resolve(node)["properties"][part]
    return _default(node)


# how a job runs on its machine, not what model it trains: outside TrainConfig and its hash
EXECUTION_KEYS = ("device", "threads", "kernels", "gpu", "cuda_graphs")


@functools.cache
def _run_schema() -> dict[str, Any]:
    """A TrainConfig's schema: the run keys plus the ``train`` section's model-defining keys."""
    spec = schema()
    train = {k: v for k, v in spec["properties"]["train"]["properties"].items() if k not in EXECUTION_KEYS}
    run = copy.deepcopy(spec["definitions"]["run"])
    run["properties"] = {**run["properties"], **train}
    run["required"] = sorted(run["properties"])
    return {"definitions": spec["definitions"], **run}


def _one_line(error: Any, what: str = "config") -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    if "x-error" in error.schema:
        return f"{what} error at '{where}': {error.schema['x-error']}"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{what} error at '{where}': {error.message} (allowed: {allowed})"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{what} error at '{where}': {error.instance!r} is not one of: {allowed}"
    return f"{what} error at '{where}': {error.message}"


@functools.cache
def _validator(spec_id: str) -> Any:
    import jsonschema

    # a number is finite: NaN passes every minimum (all its comparisons are false), so refuse it by type
    def finite_number(checker: Any, instance: Any) -> bool:
        return jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(instance, "number") and math.isfinite(instance)

    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", finite_number)
    validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)
    spec = {"config": schema, "training config": _run_schema, "attack": _attack_schema,
            "specifications": _specifications_schema}[spec_id]()
    return validator(spec)


@functools.cache
def _specifications_schema() -> dict[str, Any]:
    return yaml.safe_load(resources.files("abcl").joinpath("schemas/specifications.schema.yaml").read_text())


def load_checked(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML mapping checked against the schema of ``what`` (e.g. "specifications"): one line
    naming the file's first offending key."""
    raw = _read_yaml(path)
    _check(raw, what)
    return raw


def _check(instance: Any, what: str) -> None:
    """Raise ConfigError naming the first (shallowest) offending key of ``instance``, checked
    against the schema of ``what``: a config, a training config or an attack mapping."""
    errors = _validator(what).iter_errors(instance)
    # the shallowest key first; at one key a plain error (type, range) before a cross-field rule
    first = min(errors, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)),
                                       "x-error" in e.schema), default=None)
    if first is not None:
        raise ConfigError(_one_line(first, what))


def _fill_defaults(instance: Any, node: dict[str, Any]) -> None:
    node = _resolve(node)
    if not isinstance(instance, dict):
        return
    for key, sub in node.get("properties", {}).items():
        if key not in instance and ("default" in sub or "default" in _resolve(sub)):
            instance[key] = _default(sub)
        if key in instance:
            _fill_defaults(instance[key], sub)


# (training, test) images of each dataset: what a request for images is checked against
DATASET_SIZES = {"mnist5k": (4000, 1000), "mnist": (60000, 10000), "fashion-mnist": (60000, 10000)}


def _check_sizes(config: dict[str, Any]) -> None:
    """Image counts a config asks for fit its dataset: no silent cap at the test set's size."""
    n_train, n_test = DATASET_SIZES[config["dataset"]]
    asked = [("eval/n_test", config["eval"]["n_test"], n_test, "test"),
             ("eval/adaptive_n_test", config["eval"]["adaptive_n_test"], n_test, "test"),
             ("embed/n_per_set", config["embed"]["n_per_set"], min(n_train, n_test), "test")]
    for where, value, size, split in asked:
        if value is not None and value > size:
            raise ConfigError(f"config error at '{where}': {value} images asked for, {config['dataset']} has "
                              f"{size:,} {split} images")


# a prepared split's tensors -> the IDX file (or the same name .gz) it is read from
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def _check_source(config: dict[str, Any]) -> None:
    """A data_source folder must exist and hold the four IDX files, before any job starts (their
    contents are checked, against SHA-256 sums, by the data preparation)."""
    source = config.get("data_source")
    if source is None:
        return
    if not Path(source).is_dir():
        raise ConfigError(f"config error at 'data_source': {source} is not a folder (it should hold the four IDX files)")
    missing = [stem for stem in IDX_FILES.values()
               if not any((Path(source) / name).is_file() for name in (stem, f"{stem}.gz"))]
    if missing:
        raise ConfigError(f"config error at 'data_source': {source} lacks {', '.join(missing)} (or .gz): it should "
                          "hold the four IDX files")


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check ``config`` against the schema (cross-field rules included); return a copy with
    defaults filled in. Raises ConfigError with one line naming the first offending key."""
    _check(config, "config")
    filled = copy.deepcopy(config)
    _fill_defaults(filled, schema())
    _check_sizes(filled)
    _check_source(filled)
    from abcl.plan import experiment_plan  # the plan reads this module's types: imported here, not at the top
    experiment_plan(filled)  # rules between sections: names that clash, a Fig. 3 attack without settings
    return filled


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    return raw


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` onto ``base`` (a new dict): mappings merge key by key, any other value replaces.
    Snakemake merges ``--configfile`` files and ``--config`` values the same way."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def nest_dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"train.epochs": 2}`` as ``{"train": {"epochs": 2}}``."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, last = str(key).split(".")
        nested = merge(nested, functools.reduce(lambda inner, part: {part: inner}, reversed(parents), {last: value}))
    return nested


def _fits(value: Any, node: dict[str, Any]) -> bool:
    import jsonschema

    return jsonschema.Draft202012Validator({"definitions": schema()["definitions"], **node}).is_valid(value)


# YAML 1.2's float: PyYAML (YAML 1.1), which Snakemake and abcl read config files with, wants a dot
# and a signed exponent, so it reads 1e-3 as the string '1e-3'
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def coerce(value: Any, node: dict[str, Any] | None = None) -> Any:
    """``value`` with every string that the schema wants as another type (integer, number,
    boolean, null, list, mapping) read as YAML: command-line values arrive as strings
    (``--config 'seeds=[0,1,2]'`` gives ``["0", "1", "2"]``), and PyYAML reads ``1e-3`` in a file
    as a string, which is read here as YAML 1.2 reads it, a number. A string stays one where it
    fits, except ``null`` where the key takes null."""
    node = _resolve(schema() if node is None else node)
    if isinstance(value, str) and value.lower() in ("null", "none", "~", "") and _fits(None, node):
        return None  # "null" is also a valid tag name, but it means no tag
    if isinstance(value, str) and not _fits(value, node):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, str) and _YAML12_FLOAT.fullmatch(parsed.strip()) and _fits(float(parsed), node):
            parsed = float(parsed)
        if not isinstance(parsed, str):
            value = parsed
    elif isinstance(value, (bool, int, float)) and not _fits(value, node):
        # Snakemake's --config parser reads tag=123 as a number; abcl's --set keeps "123": both
        # mean the string where only a string fits
        text = yaml.safe_dump(value).removesuffix("...\n").strip()
        if _fits(text, node):
            value = text
    if isinstance(value, dict):
        properties, extra = node.get("properties", {}), node.get("additionalProperties")
        return {k: coerce(v, properties.get(k, extra if isinstance(extra, dict) else {})) for k, v in value.items()}
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [coerce(v, node["items"]) for v in value]
    return value


def _leaves(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf key of a mapping, dotted: {"train.epochs": 2, "tag": "mine", ...}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_file_order(files: list[str | Path]) -> list[str]:
    """Refuse a whole config given after an overlay whose keys it overrides: Snakemake merges
    ``--configfile`` files in order, so ``mine.yaml config/config.yaml`` would keep mine.yaml's
    tag but drop its epochs, silently. A whole config (every required key) after another whole
    config is allowed, and each key it overrides is said in the one line returned for it."""
    required = schema().get("required", [])
    earlier: dict[str, tuple[Any, Path, bool]] = {}  # key -> (value, file, whether that file is whole)
    notes = []
    for path in map(Path, files):
        raw = _read_yaml(path)
        whole, leaves = all(key in raw for key in required), _leaves(raw)
        if whole:
            lost = [(key, value, source, source_whole) for key, (value, source, source_whole) in earlier.items()
                    if key in leaves and leaves[key] != value]
            from_overlays = [item for item in lost if not item[3]]
            if from_overlays:
                key, value, source, _ = from_overlays[0]
                more = f" and {len(from_overlays) - 1} more key(s)" if len(from_overlays) > 1 else ""
                raise ConfigError(f"{path} is a whole config given after {source}: it would override "
                                  f"{source}'s {key} ({value!r} -> {leaves[key]!r}){more}; give the whole "
                                  f"config first and overlays after it: --configfile {path} {source}")
            if lost:
                notes.append(f"note: {path} overrides {len(lost)} key(s) of the whole config before it "
                             f"({', '.join(key for key, *_ in lost[:4])}{', ...' if len(lost) > 4 else ''})")
        earlier.update({key: (value, path, whole) for key, value in leaves.items()})
    return notes


def resolve_config(files: list[str | Path], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config a run uses, as the workflow builds it: the files merged in order (the first a
    whole config, each later one an overlay onto it), then ``overrides`` (``--config`` values;
    dotted keys reach nested ones), strings coerced to the schema's types, then validated with
    defaults filled in."""
    if not files:
        raise ConfigError("give at least one config file")
    for note in check_file_order(files):
        print(note, file=sys.stderr)
    raw: dict[str, Any] = {}
    for path in files:
        raw = merge(raw, _read_yaml(path))
    try:
        return complete_config(merge(raw, overrides or {}))
    except ConfigError as err:
        if "'(top level)'" in str(err) and "required property" in str(err):
            raise ConfigError(f"{err}; an overlay goes after a whole config, e.g. config/config.yaml "
                              f"{Path(files[-1]).name}") from None
        raise


def complete_config(raw: dict[str, Any]) -> dict[str, Any]:
    """A merged config made ready: dotted keys nested, strings coerced to the schema's types,
    validated, defaults filled in. The workflow calls it on the config Snakemake merged."""
    return validate_config(coerce(nest_dotted(raw)))


def load_config(path: str | Path) -> dict[str, Any]:
    return resolve_config([path])


def setting(config: dict[str, Any] | None, key: str) -> Any:
    """A validated config's value at a dotted key; without a config, the schema's default."""
    if config is None:
        return schema_default(key)
    node = config
    for part in key.split("."):
        node = node[part]
    return node


# ---------------------------------------------------------------- one trained model
_FLOATS = ("s", "m", "k1", "k2", "lr", "weight_decay", "dropout", "ab_warmup_epochs", "adv_eps", "adv_step_size",
           "trades_beta", "adv_eps_warmup_epochs")
_ENUMS = {"loss": Loss, "arch": Arch, "optimizer": Optimizer, "schedule": Schedule, "adversarial": Adversarial}
# the training attack's settings: absent from a clean model's record (and hash), where they mean nothing
ADVERSARIAL_KEYS = ("adv_eps", "adv_steps", "adv_step_size", "trades_beta", "adv_eps_warmup_epochs")
# readings of the method added after models had been trained: absent from a record (and hash) at
# their defaults, so every model trained before them keeps its hash and its results folder
VARIANT_KEYS = ("ab_form", "ht_latent_bias", "precision")


def _train_default(name: str) -> Any:
    return _default(_run_schema()["properties"][name])


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines one trained model; its hash names the result. Defaults and
    ranges are the schema's; strings are parsed into the enums here, once."""

    loss: Loss = _train_default("loss")
    s: float = _train_default("s")  # scale of the cosine logits (unused by sce)
    m: float = _train_default("m")  # additive cosine margin, training loss only
    k1: float = _train_default("k1")  # weight of the intra-class term L_I
    k2: float = _train_default("k2")  # weight of the inter-class term L_O
    seed: int = _train_default("seed")
    dataset: str = _train_default("dataset")
    arch: Arch = _train_default("arch")
    epochs: int = _train_default("epochs")
    batch_size: int = _train_default("batch_size")
    lr: float = _train_default("lr")
    optimizer: Optimizer = _train_default("optimizer")
    schedule: Schedule = _train_default("schedule")
    weight_decay: float = _train_default("weight_decay")
    dropout: float = _train_default("dropout")
    ab_warmup_epochs: float = _train_default("ab_warmup_epochs")
    adversarial: Adversarial = _train_default("adversarial")
    adv_eps: float = _train_default("adv_eps")  # L-inf budget of the training attack
    adv_steps: int = _train_default("adv_steps")
    adv_step_size: float = _train_default("adv_step_size")
    trades_beta: float = _train_default("trades_beta")
    adv_eps_warmup_epochs: float = _train_default("adv_eps_warmup_epochs")
    ab_form: str = _train_default("ab_form")  # how the AB terms read App. B/D (abcl.losses.AB_FORMS)
    ht_latent_bias: bool = _train_default("ht_latent_bias")  # HT-SCE's latent layer with a bias
    precision: str = _train_default("precision")  # auto (bf16 on a GPU), float32 or bf16 training

    def __post_init__(self) -> None:
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        plain = {k: v.value if isinstance(v, StrEnum) else v for k, v in plain.items()}
        _check(plain, "training config")
        for name, enum in _ENUMS.items():
            object.__setattr__(self, name, enum(plain[name]))
        for name in _FLOATS:  # 5 and 5.0 must hash alike
            object.__setattr__(self, name, float(plain[name]))

    def to_dict(self) -> dict[str, Any]:
        """Every setting; a clean model's lacks the training attack's, and a reading of the method
        at its default is left out (so the hash predates them)."""
        plain = {f.name: (v.value if isinstance(v := getattr(self, f.name), StrEnum) else v) for f in fields(self)}
        if self.adversarial is Adversarial.NONE:
            for key in ("adversarial", *ADVERSARIAL_KEYS):
                del plain[key]
        for key in VARIANT_KEYS:
            if plain[key] == _train_default(key):
                del plain[key]
        return plain

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def hash(self) -> str:
        return config_hash(self.to_dict())

    def describe(self) -> str:
        adversarial = "" if self.adversarial is Adversarial.NONE else f" adversarial={self.adversarial}"
        variants = "".join(f" {key}={getattr(self, key)}" for key in VARIANT_KEYS
                           if getattr(self, key) != _train_default(key))
        return (f"loss={self.loss} s={self.s:g} m={self.m:g} k1={self.k1:g} k2={self.k2:g} "
                f"seed={self.seed} arch={self.arch} dataset={self.dataset}{adversarial}{variants}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)


# ---------------------------------------------------------------- attacks
@dataclass(frozen=True)
class AttackSpec:
    """One white-box untargeted attack at one budget, on the model's inference logits."""

    name: str  # fgsm | bim (the paper's) | pgd | apgd_ce | apgd_dlr | square | autoattack (adaptive)
    norm: str  # linf | l2
    eps: float
    steps: int = 1
    alpha_factor: float = 2.5
    kurakin_schedule: bool = False
    restarts: int = 1
    queries: int = 5000  # Square's query budget (alone, or inside AutoAttack)

    def __post_init__(self) -> None:
        if self.kurakin_schedule and self.norm != "linf":  # his alpha = 1/255 is a pixel step: L-inf only
            raise ConfigError(f"config error at 'attacks/{self.name}_{self.norm}': kurakin_schedule is for L∞ "
                              "attacks only (its step is 1/255 of a pixel)")
        if self.kurakin_schedule:  # Kurakin et al.: the step count follows from eps; record the steps run
            object.__setattr__(self, "steps", int(min(self.eps * 255 + 4, 1.25 * self.eps * 255)))

    @property
    def key(self) -> str:
        return f"{self.name}_{self.norm}"

    @property
    def adaptive(self) -> bool:
        """Beyond the paper's FGSM/BIM: PGD with restarts and APGD (run on the table models only)."""
        return self.name not in ("fgsm", "bim")

    @property
    def alpha(self) -> float:
        if self.name == "fgsm":
            return self.eps
        return 1 / 255 if self.kurakin_schedule else self.alpha_factor * self.eps / self.steps


@functools.cache
def evaluation_key(attack: str, norm: str, eps: float) -> str:
    """How one evaluation (an attack at a budget, or clean) is named in per-image files."""
    return f"{attack}_{norm}_{eps:g}"


@functools.cache
def _attack_schema() -> dict[str, Any]:
    spec = schema()
    kinds = {**spec["properties"]["attacks"]["properties"], **spec["properties"]["adaptive_attacks"]["properties"]}
    return {"definitions": spec["definitions"], "type": "object", "additionalProperties": False, "properties": kinds}


def attack_specs(attacks: dict[str, Any]) -> list[AttackSpec]:
    """Check a mapping of attack kind -> options against the schema (the config's ``attacks`` and
    ``adaptive_attacks`` sections), then expand it into one spec per (attack, budget)."""
    _check(attacks, "attack")
    attacks = copy.deepcopy(attacks)
    _fill_defaults(attacks, _attack_schema())
    specs = []
    for kind, options in attacks.items():
        name, norm = kind.rsplit("_", 1)
        specs += [AttackSpec(name, norm, float(eps), **{k: v for k, v in options.items() if k != "eps"})
                  for eps in options["eps"]]
    return specs


def _as_floats(value: Any) -> Any:
    """Numbers as floats, so that 1 and 1.0 (the same setting written two ways) hash alike."""
    if isinstance(value, dict):
        return {key: _as_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_floats(item) for item in value]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def comparison_protocol(config: dict[str, Any]) -> str:
    """What fixes a claim's numbers beside the training settings and the losses compared, as a
    12-digit hash: the paper's attacks and their parameters, the test images per evaluation, the
    t-SNE sets and the AB warm-up; with claim 5 in the default run (``adversarial.in_default_run``)
    also the adversarial training budget, AutoAttack and its test images. Seeds, tags, threads
    and which models run are not in it. `abcl power` pools runs only when it agrees."""
    embed = config["embed"]
    protocol = {"attacks": config["attacks"], "n_test": config["eval"]["n_test"],
                "embed": {key: embed[key] for key in ("n_per_set", "bim_linf_eps", "fgsm_l2_eps", "perplexity")},
                "ab_warmup_epochs": config["train"]["ab_warmup_epochs"]}
    adversarial = config["adversarial"]
    if adversarial["in_default_run"]:  # claim 5's rows are in comparisons.csv
        protocol["adversarial"] = {key: value for key, value in adversarial.items()
                                   if key not in ("methods", "models", "seeds", "in_default_run")}
        protocol["autoattack"] = {key: config["adaptive_attacks"].get(key) for key in ("autoattack_linf", "autoattack_l2")}
        protocol["adaptive_n_test"] = config["eval"]["adaptive_n_test"]
    return config_hash(_as_floats(protocol))
