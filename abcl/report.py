"""Gradient-masking report and the computed verdicts on the paper's claims (results/claims.md).

Uncertainty of a mean accuracy: with k >= 2 seeds the 95% t-interval half-width
t_{0.975, k-1} * sd / sqrt(k); with one seed the Wilson score interval over the n test images,
z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n), which stays honest at p = 0 or 1.
Two means differ only when their gap exceeds sqrt(u_a^2 + u_b^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from scipy import stats

from abcl.config import ABCL, COSFACE, HT_SCE, SCE
from abcl.tables import PAPER_ATTACKS, markdown, ordered_evaluations, with_evaluation

PAPER_NAMES = ("fgsm", "bim")


# ---------------------------------------------------------------- uncertainty
def summarize(values: pd.Series, n_test: int) -> dict[str, float]:
    """Mean, s.d. and 95% CI of accuracies (fractions) over seeds."""
    k, mean = len(values), float(values.mean())
    if k > 1:
        sd = float(values.std(ddof=1))
        half = stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)
        low, high = mean - half, mean + half
    else:
        sd, z = float("nan"), 1.96
        center = (mean + z * z / (2 * n_test)) / (1 + z * z / n_test)
        half = z * math.sqrt(mean * (1 - mean) / n_test + z * z / (4 * n_test ** 2)) / (1 + z * z / n_test)
        low, high = center - half, center + half
    return {"mean": mean, "sd": sd, "ci95_low": max(0.0, low), "ci95_high": min(1.0, high), "half": half, "seeds": k}


def accuracy_stats(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by`` and evaluation: mean, s.d., 95% CI and seed count of the accuracy."""
    frame = with_evaluation(frame)
    rows = []
    for key, group in frame.groupby([*by, "evaluation"], sort=False):
        rows.append({**dict(zip([*by, "evaluation"], key)), **summarize(group.accuracy, int(group.n.iloc[0]))})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Comparison:
    a: float
    b: float
    half_a: float
    half_b: float

    @property
    def gap(self) -> float:
        return self.a - self.b

    @property
    def margin(self) -> float:
        return math.hypot(self.half_a, self.half_b)

    @property
    def verdict(self) -> str:
        return "higher" if self.gap > self.margin else "lower" if self.gap < -self.margin else "indistinguishable"


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
def claim_scale(fig2: pd.DataFrame) -> tuple[str, str, str]:
    """Claim 1: with the Cos-SCE basis, s = 4-5 is best and s > 8 degrades."""
    fig2 = fig2[(fig2.loss == "cos_sce") & fig2.attack.isin(PAPER_ATTACKS)]
    table = accuracy_stats(fig2, ["s"])
    evaluations = ordered_evaluations(fig2, middle_only=True)
    rows, passed = [], []
    for evaluation in evaluations:
        part = table[table.evaluation == evaluation].set_index("s")
        mid, high = part[(part.index >= 4) & (part.index <= 5)], part[part.index > 8]
        if mid.empty or high.empty:
            continue
        best = part.loc[part["mean"].idxmax()]
        best_mid = mid.loc[mid["mean"].idxmax()]
        worst_gap = Comparison(best_mid["mean"], high["mean"].max(), best_mid.half,
                               high.loc[high["mean"].idxmax()].half)
        mid_is_best = Comparison(best_mid["mean"], best["mean"], best_mid.half, best.half).verdict != "lower"
        degrades = worst_gap.verdict == "higher"
        passed.append(mid_is_best and degrades)
        rows.append({"evaluation": evaluation, "best s": f"{best.name:g}", "acc at best s": _interval(best),
                     "best of s in [4,5]": _interval(best_mid), "best of s > 8": _interval(high.loc[high['mean'].idxmax()]),
                     "s 4-5 best": "yes" if mid_is_best else "no", "s > 8 lower": "yes" if degrades else "no"})
    text = ("Claim 1 (Fig. 2): with the SCE-based (Cos-SCE) basis, accuracy falls as s grows past ~5; "
            "s = 4-5 is best; s > 8 degrades.")
    return text, _overall(passed), markdown(pd.DataFrame(rows)) if rows else ""


