"""The experiment plan: every model a validated config trains, once, with its display name, its
training settings, the attacks it gets and the outputs (figures, table, adversarial grid) it feeds.
The workflow, the command line and the reports all read it (:func:`experiment_plan`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abcl.config import EXECUTION_KEYS, Adversarial, ConfigError, Loss, TrainConfig

# The models the paper's claims compare, by the names every figure, table and report shows.
SCE, COSFACE, HT_SCE, ABCL = "SCE", "CosFace", "HT-SCE", "ABCL"
# Fig. 1's chosen (k1, k2) cell when ABCL is not HT-SCE + AB (abcl.basis: cosface): claim 2 compares it
HT_SCE_AB = "HT-SCE+AB"
OUTPUTS = ("fig1", "fig2", "fig3", "table", "adversarial")
RUN_PATH = "loss~{loss}/s~{s}/m~{m}/k1~{k1}/k2~{k2}/seed~{seed}"
ADVERSARIAL_PATH = "at~{adversarial}/"  # prefix of an adversarially trained model's RUN_PATH
ADVERSARIAL_NAMES = {Adversarial.PGD: "PGD-AT", Adversarial.TRADES: "TRADES"}
_NUMBER = r"[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?"
# what a Run.path can be (the workflow's {run} wildcard)
RUN_PATH_REGEX = (f"(at~({'|'.join(a.value for a in ADVERSARIAL_NAMES)})/)?"
                  + RUN_PATH.format(loss=f"({'|'.join(loss.value for loss in Loss)})", s=_NUMBER, m=_NUMBER,
                                    k1=_NUMBER, k2=_NUMBER, seed="[0-9]+"))


def results_dir(config: dict[str, Any]) -> str:
    """Where a validated config's results go: results/<dataset>[-<tag>]."""
    tag = config.get("tag")
    return f"results/{config['dataset']}" + (f"-{tag}" if tag else "")


def refuse_other_training(plan: "Plan", results: str | Path) -> None:
    """Refuse a plan whose models would overwrite models of other training settings in
    ``results`` (a config that trains differently needs a results folder of its own: a tag).
    Settings outside the model's hash (device, threads, kernels) are not a difference."""
    for run in plan.runs:
        record = Path(results) / "models" / run.path / "train.json"
        if not record.exists():
            continue
        try:
            before = json.loads(record.read_text())
        except (OSError, ValueError):
            continue  # unreadable: the train job will redo it
        if before.get("config_hash") == run.train.hash:
            continue
        now = run.train.to_dict()
        changed = ", ".join(f"{key} {before.get('config', {}).get(key)!r} -> {now[key]!r}" for key in sorted(now)
                            if before.get("config", {}).get(key) != now[key]) or "settings"
        raise ConfigError(f"{results} holds {run.name} seed {run.seed} trained with other settings ({changed}); "
                          f"give this config a results folder of its own: tag: NAME in its file or --config tag=NAME")


@dataclass(frozen=True)
class Run:
    """One model of the plan: its display name, what trains it, the attacks it gets (a mapping
    in the config's ``attacks`` format), the attacks of its Fig. 3 adversarial sets, and the
    outputs it feeds."""

    name: str
    train: TrainConfig
    attacks: dict[str, Any] = field(compare=False)
    embed_attacks: dict[str, Any] = field(compare=False)
    outputs: tuple[str, ...]

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def wildcards(self) -> dict[str, str]:
        t = self.train
        return {"loss": str(t.loss), "s": f"{t.s:g}", "m": f"{t.m:g}", "k1": f"{t.k1:g}", "k2": f"{t.k2:g}",
                "seed": str(t.seed)}

    @property
    def path(self) -> str:
        prefix = "" if self.train.adversarial is Adversarial.NONE else ADVERSARIAL_PATH.format(
            adversarial=self.train.adversarial)
        return prefix + RUN_PATH.format(**self.wildcards)

    def attacks_json(self) -> str:
        return json.dumps(self.attacks, sort_keys=True)

    def embed_attacks_json(self) -> str:
        return json.dumps(self.embed_attacks, sort_keys=True)


@dataclass(frozen=True)
class Plan:
    runs: tuple[Run, ...]
    by_output: dict[str, tuple[Run, ...]] = field(compare=False)

    def for_output(self, output: str) -> tuple[Run, ...]:
        """The runs ``output`` needs, in the order it shows them."""
        if output not in OUTPUTS:
            raise ConfigError(f"unknown output '{output}'; choose one of {', '.join(OUTPUTS)}")
        return self.by_output[output]

    def at(self, path: str) -> Run:
        for run in self.runs:
            if run.path == path:
                return run
        raise ConfigError(f"no model of the experiment plan lives at {path}")

    def find(self, name: str, seed: int | None = None) -> Run:
        matches = [run for run in self.runs if run.name == name and seed in (None, run.seed)]
        if not matches:
            names = ", ".join(dict.fromkeys(run.name for run in self.runs))
            raise ConfigError(f"no run named '{name}'" + ("" if seed is None else f" with seed {seed}")
                              + f" in the plan; runs: {names}")
        return matches[0]


