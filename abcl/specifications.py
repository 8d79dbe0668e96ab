"""The specification curve (multiverse analysis; Steegen et al. 2016, Simonsohn, Simmons and
Nelson 2020): the same claims judged under each defensible reading of our reconstruction's free
choices, to show which verdict depends on which choice.

config/specifications.yaml declares the specifications, each an overlay of the default that changes
one choice and judges the claims that choice can move (``claims.judge``), and the existing runs
that enter the curve from their snapshots. :func:`overlay` gives a specification's overlay for the
workflow; :func:`curve` reads every finished snapshot's comparisons.csv into one frame (each key
comparison's mean difference and 95% CI over seeds, each claim's verdict), which
:func:`abcl.figures.specification_curve` draws and :func:`specifications_markdown` tabulates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from abcl import ABCLError, claims
from abcl.config import ConfigError, load_checked, merge
from abcl.report import evidence_text
from abcl.statistics import verdict
from abcl.tables import markdown

SNAPSHOTS = Path("docs/runs")
# what the figure draws per claim: (claim, comparison label in comparisons.csv)
KEY_COMPARISONS = (
    ("1", "s=4 vs s=16, FGSM L∞ ε=0.2"), ("1", "s=4 vs s=16, BIM L∞ ε=0.2"),
    ("2", "ABCL vs HT-SCE, clean"), ("2", "ABCL vs HT-SCE, FGSM L∞ ε=0.2"), ("2", "ABCL vs HT-SCE, BIM L∞ ε=0.2"),
    ("3", "ABCL vs CosFace, test"),
    ("4", "ABCL vs CosFace, FGSM L∞ ε=0.2"), ("4", "ABCL vs CosFace, BIM L∞ ε=0.2"),
)
CLAIMS = ("1", "2", "3", "4")


def load(path: str | Path) -> dict[str, Any]:
    """config/specifications.yaml, validated (abcl/schemas/specifications.schema.yaml): each
    choice a specification names must be declared, with one of its declared values."""
    spec = load_checked(path, "specifications")
    for name, entry in {**spec["specifications"], **spec.get("runs", {})}.items():
        for choice, value in entry.get("choice", {}).items():
            if choice not in spec["choices"]:
                raise ConfigError(f"{path}: {name} changes '{choice}', which 'choices' does not declare")
            if str(value) not in map(str, spec["choices"][choice]):
                raise ConfigError(f"{path}: {name} sets {choice} to {value!r}; declared values: "
                                  f"{', '.join(map(str, spec['choices'][choice]))}")
    return spec


def tag(name: str) -> str:
    return f"spec-{name}"


def snapshot_dir(spec: dict[str, Any], name: str) -> Path:
    """Where a specification's or an existing run's finished snapshot lives."""
    if name in spec.get("runs", {}):
        return Path(spec["runs"][name]["snapshot"])
    return SNAPSHOTS / tag(name)


def overlay(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The config overlay that makes ``name`` a run of its own: its change of the default, its
    results folder (a tag), the specifications' seeds and the claims it judges."""
    if name not in spec["specifications"]:
        raise ABCLError(f"no specification '{name}'; declared: {', '.join(spec['specifications'])}")
    entry = spec["specifications"][name]
    return merge(entry.get("overlay", {}), {"tag": tag(name), "seeds": list(spec["seeds"]),
                                            "claims": {"judge": list(entry["judge"])}})


def choices_of(spec: dict[str, Any], name: str) -> dict[str, str]:
    """Every declared choice's value under ``name``: the ones it changes, the default elsewhere."""
    entry = {**spec["specifications"], **spec.get("runs", {})}[name]
    return {choice: str(entry.get("choice", {}).get(choice, values[0])) for choice, values in spec["choices"].items()}


