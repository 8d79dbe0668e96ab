"""Gradient-masking report, the computed verdicts on the paper's claims (results/claims.md) and
the leaderboard. The statistics (intervals, comparisons with the seed as the unit, Holm, the
verdict rule) live in :mod:`abcl.statistics`; this module decides what each claim compares.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from abcl import ABCLError
from abcl.config import ABCL, COSFACE, HT_SCE, SCE, evaluation_key
from abcl.statistics import (ALPHA, NOT_WORSE, SUPERIOR, Comparison, Verdict, compare_seeds, mcnemar, rule,
                             summarize, verdict)
from abcl.tables import (PAPER_ATTACKS, STANDARD_AUTOATTACK, autoattack_budget, load_correct, markdown,
                         ordered_evaluations, robustness_tables, split_method, tables_markdown, with_evaluation)

PAPER_NAMES = ("fgsm", "bim")
MARGIN_POINTS = 2.0  # the equivalence margin of a "not worse" comparison, in accuracy points


def accuracy_stats(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by`` and evaluation: mean, s.d., 95% CI and seed count of the accuracy."""
    frame = with_evaluation(frame)
    rows = []
    for key, group in frame.groupby([*by, "evaluation"], sort=False):
        rows.append({**dict(zip([*by, "evaluation"], key)), **summarize(group.accuracy, int(group.n.iloc[0]))})
    return pd.DataFrame(rows)


# (config hash, evaluation key) -> which test images the model got right
Correct = dict[tuple[str, str], np.ndarray]


def load_corrects(paths: list[str]) -> Correct:
    found: Correct = {}
    for path in paths:
        config_hash, arrays = load_correct(path)
        found.update({(config_hash, key): values for key, values in arrays.items()})
    return found


def compare_accuracy(label: str, a: pd.DataFrame, b: pd.DataFrame, correct: Correct, kind: str = SUPERIOR,
                     margin: float = 0.0) -> Comparison:
    """Model a vs model b at one evaluation (``a``, ``b``: its rows, one per seed): over the
    common seeds when there are two or more, else McNemar on the one seed's test images."""
    seeds = sorted(set(a.seed) & set(b.seed))
    if not seeds:
        raise ABCLError(f"{label}: the two models share no seed")
    if len(seeds) >= 2:
        return compare_seeds(label, a.set_index("seed").accuracy, b.set_index("seed").accuracy, kind, margin)
    row_a, row_b = a[a.seed == seeds[0]].iloc[0], b[b.seed == seeds[0]].iloc[0]
    key = evaluation_key(row_a.attack, row_a.norm, row_a.eps)
    try:
        right_a, right_b = correct[(row_a.config_hash, key)], correct[(row_b.config_hash, key)]
    except KeyError as missing:
        raise ABCLError(f"no per-image results for {missing.args[0]}: pass the models' correct.npz files") from None
    return mcnemar(label, right_a, right_b, kind, margin)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _interval(row) -> str:
    return f"{_pct(row['mean'])} [{_pct(row['ci95_low'])}, {_pct(row['ci95_high'])}]"


def _difference(c: Comparison) -> str:
    if c.one_seed:
        return f"{100 * c.diff:+.1f}"
    return f"{100 * c.diff:+.1f} [{100 * c.low:+.1f}, {100 * c.high:+.1f}]"


def comparison_rows(comparisons: list[Comparison], found: Verdict) -> pd.DataFrame:
    """One row per comparison: what, the kind, the difference in points, the test, its p for the
    claim and its Holm-adjusted p against it (each read at alpha / 2)."""
    return pd.DataFrame([{
        "comparison": c.label,
        "kind": c.kind if c.kind == SUPERIOR else f"{c.kind} (δ = {100 * c.margin:g} points)",
        "A − B, points [95% CI]": _difference(c), "test": c.test,
        "p for": f"{found.support[i]:.2g}", "p against (Holm)": f"{found.against_adjusted[i]:.2g}",
        "reads": found.row_outcome(i),
    } for i, c in enumerate(comparisons)])


class Claim(NamedTuple):
    statement: str
    outcome: str  # SUPPORTED, CONTRADICTED or NOT SHOWN
    body: str  # Markdown: what is compared, why the verdict, the numbers and each test
    comparisons: list[Comparison]


