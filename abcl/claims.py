"""The paper's claims as fixed lists of comparisons, one function per claim.

Each function takes the run's evaluations, picks the pre-specified comparisons (which models, at
which evaluations, superiority or "not worse"), runs them with the seed as the unit and returns a
:class:`Claim` with the verdict of :func:`abcl.statistics.verdict`. The Markdown of claims.md is
rendered by :mod:`abcl.report`; the statistics live in :mod:`abcl.statistics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from abcl import ABCLError
from abcl.config import VARIANT_KEYS, evaluation_key
from abcl.plan import ABCL, COSFACE, HT_SCE, HT_SCE_AB, SCE
from abcl.records import read_csv
from abcl.statistics import (ALPHA, NOT_WORSE, SUPERIOR, Comparison, Verdict, compare_seeds, label_parts, mcnemar,
                             summarize, verdict)
from abcl.tables import PAPER_ATTACKS, load_correct, ordered_evaluations, percent, split_method, with_evaluation

PAPER_NAMES = ("fgsm", "bim")
MARGIN_POINTS = 2.0  # the equivalence margin of a "not worse" comparison, in accuracy points
ACCURACY_SHOWN = "Accuracy (%), mean [95% CI] over seeds"


@dataclass(frozen=True)
class Claim:
    statement: str
    planned: str  # what is compared, fixed before the run
    comparisons: list[Comparison]
    verdict: Verdict
    shown: pd.DataFrame | None = None  # the accuracies behind the comparisons, as claims.md shows them
    shown_label: str = ACCURACY_SHOWN
    note: str = ""  # Markdown read beside the verdict (e.g. the compared models' masking flags)

    @property
    def outcome(self) -> str:
        return self.verdict.outcome


def _claim(statement: str, planned: str, comparisons: list[Comparison], alpha: float, shown=None,
           **extra) -> Claim:
    return Claim(statement, planned, comparisons, verdict(comparisons, alpha), shown, **extra)


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


# a reading of the method (abcl.config.VARIANT_KEYS) is named only where a model's record has it,
# so that runs of one reading keep their settings and two readings never pool
LOSS_SETTINGS = ("loss", "k1", "k2", "s", "m", *VARIANT_KEYS)


def loss_settings(rows: pd.DataFrame) -> str:
    """What a model's rows say of its loss, e.g. "loss=ht_sce k1=512 k2=64 s=5 m=0", with
    " ab_form=linear" where its record names a reading other than the default ("" when they
    carry no loss columns)."""
    found = rows[[c for c in LOSS_SETTINGS if c in rows]].drop_duplicates()
    return "; ".join(" ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                              if not (k in VARIANT_KEYS and pd.isna(v)))
                     for row in found.to_dict("records"))


def compare_accuracy(label: str, a: pd.DataFrame, b: pd.DataFrame, correct: Correct, kind: str = SUPERIOR,
                     margin: float = 0.0) -> Comparison:
    """Model a vs model b at one evaluation (``a``, ``b``: its rows, one per seed): over the
    common seeds when there are two or more, else McNemar on the one seed's test images."""
    seeds = sorted(set(a.seed) & set(b.seed))
    if not seeds:
        raise ABCLError(f"{label}: the two models share no seed")
    if len(seeds) >= 2:
        return compare_seeds(label, a.set_index("seed").accuracy, b.set_index("seed").accuracy, kind, margin,
                             f"{loss_settings(a)} vs {loss_settings(b)}")
    row_a, row_b = a[a.seed == seeds[0]].iloc[0], b[b.seed == seeds[0]].iloc[0]
    key = evaluation_key(row_a.attack, row_a.norm, row_a.eps)
    try:
        right_a, right_b = correct[(row_a.config_hash, key)], correct[(row_b.config_hash, key)]
    except KeyError as missing:
        raise ABCLError(f"no per-image results for {missing.args[0]}: pass the models' correct.npz files") from None
    return mcnemar(label, right_a, right_b, kind, margin)


def _pct(value: float) -> str:
    return percent(value)


