"""Rendering of the run's reports: claims.md (each claim's comparisons, verdict, precision and
power), the gradient-masking report, adversarial.md and the leaderboard (README's runs side by side:
:mod:`abcl.runs`). What each claim compares lives in :mod:`abcl.claims`, the statistics in :mod:`abcl.statistics`.
"""

from __future__ import annotations

import pandas as pd

from abcl import ABCLError, claims
from abcl.claims import PAPER_NAMES, Claim, Correct, _pct, accuracy_stats
from abcl.statistics import (ALPHA, MAX_SEEDS, SUPERIOR, Comparison, Verdict, label_parts, power_of, rule,
                             ruled_out, seeds_to_decide, summarize, verdict)
from abcl.tables import (STANDARD_AUTOATTACK, autoattack_budget, markdown, ordered_evaluations,
                         robustness_tables, tables_markdown, with_evaluation)

PRECISION_POINTS = 3.0  # the 95% CI half-width, in points, the power analysis aims at (claims.precision_points)


def difference_text(c: Comparison) -> str:
    """A − B in points with its 95% CI, as claims.md prints it (no CI for one seed)."""
    if c.one_seed:
        return f"{100 * c.diff:+.1f}"
    return f"{100 * c.diff:+.1f} [{100 * c.low:+.1f}, {100 * c.high:+.1f}]"


NETWORKS = {"small": "small net", "alexnet": "AlexNet-style net"}  # short names, for headers
NETWORK_NOTES = {
    "small": "the LeNet-size `small` net (ours, for fast CPU runs; the paper never used it), so these verdicts are "
             "about that net, not about the paper's AlexNet",
    "alexnet": "the AlexNet-style net (the paper's network as docs/method.md reconstructs it)",
}


def network_note(arch: str) -> str:
    """Which network made a run's verdicts, in words."""
    return NETWORK_NOTES.get(arch, f"the `{arch}` net")


def evidence_text(found: Verdict) -> str:
    """"4 for, 2 against, 6 open": how the claim's comparisons read (Verdict.tally)."""
    tally = found.tally()
    return f"{tally['for']} for, {tally['against']} against, {tally['open']} open"


def against_text(comparisons: list[Comparison], found: Verdict) -> str:
    """Which part of the claim fails: the comparisons that go against it, grouped by the pair
    compared ("ABCL below CosFace at BIM L∞ ε=0.2, BIM L2 ε=2"); "—" when none does."""
    grouped: dict[str, list[str]] = {}
    for c in found.against(comparisons):
        a, b, where = label_parts(c.label)
        grouped.setdefault(f"{a} below {b}", []).append(where)
    return "; ".join(f"{pair} at {', '.join(w for w in wheres if w)}" if any(wheres) else pair
                     for pair, wheres in grouped.items()) or "—"


def comparison_rows(comparisons: list[Comparison], found: Verdict) -> pd.DataFrame:
    """One row per comparison: what, the kind, the difference in points, the test, its p for the
    claim and its Holm-adjusted p against it (each read at alpha / 2)."""
    return pd.DataFrame([{
        "comparison": c.label,
        "kind": c.kind if c.kind == SUPERIOR else f"{c.kind} (δ = {100 * c.margin:g} points)",
        "A − B, points [95% CI]": difference_text(c), "test": c.test,
        "p for": f"{found.support[i]:.2g}", "p against (Holm)": f"{found.against_adjusted[i]:.2g}",
        "reads": found.row_outcome(i),
    } for i, c in enumerate(comparisons)])


WEAK = "not projected (|t| < 1)"
SIGN_ONLY = "never (sign test)"
POWER_LEGEND = (
    "*Reading the power table.* Each interval is the comparison's own 95% CI, not adjusted for the claim's "
    "other comparisons (the verdict adjusts only the side against the claim, by Holm; a comparison supports "
    "the claim when its one-sided test does, which needs no adjustment). A seed count assumes the mean and s.d. "
    "stay as measured, so it is rough wherever |t| < 2 (it scales with 1/t²). In each power column \"—\" means "
    "the mean is not on that column's side of the claim's boundary (0, or −δ for \"not worse\"); \"> 10,000\" "
    f"that the count exceeds 10,000; \"{WEAK}\" that the mean lies within one standard error of the boundary, "
    f"where even its side is not established; \"{SIGN_ONLY}\" that every seed gave the same difference, where "
    "the rule runs the sign test, which cannot show \"not worse\" on average.\n")