def _claim(statement: str, planned: str, comparisons: list[Comparison], accuracies: pd.DataFrame | None,
           alpha: float, note: str = "", shown: str = "Accuracy (%), mean [95% CI] over seeds") -> Claim:
    """A claim's section: the pre-specified comparisons, the numbers, each test and the verdict."""
    found = verdict(comparisons, alpha)
    body = [f"*Compared (fixed before the run):* {planned}\n", f"*Why:* {found.reason}.\n"]
    if note:
        body.append(note)
    if accuracies is not None and len(accuracies):
        body.append(f"{shown}:\n\n" + markdown(accuracies))
    if comparisons:
        body.append(markdown(comparison_rows(comparisons, found)))
    return Claim(statement, found.outcome, "\n".join(body), comparisons)


# ---------------------------------------------------------------- gradient masking
def masking_report(evals: pd.DataFrame, gradients: pd.DataFrame, gap_points: float,
                   max_vanished_fraction: float) -> pd.DataFrame:
    """One row per model (``evals`` labelled by ``model``) with the signs of gradient masking, each a named flag."""
    gap = gap_points / 100
    # compare attacks on the images all of them saw (adaptive attacks may see only a prefix)
    compared = "common_accuracy" if "common_accuracy" in evals else "accuracy"
    rows = []
    for config_hash, group in evals.groupby("config_hash", sort=False):
        acc = group.set_index(["attack", "norm", "eps"]).accuracy
        matching = gradients[gradients.config_hash == config_hash]
        if matching.empty:
            row = group.iloc[0]
            raise ABCLError(f"no gradient CSV of {row.model} seed {row.seed} (config {config_hash}) among the "
                            "inputs: give each model's eval.csv and gradients.csv")
        grads = matching.iloc[0]
        flags = []
        if grads.frac_vanished_gradient > max_vanished_fraction:
            flags.append(f"vanished gradient on {100 * grads.frac_vanished_gradient:.0f}% of inputs")
        for (norm, eps), budget in group[group.attack != "clean"].groupby(["norm", "eps"]):
            at = budget.set_index("attack")[compared]
            if {"fgsm", "bim"} <= set(at.index) and at["fgsm"] < at["bim"] - gap:
                flags.append(f"FGSM beats BIM ({norm} eps={eps:g})")
            # DLR is invariant to the logit scale; CE saturates with it. DLR far stronger than CE is
            # the signature of masked CE gradients (CE stronger than DLR is common and benign).
            if {"apgd_ce", "apgd_dlr"} <= set(at.index) and at["apgd_dlr"] < at["apgd_ce"] - gap:
                flags.append(f"APGD-DLR beats APGD-CE by >{gap_points:g} points ({norm} eps={eps:g})")
            # Square reads logits only: beating every gradient attack means the gradients mislead them
            gradient = at[at.index.isin([*PAPER_NAMES, "pgd", "apgd_ce", "apgd_dlr"])]
            if "square" in at.index and len(gradient) and at["square"] < gradient.min() - gap:
                flags.append(f"Square (gradient-free) beats every gradient attack by >{gap_points:g} points "
                             f"({norm} eps={eps:g})")
            paper = at[at.index.isin(PAPER_NAMES)]
            adaptive = at[~at.index.isin([*PAPER_NAMES, "worst_case"])]
            if len(paper) and len(adaptive) and adaptive.min() < paper.min() - gap:
                flags.append(f"FGSM/BIM overestimate robustness: an adaptive attack is >{gap_points:g} points "
                             f"stronger ({norm} eps={eps:g})")
        first = group.iloc[0]
        checked, too_weak = autoattack_budget_check(group, compared)
        rows.append({
            "model": first.model, "loss": first.loss, "s": first.s,
            "k1": first.k1, "k2": first.k2, "seed": first.seed, "config_hash": config_hash,
            "clean_accuracy": acc[("clean", "none", 0.0)],
            "frac_vanished_gradient": grads.frac_vanished_gradient,
            "median_gradient_norm": grads.median_gradient_norm,
            "masking_suspected": bool(flags), "flags": "; ".join(flags),
            "autoattack_budget_check": checked, "autoattack_weaker_than_apgd_ce": too_weak,
        })
    return pd.DataFrame(rows)