def _interval(row) -> str:
    return f"{_pct(row['mean'])} [{_pct(row['ci95_low'])}, {_pct(row['ci95_high'])}]"


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


def scale(fig2: pd.DataFrame, correct: Correct, alpha: float = ALPHA, margin_points: float = MARGIN_POINTS) -> Claim:
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
                      [], alpha)
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
    return _claim(text, planned, comparisons, alpha, _accuracy_grid(fig2, "s", evaluations, name=lambda s: f"{s:g}"))


def ab_repairs(fig1: pd.DataFrame, correct: Correct, alpha: float = ALPHA) -> Claim:
    """Claim 2: plain HT-SCE (0, 0) degrades and ABCL's AB terms repair it. Pre-specified: ABCL's
    (k1, k2) against (0, 0), superiority, at the middle budget of each attack and clean.
    ``fig1`` is labelled by model: the plan names the (0, 0) run HT-SCE and the chosen one ABCL,
    or HT-SCE+AB where ABCL has another basis (abcl.basis: cosface); the claim is about HT-SCE + AB
    either way."""
    named = fig1.drop_duplicates("model").set_index("model")
    chosen = ABCL if ABCL in named.index else HT_SCE_AB
    if not {HT_SCE, chosen} <= set(named.index):
        return _claim("Claim 2 (Fig. 1): HT-SCE at (k1, k2) = (0, 0) degrades; adding the AB terms repairs it.",
                      "ABCL's (k1, k2) against (0, 0); this configuration's Fig. 1 grid lacks one of them", [], alpha)
    k1, k2 = named.loc[chosen, "k1"], named.loc[chosen, "k2"]
    text = f"Claim 2 (Fig. 1): HT-SCE at (k1, k2) = (0, 0) degrades; the AB terms at ({k1:g}, {k2:g}) repair it."
    fig1 = with_evaluation(fig1[(fig1.loss == "ht_sce") & fig1.attack.isin(PAPER_ATTACKS)])
    evaluations = ordered_evaluations(fig1, middle_only=True)
    planned = f"{chosen} ({k1:g}, {k2:g}) against HT-SCE (0, 0): higher, at {', '.join(evaluations)}."
    comparisons = [compare_accuracy(f"{chosen} vs HT-SCE, {e}", _runs(fig1, e, model=chosen),
                                    _runs(fig1, e, model=HT_SCE), correct) for e in evaluations]
    grid = _accuracy_grid(fig1.assign(setting=[f"{a:g}/{b:g}" for a, b in zip(fig1.k1, fig1.k2)]), "setting",
                          evaluations)
    return _claim(text, planned, comparisons, alpha, grid.rename(columns={"setting": "k1/k2"}))


SEPARATION_PAIRS = ((COSFACE, SCE), (ABCL, SCE), (ABCL, COSFACE))


def separation(scores: pd.DataFrame, knn_correct: dict[tuple[str, str], np.ndarray] | None = None,
               alpha: float = ALPHA, set_titles: dict[str, str] | None = None) -> Claim:
    """Claim 3: CosFace and ABCL features separate classes better than SCE, ABCL better than
    CosFace, on every set. Pre-specified: the k-NN accuracy in the t-SNE plane (the figure's
    reading), for the three pairs on each set. ``scores`` (separability, labelled by model, with
    a seed column) gives per-seed accuracies; with one seed, ``knn_correct`` ((model, set) -> which
    points k-NN got right, the same points for every model) gives McNemar's test on the points.
    The silhouette of the 10-dim features is shown, not tested. ``set_titles`` names the sets in
    the labels (an adversarial set with its budget: :func:`abcl.embed.adversarial_set_titles`)."""
    text = ("Claim 3 (Fig. 3): CosFace and ABCL features separate classes better than SCE; ABCL shows fewer "
            "overlaps than CosFace, also on the adversarial sets.")
    titles = set_titles or {}
    scores = scores.assign(seed=scores.seed if "seed" in scores else 0,
                           set=[titles.get(s, s) for s in scores["set"]])
    knn_correct = knn_correct and {(model, titles.get(s, s)): found for (model, s), found in knn_correct.items()}
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
    return _claim(text, planned, comparisons, alpha, accuracies,
                  shown_label="k-NN accuracy in the t-SNE plane (%) and silhouette of the features, mean over seeds")


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


