"""The statistics behind the verdicts: paired tests over seeds against hand-computed values, the
sign test and Wilson interval at zero spread, McNemar on one seed, Holm and the three outcomes."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from abcl.statistics import (TOO_MANY, CONTRADICTED, NOT_SHOWN, NOT_WORSE, SUPPORTED, compare_seeds, holm, mcnemar,
                             summarize, verdict)


def t2_sf(t):
    """Student's t survival function with 2 degrees of freedom, in closed form."""
    return 0.5 * (1 - t / math.sqrt(t * t + 2))


def seeds(*values):
    return pd.Series(values, index=range(len(values)))


def test_paired_t_over_seeds_matches_the_hand_computation():
    # d = (0.02, 0.03, 0.06): mean 0.11/3, s.d. sqrt(((-1/60)^2 + (-1/150)^2 + (7/300)^2) / 2)
    c = compare_seeds("A vs B", seeds(0.52, 0.55, 0.60), seeds(0.50, 0.52, 0.54))
    mean = 0.11 / 3
    sd = math.sqrt(((0.02 - mean) ** 2 + (0.03 - mean) ** 2 + (0.06 - mean) ** 2) / 2)
    t = mean / (sd / math.sqrt(3))
    assert c.diff == pytest.approx(mean) and c.seeds == 3
    assert c.p_support == pytest.approx(t2_sf(t)) and c.p_against == pytest.approx(1 - t2_sf(t))
    assert c.low == pytest.approx(mean - 4.302653 * sd / math.sqrt(3), abs=1e-6)  # t_{0.975, 2} = 4.3027
    assert c.test.startswith("paired t-test over 3 seeds")


def test_pairing_uses_the_common_seeds_only():
    a = pd.Series([0.6, 0.7, 0.8, 0.9], index=[0, 1, 2, 7])
    b = pd.Series([0.5, 0.5, 0.6], index=[0, 1, 2])
    assert compare_seeds("A vs B", a, b).seeds == 3
    with pytest.raises(ValueError):
        compare_seeds("A vs B", a, pd.Series([0.5], index=[7]))


def test_not_worse_shifts_the_test_by_the_margin():
    a, b = seeds(0.50, 0.51, 0.49), seeds(0.505, 0.50, 0.50)  # d = (-0.005, 0.01, -0.01): no difference
    superior = compare_seeds("A vs B", a, b)
    not_worse = compare_seeds("A vs B", a, b, NOT_WORSE, margin=0.05)
    assert superior.p_support > 0.5
    d = np.array([-0.005, 0.01, -0.01])
    t = (d.mean() + 0.05) / (d.std(ddof=1) / math.sqrt(3))
    assert not_worse.p_support == pytest.approx(t2_sf(t)) and not_worse.p_support < 0.05


def test_zero_spread_falls_back_to_the_sign_test():
    same = compare_seeds("A vs B", seeds(0.6, 0.7, 0.8), seeds(0.5, 0.6, 0.7))  # d = 0.1 for every seed
    assert (same.p_support, same.p_against) == (0.125, 1.0) and same.test.startswith("sign test over 3 seeds")
    assert (same.low, same.high) == (pytest.approx(0.1), pytest.approx(0.1))
    equal = compare_seeds("A vs B", seeds(0.5, 0.6), seeds(0.5, 0.6))
    assert (equal.p_support, equal.p_against) == (1.0, 1.0)
    # a sign test is about the median: it never shows "not worse on average" (both at 0%, say)
    floor = compare_seeds("A vs B", seeds(0.0, 0.0, 0.0), seeds(0.0, 0.0, 0.0), NOT_WORSE, margin=0.02)
    assert (floor.p_support, floor.p_against) == (1.0, 1.0)
    with pytest.raises(ValueError, match="a seed appears twice"):
        compare_seeds("A vs B", pd.Series([0.5, 0.6], index=[0, 0]), seeds(0.5, 0.6))


