"""Figures 1-3 and the adversarial-training curves, drawn from the per-model CSV records
(gathered by ``abcl.tables``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from abcl import ABCLError  # noqa: E402
from abcl.records import atomic_path  # noqa: E402
from abcl.tables import (ATTACK_NAMES, NORM_SYMBOL, PAPER_ATTACKS, ordered_evaluations, split_method,  # noqa: E402
                         with_evaluation)

SET_TITLES = {"train": "train", "test": "test", "bim_linf": "BIM L∞ adversarial test",
              "fgsm_l2": "FGSM L2 adversarial test"}


def save_figure(fig: plt.Figure, png_path: str | Path) -> None:
    """Write ``png_path`` and the PDF beside it, each atomically."""
    png_path = Path(png_path)
    for path in (png_path, png_path.with_suffix(".pdf")):
        with atomic_path(path) as part:
            fig.savefig(part, format=path.suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)


def _grid(n_panels: int, ncols: int, width: float, height: float) -> tuple[plt.Figure, np.ndarray]:
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, axes.flat


def _of_loss(frame: pd.DataFrame, loss: str, figure: str, name: str) -> pd.DataFrame:
    """The rows of ``loss`` under the paper's attacks; none is a mistake in the inputs, not an empty figure."""
    rows = frame[(frame.loss == loss) & frame.attack.isin(PAPER_ATTACKS)]
    if rows.empty:
        found = ", ".join(sorted(map(str, frame.loss.unique())))
        raise ABCLError(f"{figure} needs evaluations of {name} models (loss {loss}); the inputs hold {found}")
    return rows


def fig1_heatmaps(frame: pd.DataFrame, out_png: str | Path) -> pd.DataFrame:
    """HT-SCE + AB: mean accuracy (%) over seeds on the (k1, k2) grid, one heatmap per evaluation."""
    frame = with_evaluation(_of_loss(frame, "ht_sce", "Fig. 1", "HT-SCE"))
    evaluations = ordered_evaluations(frame, middle_only=True)
    sns.set_theme(style="white", font_scale=1.0)
    fig, axes = _grid(len(evaluations), 3, 4.6, 3.9)
    summary = []
    for ax, evaluation in zip(axes, evaluations):
        cells = frame[frame.evaluation == evaluation].groupby(["k1", "k2"]).accuracy_pct.mean()
        grid = cells.unstack("k2").sort_index(ascending=False)
        grid.index = [f"{v:g}" for v in grid.index]
        grid.columns = [f"{v:g}" for v in grid.columns]
        sns.heatmap(grid, annot=True, fmt=".1f", cmap="viridis", ax=ax, cbar_kws={"label": "accuracy (%)"},
                    annot_kws={"fontsize": 9})
        ax.set(title=evaluation, xlabel="k2 (inter-class weight)", ylabel="k1 (intra-class weight)")
        summary.append(cells.rename("accuracy_pct").reset_index().assign(evaluation=evaluation))
    seeds = frame.groupby(["k1", "k2"]).seed.nunique()
    fig.suptitle(f"Fig. 1 — HT-SCE + AB over (k1, k2), {seeds_per_cell(seeds)}", y=1.0)
    fig.tight_layout()
    save_figure(fig, out_png)
    found = pd.concat(summary, ignore_index=True)
    return found.assign(seeds=[int(seeds[(k1, k2)]) for k1, k2 in zip(found.k1, found.k2)])


def seeds_per_cell(seeds: pd.Series) -> str:
    """How many seeds each Fig. 1 cell averages: "mean of 15 seeds", or, where the drawn-only cells
    train fewer (eval.figure_seeds), "mean of 15 seeds at 0/0, 512/64; of 3 at 0/64, 512/0"."""
    by_count: dict[int, list[str]] = {}
    for (k1, k2), n in seeds.items():
        by_count.setdefault(int(n), []).append(f"{k1:g}/{k2:g}")
    if len(by_count) == 1:
        n = next(iter(by_count))
        return f"mean of {n} seed{'s' * (n != 1)}"
    return "mean of " + "; of ".join(f"{n} seed{'s' * (n != 1)} at {', '.join(cells)}"
                                     for n, cells in sorted(by_count.items(), reverse=True))