def _seeds(n: int | None, weak: bool = False, sign_only: bool = False) -> str:
    if weak:
        return WEAK
    if sign_only:
        return SIGN_ONLY
    if n is None:
        return "—"
    return f"> {MAX_SEEDS:,}" if n > MAX_SEEDS else str(n)


def _seed_count(counts) -> str:
    """"20 seeds", or "18–20 seeds" where comparisons have different common seeds."""
    counts = list(counts)
    low, high = min(counts), max(counts)
    return f"{low} seeds" if low == high else f"{low}–{high} seeds"


def power_rows(comparisons: list[Comparison], alpha: float = ALPHA,
               precision_points: float = PRECISION_POINTS) -> pd.DataFrame:
    """The power table of one claim: per comparison over seeds, its s.d. and 95% CI half-width now,
    the seeds for ±precision_points, for 80% power to support and to contradict, and what the
    interval leaves open."""
    return pd.DataFrame([{
        "comparison": p.label, "seeds": p.seeds, "mean d": f"{p.diff:+.1f}", "s.d. of d": f"{p.sd:.1f}",
        "95% CI ±": "— (sign test)" if p.same else f"{p.half:.1f}",
        f"seeds for ±{precision_points:g}": _seeds(p.for_precision),
        "seeds, 80% power to support": _seeds(p.to_support, p.weak and p.shift > 0,
                                               p.same and p.shift > 0 and p.to_support is None),
        "to contradict": _seeds(p.to_contradict, p.weak and p.shift < 0),
        "what the 95% CI (unadjusted) leaves open": ruled_out(c),
    } for p, c in zip(power_of(comparisons, alpha, precision_points), [c for c in comparisons if not c.one_seed])])


def precision_summary(claim: Claim, alpha: float = ALPHA, precision_points: float = PRECISION_POINTS) -> str:
    """One paragraph: is every comparison measured to ±precision_points, and how many seeds would
    decide the claim (80% power per comparison at its observed mean and s.d.)."""
    power = power_of(claim.comparisons, alpha, precision_points)
    if not power:
        return ""
    seeds = _seed_count(p.seeds for p in power)
    support, against, precise = seeds_to_decide(power)
    widest = max(power, key=lambda p: p.half)
    measured = (f"every comparison is measured to ±{precision_points:g} points (widest 95% CI ±{widest.half:.1f}, "
                f"{widest.label})" if widest.half <= precision_points else
                f"not every comparison is measured to ±{precision_points:g} points: the widest 95% CI is "
                f"±{widest.half:.1f} ({widest.label}); ±{precision_points:g} on every comparison needs "
                f"{_seeds(precise)} seeds if the spread stays as measured")
    if claim.outcome != "NOT SHOWN":
        return f"*Precision ({seeds}):* {measured}.\n"
    k = max(p.seeds for p in power)
    ways = [(f"{outcome} at about {n} seeds ({n - k} more)" if n <= MAX_SEEDS else
             f"{outcome} only past {MAX_SEEDS:,} seeds")
            for outcome, n in (("SUPPORTED", support), ("CONTRADICTED", against)) if n is not None]
    weak = [p.label for p in power if p.weak]
    if ways:
        decide = (" or ".join(ways) + ", each comparison at 80% power if its mean and s.d. stay as measured "
                  "(per comparison: with several to support, the claim's own power is lower)")
    elif weak:
        decide = ("no seed count can be projected: " + "; ".join(weak) + f" lie{'s' if len(weak) == 1 else ''} "
                  "within one standard error of the claim's boundary, where even its side is not established; "
                  "more seeds would first have to say which side it is on")
    else:
        decide = ("no seed count is expected to decide it: a comparison cannot support the claim (on the wrong "
                  "side of its boundary, or a \"not worse\" comparison the sign test judges), and none lies far "
                  "enough past it to contradict")
    return f"*Precision ({seeds}):* {measured}. *To decide:* {decide}.\n"