def test_mcnemar_on_one_seed_counts_the_discordant_images():
    right_a = np.arange(1000) < 560
    right_b = np.arange(1000) < 500
    c = mcnemar("A vs B", right_a, right_b)
    assert c.one_seed and c.p_support == pytest.approx(0.5 ** 60) and c.p_against == 1.0
    assert c.test.startswith("McNemar exact on 1000 items: 60 vs 0 discordant")
    assert mcnemar("A vs A", right_a, right_a).p_support == 1.0


def test_holm_matches_the_step_down_by_hand_and_statsmodels():
    from statsmodels.stats.multitest import multipletests
    # sorted p: 0.01 * 4 = 0.04; 0.02 * 3 = 0.06; max(0.06, 0.03 * 2) = 0.06; max(0.06, 0.5) = 0.5
    assert holm([0.02, 0.5, 0.01, 0.03]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 30):
        p = np.concatenate([rng.uniform(size=size), [0.01, 0.01, 1.0]])  # ties and ones included
        assert holm(list(p)) == pytest.approx(multipletests(p, method="holm")[1])
    assert len(holm([])) == 0


def comparison(p_support, p_against, seeds_=5):
    from abcl.statistics import Comparison
    return Comparison("A vs B", "superior", 0.0, seeds_, 0.0, 0.0, 0.0, p_support, p_against, "test")


def test_verdict_supports_by_intersection_union_and_contradicts_by_holm():
    # SUPPORTED: every comparison at one-sided p < alpha / 2, no correction for their number
    assert verdict([comparison(0.02, 0.98), comparison(0.024, 0.976)]).outcome == SUPPORTED
    held = verdict([comparison(0.001, 0.999), comparison(0.03, 0.97)])  # one comparison short of 0.025
    assert held.outcome == NOT_SHOWN and "1 of 2 comparisons support" in held.reason
    # CONTRADICTED: Holm over the p-values against, at alpha / 2: 0.02 alone, but 0.02 * 2 = 0.04 for two
    assert verdict([comparison(0.5, 0.02)]).outcome == CONTRADICTED
    two = verdict([comparison(0.98, 0.02), comparison(0.98, 0.02)])
    assert two.outcome == NOT_SHOWN and two.against_adjusted == pytest.approx((0.04, 0.04))
    against = verdict([comparison(0.001, 0.999), comparison(0.999, 0.001)])
    assert against.outcome == CONTRADICTED and "A vs B" in against.reason
    assert against.row_outcome(0) == "supports" and against.row_outcome(1) == "against"
    assert verdict([]).outcome == NOT_SHOWN


def test_one_seed_is_never_a_verdict_about_losses():
    found = verdict([comparison(1e-20, 1.0, seeds_=1)])
    assert found.outcome == NOT_SHOWN and "one seed" in found.reason and found.row_outcome(0) == "n/a (one seed)"


def scipy_wilson(k, n):
    import scipy.stats
    return scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson")


def test_summary_interval_uses_seeds_or_binomial_and_survives_zero_spread():
    one = summarize(pd.Series([0.9]), n_test=10_000)
    assert one["half"] == pytest.approx(1.96 * (0.9 * 0.1 / 10_000) ** 0.5, rel=1e-3)  # ~ normal approximation
    zero = summarize(pd.Series([0.0]), n_test=1000)
    assert zero["ci95_low"] == 0.0 and 0.003 < zero["ci95_high"] < 0.005  # Wilson: not a degenerate [0, 0]
    three = summarize(pd.Series([0.9, 0.92, 0.94]), n_test=10_000)
    assert three["sd"] == pytest.approx(0.02) and three["ci95_low"] < 0.9
    flat = summarize(pd.Series([0.5, 0.5, 0.5]), n_test=1000)  # no spread: Wilson over the 3,000 images
    assert flat["sd"] == 0.0 and (flat["ci95_low"], flat["ci95_high"]) == pytest.approx(scipy_wilson(1500, 3000))


