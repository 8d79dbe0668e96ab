"""Stability of the verdicts: the same config run twice on disjoint seed sets.

Reads two (or more) finished runs of one config whose seeds do not overlap (e.g. the default and
the default with `benchmarks/seed-set-b.yaml`), and writes, per claim, each run's verdict, whether
any pair of runs flips between SUPPORTED and CONTRADICTED, and per comparison how each run reads
it (supports / against / neither). Then the power table of all seeds pooled (`abcl power`).

    python benchmarks/seed_sets.py results/mnist5k results/mnist5k-seeds10to19 \\
        --markdown benchmarks/measured/seed-sets-2026-12-05.md
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd

from abcl.claims import pooled_comparisons
from abcl.report import claim_verdicts, power_markdown
from abcl.statistics import ALPHA, CONTRADICTED, SUPPORTED, verdict
from abcl.tables import markdown

FLIP = {SUPPORTED, CONTRADICTED}


def run_frames(folders: list[Path]) -> list[pd.DataFrame]:
    frames = [pd.read_csv(folder / "comparisons.csv") for folder in folders]
    for (a, fa), (b, fb) in itertools.combinations(zip(folders, frames), 2):
        common = set(fa.seed) & set(fb.seed)
        if common:
            raise SystemExit(f"{a} and {b} share seeds {sorted(common)}: the sets must be disjoint")
    return frames


def stability(folders: list[Path], alpha: float, precision_points: float) -> str:
    frames = run_frames(folders)
    verdicts = [claim_verdicts((folder / "claims.md").read_text()) for folder in folders]
    names = [f"{folder.name} (seeds {', '.join(map(str, sorted(frame.seed.unique())))})"
             for folder, frame in zip(folders, frames)]
    rows, flips = [], []
    for claim in verdicts[0]:
        found = [v.get(claim, "—") for v in verdicts]
        flipped = any({x, y} == FLIP for x, y in itertools.combinations(found, 2))
        flips += [claim] if flipped else []
        rows.append({"claim": claim, **dict(zip(names, found)), "SUPPORTED↔CONTRADICTED": "FLIP" if flipped else "no"})
    readings = []
    per_run = [pooled_comparisons([frame]) for frame in frames]
    for number, comparisons in per_run[0].items():
        for i, c in enumerate(comparisons):
            row = {"claim": number, "comparison": c.label}
            for name, runs in zip(names, per_run):
                found = verdict(runs[number], alpha)
                other = runs[number][i]
                row[name] = f"{100 * other.diff:+.1f} [{100 * other.low:+.1f}, {100 * other.high:+.1f}] " \
                            f"{found.row_outcome(i)}"
            readings.append(row)
    pooled = pooled_comparisons(frames)
    return ("# Verdicts on disjoint seed sets\n\n"
            f"Runs: {', '.join(str(f) for f in folders)}. Rule: `abcl/statistics.py` at α = {alpha:g}.\n\n"
            + markdown(pd.DataFrame(rows))
            + f"\n**{'No' if not flips else len(flips)} SUPPORTED↔CONTRADICTED flip"
            + ("s" if len(flips) > 1 else "") + (f": {', '.join(flips)}" if flips else "") + ".**\n\n"
            + "Each comparison in each run: mean difference A − B in points [95% CI] and how it reads.\n\n"
            + markdown(pd.DataFrame(readings))
            + f"\n# All seeds pooled: precision and power (`abcl power {' '.join(map(str, folders))}`)\n\n"
            + power_markdown(pooled, alpha, precision_points, exploratory=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="finished runs of one config, disjoint seeds")
    parser.add_argument("--alpha", type=float, default=ALPHA)
    parser.add_argument("--precision-points", type=float, default=3.0)
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    args = parser.parse_args()
    text = stability(args.results, args.alpha, args.precision_points)
    if args.markdown:
        args.markdown.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