def claim_ab_repairs(fig1: pd.DataFrame) -> tuple[str, str, str]:
    """Claim 2: plain HT-SCE (0, 0) degrades, AB terms repair it, ABCL's (k1, k2) (the paper's
    512, 64) is good. ``fig1`` is labelled by model: the plan names the (0, 0) run HT-SCE and the
    chosen setting ABCL."""
    named = fig1.drop_duplicates("model").set_index("model")
    if not {HT_SCE, ABCL} <= set(named.index):
        return ("Claim 2 (Fig. 1): HT-SCE at (k1, k2) = (0, 0) degrades; adding the AB terms repairs it; "
                "ABCL's setting is a good one.", _overall([]), "")
    k1, k2 = named.loc[ABCL, "k1"], named.loc[ABCL, "k2"]
    plain_k = (named.loc[HT_SCE, "k1"], named.loc[HT_SCE, "k2"])
    fig1 = fig1[(fig1.loss == "ht_sce") & fig1.attack.isin(PAPER_ATTACKS)]
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
        repairs = Comparison(best_ab["mean"], plain["mean"], best_ab.half, plain.half).verdict == "higher"
        chosen_good = Comparison(chosen["mean"], best["mean"], chosen.half, best.half).verdict != "lower"
        passed.append(repairs and chosen_good)
        rows.append({"evaluation": evaluation, "HT-SCE (0,0)": _interval(plain),
                     "best with AB": f"{_interval(best_ab)} at {best_ab.name[0]:g}/{best_ab.name[1]:g}",
                     f"{k1:g}/{k2:g}": _interval(chosen), "AB repairs (0,0)": "yes" if repairs else "no",
                     f"{k1:g}/{k2:g} within CI of best": "yes" if chosen_good else "no"})
    text = (f"Claim 2 (Fig. 1): HT-SCE at (k1, k2) = (0, 0) degrades; adding the AB terms repairs it; "
            f"({k1:g}, {k2:g}) is a good setting.")
    return text, _overall(passed), markdown(pd.DataFrame(rows)) if rows else ""


def claim_separation(scores: pd.DataFrame, silhouette_margin: float = 0.05) -> tuple[str, str, str]:
    """Claim 3: CosFace and ABCL features separate classes better than SCE; ABCL better than CosFace,
    also on the adversarial sets. Two checks per set, each over the three pairs (CosFace > SCE,
    ABCL > SCE, ABCL > CosFace): the 5-NN accuracy in the t-SNE plane (beyond binomial 95% CIs)
    and the silhouette of the 10-dim latent features (by more than ``silhouette_margin``)."""
    def half(p, n):
        return 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)

    pairs = ((COSFACE, SCE), (ABCL, SCE), (ABCL, COSFACE))
    rows, passed = [], []
    by = scores.set_index(["model", "set"])
    for set_name in dict.fromkeys(scores["set"]):
        if not all((m, set_name) in by.index for m in (SCE, COSFACE, ABCL)):
            continue
        r = {m: by.loc[(m, set_name)] for m in (SCE, COSFACE, ABCL)}
        knn = [Comparison(r[x].tsne_knn_accuracy, r[y].tsne_knn_accuracy, half(r[x].tsne_knn_accuracy, r[x].n),
                          half(r[y].tsne_knn_accuracy, r[y].n)).verdict for x, y in pairs]
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


def claim_robustness(table_evals: pd.DataFrame) -> tuple[str, str, str]:
    """Claim 4: ABCL is more robust to FGSM and BIM than SCE and CosFace (``table_evals`` labelled by model)."""
    frame = table_evals[table_evals.attack.isin(PAPER_NAMES)]
    table = accuracy_stats(frame, ["model"]).set_index(["model", "evaluation"])
    rows, passed = [], []
    for evaluation in ordered_evaluations(frame):
        try:
            ab, sce, cos = (table.loc[(m, evaluation)] for m in (ABCL, SCE, COSFACE))
        except KeyError:
            continue
        vs_sce = Comparison(ab["mean"], sce["mean"], ab.half, sce.half).verdict
        vs_cos = Comparison(ab["mean"], cos["mean"], ab.half, cos.half).verdict
        passed.append(vs_sce == "higher" and vs_cos == "higher")
        rows.append({"evaluation": evaluation, "SCE": _interval(sce), "CosFace": _interval(cos),
                     "ABCL": _interval(ab), "ABCL vs SCE": vs_sce, "ABCL vs CosFace": vs_cos})
    text = "Claim 4 (table): ABCL is more robust to FGSM and BIM than SCE and CosFace."
    return text, _overall(passed), markdown(pd.DataFrame(rows)) if rows else ""


def claims_report(fig1: pd.DataFrame, fig2: pd.DataFrame, table_evals: pd.DataFrame, scores: pd.DataFrame,
                  masking: pd.DataFrame | None) -> str:
    """claims.md; ``fig1`` and ``table_evals`` labelled by model (the plan's names)."""
    sections = [claim_scale(fig2), claim_ab_repairs(fig1), claim_separation(scores), claim_robustness(table_evals)]
    seeds = int(table_evals.seed.nunique())
    n_test = int(table_evals.n.iloc[0])
    parts = [
        "# Do our runs reproduce the paper's claims?\n",
        f"Generated by the workflow from {seeds} seed(s), {n_test} test images per evaluation, "
        f"dataset {table_evals.dataset.iloc[0]}, net {table_evals.arch.iloc[0]}. Accuracies in %, "
        "with 95% confidence intervals in brackets (t-interval over seeds; binomial over test images "
        "when there is one seed). Two numbers differ only when their gap exceeds the combined interval.\n",
    ]
    for statement, verdict, numbers in sections:
        parts.append(f"## {statement}\n\n**Verdict: {verdict}**\n\n{numbers}")
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