def _train_config(config: dict[str, Any], loss: Loss, seed: int, s: float | None = None,
                  k1: float = 0.0, k2: float = 0.0, adversarial: Adversarial = Adversarial.NONE) -> TrainConfig:
    params = dict(config["losses"].get(loss, {}))
    train = {k: v for k, v in config["train"].items() if k not in EXECUTION_KEYS}
    # a reading that does not touch a model stays out of its settings (and hash): the AB terms'
    # form where k1 = k2 = 0, HT-SCE's latent bias for the other losses
    if not (k1 or k2):
        train.pop("ab_form", None)
    if loss is not Loss.HT_SCE:
        train.pop("ht_latent_bias", None)
    if adversarial is not Adversarial.NONE:
        at = config["adversarial"]
        train |= {"adversarial": adversarial, "adv_eps": at["eps"], "adv_steps": at["steps"],
                  "adv_step_size": at["step_size"], "trades_beta": at["trades_beta"],
                  "adv_eps_warmup_epochs": at["eps_warmup_epochs"]}
    return TrainConfig(loss=loss, s=params.get("s", 0.0) if s is None else s, m=params.get("m", 0.0),
                       k1=k1, k2=k2, seed=seed, dataset=config["dataset"], **train)


def _embed_attacks(config: dict[str, Any]) -> dict[str, Any]:
    """Fig. 3's adversarial sets: BIM L-inf with the evaluation's BIM settings, and FGSM L2."""
    if "bim_linf" not in config["attacks"]:
        raise ConfigError("config error at 'attacks': Fig. 3 shows a BIM L∞ adversarial set and takes its steps "
                          "from attacks.bim_linf, which is missing")
    return {"bim_linf": {**config["attacks"]["bim_linf"], "eps": [config["embed"]["bim_linf_eps"]]},
            "fgsm_l2": {"eps": [config["embed"]["fgsm_l2_eps"]]}}