EXPLORATORY = (
    "*Exploratory.* These verdicts pool runs whose seeds were added after earlier results were seen "
    "(optional stopping): the rule's error rate α holds for one run planned in advance, not for a verdict "
    "reached by adding seeds until one comes. Use them to plan the next run on fresh seeds, and read its verdict.\n")


def power_markdown(by_claim: dict[str, list[Comparison]], alpha: float = ALPHA,
                   precision_points: float = PRECISION_POINTS, exploratory: bool = False) -> str:
    """`abcl power`: per claim, the verdict its comparisons reach, their precision and the seeds
    that would decide it, then the power table of every comparison. ``exploratory``: the runs
    were pooled, so the verdicts are labelled as such."""
    parts = [EXPLORATORY if exploratory else "", POWER_LEGEND]
    for number, comparisons in by_claim.items():
        claim = Claim(f"Claim {number}", "", comparisons, verdict(comparisons, alpha))
        label = f"{claim.outcome} (exploratory)" if exploratory else claim.outcome
        parts.append(f"## Claim {number}: {label} over {_seed_count(c.seeds for c in comparisons)}\n\n"
                     + precision_summary(claim, alpha, precision_points) + "\n"
                     + markdown(power_rows(comparisons, alpha, precision_points)))
    return "\n".join(part for part in parts if part)


def summary_markdown(found: list[Claim], alpha: float = ALPHA, precision_points: float = PRECISION_POINTS) -> str:
    """The verdicts at a glance, with each claim's precision and the seeds that would decide it."""
    rows = []
    for claim in found:
        power = power_of(claim.comparisons, alpha, precision_points)
        support, against, precise = seeds_to_decide(power)
        widest = f"{max(p.half for p in power):.1f}" if power else "— (one seed)"
        # no count to support: "—" when a comparison clearly lies on the wrong side, "never (sign test)"
        # when a "not worse" comparison is left to the sign test, else "not projected"
        wrong_side = any(p.to_support is None and not p.weak and p.shift <= 0 for p in power)
        sign_only = not wrong_side and any(p.to_support is None and p.same and p.shift > 0
                                           for p in power)
        cannot_support = not (wrong_side or sign_only) and any(p.weak for p in power)
        weak_against = against is None and any(p.weak and p.shift < 0 for p in power)
        rows.append({"claim": claim.statement.split(":", 1)[0], "verdict": claim.outcome,
                     "comparisons: for, against, open": evidence_text(claim.verdict),
                     "what goes against it": against_text(claim.comparisons, claim.verdict),
                     "widest 95% CI ± (points)": widest,
                     f"seeds for ±{precision_points:g}": _seeds(precise) if power else "n/a (one seed)",
                     "seeds to support (each comparison at 80% power)":
                         _seeds(support, support is None and cannot_support, support is None and sign_only)
                         if power else "n/a (one seed)",
                     "seeds to contradict (one comparison at 80% power)":
                         _seeds(against, weak_against) if power else "n/a (one seed)"})
    return ("## Summary\n\nEach claim's verdict; how many of its comparisons support it, go against it (Holm-adjusted) "
            "and are open, for one against it makes it CONTRADICTED whatever the others read; which comparisons go "
            "against it; the widest 95% CI among its comparisons, and the seeds a power "
            "analysis of these per-seed differences asks for (`abcl power`, docs/evaluation.md): for a 95% CI of "
            f"±{precision_points:g} points on every comparison (`claims.precision_points`), and for 80% power, per "
            "comparison at its observed mean and s.d., to support the claim (every comparison must, so the claim's "
            "own power is lower) or to contradict it (one suffices; Holm's first step). A decided claim needs no "
            "more. Counts assume the means and s.d.s stay as measured; see the legend under each claim's power "
            "table.\n\n"
            + markdown(pd.DataFrame(rows)))