# ---------------------------------------------------------------- precision and power
def test_half_width_and_the_seeds_for_a_precision_match_the_t_quantiles():
    from abcl.statistics import half_width, seeds_for_half_width
    # t(0.975, 3) = 3.1824: four seeds of s.d. 4 points give +-3.1824 * 4 / 2
    assert half_width(0.04, 4) == pytest.approx(3.18245 * 0.04 / 2, rel=1e-4)
    # s.d. 4 points, +-3 asked: 9 seeds give 2.3060 * 4 / 3 = 3.07, 10 give 2.2622 * 4 / sqrt(10) = 2.86
    assert seeds_for_half_width(0.04, 0.03) == 10
    assert seeds_for_half_width(0.0, 0.03) == 2
    assert seeds_for_half_width(0.5, 0.001) == TOO_MANY  # past the cap: one value, shown as "> 10,000"


def power_by_hand(effect, n, level):
    """One-sided one-sample t-test power from the noncentral t (scipy), independent of statsmodels."""
    from scipy import stats
    return stats.nct.sf(stats.t.isf(level, n - 1), n - 1, effect * math.sqrt(n))


def test_seeds_for_power_are_the_fewest_reaching_80_percent_on_the_noncentral_t():
    from abcl.statistics import seeds_for_power
    for shift, sd, level in ((0.03, 0.03, 0.025), (0.02, 0.05, 0.025), (-0.05, 0.02, 0.025 / 8)):
        n = seeds_for_power(shift, sd, level)
        effect = abs(shift) / sd
        assert power_by_hand(effect, n, level) >= 0.8 > power_by_hand(effect, n - 1, level)
    assert seeds_for_power(0.5, 0.01, 0.025) == 2  # a huge effect: the smallest paired test
    assert seeds_for_power(0.0, 0.03, 0.025) is None  # no direction: no count
    assert seeds_for_power(1e-6, 0.05, 0.025) == TOO_MANY  # beyond MAX_SEEDS: not the same as no direction


def test_where_every_seed_gives_one_difference_power_follows_the_sign_test():
    """compare_seeds runs the exact sign test then (p = 2^-k), so its count is the smallest k with
    2^-k below the level: 6 at 0.025 (2^-6 = 0.0156; 2^-5 = 0.031 is not), 9 at 0.05 / 16."""
    from abcl.statistics import power_of, seeds_for_power
    assert seeds_for_power(0.02, 0.0, 0.025) == 6 and seeds_for_power(-0.02, 0.0, 0.05 / 16) == 9
    for k in (6, 9):
        level = 0.025 if k == 6 else 0.05 / 16
        assert 0.5 ** k < level <= 0.5 ** (k - 1)
    same = seeds(0.60, 0.61, 0.62)
    up = compare_seeds("A vs B, clean", same, same - 0.01)
    # "not worse" with one difference on every seed: the sign test speaks of the median, never supports
    level = compare_seeds("A vs C, clean", same, same + 0.01, NOT_WORSE, 0.02)
    rows = power_of([up, level], alpha=0.05)
    assert rows[0].to_support == 6 and rows[0].to_contradict is None
    assert rows[1].to_support is None and rows[1].to_contradict is None and not rows[1].weak
    from abcl.report import SIGN_ONLY, power_rows
    table = power_rows([up, level])
    assert list(table["seeds, 80% power to support"]) == ["6", SIGN_ONLY]
    assert list(table["95% CI ±"]) == ["— (sign test)"] * 2
    assert table.iloc[0, -1] == "every seed gave A 1.0 points above B at clean (sign test; no t-interval)"
    # the rule agrees: 6 seeds of +1 point support at 2^-6 < 0.025, 5 do not
    assert compare_seeds("A vs B", seeds(*[0.6] * 6), seeds(*[0.59] * 6)).p_support < 0.025
    assert compare_seeds("A vs B", seeds(*[0.6] * 5), seeds(*[0.59] * 5)).p_support > 0.025


