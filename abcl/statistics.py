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
    sd: float = float("nan")  # s.d. of the per-seed differences (nan with one seed)
    # (seed, accuracy of A, accuracy of B) per common seed: what `abcl power` pools across runs
    per_seed: tuple[tuple[int, float, float], ...] = ()
    settings: str = ""  # the loss settings of A and B, when known: runs pool only when they agree

    @property
    def one_seed(self) -> bool:
        return self.seeds < 2

    @property
    def shift(self) -> float:
        """The mean difference measured from the claim's boundary: d for superiority, d + delta
        for "not worse" (positive: on the claim's side)."""
        return self.diff + (self.margin if self.kind == NOT_WORSE else 0.0)


def compare_seeds(label: str, a: pd.Series, b: pd.Series, kind: str = SUPERIOR, margin: float = 0.0,
                  settings: str = "") -> Comparison:
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
    per_seed = tuple((int(seed), float(a.loc[seed]), float(b.loc[seed])) for seed in seeds)
    return Comparison(label, kind, margin, k, mean, float(low), float(high), p_support, p_against, test, sd, per_seed,
                      settings)


@dataclass(frozen=True)
class Shift:
    """How far one comparison's mean difference moves from run A to run B (fractions)."""

    label: str
    diff: float  # mean d in B minus mean d in A
    low: float  # its 95% CI (Welch)
    high: float
    t: float
    df: float  # Welch-Satterthwaite degrees of freedom
    p: float  # two-sided, unadjusted


def shift_between(a: Comparison, b: Comparison) -> Shift:
    """The same comparison in two runs that differ in one setting (a network, a data size): the
    change of its mean per-seed difference, Δ = mean(d_B) − mean(d_A), with Welch's unequal-variance
    t-test, t = Δ / sqrt(s_A²/k_A + s_B²/k_B). The runs' seeds are treated as independent samples:
    a seed number shared by two runs trains unrelated networks when the runs differ in network or
    data. Both runs attack the same fixed test images, so the interval leaves out the variation
    that a different choice of test images would add."""
    d_a, d_b = (np.array([x - y for _, x, y in c.per_seed]) for c in (a, b))
    if min(len(d_a), len(d_b)) < 2:
        raise ValueError(f"{a.label}: a shift between runs needs two seeds in each")
    v_a, v_b = d_a.var(ddof=1) / len(d_a), d_b.var(ddof=1) / len(d_b)
    diff, se = float(d_b.mean() - d_a.mean()), math.sqrt(v_a + v_b)
    df = (v_a + v_b) ** 2 / (v_a ** 2 / (len(d_a) - 1) + v_b ** 2 / (len(d_b) - 1))
    if se == 0:  # every seed of both runs gave one difference each: no spread to test against
        return Shift(a.label, diff, diff, diff, math.nan, math.nan, math.nan)
    t = diff / se
    half = float(stats.t.ppf(0.975, df)) * se
    return Shift(a.label, diff, diff - half, diff + half, t, float(df), float(2 * stats.t.sf(abs(t), df)))


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

    def tally(self) -> dict[str, int]:
        """How many comparisons support the claim, go against it (Holm-adjusted), and are open
        (neither, or one seed): one against makes a CONTRADICTED, whatever the others read."""
        reads = [self.row_outcome(i) for i in range(len(self.support))]
        supports, against = reads.count("supports"), reads.count("against")
        return {"for": supports, "against": against, "open": len(reads) - supports - against}

    def against(self, comparisons: list["Comparison"]) -> list["Comparison"]:
        """The comparisons that go against the claim."""
        return [c for i, c in enumerate(comparisons) if self.row_outcome(i) == "against"]


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
                              f"{power_note(comparisons, alpha)}", support, against, level)


def power_note(comparisons: list[Comparison], alpha: float = ALPHA) -> str:
    """What the comparisons' seeds cost: the t each needs to support the claim, and the distance
    from the claim's boundary (0 for superiority, −δ for "not worse") that t means."""
    notes = []
    for k in sorted({c.seeds for c in comparisons}):
        needed = float(stats.t.isf(alpha / 2, k - 1))
        notes.append(f"with {k} seeds a comparison needs t > {needed:.2f}, i.e. a mean difference whose distance "
                     f"above the claim's boundary (0, or −δ for \"not worse\") exceeds {needed / math.sqrt(k):.2f} "
                     "times the s.d. of the per-seed differences")
    return "; ".join(notes)


# ---------------------------------------------------------------- precision and power
POWER = 0.8
MAX_SEEDS = 10_000  # beyond this a comparison counts as undecidable by seeds
TOO_MANY = MAX_SEEDS + 1  # what the seed counts below return past MAX_SEEDS (shown as "> 10,000")
# a projected seed count needs the measured shift to stand out from its own noise: below one
# standard error (|t| < 1) the shift's very sign is a coin toss, and so is any count made from it
WEAK_T = 1.0


def half_width(sd: float, seeds: int) -> float:
    """Half-width of the 95% t-interval of a mean over ``seeds`` values of s.d. ``sd``."""
    return float(stats.t.isf(0.025, seeds - 1) * sd / math.sqrt(seeds)) if seeds >= 2 else float("inf")


def seeds_for_half_width(sd: float, points: float) -> int:
    """The fewest seeds whose 95% CI half-width, t(0.975, k-1) * sd / sqrt(k), is at most
    ``points`` (a fraction, like ``sd``), if the s.d. stays as measured; TOO_MANY past MAX_SEEDS."""
    if not sd > 0:
        return 2
    k = 2
    while half_width(sd, k) > points:
        k += 1
        if k > MAX_SEEDS:
            return TOO_MANY
    return k


