"""Per-model CSV records gathered into tidy tables: evaluation labels and their reading order,
the robustness table, Markdown. Plotting (``figures``) and statistics (``report``) both read these;
nothing here draws."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Iterable

import pandas as pd

from abcl import ABCLError
from abcl.records import atomic_path, read_csv

NORM_SYMBOL = {"linf": "L∞", "l2": "L2", "none": ""}
ATTACK_NAMES = {"fgsm": "FGSM", "bim": "BIM", "pgd": "PGD", "apgd_ce": "APGD-CE", "apgd_dlr": "APGD-DLR",
                "square": "Square", "autoattack": "AutoAttack", "worst_case": "worst case"}
ATTACK_ORDER = [("clean", "none")] + [(attack, norm) for norm in ("linf", "l2") for attack in ATTACK_NAMES]
PAPER_ATTACKS = ("clean", "fgsm", "bim")  # Figs. 1 and 2 show the paper's attacks only


EVAL_COLUMNS = ("attack", "norm", "eps", "accuracy", "loss", "seed", "config_hash")  # of every evaluation CSV


def read_csvs(paths: Iterable[str | Path], columns: tuple[str, ...] = EVAL_COLUMNS,
              what: str = "an evaluation CSV (eval.csv)") -> pd.DataFrame:
    return pd.concat([read_csv(p, columns, what) for p in paths], ignore_index=True)


def parse_named(pairs: Iterable[str]) -> dict[str, list[str]]:
    """``NAME=PATH`` arguments as name -> paths (one path per seed), in the order given."""
    named: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name:
            raise ABCLError(f"expected NAME=PATH, got '{pair}'")
        named.setdefault(name, []).append(path)
    return named


def read_named_csvs(pairs: Iterable[str]) -> pd.DataFrame:
    """The CSVs of ``NAME=PATH`` arguments, each row labelled with its model's display name (the
    experiment plan's), refusing inputs where one name and seed hold two configurations."""
    frames = [read_csv(path, EVAL_COLUMNS, "an evaluation CSV (eval.csv)").assign(model=name)
              for name, paths in parse_named(pairs).items() for path in paths]
    frame = pd.concat(frames, ignore_index=True)
    clash = frame.groupby(["model", "seed"]).config_hash.nunique() > 1
    if clash.any():
        model, seed = clash[clash].index[0]
        raise ABCLError(f"two configurations of {model} seed {seed} among the inputs")
    duplicated = frame.duplicated(["model", "seed", "attack", "norm", "eps"]) if "attack" in frame else None
    if duplicated is not None and duplicated.any():
        row = frame[duplicated].iloc[0]
        raise ABCLError(f"two evaluations of {row.model} seed {row.seed} at {row.attack} {row.norm} {row.eps:g}: "
                        "a file is given twice")
    return frame


def save_correct(correct: dict[str, "np.ndarray"], config_hash: str, path: str | Path) -> None:
    """A model's per-image results as one compressed .npz: a boolean array per evaluation key."""
    import numpy as np
    with atomic_path(path) as part:
        with open(part, "wb") as handle:
            np.savez_compressed(handle, config_hash=np.array(config_hash), **correct)


def load_correct(path: str | Path) -> tuple[str, dict[str, "np.ndarray"]]:
    """A model's correct.npz: (config hash, evaluation key -> which test images it got right)."""
    import numpy as np
    try:
        with np.load(path, allow_pickle=False) as blob:
            return str(blob["config_hash"]), {k: blob[k] for k in blob.files if k != "config_hash"}
    except FileNotFoundError:
        raise ABCLError(f"{path}: file not found") from None
    except (OSError, ValueError, KeyError) as err:
        raise ABCLError(f"{path}: not a per-image results file (correct.npz) ({type(err).__name__})") from None


def split_method(model: str) -> tuple[str, str]:
    """'ABCL PGD-AT' -> ('ABCL', 'PGD-AT'): how the plan names an adversarially trained model."""
    base, _, method = model.rpartition(" ")
    return base, method


# the original AutoAttack's budget (Croce and Hein 2020): "standard" means this, and nothing less
STANDARD_AUTOATTACK = {"steps": 100, "queries": 5000}


def autoattack_budget(steps: int, queries: int) -> str:
    if steps >= STANDARD_AUTOATTACK["steps"] and queries >= STANDARD_AUTOATTACK["queries"]:
        return "standard"
    return f"{steps:g} it., {queries:g} q."


def evaluation_label(attack: str, norm: str, eps: float, steps: int | None = None, queries: int | None = None) -> str:
    """'BIM L∞ ε=0.2'; an AutoAttack label also carries its budget, e.g. 'AutoAttack L∞ ε=0.2
    (10 it., 500 q.)' or '(standard)' at the original 100 iterations and 5,000 queries."""
    if attack == "clean":
        return "clean"
    label = f"{ATTACK_NAMES[attack]} {NORM_SYMBOL[norm]} ε={eps:g}"
    if attack == "autoattack" and steps is not None and queries is not None and not pd.isna(queries):
        label += f" ({autoattack_budget(int(steps), int(queries))})"
    return label


def with_evaluation(frame: pd.DataFrame) -> pd.DataFrame:
    if "evaluation" in frame:  # labelled already: the labels stand, the accuracy may have been swapped
        return frame.assign(accuracy_pct=100 * frame.accuracy)
    steps = frame.steps if "steps" in frame else [None] * len(frame)
    queries = frame.queries if "queries" in frame else [None] * len(frame)
    labels = [evaluation_label(*row) for row in zip(frame.attack, frame.norm, frame.eps, steps, queries)]
    return frame.assign(evaluation=labels, accuracy_pct=100 * frame.accuracy)