def test_a_shift_within_one_standard_error_gets_no_seed_count():
    """A mean 0.1 s.e. from the boundary: the sign of the true shift is a coin toss, so no count of
    seeds "to decide" is projected from it (it would run into the hundreds on noise alone)."""
    from abcl.report import WEAK, power_rows, precision_summary
    from abcl.claims import Claim
    from abcl.statistics import power_of, verdict
    near = compare_seeds("A vs B, clean", seeds(0.50, 0.55, 0.45, 0.52), seeds(0.503, 0.503, 0.503, 0.503))
    assert near.diff == pytest.approx(0.002) and near.sd == pytest.approx(0.042, abs=0.001)  # t = 0.1
    row = power_of([near])[0]
    assert row.weak and row.to_support is None and row.to_contradict is None
    assert power_rows([near]).iloc[0]["seeds, 80% power to support"] == WEAK
    claim = Claim("Claim 9: A beats B", "", [near], verdict([near]))
    text = precision_summary(claim)
    assert "no seed count can be projected: A vs B, clean lies within one standard error" in text
    # the summary: "not projected" while only noise stands in the way, "—" once a comparison
    # clearly lies on the wrong side (no seed count supports the claim then)
    from abcl.report import summary_markdown
    assert f"| {WEAK} |" in " ".join(summary_markdown([claim]).split())
    down = compare_seeds("A vs D, clean", seeds(0.50, 0.52, 0.49, 0.51), seeds(0.55, 0.56, 0.57, 0.59))
    both = Claim("Claim 9: A beats B and D", "", [near, down], verdict([near, down]))
    row = " ".join(summary_markdown([both]).split()).split("| Claim 9 |")[1]
    assert WEAK not in row and "| — |" in row


def test_power_of_reads_each_comparison_from_the_claims_boundary():
    from abcl.statistics import power_of, seeds_for_power, seeds_to_decide
    up = compare_seeds("A vs B, clean", seeds(0.60, 0.62, 0.61, 0.65), seeds(0.55, 0.56, 0.57, 0.58))
    # not worse by 2 points: d = -1 point is on the claim's side of -2
    level = compare_seeds("A vs C, clean", seeds(0.50, 0.52, 0.49, 0.51), seeds(0.51, 0.535, 0.50, 0.52),
                          NOT_WORSE, 0.02)
    down = compare_seeds("A vs D, clean", seeds(0.50, 0.52, 0.49, 0.51), seeds(0.55, 0.56, 0.57, 0.59))
    rows = power_of([up, level, down], alpha=0.05, precision_points=3.0)
    assert [r.label for r in rows] == ["A vs B, clean", "A vs C, clean", "A vs D, clean"]
    assert rows[0].to_support == seeds_for_power(up.diff, up.sd, 0.025) and rows[0].to_contradict is None
    assert rows[1].to_support == seeds_for_power(level.diff + 0.02, level.sd, 0.025)
    # against: Holm's first step over the claim's three comparisons
    assert rows[2].to_contradict == seeds_for_power(down.diff, down.sd, 0.05 / 6) and rows[2].to_support is None
    support, against, precise = seeds_to_decide(rows)
    assert support is None  # A vs D lies against the claim: no seed count supports it
    assert against == rows[2].to_contradict and precise == max(r.for_precision for r in rows)
    assert seeds_to_decide(rows[:2])[0] == max(rows[0].to_support, rows[1].to_support)