def autoattack_budget_check(group: pd.DataFrame, compared: str = "accuracy") -> tuple[str, bool]:
    """Is the run's AutoAttack at least as strong as APGD-CE alone at the standard 100 iterations,
    on the same images, at each budget where both ran? (AutoAttack at its standard budget runs that
    APGD-CE first, so a reduced AutoAttack weaker than it overestimates robustness.) Returns the
    comparison in words and whether AutoAttack was weaker anywhere."""
    found, weaker = [], False
    for (norm, eps), budget in group[group.attack.isin(["autoattack", "apgd_ce"])].groupby(["norm", "eps"]):
        at = budget.set_index("attack")
        if not {"autoattack", "apgd_ce"} <= set(at.index):
            continue
        ce, aa = at.loc["apgd_ce"], at.loc["autoattack"]
        if ce.steps < STANDARD_AUTOATTACK["steps"]:
            continue
        queries = aa.queries if "queries" in aa else float("nan")
        label = autoattack_budget(int(aa.steps), int(queries)) if not pd.isna(queries) else f"{aa.steps:g} it."
        gap = 100 * (aa[compared] - ce[compared])
        weaker |= gap > 0
        found.append(f"{norm} ε={eps:g}: AutoAttack ({label}) {_pct(aa[compared])}% vs APGD-CE "
                     f"({ce.steps:g} it.) {_pct(ce[compared])}%" + (f", weaker by {gap:.1f} points" if gap > 0 else ""))
    return ("; ".join(found) or "not run (no APGD-CE at 100 iterations beside AutoAttack)"), weaker



# ---------------------------------------------------------------- claims
def _accuracy_grid(frame: pd.DataFrame, by: str, evaluations: list[str], name=str) -> pd.DataFrame:
    """Accuracy (%) with its 95% CI: a row per value of ``by``, a column per evaluation."""
    table = accuracy_stats(frame[frame.evaluation.isin(evaluations)], [by])
    cells = {(row[by], row.evaluation): _interval(row) for _, row in table.iterrows()}
    return pd.DataFrame([{by: name(value), **{e: cells.get((value, e), "") for e in evaluations}}
                         for value in dict.fromkeys(table[by])])


def _runs(frame: pd.DataFrame, evaluation: str, **match) -> pd.DataFrame:
    keep = frame.evaluation == evaluation
    for column, value in match.items():
        keep &= frame[column] == value
    return frame[keep]