def seeds_for_sign_test(level: float) -> int:
    """Seeds for the exact sign test (every seed the same difference: what compare_seeds runs
    then) to reach p = 2^-k < level; its power is 1 while every seed keeps that difference."""
    return max(2, math.floor(math.log2(1 / level)) + 1)


def seeds_for_power(shift: float, sd: float, level: float, power: float = POWER) -> int | None:
    """Seeds for a one-sided paired t-test at ``level`` to reject with probability ``power`` when
    the true shift is the one measured (effect size |shift| / sd; statsmodels' TTestPower, the
    one-sample t-test a paired test is); TOO_MANY past MAX_SEEDS, None for a zero shift. When
    every seed gave the same difference the rule runs the sign test: its count instead."""
    from statsmodels.stats.power import TTestPower  # 0.3 s to import: only where power is asked
    if not shift:
        return None
    if not sd > SAME_DIFFERENCE:
        return seeds_for_sign_test(level)
    effect, test = abs(shift) / sd, TTestPower()
    if test.power(effect_size=effect, nobs=2, alpha=level, alternative="larger") >= power:
        return 2  # the root finder has no solution below the smallest paired test
    if test.power(effect_size=effect, nobs=MAX_SEEDS, alpha=level, alternative="larger") < power:
        return TOO_MANY
    n = float(np.atleast_1d(test.solve_power(effect_size=effect, alpha=level, power=power,
                                             alternative="larger"))[0])
    return math.ceil(n) if math.isfinite(n) and n <= MAX_SEEDS else TOO_MANY


@dataclass(frozen=True)
class Power:
    """What one comparison's seeds measure and what more seeds would buy (points, not fractions)."""

    label: str
    seeds: int
    diff: float
    sd: float
    half: float  # the 95% CI half-width now
    for_precision: int  # seeds for a half-width <= the precision asked
    to_support: int | None  # seeds for 80% power to support the claim at its level (None: not on its side)
    to_contradict: int | None  # seeds for 80% power to go against it at Holm's first step
    weak: bool = False  # |t| < WEAK_T: the shift is within its noise, so no count is projected from it
    shift: float = 0.0  # the mean difference from the claim's boundary (d, or d + delta for "not worse")
    same: bool = False  # every seed gave one difference: the rule's sign test, no t-interval


def power_of(comparisons: list[Comparison], alpha: float = ALPHA, precision_points: float = 3.0) -> list[Power]:
    """Per comparison over seeds: its precision now, the seeds for a 95% CI half-width of
    ``precision_points``, and the seeds for 80% power at the observed mean and s.d. to reach the
    rule's level: alpha / 2 for the claim (the intersection-union test has no correction),
    alpha / (2 m) against it (Holm's first step over the claim's m comparisons). A "not worse"
    comparison whose seeds all gave one difference is never supported (the sign test speaks of
    the median); a shift within one standard error of the boundary gets no count at all."""
    m = len(comparisons)
    rows = []
    for c in comparisons:
        if c.one_seed:
            continue
        same = not c.sd > SAME_DIFFERENCE
        weak = not same and abs(c.shift) < WEAK_T * c.sd / math.sqrt(c.seeds)
        supportable = c.shift > 0 and not (same and c.kind == NOT_WORSE)
        support = seeds_for_power(c.shift, c.sd, alpha / 2) if supportable and not weak else None
        against = seeds_for_power(c.shift, c.sd, alpha / (2 * m)) if c.shift < 0 and not weak else None
        rows.append(Power(c.label, c.seeds, 100 * c.diff, 100 * c.sd, 100 * half_width(c.sd, c.seeds),
                          seeds_for_half_width(c.sd, precision_points / 100), support, against, weak,
                          100 * c.shift, same))
    return rows


def seeds_to_decide(power: list[Power]) -> tuple[int | None, int | None, int]:
    """For a claim: the seeds at which, each comparison at 80% power at its observed difference,
    it would be SUPPORTED (every comparison must support: the largest; None when one is not on the
    claim's side or too weak to project) or CONTRADICTED (one against suffices: the smallest;
    None when none is against), and the seeds that measure every comparison to the precision
    asked. Per comparison, not per claim: with several comparisons to support, the claim's own
    power is below 80%."""
    support = None if any(p.to_support is None for p in power) else max((p.to_support for p in power), default=None)
    against = min((p.to_contradict for p in power if p.to_contradict is not None), default=None)
    return support, against, max((p.for_precision for p in power), default=2)


def _points(value: float) -> str:
    """A bound in points: one decimal, two where one would print 0.0."""
    return f"{value:.2f}" if abs(value) < 0.05 else f"{value:.1f}"


def label_parts(label: str) -> tuple[str, str, str]:
    """A comparison's label "A vs B, where" as (A, B, where); where is "" when absent."""
    a, rest = label.split(" vs ", 1)
    b, where = rest.rsplit(", ", 1) if ", " in rest else (rest, "")
    return a, b, where


def ruled_out(c: Comparison) -> str:
    """What a comparison's 95% CI (per comparison, unadjusted) leaves open, in words: "ABCL is
    at most 1.2 points above CosFace at BIM L∞ ε=0.2"."""
    a, b, where = label_parts(c.label)
    low, high = 100 * c.low, 100 * c.high
    at = f" at {where}" if where else ""
    if low == high == 0:
        return f"{a} and {b} score the same on every seed{at}"
    if low == high:
        side = "above" if low > 0 else "below"
        return f"every seed gave {a} {_points(abs(low))} points {side} {b}{at} (sign test; no t-interval)"
    if low > 0:
        return f"{a} is {_points(low)} to {_points(high)} points above {b}{at}"
    if high < 0:
        return f"{a} is {_points(-high)} to {_points(-low)} points below {b}{at}"
    return f"{a} is at most {_points(high)} points above and at most {_points(-low)} points below {b}{at}"