def claim_markdown(claim: Claim, alpha: float = ALPHA, precision_points: float = PRECISION_POINTS) -> str:
    """A claim's section body: what is compared, why the verdict, the numbers, each test, and the
    precision and power of each comparison over seeds."""
    body = [f"*Compared (fixed before the run):* {claim.planned}\n", f"*Why:* {claim.verdict.reason}.\n"]
    if claim.note:
        body.append(claim.note)
    if claim.shown is not None and len(claim.shown):
        body.append(f"{claim.shown_label}:\n\n" + markdown(claim.shown))
    if claim.comparisons:
        body.append(markdown(comparison_rows(claim.comparisons, claim.verdict)))
    summary = precision_summary(claim, alpha, precision_points)
    if summary:
        body.append(summary)
        body.append(markdown(power_rows(claim.comparisons, alpha, precision_points)))
    return "\n".join(body)


# ---------------------------------------------------------------- gradient masking
# each masking check, with the attacks it needs on one budget (vanished gradients need none)
MASKING_CHECKS = {
    "vanished input gradients": set(),
    "FGSM beating BIM": {"fgsm", "bim"},
    "CE/DLR disagreement": {"apgd_ce", "apgd_dlr"},
    "Square beating every gradient attack": {"square"},
    "adaptive attacks far stronger than FGSM/BIM": {"adaptive"},
}


def _masking_checks(attacks: set[str]) -> set[str]:
    """The masking checks that a budget's attacks let run."""
    ran = attacks | ({"adaptive"} if attacks & set(PAPER_NAMES) and attacks - {*PAPER_NAMES, "worst_case"} else set())
    return {check for check, needs in MASKING_CHECKS.items() if needs <= ran}


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
        flags, checks = [], {"vanished input gradients"}
        if grads.frac_vanished_gradient > max_vanished_fraction:
            flags.append(f"vanished gradient on {100 * grads.frac_vanished_gradient:.0f}% of inputs")
        for (norm, eps), budget in group[group.attack != "clean"].groupby(["norm", "eps"]):
            at = budget.set_index("attack")[compared]
            checks |= _masking_checks(set(at.index))
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
            "checks": "; ".join(check for check in MASKING_CHECKS if check in checks),
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
    if not found and "autoattack" not in set(group.attack):
        return "not run (no AutoAttack)", weaker
    return ("; ".join(found) or "not run (no APGD-CE at 100 iterations beside AutoAttack)"), weaker



# ---------------------------------------------------------------- claims.md
FULL_TRAIN_SIZE = 60_000  # MNIST's and Fashion-MNIST's training sets


def data_note(dataset: str, n_train: int, arch: str) -> str:
    """What a reader must know when the models saw fewer training images than the full dataset."""
    if n_train >= FULL_TRAIN_SIZE:
        return ""
    return (f"**Subset.** These models, {network_note(arch)}, trained on {n_train:,} images ({dataset}), not the "
            f"full {FULL_TRAIN_SIZE:,}. Verdicts that compare losses can change with training-set size and with the "
            "network: config/cpu-full.yaml runs the small net on full MNIST, config/alexnet.yaml the AlexNet-style "
            "net on these 4,000 images, both on a CPU (docs/evaluation.md: \"What each configuration can show\").\n")


def adversarial_report(evals: pd.DataFrame, correct: Correct, alpha: float = ALPHA,
                       precision_points: float = PRECISION_POINTS) -> str:
    """adversarial.md: the adversarially trained models' table and claim 5's verdict."""
    first = evals.iloc[0]
    claim = claims.adversarial(evals, correct, alpha)
    return ("# Adversarial training with each loss\n\n"
            f"Trained on L∞ adversarial examples (ε = {first.adv_eps:g}, {int(first.adv_steps)} steps of "
            f"{first.adv_step_size:g}) for {int(first.epochs)} epochs; {int(evals.seed.nunique())} seed(s), "
            f"{int(first.n)} test images, dataset {first.dataset}, net {first.arch}. {TRAINING_LENGTH_NOTE} "
            "Accuracy (%) on the test set, mean ± s.d. over seeds.\n\n"
            + tables_markdown(robustness_tables(evals))
            + f"\n## {claim.statement}\n\n**Verdict: {claim.outcome}**\n\n{rule(alpha)}\n"
            + claim_markdown(claim, alpha, precision_points))


# how long the references train their robust MNIST models: ours are far shorter
TRAINING_LENGTH_NOTE = ("The references train far longer: Madry et al.'s MNIST model ≈ 83 epochs (100,000 "
                        "iterations of 50 images), TRADES' 100 epochs; robust accuracy here is that of short training.")


