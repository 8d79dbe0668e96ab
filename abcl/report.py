"""Gradient-masking report, the computed verdicts on the paper's claims (results/claims.md) and
the leaderboard.

Uncertainty of a mean accuracy (scipy): with k >= 2 seeds the 95% t-interval over seeds; with
one seed the Wilson score interval over the n test images, honest at p = 0 or 1.

Two models are compared on the same test images, so the comparison is paired: with one seed,
McNemar's exact test on the images one model gets right and the other wrong (a binomial test of
b against b + c, two-sided, 5%); with several seeds, the 95% t-interval of the per-seed accuracy
differences. Each verdict names its test.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from abcl import ABCLError
from abcl.config import ABCL, COSFACE, HT_SCE, SCE, evaluation_key
from abcl.tables import (NORM_SYMBOL, PAPER_ATTACKS, load_correct, markdown, ordered_evaluations, robustness_table,
                         split_method, with_evaluation)

PAPER_NAMES = ("fgsm", "bim")


# ---------------------------------------------------------------- uncertainty
def summarize(values: pd.Series, n_test: int) -> dict[str, float]:
    """Mean, s.d. and 95% CI of accuracies (fractions) over seeds."""
    k, mean = len(values), float(values.mean())
    if k > 1:
        sd = float(values.std(ddof=1))
        low, high = stats.t.interval(0.95, k - 1, loc=mean, scale=sd / math.sqrt(k)) if sd > 0 else (mean, mean)
    else:
        sd = float("nan")
        low, high = stats.binomtest(round(mean * n_test), n_test).proportion_ci(0.95, method="wilson")
    return {"mean": mean, "sd": sd, "ci95_low": max(0.0, low), "ci95_high": min(1.0, high),
            "half": (high - low) / 2, "seeds": k}


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


def paired(a: pd.DataFrame, b: pd.DataFrame, correct: Correct) -> tuple[str, str]:
    """Is model a's accuracy higher, lower or indistinguishable from b's at one evaluation
    (``a`` and ``b``: its rows, one per seed)? Returns the verdict and the test with its result."""
    seeds = sorted(set(a.seed) & set(b.seed))
    if len(seeds) >= 2:
        diff = a.set_index("seed").accuracy[seeds] - b.set_index("seed").accuracy[seeds]
        sem = stats.sem(diff)
        low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=sem) if sem > 0 else (diff.mean(),) * 2
        verdict = "higher" if low > 0 else "lower" if high < 0 else "indistinguishable"
        return verdict, f"paired t over {len(diff)} seeds: [{100 * low:+.1f}, {100 * high:+.1f}] points"
    row_a, row_b = a[a.seed == seeds[0]].iloc[0], b[b.seed == seeds[0]].iloc[0]
    key = evaluation_key(row_a.attack, row_a.norm, row_a.eps)
    try:
        right_a, right_b = correct[(row_a.config_hash, key)], correct[(row_b.config_hash, key)]
    except KeyError as missing:
        raise ABCLError(f"no per-image results for {missing.args[0]}: pass the models' correct.npz files") from None
    n = min(len(right_a), len(right_b))
    only_a, only_b = int((right_a[:n] & ~right_b[:n]).sum()), int((~right_a[:n] & right_b[:n]).sum())
    p = stats.binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    verdict = "indistinguishable" if p >= 0.05 else "higher" if only_a > only_b else "lower"
    return verdict, f"McNemar exact on {n} images: {only_a} vs {only_b} discordant, p = {p:.2g}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _interval(row) -> str:
    return f"{_pct(row['mean'])} [{_pct(row['ci95_low'])}, {_pct(row['ci95_high'])}]"


def _overall(passed: list[bool]) -> str:
    if not passed:
        return "CANNOT BE CHECKED with this configuration"
    if all(passed):
        return "SUPPORTED"
    return "PARTLY SUPPORTED" if any(passed) else "NOT SUPPORTED"


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
        grads = gradients[gradients.config_hash == config_hash].iloc[0]
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
        rows.append({
            "model": first.model, "loss": first.loss, "s": first.s,
            "k1": first.k1, "k2": first.k2, "seed": first.seed, "config_hash": config_hash,
            "clean_accuracy": acc[("clean", "none", 0.0)],
            "frac_vanished_gradient": grads.frac_vanished_gradient,
            "median_gradient_norm": grads.median_gradient_norm,
            "masking_suspected": bool(flags), "flags": "; ".join(flags),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- claims
def claim_scale(fig2: pd.DataFrame, correct: Correct) -> tuple[str, str, str]:
    """Claim 1: with the Cos-SCE basis, s = 4-5 is best and s > 8 degrades."""
    fig2 = with_evaluation(fig2[(fig2.loss == "cos_sce") & fig2.attack.isin(PAPER_ATTACKS)])
    table = accuracy_stats(fig2, ["s"])
    evaluations = ordered_evaluations(fig2, middle_only=True)
    rows, passed = [], []
    for evaluation in evaluations:
        part = table[table.evaluation == evaluation].set_index("s")
        mid, high = part[(part.index >= 4) & (part.index <= 5)], part[part.index > 8]
        if mid.empty or high.empty:
            continue
        best, best_mid, best_high = (group.loc[group["mean"].idxmax()] for group in (part, mid, high))

        def runs(s):
            return fig2[(fig2.s == s) & (fig2.evaluation == evaluation)]
        vs_best, vs_best_test = paired(runs(best_mid.name), runs(best.name), correct)
        vs_high, vs_high_test = paired(runs(best_mid.name), runs(best_high.name), correct)
        mid_is_best = best_mid.name == best.name or vs_best != "lower"
        degrades = vs_high == "higher"
        passed.append(mid_is_best and degrades)
        rows.append({"evaluation": evaluation, "best s": f"{best.name:g}", "acc at best s": _interval(best),
                     "best of s in [4,5]": _interval(best_mid), "best of s > 8": _interval(best_high),
                     "s 4-5 best": "yes" if mid_is_best else "no",
                     "test vs best": "same model" if best_mid.name == best.name else vs_best_test,
                     "s > 8 lower": "yes" if degrades else "no", "test vs s > 8": vs_high_test})
    text = ("Claim 1 (Fig. 2): with the SCE-based (Cos-SCE) basis, accuracy falls as s grows past ~5; "
            "s = 4-5 is best; s > 8 degrades.")
    return text, _overall(passed), markdown(pd.DataFrame(rows)) if rows else ""


def claim_ab_repairs(fig1: pd.DataFrame, correct: Correct) -> tuple[str, str, str]:
    """Claim 2: plain HT-SCE (0, 0) degrades, AB terms repair it, ABCL's (k1, k2) (the paper's
    512, 64) is good. ``fig1`` is labelled by model: the plan names the (0, 0) run HT-SCE and the
    chosen setting ABCL."""
    named = fig1.drop_duplicates("model").set_index("model")
    if not {HT_SCE, ABCL} <= set(named.index):
        return ("Claim 2 (Fig. 1): HT-SCE at (k1, k2) = (0, 0) degrades; adding the AB terms repairs it; "
                "ABCL's setting is a good one.", _overall([]), "")
    k1, k2 = named.loc[ABCL, "k1"], named.loc[ABCL, "k2"]
    plain_k = (named.loc[HT_SCE, "k1"], named.loc[HT_SCE, "k2"])
    fig1 = with_evaluation(fig1[(fig1.loss == "ht_sce") & fig1.attack.isin(PAPER_ATTACKS)])
    table = accuracy_stats(fig1, ["k1", "k2"])
    rows, passed = [], []
    for evaluation in ordered_evaluations(fig1, middle_only=True):
        part = table[table.evaluation == evaluation].set_index(["k1", "k2"])
        if plain_k not in part.index or (k1, k2) not in part.index or len(part) < 2:
            continue
        plain, chosen = part.loc[plain_k], part.loc[(k1, k2)]
        with_ab = part.drop(index=plain_k)
        best_ab = with_ab.loc[with_ab["mean"].idxmax()]
        best = part.loc[part["mean"].idxmax()]
        def runs(k):
            return fig1[(fig1.k1 == k[0]) & (fig1.k2 == k[1]) & (fig1.evaluation == evaluation)]
        repairs, repairs_test = paired(runs(best_ab.name), runs(plain_k), correct)
        versus_best, best_test = paired(runs((k1, k2)), runs(best.name), correct)
        chosen_good = best.name == (k1, k2) or versus_best != "lower"
        passed.append(repairs == "higher" and chosen_good)
        rows.append({"evaluation": evaluation, "HT-SCE (0,0)": _interval(plain),
                     "best with AB": f"{_interval(best_ab)} at {best_ab.name[0]:g}/{best_ab.name[1]:g}",
                     f"{k1:g}/{k2:g}": _interval(chosen), "AB repairs (0,0)": "yes" if repairs == "higher" else "no",
                     "test: best AB vs (0,0)": repairs_test,
                     f"{k1:g}/{k2:g} not below best": "yes" if chosen_good else "no",
                     "test vs best": "same model" if best.name == (k1, k2) else best_test})
    text = (f"Claim 2 (Fig. 1): HT-SCE at (k1, k2) = (0, 0) degrades; adding the AB terms repairs it; "
            f"({k1:g}, {k2:g}) is a good setting.")
    return text, _overall(passed), markdown(pd.DataFrame(rows)) if rows else ""


def claim_separation(scores: pd.DataFrame, silhouette_margin: float = 0.05) -> tuple[str, str, str]:
    """Claim 3: CosFace and ABCL features separate classes better than SCE; ABCL better than CosFace,
    also on the adversarial sets. Two checks per set, each over the three pairs (CosFace > SCE,
    ABCL > SCE, ABCL > CosFace): the 5-NN accuracy in the t-SNE plane (Wilson 95% intervals apart:
    the t-SNE maps differ per model, so there is no pairing) and the silhouette of the 10-dim latent
    features (by more than ``silhouette_margin``)."""
    def apart(x, y) -> str:
        if math.isnan(x.tsne_knn_accuracy) or math.isnan(y.tsne_knn_accuracy):  # too few points per class
            return "not measured"
        (low_x, high_x), (low_y, high_y) = (
            stats.binomtest(round(r.tsne_knn_accuracy * r.n), int(r.n)).proportion_ci(0.95, method="wilson")
            for r in (x, y))
        return "higher" if low_x > high_y else "lower" if high_x < low_y else "indistinguishable"

    pairs = ((COSFACE, SCE), (ABCL, SCE), (ABCL, COSFACE))
    rows, passed = [], []
    by = scores.set_index(["model", "set"])
    for set_name in dict.fromkeys(scores["set"]):
        if not all((m, set_name) in by.index for m in (SCE, COSFACE, ABCL)):
            continue
        r = {m: by.loc[(m, set_name)] for m in (SCE, COSFACE, ABCL)}
        knn = [apart(r[x], r[y]) for x, y in pairs]
        silhouette = [r[x].silhouette - r[y].silhouette > silhouette_margin for x, y in pairs]
        passed += [all(v == "higher" for v in knn), all(silhouette)]
        rows.append({"set": set_name,
                     **{f"{m} kNN % (silhouette)": f"{_pct(r[m].tsne_knn_accuracy)} ({r[m].silhouette:.2f})"
                        for m in r},
                     "kNN: CosFace>SCE, ABCL>SCE, ABCL>CosFace": ", ".join(knn),
                     "silhouette: same pairs": ", ".join("yes" if v else "no" for v in silhouette)})
    text = ("Claim 3 (Fig. 3): CosFace and ABCL features separate classes better than SCE; ABCL shows fewer "
            "overlaps than CosFace, also on the adversarial sets.")
    return text, _overall(passed), markdown(pd.DataFrame(rows)) if rows else ""


def claim_robustness(table_evals: pd.DataFrame, correct: Correct) -> tuple[str, str, str]:
    """Claim 4: ABCL is more robust to FGSM and BIM than SCE and CosFace (``table_evals`` labelled by model)."""
    frame = with_evaluation(table_evals[table_evals.attack.isin(PAPER_NAMES)])
    table = accuracy_stats(frame, ["model"]).set_index(["model", "evaluation"])
    rows, passed = [], []
    for evaluation in ordered_evaluations(frame):
        try:
            ab, sce, cos = (table.loc[(m, evaluation)] for m in (ABCL, SCE, COSFACE))
        except KeyError:
            continue
        def runs(model):
            return frame[(frame.model == model) & (frame.evaluation == evaluation)]
        (vs_sce, sce_test), (vs_cos, cos_test) = (paired(runs(ABCL), runs(m), correct) for m in (SCE, COSFACE))
        passed.append(vs_sce == "higher" and vs_cos == "higher")
        rows.append({"evaluation": evaluation, "SCE": _interval(sce), "CosFace": _interval(cos),
                     "ABCL": _interval(ab), "ABCL vs SCE": f"{vs_sce} ({sce_test})",
                     "ABCL vs CosFace": f"{vs_cos} ({cos_test})"})
    text = "Claim 4 (table): ABCL is more robust to FGSM and BIM than SCE and CosFace."
    return text, _overall(passed), markdown(pd.DataFrame(rows)) if rows else ""


FULL_TRAIN_SIZE = 60_000  # MNIST's and Fashion-MNIST's training sets


def data_note(dataset: str, n_train: int) -> str:
    """What a reader must know when the models saw fewer training images than the full dataset."""
    if n_train >= FULL_TRAIN_SIZE:
        return ""
    return (f"**Subset.** These models trained on {n_train:,} images ({dataset}), not the full {FULL_TRAIN_SIZE:,}. "
            "Verdicts that compare losses can change with training-set size: config/cpu-full.yaml runs the same "
            "nets, grids and attacks on full MNIST on a CPU (README: \"What each configuration can show\").\n")


ADVERSARIAL_CLAIM = "Claim 5 (ours, beyond the paper): ABCL adds robustness on top of adversarial training."


def claim_adversarial(evals: pd.DataFrame, correct: Correct) -> tuple[str, str, str]:
    """Claim 5: under each training method, ABCL is more robust than every other loss trained the
    same way, under AutoAttack (the paper's BIM where no AutoAttack ran); paired tests."""
    strongest = "autoattack" if (evals.attack == "autoattack").any() else "bim"
    frame = with_evaluation(evals[(evals.attack == strongest) & (evals.norm == "linf")])
    frame = frame.assign(base=[split_method(m)[0] for m in frame.model], method=[split_method(m)[1] for m in frame.model])
    table = accuracy_stats(frame, ["model"]).set_index(["model", "evaluation"])
    rows, passed = [], []
    for method in dict.fromkeys(frame.method):
        others = [b for b in dict.fromkeys(frame.base[frame.method == method]) if b != ABCL]
        if ABCL not in set(frame.base[frame.method == method]) or not others:
            continue
        for evaluation in ordered_evaluations(frame):
            def runs(base):
                return frame[(frame.model == f"{base} {method}") & (frame.evaluation == evaluation)]
            row = {"training": method, "evaluation": evaluation,
                   **{base: _interval(table.loc[(f"{base} {method}", evaluation)]) for base in [*others, ABCL]}}
            verdicts = []
            for other in others:
                verdict, test = paired(runs(ABCL), runs(other), correct)
                row[f"ABCL vs {other}"] = f"{verdict} ({test})"
                verdicts.append(verdict == "higher")
            passed.append(all(verdicts))
            rows.append(row)
    return ADVERSARIAL_CLAIM, _overall(passed), markdown(pd.DataFrame(rows)) if rows else ""


def adversarial_report(evals: pd.DataFrame, correct: Correct) -> str:
    """adversarial.md: the adversarially trained models' table and claim 5's verdict."""
    first = evals.iloc[0]
    statement, verdict, numbers = claim_adversarial(evals, correct)
    return ("# Adversarial training with each loss\n\n"
            f"Trained on L∞ adversarial examples (ε = {first.adv_eps:g}, {int(first.adv_steps)} steps of "
            f"{first.adv_step_size:g}); {int(evals.seed.nunique())} seed(s), {int(first.n)} test images, dataset "
            f"{first.dataset}, net {first.arch}. Accuracy (%) on the test set, mean ± s.d. over seeds.\n\n"
            + markdown(robustness_table(evals))
            + f"\n## {statement}\n\n**Verdict: {verdict}**\n\n{numbers}")


def claims_report(fig1: pd.DataFrame, fig2: pd.DataFrame, table_evals: pd.DataFrame, scores: pd.DataFrame,
                  masking: pd.DataFrame | None, correct: Correct, data_note: str = "",
                  adversarial: pd.DataFrame | None = None, adversarial_note: str = "") -> str:
    """claims.md; ``fig1``, ``table_evals`` and ``adversarial`` labelled by model (the plan's
    names), ``correct`` the models' per-image results for the paired tests. Without adversarial
    evaluations claim 5 shows ``adversarial_note`` (where it is built) instead."""
    sections = [claim_scale(fig2, correct), claim_ab_repairs(fig1, correct), claim_separation(scores),
                claim_robustness(table_evals, correct)]
    if adversarial is not None:
        sections.append(claim_adversarial(adversarial, correct))
    seeds = int(table_evals.seed.nunique())
    n_test = int(table_evals.n.iloc[0])
    parts = [
        "# Do our runs reproduce the paper's claims?\n",
        f"Generated by the workflow from {seeds} seed(s), {n_test} test images per evaluation, "
        f"dataset {table_evals.dataset.iloc[0]}, net {table_evals.arch.iloc[0]}. Accuracies in %, "
        "with 95% confidence intervals in brackets (t-interval over seeds; Wilson interval over test "
        "images when there is one seed). Two models are compared on the same test images: with one seed by "
        "McNemar's exact test (5%), with several by the paired t-interval of their per-seed differences; "
        "each comparison names its test. Claim 3 compares t-SNE k-NN accuracies by Wilson intervals.\n",
        *([data_note] if data_note else []),
    ]
    for statement, verdict, numbers in sections:
        parts.append(f"## {statement}\n\n**Verdict: {verdict}**\n\n{numbers}")
    if adversarial is None and adversarial_note:
        parts.append(f"## {ADVERSARIAL_CLAIM}\n\n**Verdict: NOT RUN in this target.** {adversarial_note}\n")
    if masking is not None and len(masking):
        flagged = masking[masking.masking_suspected]
        parts.append("## Gradient masking\n\n" + (
            f"{len(flagged)} of {len(masking)} models show signs of gradient masking:\n\n"
            + markdown(flagged[["model", "seed", "flags"]]) if len(flagged)
            else f"None of the {len(masking)} models shows signs of gradient masking "
                 "(vanished input gradients, FGSM beating BIM, CE/DLR disagreement, adaptive attacks far "
                 "stronger than FGSM/BIM).\n"))
    return "\n".join(parts)


def stats_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table: model x evaluation with mean, s.d., 95% CI (fractions) and the seed count."""
    table = accuracy_stats(frame, ["model"]).drop(columns="half")
    order = {e: i for i, e in enumerate(ordered_evaluations(frame))}
    return table.sort_values("evaluation", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)



# ---------------------------------------------------------------- leaderboard
def _training_loss(row: pd.Series) -> str:
    if row.loss == "sce":
        return "sce"
    text = f"{row.loss} s={row.s:g}" + (f" m={row.m:g}" if row.m else "")
    return text + (f" + AB k1={row.k1:g} k2={row.k2:g}" if row.k1 or row.k2 else "")


def leaderboard(evals: pd.DataFrame) -> pd.DataFrame:
    """One row per model in RobustBench's shape: model, architecture, training loss, clean accuracy
    and AutoAttack robust accuracy per threat model and budget (mean and 95% CI over seeds, or
    Wilson over images with one seed, as fractions), seeds and test images; most robust first."""
    attacked = evals[evals.attack == "autoattack"]
    budgets = sorted({(norm, eps) for norm, eps in zip(attacked.norm, attacked.eps)}, key=lambda b: (b[0] != "linf", b[1]))
    rows = []
    for model, group in evals.groupby("model", sort=False):
        first = group.iloc[0]
        row = {"model": model, "architecture": first.arch, "training loss": _training_loss(first),
               "seeds": group.seed.nunique(), "test images": int(group.n[group.attack == "clean"].iloc[0]),
               "AutoAttack images": int(attacked.n[attacked.model == model].iloc[0]) if model in set(attacked.model) else 0}
        for attack, norm, eps in [("clean", "none", 0.0)] + [("autoattack", n, e) for n, e in budgets]:
            at = group[(group.attack == attack) & (group.norm == norm) & (group.eps == eps)]
            name = "clean" if attack == "clean" else f"AutoAttack {NORM_SYMBOL[norm]} eps={eps:g}"
            found = summarize(at.accuracy, int(at.n.iloc[0])) if len(at) else {}
            row.update({f"{name} {part}": found.get(key, float("nan"))
                        for part, key in (("mean", "mean"), ("ci95 low", "ci95_low"), ("ci95 high", "ci95_high"))})
        rows.append(row)
    table = pd.DataFrame(rows)
    first_robust = next((c for c in table.columns if c.startswith("AutoAttack") and c.endswith(" mean")), None)
    return table.sort_values(first_robust, ascending=False, kind="stable") if first_robust else table


def leaderboard_markdown(table: pd.DataFrame) -> str:
    """The leaderboard with accuracies in % and their 95% intervals in brackets."""
    shown = table[[c for c in table.columns if not c.endswith((" mean", " ci95 low", " ci95 high"))]].copy()
    for name in dict.fromkeys(c.removesuffix(" mean") for c in table.columns if c.endswith(" mean")):
        shown[f"{name} (%)"] = [f"{_pct(m)} [{_pct(lo)}, {_pct(hi)}]" for m, lo, hi in
                                zip(table[f"{name} mean"], table[f"{name} ci95 low"], table[f"{name} ci95 high"])]
    return ("Robust accuracy under AutoAttack (standard: APGD-CE with the log-space cross-entropy, APGD-T, "
            "FAB-T, Square), most robust first; 95% intervals over seeds, or over test images with one seed.\n\n"
            + markdown(shown.astype(str)))


# ---------------------------------------------------------------- configurations side by side
SUMMARY_EVALUATIONS = ("clean", "FGSM L∞ ε=0.2", "BIM L∞ ε=0.2", "FGSM L2 ε=2", "BIM L2 ε=2", "AutoAttack L∞ ε=0.2")
_VERDICT = re.compile(r"^## (Claim \d+)[^\n]*\n\n\*\*Verdict: ([A-Z ]+)", re.M)


CLAIM_LABELS = {
    "Claim 1": "1 (Fig. 2): Cos-SCE best at s = 4-5, worse past 8",
    "Claim 2": "2 (Fig. 1): the AB terms repair HT-SCE; 512/64 is good",
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
    verdicts, numbers, columns = {}, [], []
    for folder in map(Path, results_dirs):
        record = json.loads(next((folder / "data").glob("*.json")).read_text())
        column = f"{folder.name} ({record['n_train']:,} train images)"
        columns.append(column)
        found = claim_verdicts((folder / "claims.md").read_text())
        if (folder / "adversarial.md").exists():  # claim 5 built by its own target
            found |= claim_verdicts((folder / "adversarial.md").read_text())
        for claim, verdict in found.items():
            verdicts.setdefault(CLAIM_LABELS.get(claim, claim), {})[column] = verdict
        table = pd.read_csv(folder / "table.csv")
        table = table[table.model.isin([SCE, COSFACE, ABCL]) & table.evaluation.isin(SUMMARY_EVALUATIONS)]
        for model, group in table.groupby("model", sort=False):
            row = {"run": folder.name, "model": model}
            row.update({e: _pct(v) for e, v in zip(group.evaluation, group["mean"])})
            numbers.append(row)
    claims = pd.DataFrame([{"claim": claim, **by_column} for claim, by_column in verdicts.items()],
                          columns=["claim", *columns]).fillna("not run")
    accuracy = pd.DataFrame(numbers, columns=["run", "model", *SUMMARY_EVALUATIONS]).astype(object).fillna("")
    return markdown(claims) + "\nAccuracy (%), mean over seeds (`table.csv`):\n\n" + markdown(accuracy)