def test_what_an_interval_rules_out_reads_in_points():
    from abcl.statistics import ruled_out
    straddles = compare_seeds("ABCL vs CosFace, BIM L∞ ε=0.2", seeds(0.10, 0.14, 0.12), seeds(0.11, 0.12, 0.14))
    text = ruled_out(straddles)
    assert text == (f"ABCL is at most {100 * straddles.high:.1f} points above and at most {-100 * straddles.low:.1f} "
                    "points below CosFace at BIM L∞ ε=0.2")
    # a bound that would print as 0.0 gets two decimals
    near = compare_seeds("ABCL vs CosFace, test", seeds(0.5, 0.5, 0.5), seeds(0.502, 0.501, 0.5015))
    assert ruled_out(near) == "ABCL is 0.03 to 0.3 points below CosFace at test"  # CI [-0.27, -0.026]
    assert ruled_out(compare_seeds("A vs B, clean", seeds(0.5, 0.6), seeds(0.5, 0.6))) == \
        "A and B score the same on every seed at clean"
    above = compare_seeds("s=4 vs s=16, clean", seeds(0.99, 0.98, 0.985), seeds(0.90, 0.91, 0.905))
    assert ruled_out(above).startswith("s=4 is ") and "points above s=16 at clean" in ruled_out(above)


def test_a_shift_between_runs_is_welchs_test_on_the_per_seed_differences():
    from abcl.statistics import shift_between
    # run A: d = 0.00, 0.02, 0.04 (mean 0.02, var 4e-4); run B: d = 0.05, 0.09 (mean 0.07, var 8e-4)
    a = compare_seeds("X vs Y", pd.Series([0.90, 0.92, 0.94]), pd.Series([0.90, 0.90, 0.90]))
    b = compare_seeds("X vs Y", pd.Series([0.95, 0.99], index=[7, 8]), pd.Series([0.90, 0.90], index=[7, 8]))
    found = shift_between(a, b)
    # by hand: se² = 4e-4/3 + 8e-4/2 = 5.333e-4; df = se⁴ / ((4e-4/3)²/2 + (8e-4/2)²/1) = 1.6842
    assert found.diff == pytest.approx(0.05) and found.t == pytest.approx(0.05 / math.sqrt(5.3333e-4), rel=1e-4)
    assert found.df == pytest.approx(1.6842, rel=1e-4)
    reference = stats.ttest_ind([0.05, 0.09], [0.0, 0.02, 0.04], equal_var=False)
    assert found.p == pytest.approx(reference.pvalue) and found.t == pytest.approx(reference.statistic)
    assert found.low < found.diff < found.high and found.low < 0  # two seeds in B: a wide interval
    with pytest.raises(ValueError, match="two seeds in each"):
        shift_between(a, dataclasses.replace(b, per_seed=b.per_seed[:1]))


def test_shifts_between_two_runs_read_their_comparisons_csv(tmp_path):
    from abcl import ABCLError
    from abcl.runs import shifts_markdown
    interim = Path(__file__).resolve().parent.parent / "docs" / "runs" / "mnist5k-alexnet-interim"
    frame = pd.read_csv(interim / "comparisons.csv", dtype={"protocol": str})
    for name, shift in (("a", 0.0), ("b", 0.05)):
        (tmp_path / name).mkdir()
        moved = frame.copy()
        moved.loc[moved.comparison.str.startswith("ABCL vs CosFace"), "a"] += shift
        moved.to_csv(tmp_path / name / "comparisons.csv", index=False)
    table = shifts_markdown(tmp_path / "a", tmp_path / "b",
                            ["ABCL vs CosFace, BIM L∞ ε=0.2", "ABCL vs SCE, FGSM L∞ ε=0.2"])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:]}
    # the same per-seed spread moved by 5 points: +5.0; the untouched comparison does not move
    assert rows["ABCL vs CosFace, BIM L∞ ε=0.2"][3].startswith("+5.0 [")
    assert rows["ABCL vs SCE, FGSM L∞ ε=0.2"][3].startswith("+0.0 [-") and rows["ABCL vs SCE, FGSM L∞ ε=0.2"][5] == "1"
    with pytest.raises(ABCLError, match="not a comparison of both runs: no such"):
        shifts_markdown(tmp_path / "a", tmp_path / "b", ["no such"])