def robustness(table_evals: pd.DataFrame, correct: Correct, masking: pd.DataFrame | None = None,
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
    return _claim(text, planned, comparisons, alpha, grid, note=_masking_note(masking, (SCE, COSFACE, ABCL)))


ADVERSARIAL_CLAIM = "Claim 5 (ours, beyond the paper): ABCL adds robustness on top of adversarial training."


def adversarial(evals: pd.DataFrame, correct: Correct, alpha: float = ALPHA) -> Claim:
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
    return _claim(ADVERSARIAL_CLAIM, planned, comparisons, alpha, _accuracy_grid(frame, "model", evaluations))




def paper_claims(fig1: pd.DataFrame, fig2: pd.DataFrame, table_evals: pd.DataFrame, scores: pd.DataFrame,
                 masking: pd.DataFrame | None, correct: Correct, adversarial_evals: pd.DataFrame | None = None,
                 knn_correct: dict[tuple[str, str], np.ndarray] | None = None, alpha: float = ALPHA,
                 margin_points: float = MARGIN_POINTS, judge: tuple[int, ...] = (1, 2, 3, 4),
                 set_titles: dict[str, str] | None = None) -> list[Claim]:
    """Claims 1-4 (and 5 with adversarial evaluations), those of ``judge`` only; ``fig1``,
    ``table_evals`` and ``adversarial_evals`` labelled by model (the plan's names), ``correct`` the
    models' per-image results for one-seed comparisons, ``set_titles`` claim 3's set names. A claim
    left out needs none of its inputs."""
    judge = set(judge)
    found = ([scale(fig2, correct, alpha, margin_points)] if 1 in judge else []) \
        + ([ab_repairs(fig1, correct, alpha)] if 2 in judge else []) \
        + ([separation(scores, knn_correct, alpha, set_titles)] if 3 in judge else []) \
        + ([robustness(table_evals, correct, masking, alpha)] if 4 in judge else [])
    if adversarial_evals is not None:
        found.append(adversarial(adversarial_evals, correct, alpha))
    return found


# what identifies the experiment behind a comparisons.csv: runs pool only when these agree
EXPERIMENT_COLUMNS = ("dataset", "arch", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay",
                      "dropout", "n_test", "protocol")


def _settings_of(c: Comparison, table_evals: pd.DataFrame) -> str:
    """A comparison's loss settings; for one over other scores (claim 3's), its models' rows in
    the table, found by the names its label starts with."""
    if c.settings:
        return c.settings
    a, b, _ = label_parts(c.label)
    of = {name: loss_settings(table_evals[table_evals.model == name]) for name in (a, b)}
    return f"{of[a]} vs {of[b]}"


COMPARISON_COLUMNS = ("claim", "comparison", "kind", "margin", "settings", "seed", "a", "b", *EXPERIMENT_COLUMNS)


def per_seed_frame(found: list[Claim], table_evals: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """comparisons.csv: one row per claim, comparison and seed with the two accuracies compared
    (fractions), the comparison's kind, margin and loss settings, and the experiment it came from
    (``protocol``: :func:`abcl.config.comparison_protocol`, the attacks' and t-SNE sets' settings).
    `abcl power` pools such files over runs of one experiment with disjoint seeds."""
    first = table_evals.iloc[0]
    experiment = {column: first.get(column, "") for column in EXPERIMENT_COLUMNS}
    experiment["n_test"] = int(table_evals.n[table_evals.attack == "clean"].iloc[0])
    experiment["protocol"] = protocol
    rows = [{"claim": claim.statement.split(" ", 2)[1], "comparison": c.label, "kind": c.kind, "margin": c.margin,
             "settings": _settings_of(c, table_evals), "seed": seed, "a": a, "b": b, **experiment}
            for claim in found for c in claim.comparisons for seed, a, b in c.per_seed]
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def read_comparisons(path: str | Path) -> pd.DataFrame:
    """A comparisons.csv, or one line naming what is wrong with it; its protocol read as text, and
    claim 3's sets named with their budgets (:func:`budgeted_set_names`)."""
    frame = read_csv(path, COMPARISON_COLUMNS, "a comparisons CSV (comparisons.csv)", text_columns=("protocol",))
    return frame.assign(comparison=budgeted_set_names(frame.comparison))


def budgeted_set_names(labels: pd.Series) -> pd.Series:
    """Claim 3's labels as comparisons.csv wrote them before its sets carried their budgets
    ("ABCL vs SCE, bim_linf") renamed as they are written now ("ABCL vs SCE, BIM L∞ ε=0.2
    adversarial test"), so that `abcl shift` and `abcl pool` pair a snapshot of either age. Those
    runs used the schema's budgets: no config ever set others, and their protocol hashes
    (:func:`abcl.config.comparison_protocol`, which holds the budgets) equal their configs'."""
    from abcl.config import setting
    from abcl.embed import adversarial_set_titles
    titles = adversarial_set_titles(setting(None, "embed.bim_linf_eps"), setting(None, "embed.fgsm_l2_eps"))
    legacy = {f", {name}": f", {title}" for name, title in titles.items()}
    return labels.replace({rf"{old}$": new for old, new in legacy.items()}, regex=True)


def pooled_comparisons(frames: list[pd.DataFrame]) -> dict[str, list[Comparison]]:
    """Claim number -> its comparisons over every seed of the given comparisons.csv frames, which
    must come from one experiment: the same training settings, and per comparison the same kind,
    margin and loss settings; a seed in two of them must carry the same accuracies."""
    frame = pd.concat(frames, ignore_index=True)
    if frame.protocol.isna().any() or (frame.protocol.astype(str).str.strip() == "").any():
        raise ABCLError("a comparisons.csv without its protocol (abcl claims --comparisons without --config): "
                        "rerun its claims rule, so that abcl power can tell whether the runs are one experiment")
    experiments = frame[list(EXPERIMENT_COLUMNS)].astype(str).drop_duplicates()
    if len(experiments) > 1:
        differ = [column for column in EXPERIMENT_COLUMNS if experiments[column].nunique() > 1]
        what = " (the attacks, test images, t-SNE sets, AB warm-up or adversarial training)" if "protocol" in differ else ""
        raise ABCLError("the runs are different experiments (" + "; ".join(
            ", ".join(f"{k}={v}" for k, v in row.items()) for row in experiments[differ].to_dict("records"))
            + f"{what}): pool only runs of one config with different seeds")
    for (claim, label), group in frame.groupby(["claim", "comparison"], sort=False):
        for column in ("kind", "margin", "settings"):
            values = group[column].drop_duplicates()
            if len(values) > 1:
                raise ABCLError(f"claim {claim}, {label}: the runs compare different {column} "
                                f"({' / '.join(map(str, values))}): pool only runs of one config")
    keys = ["claim", "comparison", "seed"]
    unique = frame.drop_duplicates([*keys, "a", "b"])
    clash = unique[unique.duplicated(keys, keep=False)]
    if len(clash):
        row = clash.iloc[0]
        raise ABCLError(f"seed {row.seed} gives two different results for {row.comparison}: the runs are not one "
                        "experiment")
    found: dict[str, list[Comparison]] = {}
    for (claim, label), group in unique.groupby(["claim", "comparison"], sort=False):
        first = group.iloc[0]
        if len(group) < 2:
            raise ABCLError(f"claim {claim}, {label}: {len(group)} seed in all the runs; a comparison over seeds "
                            "needs two")
        found.setdefault(str(claim), []).append(compare_seeds(
            label, group.set_index("seed").a, group.set_index("seed").b, first.kind, float(first.margin),
            first.settings))
    return found