def _judged_note(found: list[Claim]) -> str:
    """Where a run judges fewer than the paper's four claims (``claims.judge``), which ones."""
    numbers = [c.statement.split(" ", 2)[1] for c in found if c.statement != claims.ADVERSARIAL_CLAIM]
    if numbers == ["1", "2", "3", "4"]:
        return ""
    return (f"**Claims judged:** {', '.join(numbers)} only (`claims.judge`): this run trained only the models they "
            "compare, as a specification of the specification curve does (config/specifications.yaml).\n")


def claims_report(found: list[Claim], table_evals: pd.DataFrame, masking: pd.DataFrame | None,
                  data_note: str = "", adversarial_note: str = "", alpha: float = ALPHA,
                  precision_points: float = PRECISION_POINTS) -> str:
    """claims.md from the claims of :func:`abcl.claims.paper_claims` (``table_evals`` gives the
    seeds and test images named at the top). Without claim 5 among them, its section shows
    ``adversarial_note`` (where it is built) instead."""
    seeds = sorted(table_evals.seed.unique())
    n_test = int(table_evals.n[table_evals.attack == "clean"].iloc[0])
    parts = [
        "# Do our runs reproduce the paper's claims?\n",
        f"Generated by the workflow from {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), {n_test} test "
        f"images per evaluation, dataset {table_evals.dataset.iloc[0]}. **Network:** "
        f"{network_note(table_evals.arch.iloc[0])}. "
        "Accuracies in %, with 95% confidence intervals in brackets (t-interval over seeds; Wilson interval over "
        "test images when there is one seed).\n",
        rule(alpha),
        *([data_note] if data_note else []),
        *([_judged_note(found)] if _judged_note(found) else []),
        summary_markdown(found, alpha, precision_points),
        POWER_LEGEND,
    ]
    for claim in found:
        parts.append(f"## {claim.statement}\n\n**Verdict: {claim.outcome}**\n\n"
                     + claim_markdown(claim, alpha, precision_points))
    adversarial = any(claim.statement == claims.ADVERSARIAL_CLAIM for claim in found)
    if not adversarial and adversarial_note:
        parts.append(f"## {claims.ADVERSARIAL_CLAIM}\n\n**Verdict: NOT RUN in this target.** {adversarial_note}\n")
    if masking is not None and len(masking):
        flagged = masking[masking.masking_suspected]
        parts.append("## Gradient masking\n\n" + (
            f"{len(flagged)} of {len(masking)} models show signs of gradient masking:\n\n"
            + markdown(flagged[["model", "seed", "flags"]]) if len(flagged)
            else f"None of the {len(masking)} models shows signs of gradient masking "
                 f"(checked: {_checks_that_ran(masking)}).\n") + _budget_note(masking))
    return "\n".join(parts)


def _checks_that_ran(masking: pd.DataFrame) -> str:
    """The masking checks run on any model, in words."""
    if "checks" not in masking:  # an older masking.csv: which attacks it had is not recorded, so claim none
        return "which of them ran is not recorded in this masking.csv (rerun its masking rule)"
    ran = {check for checks in masking.checks.fillna("") for check in checks.split("; ") if check}
    shown = [check for check in MASKING_CHECKS if check in ran]
    skipped = [check for check in MASKING_CHECKS if check not in ran]
    return ", ".join(shown) + (f"; not run, for want of the attacks: {', '.join(skipped)}" if skipped else "")


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
    if not any(c.startswith("AutoAttack") and c.endswith(" mean") for c in table.columns):
        return ("No AutoAttack ran in this run (eval.full_seeds: 0, or no `autoattack_*` in adaptive_attacks): "
                "the models' clean accuracy only; 95% intervals over seeds.\n\n" + markdown(shown.astype(str)))
    return ("Robust accuracy under AutoAttack (APGD-CE with the log-space cross-entropy, APGD-T, FAB-T, Square) "
            f"at {table.attrs.get('budget', 'the budget in each column')}; most robust first; 95% intervals over "
            "the AutoAttack seeds, or over test images with one seed.\n\n" + markdown(shown.astype(str)))
