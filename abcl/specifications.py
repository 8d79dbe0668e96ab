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
    own = merge(spec.get("overlay", {}), entry.get("overlay", {}))
    return merge(own, {"tag": tag(name), "seeds": list(spec["seeds"]), "claims": {"judge": list(entry["judge"])}})


def choices_of(spec: dict[str, Any], name: str) -> dict[str, str]:
    """Every declared choice's value under ``name``: the ones it changes, the default elsewhere."""
    entry = {**spec["specifications"], **spec.get("runs", {})}[name]
    return {choice: str(entry.get("choice", {}).get(choice, values[0])) for choice, values in spec["choices"].items()}


def _finished(spec: dict[str, Any]):
    """(name, kind, per claim its comparisons and verdict) of every finished specification and run;
    each verdict recomputed from comparisons.csv and checked against the run's own claims.md."""
    from abcl.runs import claim_verdicts
    for name in [*spec["specifications"], *spec.get("runs", {})]:
        folder = snapshot_dir(spec, name)
        if not (folder / "comparisons.csv").exists():
            continue
        by_claim = claims.pooled_comparisons([claims.read_comparisons(folder / "comparisons.csv")])
        said = claim_verdicts((folder / "claims.md").read_text()) if (folder / "claims.md").exists() else {}
        judged = {}
        for number, found in by_claim.items():
            judged[number] = verdict(found)
            stated = said.get(f"Claim {number}")
            if stated is not None and stated != judged[number].outcome:
                raise ABCLError(f"{folder}: claims.md says claim {number} is {stated}, its comparisons.csv gives "
                                f"{judged[number].outcome} (another alpha?): rerun its claims rule")
        yield name, "specification" if name in spec["specifications"] else "run", by_claim, judged


def curve(spec: dict[str, Any]) -> pd.DataFrame:
    """One row per finished specification (or run) and key comparison: mean difference A − B and
    its 95% CI in points over seeds, the seeds, and the verdict of its claim there. A
    specification without a snapshot is left out (:func:`missing` names it)."""
    rows = []
    for name, kind, by_claim, judged in _finished(spec):
        for number, label in KEY_COMPARISONS:
            found = next((c for c in by_claim.get(number, []) if c.label == label), None)
            if found is not None:
                rows.append({"name": name, "kind": kind, "claim": number, "comparison": label,
                             "diff": 100 * found.diff, "low": 100 * found.low, "high": 100 * found.high,
                             "seeds": found.seeds, "verdict": judged[number].outcome, **choices_of(spec, name)})
    return pd.DataFrame(rows)


def verdicts(spec: dict[str, Any]) -> pd.DataFrame:
    """One row per finished specification (or run) and claim it judges: verdict, its comparisons
    for, against and open, and the seeds."""
    return pd.DataFrame([{"name": name, "kind": kind, "claim": number, "verdict": found.outcome,
                          "evidence": evidence_text(found), "seeds": max(c.seeds for c in by_claim[number])}
                         for name, kind, by_claim, judged in _finished(spec) for number, found in judged.items()],
                        columns=["name", "kind", "claim", "verdict", "evidence", "seeds"])


def _other_tiers(spec: dict[str, Any], name: str) -> list[str]:
    """The kernel tiers a specification's snapshot ran in that the shared overlay does not pin
    (its machines.csv): such a snapshot differs from the others in more than its choice."""
    pinned = overlay(spec, name).get("train", {}).get("kernels", "")
    machines = snapshot_dir(spec, name) / "machines.csv"
    if not pinned.startswith("portable-") or not machines.exists():
        return []
    return sorted(set(pd.read_csv(machines).kernels) - {pinned})


def to_run(spec: dict[str, Any]) -> dict[str, list[int]]:
    """Each declared specification whose snapshot lacks claims it judges, with those claims (all
    of them where it has no snapshot, or ran in another kernel tier than the one pinned): `make
    specifications` runs these."""
    left = {}
    for name, entry in spec["specifications"].items():
        path = snapshot_dir(spec, name) / "comparisons.csv"
        done = {int(c) for c in pd.read_csv(path).claim} if path.exists() and not _other_tiers(spec, name) else set()
        if set(entry["judge"]) - done:
            left[name] = sorted(set(entry["judge"]) - done)
    return left