def ordered_evaluations(frame: pd.DataFrame, middle_only: bool = False) -> list[str]:
    """Evaluation labels in reading order: clean, FGSM L∞, BIM L∞, FGSM L2, BIM L2, budgets rising.
    With ``middle_only`` each attack keeps only its middle budget."""
    labelled = with_evaluation(frame)
    found = set(zip(labelled.attack, labelled.norm, labelled.eps, labelled.evaluation))
    labels = []
    for attack, norm in ATTACK_ORDER:
        mine = sorted((eps, label) for a, n, eps, label in found if (a, n) == (attack, norm))
        budgets = sorted({eps for eps, _ in mine})
        if middle_only and budgets:
            budgets = [budgets[len(budgets) // 2]]
        labels += list(dict.fromkeys(label for eps, label in mine if eps in budgets))
    return labels


def percent(fraction: float) -> str:
    """A fraction as a percentage with one decimal, rounded half up on its decimal value: the same
    mean shows the same digits wherever it is printed (README, table.md, claims.md), whether it was
    averaged as a fraction or as a percentage (0.9685 and 96.85 both show 96.9)."""
    if not math.isfinite(fraction):  # no value (e.g. an interval of one seed): printed as it is
        return f"{100 * fraction:.1f}"
    return str(Decimal(repr(round(100 * float(fraction), 9))).quantize(Decimal("0.1"), ROUND_HALF_UP))


def robustness_table(frame: pd.DataFrame, masking: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean ± s.d. over seeds of clean and per-attack accuracy (%), one row per model in the
    order of ``frame``; with a masking report, a last column lists each model's flags."""
    frame = with_evaluation(frame)
    stats = frame.groupby(["model", "evaluation"], sort=False).accuracy.agg(["mean", "std", "count"])
    seeds = stats["count"].groupby("model").max()

    def cell(r: pd.Series) -> str:
        fewer = f" ({int(r['count'])} seed{'s' if r['count'] > 1 else ''})" if r["count"] < seeds[r.name[0]] else ""
        return percent(r["mean"]) + ("" if r["count"] < 2 else f" ± {100 * r['std']:.1f}") + fewer
    table = stats.apply(cell, axis=1).unstack("evaluation")
    order = list(dict.fromkeys(frame.model))
    table = table.loc[order, ordered_evaluations(frame)].fillna("")
    table.insert(0, "seeds", seeds.loc[order].astype(int))
    if masking is not None:
        flags = masking.groupby("model")["flags"].agg(lambda f: "; ".join(sorted({x for x in f.fillna("") if x})))
        table["masking flags"] = [flags.get(model, "") or "none" for model in table.index]
    return table.rename_axis("model").reset_index()


def _images(counts) -> str:
    counts = sorted({int(c) for c in counts})
    return f"{counts[0]:,}" if len(counts) == 1 else " or ".join(f"{c:,}" for c in counts)


def robustness_tables(frame: pd.DataFrame, masking: pd.DataFrame | None = None) -> list[tuple[str, pd.DataFrame]]:
    """The robustness table as (heading, table) pairs, each heading saying on how many test images
    its numbers were computed: clean and the paper's attacks on every evaluated image (all seeds);
    then, where adaptive attacks ran (on the first ``eval.adaptive_n_test`` images of the first
    ``eval.adaptive_seeds`` seeds), every attack's accuracy on those same images beside the worst
    case over them, so that no worst case exceeds an attack it includes."""
    paper = frame[frame.attack.isin(PAPER_ATTACKS)]
    tables = [(f"Clean and the paper's attacks on the first {_images(paper.n)} test images, mean ± s.d. over seeds.",
               robustness_table(paper, masking))]
    adaptive = frame[~frame.attack.isin([*PAPER_ATTACKS, "worst_case"])]
    if len(adaptive):
        ran = set(zip(adaptive.model, adaptive.seed))
        common = frame[[pair in ran for pair in zip(frame.model, frame.seed)]]
        common = common.assign(accuracy=common.common_accuracy, n=common.n_common)
        seeds = sorted(common.seed.unique())
        tables.append((f"Every attack on the first {_images(common.n)} test images, which all of them saw "
                       f"(seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}). Worst case: an image counts as "
                       "robust only if it survives every attack at that budget or a smaller one of the same norm, "
                       "so it never rises with ε and never exceeds an attack it includes.",
                       robustness_table(common)))
    return tables


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table; cells exactly as given (no number re-formatting)."""
    return frame.to_markdown(index=False, disable_numparse=True) + "\n"


def compact_markdown(frame: pd.DataFrame) -> str:
    """The same table without the padding that aligns its columns in plain text: README's
    generated block, where every byte counts against its size limit, renders the same."""
    rows = [list(frame.columns), ["---"] * len(frame.columns), *frame.astype(str).values.tolist()]
    return "".join("| " + " | ".join(map(str, row)) + " |\n" for row in rows)


def tables_markdown(tables: list[tuple[str, pd.DataFrame]]) -> str:
    return "\n".join(f"{heading} Accuracy (%).\n\n{markdown(table)}" for heading, table in tables)


def write_table_md(tables: list[tuple[str, pd.DataFrame]], md_path: str | Path) -> None:
    with atomic_path(md_path) as part:
        part.write_text(tables_markdown(tables))
