"""Running the workflow on a cluster: what each rule asks for, and what a user must be told.

What each rule asks a cluster for is read off the ``benchmark:`` files of finished runs.

A request is the longest measured run and the largest resident memory of the rule's jobs, with
headroom: ``runtime = ceil(RUNTIME_FACTOR * max_s / 60) + RUNTIME_SLACK_MIN`` minutes and
``mem_mb = MEM_FACTOR * max_rss + MEM_SLACK_MB``, rounded up to 256 MB (the slack covers the
Snakemake process that runs inside every cluster job). The table lives in
``workflow/resources.yaml``; ``abcl resources`` (``make resources``) rewrites it. Needs no torch:
the workflow imports this module while planning.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import yaml

from abcl import ABCLError
from abcl.records import atomic_path

RUNTIME_FACTOR = 2.0
RUNTIME_SLACK_MIN = 2
MEM_FACTOR = 1.5
MEM_SLACK_MB = 512
HEADER = """\
# Per-rule cluster requests (runtime in minutes, mem_mb) per results folder. `measured`: made by
# `abcl resources` (make resources) from the benchmark: files of finished runs; a rerun updates
# the folders it measures and keeps the others. `estimated`: written by hand for configs not yet
# run, each with its basis; a measurement of the same folder takes precedence. A folder in
# neither takes, rule by rule, the largest request of both. train_adversarial and
# evaluate_adversarial are the train and evaluate rules' requests for adversarially trained models.
# A node picks its own portable tier, so kernel-bound rules are sized for the slowest,
# portable-baseline (sized_s: the longest job times its measured slowdown, abcl/cluster.py). An
# estimate gives the seconds it expects a job to take there (estimated_s) and its basis.
# Formula: runtime = ceil({rf} * longest s / 60) + {rs}; mem_mb = {mf} * largest max_rss + {ms}, to 256 MB.
""".format(rf=RUNTIME_FACTOR, rs=RUNTIME_SLACK_MIN, mf=MEM_FACTOR, ms=MEM_SLACK_MB)

# benchmark file name -> rule; files under benchmarks/ are named after their rule
_MODEL_BENCHMARKS = {"train.benchmark.tsv": "train", "eval.benchmark.tsv": "evaluate",
                     "features.benchmark.tsv": "features", "tsne.benchmark.tsv": "tsne"}


ADVERSARIAL_TRAIN = "train_adversarial"  # an adversarial training's request: an attack on every batch
ADVERSARIAL_EVALUATE = "evaluate_adversarial"  # its evaluation: AutoAttack at the adversarial budget
_ADVERSARIAL_RULES = {"train": ADVERSARIAL_TRAIN, "evaluate": ADVERSARIAL_EVALUATE}

# A cluster node picks its own portable tier (abcl/kernels.py), so a request measured in one tier
# must cover the slowest, portable-baseline: its cost per training epoch relative to each tier,
# measured side by side (benchmarks/measured/kernel-modes-2026-12-05.json, 3 rounds, the epochs after
# the first; evaluations cost less: 2.8x for avx512), rounded up. tests/test_cluster.py checks them against that file.
SLOWEST_TIER = "portable-baseline"
TIER_SLOWDOWN = {"portable-avx512": 3.4, "portable-avx2": 2.6, SLOWEST_TIER: 1.0}
# the rules whose time follows torch's kernels (t-SNE is scikit-learn's; the others read CSVs and draw)
KERNEL_BOUND = {"train", "evaluate", "features", ADVERSARIAL_TRAIN, ADVERSARIAL_EVALUATE}
FINISHED = "claims.md"  # the default target's last report: a folder without it is a run in progress


def _rule_of(path: Path) -> str | None:
    adversarial = any(part.startswith("at~") for part in path.parts)
    if adversarial and path.name in ("train.benchmark.tsv", "eval.benchmark.tsv"):
        return _ADVERSARIAL_RULES[_MODEL_BENCHMARKS[path.name]]
    if path.name in _MODEL_BENCHMARKS:
        return _MODEL_BENCHMARKS[path.name]
    return path.stem if path.parent.name == "benchmarks" and path.suffix == ".tsv" else None


def _read_benchmark(path: Path) -> tuple[float, float]:
    """(seconds, max_rss MB) of the last line Snakemake wrote to a benchmark file."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        raise ABCLError(f"{path}: benchmark file has no measurement")
    row = rows[-1]
    rss = row.get("max_rss", "NA")
    return float(row["s"]), float(rss) if rss not in ("", "NA", "-") else 0.0


def request(max_s: float, max_rss_mb: float) -> dict[str, int]:
    runtime = math.ceil(RUNTIME_FACTOR * max_s / 60) + RUNTIME_SLACK_MIN
    mem = math.ceil((MEM_FACTOR * max_rss_mb + MEM_SLACK_MB) / 256) * 256
    return {"runtime": runtime, "mem_mb": mem}


def kernels_of(results: str | Path) -> str:
    """The CPU kernel modes a folder's trainings ran (their times depend on it), e.g. portable-avx512."""
    import json

    modes = set()
    for path in Path(results).rglob("train.json"):
        record = json.loads(path.read_text())
        on_cpu = record.get("device", "cpu") == "cpu"
        modes.add(record.get("kernels", {}).get("kernels", "?") if on_cpu else "gpu")
    return ", ".join(sorted(modes)) or "unknown"


# the rules of the `adversarial` target: in the default target only where adversarial.in_default_run
ADVERSARIAL_TARGET_RULES = (ADVERSARIAL_TRAIN, ADVERSARIAL_EVALUATE, "adversarial", "fig_adversarial")