def fig2_scale(frame: pd.DataFrame, out_png: str | Path) -> pd.DataFrame:
    """Cos-SCE basis: accuracy (%) against the scale s, one line per evaluation, band = seed s.d."""
    frame = with_evaluation(_of_loss(frame, "cos_sce", "Fig. 2", "Cos-SCE"))
    evaluations = ordered_evaluations(frame, middle_only=True)
    frame = frame[frame.evaluation.isin(evaluations)]
    sns.set_theme(style="whitegrid", font_scale=1.1)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    sns.lineplot(frame, x="s", y="accuracy_pct", hue="evaluation", hue_order=evaluations, style="evaluation",
                 markers=True, dashes=False, errorbar="sd", ax=ax)
    ax.set(xlabel="scale s of the cosine logits", ylabel="test accuracy (%)", ylim=(0, 100.5),
           title=f"Fig. 2 — Cos-SCE basis loss over s ({frame.seed.nunique()} seed(s), band = s.d.)")
    ax.set_xticks(sorted(frame.s.unique()))
    ax.legend(title="evaluation", bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    save_figure(fig, out_png)
    return frame.groupby(["s", "evaluation"]).accuracy_pct.agg(["mean", "std", "count"]).reset_index()


def fig3_tsne(embeddings: dict[str, pd.DataFrame], out_png: str | Path,
              scores: dict[str, pd.DataFrame] | None = None, set_titles: dict[str, str] | None = None,
              seed: int | None = None) -> None:
    """3 x 4 grid of t-SNE maps: rows SCE / CosFace / ABCL, columns train / test / BIM L∞ / FGSM L2;
    one trained network per loss, of ``seed`` (the title names it)."""
    titles = {**SET_TITLES, **(set_titles or {})}
    sns.set_theme(style="white", font_scale=1.0)
    fig, axes = plt.subplots(len(embeddings), len(titles), figsize=(3.3 * len(titles), 3.3 * len(embeddings)),
                             squeeze=False)
    palette = sns.color_palette("tab10", 10)
    for row, (name, frame) in enumerate(embeddings.items()):
        for col, set_name in enumerate(titles):
            ax = axes[row, col]
            part = frame[frame.set == set_name]
            ax.scatter(part.tsne_x, part.tsne_y, c=[palette[i] for i in part.label], s=3, linewidths=0, alpha=0.8)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[set_name])
            if col == 0:
                ax.set_ylabel(name, fontsize=13)
            if scores is not None and name in scores:
                score = scores[name].set_index("set").loc[set_name]
                ax.text(0.02, 0.02, f"kNN {100 * score.tsne_knn_accuracy:.1f}%  sil {score.silhouette:.2f}",
                        transform=ax.transAxes, fontsize=8, bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
    handles = [plt.Line2D([], [], marker="o", ls="", color=palette[i], label=str(i)) for i in range(10)]
    fig.legend(handles=handles, title="digit", loc="center right", bbox_to_anchor=(1.0, 0.5), frameon=False)
    which = "one network per loss" + (f", seed {seed}" if seed is not None else "")
    fig.suptitle(f"Fig. 3 — t-SNE of the 10-dim latent features ({which})", y=1.0)
    fig.tight_layout(rect=(0, 0, 0.94, 1))
    save_figure(fig, out_png)


def adversarial_curves(frame: pd.DataFrame, out_png: str | Path) -> pd.DataFrame:
    """Adversarially trained models: accuracy (%) against the budget eps, one line per loss, band =
    seed s.d.; a row of panels per training method, a column per attack (the paper's, AutoAttack)."""
    frame = with_evaluation(frame[frame.attack != "clean"])
    names = [split_method(model) for model in frame.model]
    frame = frame.assign(loss_name=[base for base, _ in names], method=[method for _, method in names])
    methods = list(dict.fromkeys(frame.method))
    attacks = [(a, n) for n in ("linf", "l2") for a in ("fgsm", "bim", "autoattack")
               if ((frame.attack == a) & (frame.norm == n)).any()]
    sns.set_theme(style="whitegrid", font_scale=1.0)
    fig, axes = plt.subplots(len(methods), len(attacks), figsize=(3.6 * len(attacks), 3.2 * len(methods)),
                             squeeze=False, sharey=True)
    order = list(dict.fromkeys(frame.loss_name))
    for row, method in enumerate(methods):
        for col, (attack, norm) in enumerate(attacks):
            ax = axes[row, col]
            part = frame[(frame.method == method) & (frame.attack == attack) & (frame.norm == norm)]
            sns.lineplot(part, x="eps", y="accuracy_pct", hue="loss_name", hue_order=order, style="loss_name",
                         markers=True, dashes=False, errorbar="sd", ax=ax, legend=row == 0 and col == len(attacks) - 1)
            label = f"{ATTACK_NAMES[attack]} {NORM_SYMBOL[norm]}"
            ax.set(title=f"{method}: {label}", xlabel="ε", ylabel="test accuracy (%)" if col == 0 else "", ylim=(0, 100.5))
            ax.set_xticks(sorted(part.eps.unique()))
    if len(attacks):
        axes[0, len(attacks) - 1].legend(title="loss", bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    fig.suptitle(f"Adversarial training with each loss: robust accuracy vs ε ({frame.seed.nunique()} seed(s), "
                 "band = s.d.)", y=1.0)
    fig.tight_layout()
    save_figure(fig, out_png)
    return frame.groupby(["model", "evaluation"], sort=False).accuracy_pct.agg(["mean", "std", "count"]).reset_index()


def specification_curve(frame: pd.DataFrame, choices: dict[str, list], out_png: str | Path) -> pd.DataFrame:
    """The specification curve: per key comparison, each specification's mean difference A − B
    with its 95% CI over seeds, sorted, coloured by where the interval lies (above 0: for the
    claim; below: against; across: open), and beneath it the dot matrix of the choices that
    define each specification (specr's layout, Simonsohn et al. 2020). The colour reads the
    comparison's own interval; a claim's verdict (Holm over all its comparisons) is in
    specifications.md. Returns what each panel shows, in its order."""
    if frame.empty:
        raise ABCLError("no finished specification to draw: run make specifications first")
    comparisons = list(dict.fromkeys(frame.comparison))
    shown = [(choice, str(value)) for choice, values in choices.items() for value in values
             if (frame[choice].astype(str) == str(value)).any() and frame[choice].nunique() > 1]
    n_specs = frame.name.nunique()
    ncols = min(2, len(comparisons))
    nrows = -(-len(comparisons) // ncols)
    matrix_height = 0.22 * max(len(shown), 1)
    fig = plt.figure(figsize=(max(5.5, 0.45 * n_specs + 2.5) * ncols, (2.6 + matrix_height) * nrows))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.55, wspace=0.6, top=1 - 1.0 / fig.get_figheight())
    colours = {"for": "#1b7837", "against": "#b2182b", "open": "#808080"}
    drawn = []
    for index, comparison in enumerate(comparisons):
        rows = frame[frame.comparison == comparison].sort_values("diff", kind="stable").reset_index(drop=True)
        inner = outer[index // ncols, index % ncols].subgridspec(2, 1, height_ratios=[2.6, matrix_height], hspace=0.05)
        top, bottom = fig.add_subplot(inner[0]), fig.add_subplot(inner[1])
        side = np.where(rows.low > 0, "for", np.where(rows.high < 0, "against", "open"))
        drawn.append(rows[["comparison", "name", "diff", "low", "high"]].assign(position=range(len(rows)), side=side))
        for x, row, where in zip(range(len(rows)), rows.itertuples(), side):
            top.errorbar(x, row.diff, yerr=[[row.diff - row.low], [row.high - row.diff]], fmt="o" if row.kind ==
                         "specification" else "s", color=colours[where], capsize=2, markersize=4)
        top.axhline(0, color="black", linewidth=0.6)
        top.set_xlim(-0.6, len(rows) - 0.4)
        top.set_xticks([])
        top.set_title(f"claim {rows.claim.iloc[0]}: {comparison}", fontsize=9)
        top.set_ylabel("A − B (points)", fontsize=8)
        for y, (choice, value) in enumerate(shown):
            here = [x for x, row in rows.iterrows() if str(row[choice]) == value]
            bottom.scatter(here, [y] * len(here), s=10, color="black")
        bottom.set_ylim(len(shown) - 0.5, -0.5)
        bottom.set_yticks(range(len(shown)), [f"{choice}: {value}" for choice, value in shown], fontsize=7)
        bottom.set_xlim(top.get_xlim())
        bottom.set_xticks(range(len(rows)), rows.name, rotation=60, ha="right", fontsize=7)
        bottom.grid(axis="y", linewidth=0.3)
    fig.suptitle("Specification curve: A − B, mean and 95% CI over seeds, per specification (circles) and existing run "
                 "(squares)\ngreen: the interval above 0, red: below, grey: across (each comparison's own interval; "
                 "the verdicts, Holm over a claim's comparisons, are in specifications.md)", fontsize=8)
    save_figure(fig, out_png)
    return pd.concat(drawn, ignore_index=True)