def curve(spec: dict[str, Any]) -> pd.DataFrame:
    """One row per finished specification (or run) and key comparison: mean difference A − B and
    its 95% CI in points over seeds, the seeds, and the verdict and evidence of its claim there.
    A specification without a snapshot is left out (:func:`missing` names it)."""
    rows = []
    for name in [*spec["specifications"], *spec.get("runs", {})]:
        folder = snapshot_dir(spec, name)
        if not (folder / "comparisons.csv").exists():
            continue
        by_claim = claims.pooled_comparisons([claims.read_comparisons(folder / "comparisons.csv")])
        judged = {number: verdict(found) for number, found in by_claim.items()}
        kind = "specification" if name in spec["specifications"] else "run"
        for number, label in KEY_COMPARISONS:
            found = next((c for c in by_claim.get(number, []) if c.label == label), None)
            if found is None:
                continue
            rows.append({"name": name, "kind": kind, "claim": number, "comparison": label,
                         "diff": 100 * found.diff, "low": 100 * found.low, "high": 100 * found.high,
                         "seeds": found.seeds, "verdict": judged[number].outcome,
                         "evidence": evidence_text(judged[number]), **choices_of(spec, name)})
    return pd.DataFrame(rows)


def missing(spec: dict[str, Any]) -> list[str]:
    """The declared specifications and runs that have no finished snapshot yet."""
    return [name for name in [*spec["specifications"], *spec.get("runs", {})]
            if not (snapshot_dir(spec, name) / "comparisons.csv").exists()]


def specifications_markdown(spec: dict[str, Any], frame: pd.DataFrame) -> str:
    """specifications.md: each claim's verdict under each finished specification, what it
    changes, and per claim how many specifications support, contradict or leave it open."""
    if frame.empty:
        raise ABCLError("no specification has finished: run make specifications first")
    verdicts = frame.drop_duplicates(["name", "claim"]).pivot(index="name", columns="claim", values="verdict")
    evidence = frame.drop_duplicates(["name", "claim"]).pivot(index="name", columns="claim", values="evidence")
    names = list(dict.fromkeys(frame.name))
    entries = {**spec["specifications"], **spec.get("runs", {})}
    rows = []
    for name in names:
        changed = entries[name].get("choice", {})
        row = {"specification": name, "changes": "; ".join(f"{k}: {v}" for k, v in changed.items()) or "nothing (ours)",
               "seeds": str(int(frame[frame.name == name].seeds.max()))}
        for number in CLAIMS:
            shown = verdicts.get(number, {}).get(name) if number in verdicts else None
            row[f"claim {number}"] = f"{shown} ({evidence.loc[name, number]})" if isinstance(shown, str) else "not judged"
        rows.append(row)
    counts = []
    for number in CLAIMS:
        said = verdicts[number].dropna() if number in verdicts else pd.Series(dtype=str)
        counts.append({"claim": number, "specifications judging it": str(len(said)),
                       **{word: str(int((said == word).sum())) for word in ("SUPPORTED", "CONTRADICTED", "NOT SHOWN")}})
    estimates = frame.assign(estimate=[f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in
                                       zip(frame["diff"], frame.low, frame.high)])
    wide = estimates.pivot(index="name", columns="comparison", values="estimate").reindex(names).fillna("—")
    wide = wide[[label for _, label in KEY_COMPARISONS if label in wide.columns]].reset_index()
    not_yet = missing(spec)
    return ("# The specification curve\n\nEach claim's verdict under each specification of config/specifications.yaml "
            "(one free choice of our reconstruction changed, docs/method.md) and under the existing runs; in "
            "brackets its comparisons for, against (Holm-adjusted) and open. Generated by `make specification-curve` "
            "from the snapshots in docs/runs/.\n\n" + markdown(pd.DataFrame(rows))
            + "\nPer claim, how many specifications reach each verdict:\n\n" + markdown(pd.DataFrame(counts))
            + "\nThe key comparisons, A − B in accuracy points (k-NN points for claim 3), mean [95% CI] over seeds "
              "(`docs/specification_curve.png` draws them):\n\n" + markdown(wide)
            + (f"\nNot finished yet (no snapshot): {', '.join(not_yet)}.\n" if not_yet else ""))