def benchmarks(results: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Per rule: (seconds, max_rss MB) of each of its jobs, from a run's benchmark files."""
    seen: dict[str, list[tuple[float, float]]] = {}
    for path in sorted(Path(results).rglob("*.tsv")):
        rule = _rule_of(path)
        if rule is not None:
            seen.setdefault(rule, []).append(_read_benchmark(path))
    return seen


def finished(results: str | Path) -> bool:
    """Whether a results folder holds a finished run (a run in progress lacks its longest jobs)."""
    return (Path(results) / FINISHED).exists()


def measure(results: str | Path) -> dict[str, dict]:
    """Per rule: the request, with the measurements it comes from, over every benchmark file of a
    finished run; and ``kernels``, the kernel modes they were measured in. Rules bound by the
    kernels are sized for the slowest portable tier (``sized_s``), which a node may pick."""
    if not finished(results):
        raise ABCLError(f"{results}: not a finished run (no {FINISHED}); a run in progress would size requests "
                        "from its shorter jobs")
    seen = benchmarks(results)
    if not seen:
        raise ABCLError(f"{results}: no benchmark files (run the workflow there first)")
    kernels = kernels_of(results)
    slowdown = TIER_SLOWDOWN.get(kernels, 1.0)
    table: dict[str, dict] = {"kernels": kernels}
    for rule, runs in sorted(seen.items()):
        max_s, max_rss = max(s for s, _ in runs), max(r for _, r in runs)
        sized = max_s * slowdown if rule in KERNEL_BOUND else max_s
        table[rule] = {**request(sized, max_rss), "jobs": len(runs), "longest_s": round(max_s, 1),
                       "max_rss_mb": round(max_rss, 1)}
        if sized != max_s:
            table[rule]["sized_s"] = round(sized, 1)  # for a portable-baseline node
    return table


def write_table(results_dirs: list[str | Path], out: str | Path) -> dict:
    """Measure each results folder and merge it into the table (YAML) at ``out``, keyed by the
    folder's name: other folders' measurements and the hand-written estimates stay as they were."""
    before = yaml.safe_load(Path(out).read_text()) if Path(out).exists() else None
    before = before if isinstance(before, dict) else {}
    measured = {**(before.get("measured") or {}), **{Path(r).name: measure(r) for r in results_dirs}}
    table = {"measured": dict(sorted(measured.items())), "estimated": before.get("estimated") or {}}
    with atomic_path(out) as part:
        part.write_text(HEADER + yaml.safe_dump(table, sort_keys=False, width=120, default_flow_style=None))
    return table


def load_table(path: str | Path) -> dict[str, dict]:
    """``{"measured": {folder: {rule: request}}, "estimated": {...}}``."""
    table = yaml.safe_load(Path(path).read_text()) or {}
    return {"measured": table.get("measured") or {}, "estimated": table.get("estimated") or {}}


def rule_request(table: dict[str, dict], results_name: str, rule: str) -> dict[str, int]:
    """The request for ``rule`` in a run whose results folder is ``results_name``: its own
    measurement, else its own estimate, else the largest request of any folder for the rule."""
    for section in ("measured", "estimated"):
        own = table[section].get(results_name, {}).get(rule)
        if isinstance(own, dict):
            return {"runtime": own["runtime"], "mem_mb": own["mem_mb"]}
    known = [runs[rule] for section in ("measured", "estimated") for runs in table[section].values()
             if isinstance(runs.get(rule), dict)]
    if not known:
        return {}
    return {"runtime": max(m["runtime"] for m in known), "mem_mb": max(m["mem_mb"] for m in known)}


def model_request(table: dict[str, dict], results_name: str, rule: str, adversarial: bool) -> dict[str, int]:
    """A training's or evaluation's request: an adversarially trained model's (an attack on every
    batch, AutoAttack at its budget) has its own, from a measured or estimated
    ``train_adversarial`` / ``evaluate_adversarial``; a clean one the rule's."""
    if adversarial:
        own = rule_request(table, results_name, _ADVERSARIAL_RULES[rule])
        if own:
            return own
    return rule_request(table, results_name, rule)


def gpu_on_this_machine() -> bool:
    """Whether an NVIDIA driver is loaded here (without importing torch: planning needs none)."""
    return Path("/dev/nvidiactl").exists()


def seconds_behind(entry: dict) -> float:
    """The time a request is sized from: a measurement's longest job (scaled to the slowest
    portable tier where the kernels set it), or an estimate's seconds."""
    return float(entry.get("sized_s", entry.get("longest_s", entry.get("estimated_s", math.inf))))


def show_group_submission_errors() -> None:
    """Make Snakemake print why a job group failed to start.

    Snakemake 9.27's ``GroupJob.log_error`` drops the executor's message, so when sbatch refuses a
    group job (an invalid partition, a GRES the cluster lacks) the user reads only
    ``message: None``; the error text is nowhere, not even in ``.snakemake/log``. This logs the
    message first, then Snakemake's own report. Idempotent; a no-op where the method is gone.
    """
    from snakemake.jobs import GroupJob
    from snakemake.logging import logger

    original = getattr(GroupJob, "log_error", None)
    if original is None or getattr(original, "shows_message", False):
        return

    def log_error(self, msg=None, aux_logs=None, **kwargs):
        if msg:
            logger.error(f"Error in group {self.groupid}: {msg}")
        return original(self, msg=msg, aux_logs=aux_logs, **kwargs)

    log_error.shows_message = True
    GroupJob.log_error = log_error