def missing(spec: dict[str, Any]) -> list[str]:
    """The declared specifications and runs that have no finished snapshot yet, judge fewer claims
    than declared ("ours (claims 1, 3 to run)") or ran in another kernel tier."""
    left = to_run(spec)

    def why(name: str) -> str:
        if name not in left or not (snapshot_dir(spec, name) / "comparisons.csv").exists():
            return name
        tiers = _other_tiers(spec, name)
        if tiers:
            return f"{name} (ran in {', '.join(tiers)}: to rerun in the pinned tier)"
        return f"{name} (claims {', '.join(map(str, left[name]))} to run)"
    return [why(name) for name in [*spec["specifications"], *spec.get("runs", {})]
            if name in left or (name in spec.get("runs", {})
                                and not (snapshot_dir(spec, name) / "comparisons.csv").exists())]


def specifications_markdown(spec: dict[str, Any], frame: pd.DataFrame, judged: pd.DataFrame) -> str:
    """specifications.md: each claim's verdict under each finished specification and run (from
    ``judged``, :func:`verdicts`), what it changes, per claim how many specifications support,
    contradict or leave it open, and the key comparisons' estimates (``frame``, :func:`curve`)."""
    if judged.empty:
        raise ABCLError("no specification has finished: run make specifications first")
    names = list(dict.fromkeys(judged.name))
    entries = {**spec["specifications"], **spec.get("runs", {})}
    cell = {(r.name, r.claim): f"{r.verdict} ({r.evidence})" for r in judged.itertuples()}

    def trained_on(name: str) -> str:  # every verdict names the network and images that made it
        chosen = entries[name].get("choice", {})
        return " · ".join(chosen.get(dim, spec["choices"][dim][0]) + suffix
                          for dim, suffix in (("network", ""), ("training images", " images")))
    rows = [{"specification": name + ("" if name in spec["specifications"] else " (existing run)"),
            "network · training images": trained_on(name),
             "changes": "; ".join(f"{k}: {v}" for k, v in entries[name].get("choice", {}).items()) or "nothing (ours)",
             "seeds": str(int(judged[judged.name == name].seeds.max())),
             **{f"claim {n}": cell.get((name, n), "not judged") for n in CLAIMS}} for name in names]
    own = judged[judged.kind == "specification"]
    counts = [{"claim": n, "specifications judging it": str(int((own.claim == n).sum())),
               **{word: str(int(((own.claim == n) & (own.verdict == word)).sum()))
                  for word in ("SUPPORTED", "CONTRADICTED", "NOT SHOWN")}} for n in CLAIMS]
    estimates = frame.assign(estimate=[f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in
                                       zip(frame["diff"], frame.low, frame.high)])
    wide = estimates.pivot(index="name", columns="comparison", values="estimate").reindex(names).fillna("—")
    wide = wide[[label for _, label in KEY_COMPARISONS if label in wide.columns]].reset_index()
    not_yet = missing(spec)
    return ("# The specification curve\n\nEach claim's verdict under each specification of config/specifications.yaml "
            "(one free choice of our reconstruction changed, docs/method.md) and under the existing runs, each "
            "on the network and training images its row names (the small net is ours, not the paper's); in "
            "brackets its comparisons for, against (Holm-adjusted) and open. Generated by `make specification-curve` "
            "from the snapshots in docs/runs/.\n\n" + markdown(pd.DataFrame(rows))
            + "\nPer claim, how many specifications (existing runs not counted) reach each verdict:\n\n"
            + markdown(pd.DataFrame(counts))
            + "\nThe key comparisons, A − B in accuracy points (k-NN points for claim 3), mean [95% CI] over seeds, "
              "not adjusted for the claim's other comparisons (`docs/specification_curve.png` draws them):\n\n"
            + markdown(wide)
            + (f"\nNot finished yet (no snapshot): {', '.join(not_yet)}.\n" if not_yet else ""))