def middle_budgets(attacks: dict[str, Any]) -> dict[str, Any]:
    """Each attack at its middle budget only (the upper middle of an even count), the budget
    Figs. 1 and 2 show (:func:`abcl.tables.ordered_evaluations` with ``middle_only``)."""
    return {kind: {**options, "eps": [sorted(options["eps"])[len(options["eps"]) // 2]]}
            for kind, options in attacks.items()}


def _first(seeds: list[int], count: int | None) -> list[int]:
    """The first ``count`` seeds; every seed when ``count`` is null, none when it is 0 (a stage of
    a run whose first seeds ran in an earlier stage)."""
    return list(seeds) if count is None else list(seeds[:count])


ALL_CLAIMS = (1, 2, 3, 4)
# the outputs whose models each claim compares; claim 3's comparisons are named by the table's rows
CLAIM_OUTPUTS = {1: ("fig2",), 2: ("fig1",), 3: ("fig3", "table"), 4: ("table",)}


def judged(config: dict[str, Any]) -> tuple[int, ...]:
    """The paper's claims a run judges (``claims.judge``), in order."""
    return tuple(sorted(config.get("claims", {}).get("judge") or ALL_CLAIMS))


def _judged(config: dict[str, Any], output: str, name: str, compared_points: set, training: TrainConfig) -> bool:
    """Whether a declared model serves a claim the run judges. A run that judges every claim keeps
    all (its figures draw Fig. 1's inner cells, the table HT-SCE); one that judges fewer keeps only
    what its claims compare: Fig. 1's two compared corners for claim 2, the table's SCE, CosFace
    and ABCL for claims 3 and 4."""
    claims = judged(config)
    if output == "adversarial" or claims == ALL_CLAIMS:
        return True
    if output == "fig1" and (training.k1, training.k2) not in compared_points:
        return False
    if output == "table" and name == HT_SCE:
        return False  # no claim compares the table's HT-SCE; claim 2 keeps it as Fig. 1's 0/0
    return any(output in CLAIM_OUTPUTS[claim] for claim in claims)


def _check_judged(config: dict[str, Any], compared_points: set) -> None:
    """A run that judges claim 2 must train both of its corners, else it would find out only after
    every training."""
    grid = {(k1, k2) for k1 in config["grids"]["fig1_k1"] for k2 in config["grids"]["fig1_k2"]}
    if 2 in judged(config) and not compared_points <= grid:
        raise ConfigError("config error at 'claims/judge': claim 2 compares Fig. 1's "
                          + " and ".join(f"({k1:g}, {k2:g})" for k1, k2 in sorted(compared_points))
                          + ", which grids.fig1_k1 x grids.fig1_k2 must both hold")


def experiment_plan(config: dict[str, Any]) -> Plan:
    """Every model of a validated config, once, in a fixed order: Fig. 1's grid, Fig. 2's scales,
    then the compared models (SCE, CosFace, HT-SCE, ABCL). A model two outputs share is one run;
    a compared model keeps its name (HT-SCE+AB 512/64 of Fig. 1 is the table's ABCL). With
    ``abcl.basis: cosface`` ABCL is CosFace + AB, a model of its own, and Fig. 1's chosen cell is
    named HT-SCE+AB."""
    seeds, grids, ab = config["seeds"], config["grids"], config["abcl"]
    basis = Loss(ab.get("basis", "ht_sce"))
    declared: list[tuple[str, str, TrainConfig]] = []  # (output, name, training)
    # Fig. 1's inner grid points are drawn, never compared: they may run fewer seeds
    compared_points = {(0, 0), (ab["k1"], ab["k2"])}
    figure_seeds = _first(seeds, config["eval"].get("figure_seeds"))
    for k1 in grids["fig1_k1"]:
        for k2 in grids["fig1_k2"]:
            # the compared corners carry their claim's names also where no table model shares them
            if (k1, k2) == (0, 0):
                name = HT_SCE
            elif (k1, k2) == (ab["k1"], ab["k2"]):
                name = ABCL if basis is Loss.HT_SCE else HT_SCE_AB
            else:
                name = f"HT-SCE+AB {k1:g}/{k2:g}"
            declared += [("fig1", name, _train_config(config, Loss.HT_SCE, seed, k1=k1, k2=k2))
                         for seed in (seeds if (k1, k2) in compared_points else figure_seeds)]
    for s in grids["fig2_s"]:
        declared += [("fig2", f"Cos-SCE s={s:g}", _train_config(config, Loss.COS_SCE, seed, s=s)) for seed in seeds]
    compared = {SCE: (Loss.SCE, 0, 0), COSFACE: (Loss.COSFACE, 0, 0), HT_SCE: (Loss.HT_SCE, 0, 0),
                ABCL: (basis, ab["k1"], ab["k2"])}
    for name, (loss, k1, k2) in compared.items():
        for seed in seeds:
            training = _train_config(config, loss, seed, k1=k1, k2=k2)
            declared.append(("table", name, training))
            # Fig. 3 shows the first seed's SCE, CosFace and ABCL; claim 3 compares every seed's, if embedded
            if name != HT_SCE and (seed == seeds[0] or config["embed"].get("every_seed")):
                declared.append(("fig3", name, training))
    adversarial = config.get("adversarial", {})
    adversarial_seeds = seeds[:adversarial.get("seeds") or len(seeds)]
    for method in map(Adversarial, adversarial.get("methods", [])):
        for name in adversarial["models"]:
            loss, k1, k2 = compared[name]
            declared += [("adversarial", f"{name} {ADVERSARIAL_NAMES[method]}",
                          _train_config(config, loss, seed, k1=k1, k2=k2, adversarial=method))
                         for seed in adversarial_seeds]

    if judged(config) != ALL_CLAIMS:
        _check_judged(config, compared_points)
    declared = [(o, n, t) for o, n, t in declared if _judged(config, o, n, compared_points, t)]
    names: dict[str, str] = {}
    for output, name, training in declared:
        key = training.hash
        if output in ("table", "fig3") and names.get(key, name) != name and names[key] in compared:
            raise ConfigError(f"config error at 'abcl': ABCL (k1={ab['k1']:g}, k2={ab['k2']:g}) is the same model "
                              f"as {names[key]}; give it a non-zero AB term")
        if output in ("table", "fig3") or key not in names:
            names[key] = name
    fed = {(output, training.hash) for output, _, training in declared}
    outputs = {key: tuple(o for o in OUTPUTS if (o, key) in fed) for key in names}
    embed = _embed_attacks(config)
    adaptive = {**config["attacks"], **config.get("adaptive_attacks", {})}
    # adversarially trained models: the paper's attacks and AutoAttack, the robustness standard
    autoattack = {**config["attacks"], **{k: v for k, v in config.get("adaptive_attacks", {}).items()
                                          if k.startswith("autoattack")}}
    if "autoattack_linf" in autoattack and adversarial.get("methods"):  # also at the training budget
        eps = sorted({*autoattack["autoattack_linf"]["eps"], adversarial["eps"]})
        autoattack["autoattack_linf"] = {**autoattack["autoattack_linf"], "eps": eps}

    # every budget and the adaptive attacks for the table models of the first eval.full_seeds seeds
    # (all seeds without it); the others get the middle budgets, all that the figures and claims read
    full_seeds = set(_first(seeds, config["eval"].get("full_seeds")))

    def attacks(training: TrainConfig) -> dict[str, Any]:
        key = training.hash
        if "adversarial" in outputs[key]:
            return autoattack
        if "table" in outputs[key] and training.seed in full_seeds:
            return adaptive
        return middle_budgets(config["attacks"])

    runs = {t.hash: Run(names[t.hash], t, attacks(t), embed if "fig3" in outputs[t.hash] else {},
                        outputs[t.hash]) for _, _, t in declared}
    by_output = {o: tuple(dict.fromkeys(runs[t.hash] for out, _, t in declared if out == o)) for o in OUTPUTS}
    return Plan(tuple(runs.values()), by_output)
