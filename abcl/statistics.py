"""Statistics behind claims.md, the leaderboard and the tables: intervals, comparisons of two
losses with the seed as the unit, the verdict rule of a claim (an intersection-union test for it,
Holm's correction against it).

Intervals. The mean accuracy over k >= 2 seeds gets the 95% t-interval over seeds (k - 1 df); when
every seed scored the same, the Wilson interval over the k * n pooled test images. One seed gets the
Wilson score interval over its n test images (honest at p = 0 or 1), which says nothing about
another seed.

Comparisons. A claim is a fixed list of comparisons "loss A vs loss B at one evaluation", each
either *superiority* (A > B) or *not worse* (A >= B - delta, an equivalence margin). Seeds are the
unit of replication: d_i = acc_A(seed i) - acc_B(seed i) on the same test images, and the mean of
d is tested by a paired t-test over the k common seeds (k - 1 df), so between-seed variance is in
the error term. Each comparison yields two one-sided p-values: for the claim's direction
(H1: mean d > -delta, delta = 0 for superiority) and against it (H1: mean d < -delta). When every
d_i is the same the t statistic is undefined; the exact sign test over the k seeds stands in
(p = 2^-k at best) for a superiority comparison and for evidence against, while a "not worse"
comparison then counts as not shown (a sign test is about the median, the claim about the mean).

Verdict, at family-wise level alpha per claim:

- SUPPORTED: every comparison supports the claim at one-sided p < alpha / 2. The claim is the
  conjunction of its comparisons, so this intersection-union test (Berger 1982) needs no
  correction for their number: it is false if any one comparison's null holds, and that one
  alone rejects with probability <= alpha / 2.
- CONTRADICTED: some comparison goes against the claim at Holm-adjusted p < alpha / 2, Holm's
  step-down method over the claim's p-values against (the chance of any false one <= alpha / 2).
- NOT SHOWN: neither, and always with one seed, where a comparison is about two trained networks,
  not two losses (McNemar's exact test on the images one network gets right and the other wrong
  is then shown for information only).

Under a known null (every role filled by seeds of one configuration; every claim has at least one
superiority comparison) a claim is therefore SUPPORTED or CONTRADICTED at most alpha of the time;
benchmarks/calibration.py measures it on real trained seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
SUPPORTED, CONTRADICTED, NOT_SHOWN = "SUPPORTED", "CONTRADICTED", "NOT SHOWN"
SUPERIOR, NOT_WORSE = "superior", "not worse"
# accuracies are k / n with n <= 10^5: per-seed differences closer than this are rounding, not spread
SAME_DIFFERENCE = 1e-9

RULE = (
    "**How verdicts are reached** (abcl/statistics.py). Each claim is a fixed list of comparisons, chosen "
    "before the run and listed under it. A comparison pairs two losses seed by seed (same seed number, "
    "same test images) and tests the mean per-seed difference d with a paired t-test over seeds (k − 1 "
    "degrees of freedom: the seed is the unit, so the spread between seeds is part of the error). It "
    "gives two one-sided p-values: for the claim (superiority: d > 0; *not worse*: d > −δ, the equivalence "
    "margin) and against it. **SUPPORTED**: every comparison supports the claim at p < {half:g} (the claim "
    "is their conjunction: an intersection-union test, which needs no correction for their number). "
    "**CONTRADICTED**: some comparison goes against it at p < {half:g} after Holm's correction over the "
    "claim's comparisons. **NOT SHOWN**: neither; always so with one seed, where a comparison is about two "
    "trained networks, not two losses (McNemar's exact test on their test images is shown for "
    "information). Under a known null (every role filled by seeds of one configuration) SUPPORTED or "
    "CONTRADICTED comes out at most {alpha:g} of the time (benchmarks/calibration.py, "
    "benchmarks/measured/).\n"
)


def rule(alpha: float = None) -> str:
    alpha = ALPHA if alpha is None else alpha
    return RULE.format(alpha=alpha, half=alpha / 2)


# ---------------------------------------------------------------- intervals
def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    return tuple(stats.binomtest(successes, n).proportion_ci(0.95, method="wilson"))


def summarize(values: pd.Series, n_test: int) -> dict[str, float]:
    """Mean, s.d. and 95% CI of accuracies (fractions) over seeds (Wilson over images for one)."""
    k, mean = len(values), float(values.mean())
    if k > 1:
        sd = float(values.std(ddof=1))
        if sd > 0:
            low, high = stats.t.interval(0.95, k - 1, loc=mean, scale=sd / math.sqrt(k))
        else:  # every seed scored the same: the pooled images still bound the accuracy
            low, high = wilson_interval(round(mean * n_test * k), n_test * k)
    else:
        sd = float("nan")
        low, high = wilson_interval(round(mean * n_test), n_test)
    return {"mean": mean, "sd": sd, "ci95_low": max(0.0, low), "ci95_high": min(1.0, high),
            "half": (high - low) / 2, "seeds": k}


# ---------------------------------------------------------------- one comparison
@dataclass(frozen=True)
class Comparison:
    """A vs B at one evaluation; differences and margin are fractions (0.02 = 2 points)."""

    label: str  # what is compared where, e.g. "ABCL vs SCE, BIM L∞ ε=0.2"
    kind: str  # SUPERIOR or NOT_WORSE
    margin: float
    seeds: int
    diff: float  # mean of d = A - B over the common seeds
    low: float  # 95% two-sided CI of that mean (nan with one seed)
    high: float
    p_support: float  # one-sided, unadjusted
    p_against: float
    test: str  # the test, named, with its inputs

    @property
    def one_seed(self) -> bool:
        return self.seeds < 2


def compare_seeds(label: str, a: pd.Series, b: pd.Series, kind: str = SUPERIOR, margin: float = 0.0) -> Comparison:
    """A vs B from per-seed values (Series indexed by seed), paired on the seeds both have."""
    if not (a.index.is_unique and b.index.is_unique):
        raise ValueError(f"{label}: a seed appears twice among one model's values")
    seeds = sorted(set(a.index) & set(b.index))
    if len(seeds) < 2:
        raise ValueError("a comparison over seeds needs at least two common seeds")
    d = (a.loc[seeds] - b.loc[seeds]).to_numpy(dtype=float)
    delta = margin if kind == NOT_WORSE else 0.0
    k, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    if sd > SAME_DIFFERENCE:
        se = sd / math.sqrt(k)
        t = (mean + delta) / se
        p_support, p_against = float(stats.t.sf(t, k - 1)), float(stats.t.cdf(t, k - 1))
        low, high = stats.t.interval(0.95, k - 1, loc=mean, scale=se)
        test = f"paired t-test over {k} seeds, t = {t:.2f}"
    else:  # every seed gave the same difference: the exact sign test over the seeds
        shift = mean + delta
        # a sign test is about the median: it may show superiority, not "not worse on average"
        p_support = 0.5 ** k if shift > 0 and kind == SUPERIOR else 1.0
        p_against = 0.5 ** k if shift < 0 else 1.0
        low = high = mean
        test = f"sign test over {k} seeds (the same difference in each)"
    return Comparison(label, kind, margin, k, mean, float(low), float(high), p_support, p_against, test)


def mcnemar(label: str, right_a: np.ndarray, right_b: np.ndarray, kind: str = SUPERIOR,
            margin: float = 0.0) -> Comparison:
    """Two trained networks (one seed each) on the same test items: McNemar's exact test on the
    items one gets right and the other wrong. About those networks, not their losses."""
    n = min(len(right_a), len(right_b))
    right_a, right_b = np.asarray(right_a[:n], bool), np.asarray(right_b[:n], bool)
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    discordant = only_a + only_b
    if discordant:
        p_support = float(stats.binomtest(only_a, discordant, alternative="greater").pvalue)
        p_against = float(stats.binomtest(only_a, discordant, alternative="less").pvalue)
    else:
        p_support = p_against = 1.0
    diff = (only_a - only_b) / n
    return Comparison(label, kind, margin, 1, diff, float("nan"), float("nan"), p_support, p_against,
                      f"McNemar exact on {n} items: {only_a} vs {only_b} discordant (one seed: these two networks; "
                      "no margin)")


# ---------------------------------------------------------------- the verdict of a claim
@dataclass(frozen=True)
class Verdict:
    outcome: str  # SUPPORTED, CONTRADICTED or NOT SHOWN
    reason: str
    support: tuple[float, ...]  # one-sided p for the claim, unadjusted (the intersection-union test)
    against_adjusted: tuple[float, ...]  # one-sided p against it, Holm-adjusted
    level: float  # each of the two sides is tested at alpha / 2
    one_seed: bool = False

    def row_outcome(self, i: int) -> str:
        if self.one_seed:
            return "n/a (one seed)"
        if self.support[i] < self.level:
            return "supports"
        return "against" if self.against_adjusted[i] < self.level else "neither"


def holm(p_values: list[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted ascending, p_(i) * (m - i + 1), made monotone,
    capped at 1. The same numbers as statsmodels' ``multipletests(method="holm")`` (the tests
    check it), without the full garbage collection that call runs each time (150 ms in a process
    holding torch: the calibration judges thousands of claims)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)))
    return adjusted[np.argsort(order, kind="stable")]


def verdict(comparisons: list[Comparison], alpha: float = ALPHA) -> Verdict:
    """The rule of the module docstring over one claim's comparisons."""
    level = alpha / 2
    if not comparisons:
        return Verdict(NOT_SHOWN, "this configuration runs none of the claim's comparisons", (), (), level)
    m = len(comparisons)
    support = tuple(float(c.p_support) for c in comparisons)
    against = tuple(map(float, holm([c.p_against for c in comparisons])))
    if any(c.one_seed for c in comparisons):
        return Verdict(NOT_SHOWN, "one seed: each comparison is about two trained networks, not two losses; run "
                                  "several seeds (config key `seeds`; claim 3 also needs `embed.every_seed`)",
                       support, against, level, one_seed=True)
    if any(p < level for p in against):
        worst = comparisons[int(np.argmin(against))]
        return Verdict(CONTRADICTED, f"{worst.label} goes against the claim (Holm-adjusted p = {min(against):.2g} "
                                     f"< {level:g})", support, against, level)
    if all(p < level for p in support):
        return Verdict(SUPPORTED, f"all {m} comparisons support the claim (largest p = {max(support):.2g} "
                                  f"< {level:g})", support, against, level)
    held = sum(p < level for p in support)
    return Verdict(NOT_SHOWN, f"{held} of {m} comparisons support the claim at p < {level:g}, none goes against it; "
                              f"{power_note(comparisons[0].seeds, alpha)}", support, against, level)


def power_note(seeds: int, alpha: float = ALPHA) -> str:
    """What k seeds cost: the t each comparison needs to support the claim."""
    needed = float(stats.t.isf(alpha / 2, seeds - 1))
    return (f"with {seeds} seeds each comparison needs t > {needed:.2f}, i.e. a mean difference above "
            f"{needed / math.sqrt(seeds):.2f} times the s.d. of the per-seed differences")