def _listing(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def claim_scale(fig2: pd.DataFrame, correct: Correct, alpha: float = ALPHA,
                margin_points: float = MARGIN_POINTS) -> Claim:
    """Claim 1: with the Cos-SCE basis, s = 4-5 is best and s > 8 degrades. Pre-specified: the
    grid's s in [4, 5] (the one nearest 4.5) against each s > 8 (superiority) and against every
    other s (not worse by more than the margin), at the middle budget of each attack and clean."""
    text = ("Claim 1 (Fig. 2): with the SCE-based (Cos-SCE) basis, accuracy falls as s grows past ~5; "
            "s = 4-5 is best; s > 8 degrades.")
    fig2 = with_evaluation(fig2[(fig2.loss == "cos_sce") & fig2.attack.isin(PAPER_ATTACKS)])
    scales = sorted(fig2.s.unique())
    mid = min((s for s in scales if 4 <= s <= 5), key=lambda s: (abs(s - 4.5), s), default=None)
    high = [s for s in scales if s > 8]
    if mid is None or not high:
        return _claim(text, f"needs a grid value of s in [4, 5] and one above 8; this grid has s = {_listing(scales)}",
                      [], None, alpha)
    others = [s for s in scales if s != mid and s not in high]
    evaluations = ordered_evaluations(fig2, middle_only=True)
    planned = (f"s = {mid:g} against each s > 8 ({_listing(high)}): higher; "
               + (f"against every other s ({_listing(others)}): not worse by more than {margin_points:g} points; "
                  if others else "")
               + f"at {', '.join(evaluations)}.")
    comparisons = []
    for evaluation in evaluations:
        ours = _runs(fig2, evaluation, s=mid)
        comparisons += [compare_accuracy(f"s={mid:g} vs s={s:g}, {evaluation}", ours, _runs(fig2, evaluation, s=s),
                                         correct) for s in high]
        comparisons += [compare_accuracy(f"s={mid:g} vs s={s:g}, {evaluation}", ours, _runs(fig2, evaluation, s=s),
                                         correct, NOT_WORSE, margin_points / 100) for s in others]
    grid = _accuracy_grid(fig2, "s", evaluations, name=lambda s: f"{s:g}")
    return _claim(text, planned, comparisons, grid, alpha)


def claim_ab_repairs(fig1: pd.DataFrame, correct: Correct, alpha: float = ALPHA) -> Claim:
    """Claim 2: plain HT-SCE (0, 0) degrades and ABCL's AB terms repair it. Pre-specified: ABCL's
    (k1, k2) against (0, 0), superiority, at the middle budget of each attack and clean.
    ``fig1`` is labelled by model: the plan names the (0, 0) run HT-SCE and the chosen one ABCL."""
    named = fig1.drop_duplicates("model").set_index("model")
    if not {HT_SCE, ABCL} <= set(named.index):
        return _claim("Claim 2 (Fig. 1): HT-SCE at (k1, k2) = (0, 0) degrades; adding the AB terms repairs it.",
                      "ABCL's (k1, k2) against (0, 0); this configuration's Fig. 1 grid lacks one of them", [], None,
                      alpha)
    k1, k2 = named.loc[ABCL, "k1"], named.loc[ABCL, "k2"]
    text = f"Claim 2 (Fig. 1): HT-SCE at (k1, k2) = (0, 0) degrades; the AB terms at ({k1:g}, {k2:g}) repair it."
    fig1 = with_evaluation(fig1[(fig1.loss == "ht_sce") & fig1.attack.isin(PAPER_ATTACKS)])
    evaluations = ordered_evaluations(fig1, middle_only=True)
    planned = f"ABCL ({k1:g}, {k2:g}) against HT-SCE (0, 0): higher, at {', '.join(evaluations)}."
    comparisons = [compare_accuracy(f"ABCL vs HT-SCE, {e}", _runs(fig1, e, model=ABCL), _runs(fig1, e, model=HT_SCE),
                                    correct) for e in evaluations]
    grid = _accuracy_grid(fig1.assign(setting=[f"{a:g}/{b:g}" for a, b in zip(fig1.k1, fig1.k2)]), "setting",
                          evaluations)
    return _claim(text, planned, comparisons, grid.rename(columns={"setting": "k1/k2"}), alpha)


SEPARATION_PAIRS = ((COSFACE, SCE), (ABCL, SCE), (ABCL, COSFACE))


def claim_separation(scores: pd.DataFrame, knn_correct: dict[tuple[str, str], np.ndarray] | None = None,
                     alpha: float = ALPHA) -> Claim:
    """Claim 3: CosFace and ABCL features separate classes better than SCE, ABCL better than
    CosFace, on every set. Pre-specified: the k-NN accuracy in the t-SNE plane (the figure's
    reading), for the three pairs on each set. ``scores`` (separability, labelled by model, with
    a seed column) gives per-seed accuracies; with one seed, ``knn_correct`` ((model, set) -> which
    points k-NN got right, the same points for every model) gives McNemar's test on the points.
    The silhouette of the 10-dim features is shown, not tested."""
    text = ("Claim 3 (Fig. 3): CosFace and ABCL features separate classes better than SCE; ABCL shows fewer "
            "overlaps than CosFace, also on the adversarial sets.")
    scores = scores.assign(seed=scores.seed if "seed" in scores else 0)
    sets = [s for s in dict.fromkeys(scores["set"])
            if all(((scores.model == m) & (scores["set"] == s)).any() for m in (SCE, COSFACE, ABCL))]
    planned = ("k-NN accuracy (5 neighbours, cross-validated) in each model's t-SNE plane, on "
               f"{', '.join(sets) or 'no set'}: CosFace > SCE, ABCL > SCE, ABCL > CosFace.")
    comparisons = []
    for set_name in sets:
        part = scores[scores["set"] == set_name]
        for x, y in SEPARATION_PAIRS:
            a, b = (part[part.model == m].set_index("seed").tsne_knn_accuracy for m in (x, y))
            label = f"{x} vs {y}, {set_name}"
            if len(set(a.index) & set(b.index)) >= 2:
                comparisons.append(compare_seeds(label, a, b))
            elif knn_correct is not None and (x, set_name) in knn_correct and (y, set_name) in knn_correct:
                comparisons.append(mcnemar(label, knn_correct[(x, set_name)], knn_correct[(y, set_name)]))
            else:
                raise ABCLError(f"claim 3 with one seed compares points: pass the t-SNE embeddings of {x} and {y}")
    shown = scores[scores["set"].isin(sets)].groupby(["model", "set"], sort=False).agg(
        knn=("tsne_knn_accuracy", "mean"), silhouette=("silhouette", "mean"), seeds=("seed", "nunique"))
    accuracies = pd.DataFrame([{"set": s, **{f"{m} kNN % (silhouette)": f"{_pct(shown.loc[(m, s), 'knn'])} "
                                             f"({shown.loc[(m, s), 'silhouette']:.2f})" for m in (SCE, COSFACE, ABCL)}}
                               for s in sets])
    return _claim(text, planned, comparisons, accuracies, alpha,
                  shown="k-NN accuracy in the t-SNE plane (%) and silhouette of the features, mean over seeds")


def _masking_note(masking: pd.DataFrame | None, models: tuple[str, ...]) -> str:
    """The compared models' masking flags, named beside a verdict built on FGSM/BIM."""
    if masking is None or not len(masking):
        return ""
    flagged = masking[masking.model.isin(models) & masking.masking_suspected]
    if not len(flagged):
        return "*Masking:* none of the compared models shows a masking flag.\n"
    lines = [f"- {row.model} seed {row.seed}: {row.flags}" for row in flagged.itertuples()]
    return ("*Masking:* FGSM and BIM may overestimate the robustness of these models (masking.csv), so a "
            "verdict on FGSM/BIM alone may not stand under stronger attacks:\n\n" + "\n".join(lines) + "\n")


def claim_robustness(table_evals: pd.DataFrame, correct: Correct, masking: pd.DataFrame | None = None,
                     alpha: float = ALPHA) -> Claim:
    """Claim 4: ABCL is more robust to FGSM and BIM than SCE and CosFace (``table_evals``
    labelled by model). Pre-specified: ABCL against each, superiority, at the middle budget of
    FGSM and BIM under each norm."""
    text = "Claim 4 (table): ABCL is more robust to FGSM and BIM than SCE and CosFace."
    frame = with_evaluation(table_evals[table_evals.attack.isin(PAPER_NAMES)])
    evaluations = ordered_evaluations(frame, middle_only=True)
    planned = f"ABCL against SCE and against CosFace: higher, at {', '.join(evaluations)}."
    comparisons = [compare_accuracy(f"ABCL vs {other}, {e}", _runs(frame, e, model=ABCL), _runs(frame, e, model=other),
                                    correct)
                   for e in evaluations for other in (SCE, COSFACE)
                   if {ABCL, other} <= set(frame.model[frame.evaluation == e])]
    grid = _accuracy_grid(frame[frame.model.isin([SCE, COSFACE, ABCL])], "model", evaluations)
    return _claim(text, planned, comparisons, grid, alpha, _masking_note(masking, (SCE, COSFACE, ABCL)))


FULL_TRAIN_SIZE = 60_000  # MNIST's and Fashion-MNIST's training sets


def data_note(dataset: str, n_train: int) -> str:
    """What a reader must know when the models saw fewer training images than the full dataset."""
    if n_train >= FULL_TRAIN_SIZE:
        return ""
    return (f"**Subset.** These models trained on {n_train:,} images ({dataset}), not the full {FULL_TRAIN_SIZE:,}. "
            "Verdicts that compare losses can change with training-set size: config/cpu-full.yaml runs the same "
            "nets, grids and attacks on full MNIST on a CPU (docs/evaluation.md: \"What each configuration can show\").\n")


ADVERSARIAL_CLAIM = "Claim 5 (ours, beyond the paper): ABCL adds robustness on top of adversarial training."


def claim_adversarial(evals: pd.DataFrame, correct: Correct, alpha: float = ALPHA) -> Claim:
    """Claim 5: under each training method, ABCL is more robust than every other loss trained the
    same way. Pre-specified: ABCL against each, superiority, under AutoAttack L∞ at each of its
    budgets (the paper's BIM L∞ where no AutoAttack ran)."""
    strongest = "autoattack" if (evals.attack == "autoattack").any() else "bim"
    frame = with_evaluation(evals[(evals.attack == strongest) & (evals.norm == "linf")])
    frame = frame.assign(base=[split_method(m)[0] for m in frame.model], method=[split_method(m)[1] for m in frame.model])
    evaluations = ordered_evaluations(frame)
    comparisons, methods = [], []
    for method in dict.fromkeys(frame.method):
        others = [b for b in dict.fromkeys(frame.base[frame.method == method]) if b != ABCL]
        if ABCL not in set(frame.base[frame.method == method]):
            continue
        methods.append(method)
        comparisons += [compare_accuracy(f"ABCL vs {other} ({method}), {e}", _runs(frame, e, model=f"{ABCL} {method}"),
                                         _runs(frame, e, model=f"{other} {method}"), correct)
                        for e in evaluations for other in others]
    planned = (f"under each training method ({', '.join(methods) or 'none'}), ABCL against every other loss "
               f"trained the same way: higher, at {', '.join(evaluations)}.")
    grid = _accuracy_grid(frame, "model", evaluations)
    return _claim(ADVERSARIAL_CLAIM, planned, comparisons, grid, alpha)


def adversarial_report(evals: pd.DataFrame, correct: Correct, alpha: float = ALPHA) -> str:
    """adversarial.md: the adversarially trained models' table and claim 5's verdict."""
    first = evals.iloc[0]
    statement, outcome, body, _ = claim_adversarial(evals, correct, alpha)
    return ("# Adversarial training with each loss\n\n"
            f"Trained on L∞ adversarial examples (ε = {first.adv_eps:g}, {int(first.adv_steps)} steps of "
            f"{first.adv_step_size:g}) for {int(first.epochs)} epochs; {int(evals.seed.nunique())} seed(s), "
            f"{int(first.n)} test images, dataset {first.dataset}, net {first.arch}. {TRAINING_LENGTH_NOTE} "
            "Accuracy (%) on the test set, mean ± s.d. over seeds.\n\n"
            + tables_markdown(robustness_tables(evals))
            + f"\n## {statement}\n\n**Verdict: {outcome}**\n\n{rule(alpha)}\n{body}")


# how long the references train their robust MNIST models: ours are far shorter
TRAINING_LENGTH_NOTE = ("The references train far longer: Madry et al.'s MNIST model ≈ 83 epochs (100,000 "
                        "iterations of 50 images), TRADES' 100 epochs; robust accuracy here is that of short training.")


def claims_report(fig1: pd.DataFrame, fig2: pd.DataFrame, table_evals: pd.DataFrame, scores: pd.DataFrame,
                  masking: pd.DataFrame | None, correct: Correct, data_note: str = "",
                  adversarial: pd.DataFrame | None = None, adversarial_note: str = "",
                  knn_correct: dict[tuple[str, str], np.ndarray] | None = None, alpha: float = ALPHA,
                  margin_points: float = MARGIN_POINTS) -> str:
    """claims.md; ``fig1``, ``table_evals`` and ``adversarial`` labelled by model (the plan's
    names), ``correct`` the models' per-image results for one-seed comparisons. Without
    adversarial evaluations claim 5 shows ``adversarial_note`` (where it is built) instead."""
    sections = [claim_scale(fig2, correct, alpha, margin_points), claim_ab_repairs(fig1, correct, alpha),
                claim_separation(scores, knn_correct, alpha), claim_robustness(table_evals, correct, masking, alpha)]
    if adversarial is not None:
        sections.append(claim_adversarial(adversarial, correct, alpha))
    seeds = sorted(table_evals.seed.unique())
    n_test = int(table_evals.n[table_evals.attack == "clean"].iloc[0])
    parts = [
        "# Do our runs reproduce the paper's claims?\n",
        f"Generated by the workflow from {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), {n_test} test "
        f"images per evaluation, dataset {table_evals.dataset.iloc[0]}, net {table_evals.arch.iloc[0]}. "
        "Accuracies in %, with 95% confidence intervals in brackets (t-interval over seeds; Wilson interval over "
        "test images when there is one seed).\n",
        rule(alpha),
        *([data_note] if data_note else []),
    ]
    for statement, outcome, body, _ in sections:
        parts.append(f"## {statement}\n\n**Verdict: {outcome}**\n\n{body}")
    if adversarial is None and adversarial_note:
        parts.append(f"## {ADVERSARIAL_CLAIM}\n\n**Verdict: NOT RUN in this target.** {adversarial_note}\n")
    if masking is not None and len(masking):
        flagged = masking[masking.masking_suspected]
        parts.append("## Gradient masking\n\n" + (
            f"{len(flagged)} of {len(masking)} models show signs of gradient masking:\n\n"
            + markdown(flagged[["model", "seed", "flags"]]) if len(flagged)
            else f"None of the {len(masking)} models shows signs of gradient masking "
                 "(vanished input gradients, FGSM beating BIM, CE/DLR disagreement, adaptive attacks far "
                 "stronger than FGSM/BIM).\n") + _budget_note(masking))
    return "\n".join(parts)


def _budget_note(masking: pd.DataFrame) -> str:
    if "autoattack_weaker_than_apgd_ce" not in masking:
        return ""
    weak = masking[masking.autoattack_weaker_than_apgd_ce.astype(bool)]
    ran = int((~masking.autoattack_budget_check.fillna("").str.startswith("not run")).sum())
    if not ran:
        return ""
    if not len(weak):
        return ("\nAutoAttack's budget check (against APGD-CE alone at 100 iterations, same images): passed for every "
                "model where both ran (masking.csv, `autoattack_budget_check`).\n")
    return (f"\nAutoAttack's budget check: for {len(weak)} of the {ran} models where it ran, the run's AutoAttack is "
            "weaker than APGD-CE alone at 100 iterations on the same images, so its robust accuracy is an "
            "overestimate:\n\n"
            + markdown(weak[["model", "seed", "autoattack_budget_check"]]))


def stats_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table: model x evaluation with mean, s.d., 95% CI (fractions), the seed count and the
    test images behind each accuracy (``n_images``)."""
    table = accuracy_stats(frame, ["model"]).drop(columns="half")
    images = with_evaluation(frame).groupby(["model", "evaluation"], sort=False).n.max()
    table["n_images"] = [int(images[(m, e)]) for m, e in zip(table.model, table.evaluation)]
    order = {e: i for i, e in enumerate(ordered_evaluations(frame))}
    return table.sort_values("evaluation", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- leaderboard
def _training_loss(row: pd.Series) -> str:
    if row.loss == "sce":
        return "sce"
    text = f"{row.loss} s={row.s:g}" + (f" m={row.m:g}" if row.m else "")
    return text + (f" + AB k1={row.k1:g} k2={row.k2:g}" if row.k1 or row.k2 else "")


def _autoattack_budgets(attacked: pd.DataFrame) -> str:
    """The AutoAttack budgets a leaderboard shows, in words."""
    if not len(attacked) or "queries" not in attacked or attacked.queries.isna().any():
        return "the budget in each column" if len(attacked) else "no AutoAttack ran"
    budgets = sorted({autoattack_budget(int(st), int(q)) for st, q in zip(attacked.steps, attacked.queries)})
    if budgets == ["standard"]:
        return (f"the standard budget ({STANDARD_AUTOATTACK['steps']} iterations, "
                f"{STANDARD_AUTOATTACK['queries']} Square queries)")
    return (f"a reduced budget ({', '.join(budgets)}; the standard is {STANDARD_AUTOATTACK['steps']} iterations "
            f"and {STANDARD_AUTOATTACK['queries']} queries), so it may overestimate robustness")


def leaderboard(evals: pd.DataFrame) -> pd.DataFrame:
    """One row per model in RobustBench's shape: model, architecture, training loss, clean accuracy
    and AutoAttack robust accuracy per threat model, budget and AutoAttack budget (mean and 95% CI
    over seeds, or Wilson over images with one seed, as fractions), seeds and test images of
    each; most robust first."""
    evals = with_evaluation(evals)
    attacked = evals[evals.attack == "autoattack"]
    columns = ordered_evaluations(attacked) if len(attacked) else []
    rows = []
    for model, group in evals.groupby("model", sort=False):
        first = group.iloc[0]
        mine = attacked[attacked.model == model]
        row = {"model": model, "architecture": first.arch, "training loss": _training_loss(first),
               "seeds": group.seed.nunique(), "test images": int(group.n[group.attack == "clean"].iloc[0]),
               "AutoAttack seeds": mine.seed.nunique(), "AutoAttack images": int(mine.n.iloc[0]) if len(mine) else 0}
        for name in ["clean", *columns]:
            at = group[group.evaluation == name]
            found = summarize(at.accuracy, int(at.n.iloc[0])) if len(at) else {}
            row.update({f"{name} {part}": found.get(key, float("nan"))
                        for part, key in (("mean", "mean"), ("ci95 low", "ci95_low"), ("ci95 high", "ci95_high"))})
        rows.append(row)
    table = pd.DataFrame(rows)
    first_robust = next((c for c in table.columns if c.startswith("AutoAttack") and c.endswith(" mean")), None)
    table = table.sort_values(first_robust, ascending=False, kind="stable") if first_robust else table
    table.attrs["budget"] = _autoattack_budgets(attacked)
    return table


def leaderboard_markdown(table: pd.DataFrame) -> str:
    """The leaderboard with accuracies in % and their 95% intervals in brackets."""
    shown = table[[c for c in table.columns if not c.endswith((" mean", " ci95 low", " ci95 high"))]].copy()
    for name in dict.fromkeys(c.removesuffix(" mean") for c in table.columns if c.endswith(" mean")):
        shown[f"{name} (%)"] = [f"{_pct(m)} [{_pct(lo)}, {_pct(hi)}]" for m, lo, hi in
                                zip(table[f"{name} mean"], table[f"{name} ci95 low"], table[f"{name} ci95 high"])]
    return ("Robust accuracy under AutoAttack (APGD-CE with the log-space cross-entropy, APGD-T, FAB-T, Square) "
            f"at {table.attrs.get('budget', 'the budget in each column')}; most robust first; 95% intervals over "
            "the AutoAttack seeds, or over test images with one seed.\n\n" + markdown(shown.astype(str)))


# ---------------------------------------------------------------- configurations side by side
SUMMARY_EVALUATIONS = ("clean", "FGSM L∞ ε=0.2", "BIM L∞ ε=0.2", "FGSM L2 ε=2", "BIM L2 ε=2", "AutoAttack L∞ ε=0.2")
_VERDICT = re.compile(r"^## (Claim \d+)[^\n]*\n\n\*\*Verdict: ([A-Z ]+)", re.M)


CLAIM_LABELS = {
    "Claim 1": "1 (Fig. 2): Cos-SCE best at s = 4-5, worse past 8",
    "Claim 2": "2 (Fig. 1): the AB terms (512/64) repair HT-SCE",
    "Claim 3": "3 (Fig. 3): CosFace and ABCL features separate classes better than SCE",
    "Claim 4": "4 (table): ABCL more robust to FGSM and BIM than SCE and CosFace",
    "Claim 5": "5 (ours): ABCL adds robustness on top of adversarial training",
}
README_BEGIN = "<!-- configurations: begin (generated by `make readme-configurations`) -->"
README_END = "<!-- configurations: end -->"


def claim_verdicts(claims_md: str) -> dict[str, str]:
    """'Claim N' -> its verdict, read back from a claims.md (or adversarial.md) this module wrote."""
    return {claim: verdict.strip() for claim, verdict in _VERDICT.findall(claims_md)}


def replace_generated_block(text: str, block: str) -> str:
    """``text`` with what lies between README_BEGIN and README_END replaced by ``block``."""
    if README_BEGIN not in text or README_END not in text:
        raise ABCLError(f"no generated block: the file must hold the lines {README_BEGIN} and {README_END}")
    head, rest = text.split(README_BEGIN, 1)
    return f"{head}{README_BEGIN}\n{block}{README_END}{rest.split(README_END, 1)[1]}"


def configurations_markdown(results_dirs: list[Path]) -> str:
    """The verdicts and the headline accuracies of several workflow runs side by side (README's
    "What each configuration can show"), from each run's claims.md, table.csv and dataset record."""
    verdicts, numbers, columns, shown = {}, [], [], []
    for folder in map(Path, results_dirs):
        records = sorted((folder / "data").glob("*.json"))
        if not records or not (folder / "claims.md").exists():
            raise ABCLError(f"{folder}: not a finished workflow run (no data/*.json or claims.md): run it first")
        record = json.loads(records[0].read_text())
        column = f"{folder.name} ({record['n_train']:,} train images)"
        columns.append(column)
        found = claim_verdicts((folder / "claims.md").read_text())
        if (folder / "adversarial.md").exists():  # claim 5 built by its own target
            found |= claim_verdicts((folder / "adversarial.md").read_text())
        for claim, outcome in found.items():
            verdicts.setdefault(CLAIM_LABELS.get(claim, claim), {})[column] = outcome
        table = pd.read_csv(folder / "table.csv")
        # an AutoAttack label carries its budget: "AutoAttack L∞ ε=0.2 (10 it., 500 q.)"
        summary = table.evaluation.isin(SUMMARY_EVALUATIONS) | table.evaluation.str.startswith(
            tuple(f"{e} (" for e in SUMMARY_EVALUATIONS))
        table = table[table.model.isin([SCE, COSFACE, ABCL]) & summary]
        shown += list(table.evaluation)
        for model, group in table.groupby("model", sort=False):
            row = {"run": folder.name, "model": model}
            most = group.seeds.max()
            row.update({e: _pct(v) + (f" ({k} seed{'s' * (k > 1)})" if k < most else "")
                        for e, v, k in zip(group.evaluation, group["mean"], group.seeds)})
            numbers.append(row)
    claims = pd.DataFrame([{"claim": claim, **by_column} for claim, by_column in verdicts.items()],
                          columns=["claim", *columns]).fillna("not run")
    order = [label for e in SUMMARY_EVALUATIONS for label in dict.fromkeys(shown) if label.split(" (")[0] == e]
    accuracy = pd.DataFrame(numbers, columns=["run", "model", *order]).astype(object).fillna("")
    return markdown(claims) + "\nAccuracy (%), mean over seeds (`table.csv`):\n\n" + markdown(accuracy)
