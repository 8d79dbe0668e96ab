"""Stability of the verdicts: the same config run twice on disjoint seed sets.

Reads two (or more) seed sets of one config that do not overlap, and writes, per claim, each
set's verdict (the rule of abcl/statistics.py over the set's comparisons.csv rows, as the claims
rule reaches it), whether any pair of sets flips between SUPPORTED and CONTRADICTED, and per
comparison how each set reads it (supports / against / neither). Then the power table of all
seeds pooled (`abcl power`), labelled exploratory. A seed set is a finished run's folder, or
several joined by "+", optionally cut to a seed range with ":FIRST-LAST" (runs of one config on
one kernel tier give the same bits per seed, so seeds 0-14 read from two runs are the run of
seeds 0-14).

    python benchmarks/seed_sets.py results/mnist5k \\
        results/mnist5k-10seeds+results/mnist5k-seeds10to19:0-14 --markdown benchmarks/measured/seed-sets-....md
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd

from abcl.claims import pooled_comparisons, read_comparisons
from abcl.report import difference_text, power_markdown
from abcl.statistics import ALPHA, CONTRADICTED, SUPPORTED, verdict
from abcl.tables import markdown

FLIP = {SUPPORTED, CONTRADICTED}


def seed_set(spec: str) -> pd.DataFrame:
    """The comparisons.csv rows of a seed set: "FOLDER[+FOLDER...][:FIRST-LAST]"."""
    folders, _, seeds = spec.partition(":")
    frame = pd.concat([read_comparisons(Path(folder) / "comparisons.csv") for folder in folders.split("+")],
                      ignore_index=True)
    if seeds:
        first, last = map(int, seeds.split("-"))
        frame = frame[frame.seed.between(first, last)]
    return frame.drop_duplicates(["claim", "comparison", "seed", "a", "b"])


def seed_sets(specs: list[str]) -> list[pd.DataFrame]:
    frames = [seed_set(spec) for spec in specs]
    for (a, fa), (b, fb) in itertools.combinations(zip(specs, frames), 2):
        common = set(fa.seed) & set(fb.seed)
        if common:
            raise SystemExit(f"{a} and {b} share seeds {sorted(common)}: the sets must be disjoint")
        if set(zip(fa.claim, fa.comparison)) != set(zip(fb.claim, fb.comparison)):
            raise SystemExit(f"{a} and {b} run different comparisons: not one config")
    return frames


def _seeds(frame: pd.DataFrame) -> str:
    seeds = sorted(frame.seed.unique())
    consecutive = seeds == list(range(seeds[0], seeds[-1] + 1))
    return f"{seeds[0]}-{seeds[-1]}" if consecutive and len(seeds) > 2 else ", ".join(map(str, seeds))


def _reading(c, outcome: str) -> str:
    return f"{difference_text(c)} {outcome}"


def stability(specs: list[str], alpha: float, precision_points: float) -> str:
    frames = seed_sets([str(spec) for spec in specs])
    names = [f"{spec} (seeds {_seeds(frame)})" for spec, frame in zip(specs, frames)]
    per_set = [pooled_comparisons([frame]) for frame in frames]
    verdicts = [{claim: verdict(comparisons, alpha) for claim, comparisons in found.items()} for found in per_set]
    rows, flips, readings = [], [], []
    for claim in per_set[0]:
        found = [v[claim].outcome for v in verdicts]
        flipped = any({x, y} == FLIP for x, y in itertools.combinations(found, 2))
        flips += [f"Claim {claim}"] if flipped else []
        rows.append({"claim": f"Claim {claim}", **dict(zip(names, found)),
                     "SUPPORTED↔CONTRADICTED": "FLIP" if flipped else "no"})
        for c in per_set[0][claim]:
            row = {"claim": claim, "comparison": c.label}
            for name, found_set, judged in zip(names, per_set, verdicts):
                labels = [other.label for other in found_set[claim]]
                i = labels.index(c.label)
                row[name] = _reading(found_set[claim][i], judged[claim].row_outcome(i))
            readings.append(row)
    pooled = pooled_comparisons(frames)
    return ("# Verdicts on disjoint seed sets\n\n"
            f"Seed sets: {', '.join(map(str, specs))}. Each set's verdicts: the rule of `abcl/statistics.py` at "
            f"α = {alpha:g} over its comparisons.csv rows.\n\n"
            + markdown(pd.DataFrame(rows))
            + f"\n**{'No' if not flips else len(flips)} SUPPORTED↔CONTRADICTED flip"
            + ("s" if len(flips) > 1 else "") + (f": {', '.join(flips)}" if flips else "") + ".**\n\n"
            + "Each comparison in each set: mean difference A − B in points [95% CI] and how it reads.\n\n"
            + markdown(pd.DataFrame(readings))
            + "\n# All seeds pooled: precision and power\n\n"
            + power_markdown(pooled, alpha, precision_points, exploratory=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", help="seed sets: FOLDER[+FOLDER...][:FIRST-LAST], disjoint seeds")
    parser.add_argument("--alpha", type=float, default=ALPHA)
    parser.add_argument("--precision-points", type=float, default=3.0)
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    args = parser.parse_args()
    text = stability(args.sets, args.alpha, args.precision_points)
    if args.markdown:
        args.markdown.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
