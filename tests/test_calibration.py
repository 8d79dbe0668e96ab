"""The calibration of the verdict rule (benchmarks/calibration.py): dealing seeds to roles, and
the false-verdict rate under a known null, on a synthetic pool here (the real pool's run is
benchmarks/measured/calibration-*.md) and at a tiny size on really trained models."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import calibration  # noqa: E402  (benchmarks/calibration.py)


def null_pool(seeds=12, sd=0.02, rng_seed=0):
    """Per-seed accuracies of ONE configuration: every evaluation is 0.5 plus seed noise."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed in range(seeds):
        for attack, norm, eps in [("clean", "none", 0.0)] + [(a, n, e) for a in ("fgsm", "bim")
                                                               for n, e in (("linf", 0.2), ("l2", 2.0))]:
            rows.append({"loss": "ht_sce", "s": 5.0, "m": 0.2, "k1": 512.0, "k2": 64.0, "seed": seed, "attack": attack,
                         "norm": norm, "eps": eps, "steps": 10, "queries": 0, "accuracy": 0.5 + rng.normal(0, sd),
                         "n": 1000, "dataset": "mnist5k", "arch": "small", "config_hash": f"pool{seed}"})
    scores = pd.DataFrame([{"set": s, "n": 500, "silhouette": 0.5, "tsne_knn_accuracy": 0.8 + rng.normal(0, sd),
                            "seed": seed, "loss": "ht_sce", "config_hash": f"pool{seed}"}
                           for seed in range(seeds) for s in ("train", "test")])
    return pd.DataFrame(rows), scores


def test_deals_give_each_role_distinct_seeds_every_way_when_few():
    import random
    every = list(calibration.deals([0, 1, 2, 3], roles=2, per_role=2, limit=100, rng=random.Random(0)))
    assert len(every) == 24 and all(len(set(a) | set(b)) == 4 for a, b in every)  # 4! orderings
    drawn = list(calibration.deals(list(range(12)), roles=4, per_role=3, limit=50, rng=random.Random(0)))
    assert len(drawn) == 50 and all(len({s for role in deal for s in role}) == 12 for deal in drawn)


def test_relabelled_roles_pair_by_position():
    pool, _ = null_pool(seeds=4)
    role = calibration.relabel(pool, (3, 1), model="SCE", loss="sce")
    assert sorted(role.seed.unique()) == [0, 1] and set(role.model) == {"SCE"}
    assert (role[role.seed == 0].accuracy.to_numpy() == pool[pool.seed == 3].accuracy.to_numpy()).all()
    assert role.config_hash.nunique() == 2  # a hash per relabelled seed


def test_null_pool_gives_false_verdicts_at_most_alpha_and_a_loose_rule_is_caught():
    pool, scores = null_pool()
    results = calibration.calibrate(pool, scores, per_role=3, limit=60, alpha=0.05)
    assert {r["claim"][:1] for r in results} == {"1", "2", "3", "4", "5"}
    for r in results:
        assert r["assignments"] == 60 and r["false_verdict_rate"] <= 0.05, r
    # the measurement can fail: at alpha = 0.5 the same rule gives false verdicts far more often
    loose = calibration.calibrate(pool, scores, per_role=3, limit=60, alpha=0.5)
    assert max(r["false_verdict_rate"] for r in loose) > 0.2
    with pytest.raises(SystemExit, match="must be 2 or more"):
        calibration.calibrate(pool, scores, per_role=1, limit=10, alpha=0.05)


@pytest.mark.slow
def test_calibration_runs_on_really_trained_seeds(tmp_path):
    results = calibration.main(["--config", "config/config.yaml", "--pool-seeds", "6", "--seeds-per-role", "2",
                                "--assignments", "30", "--epochs", "1", "--n-test", "100", "--n-per-set", "60",
                                "--separability", "--pool-dir", str(tmp_path / "pool"),
                                "--out", str(tmp_path / "out.json"), "--markdown", str(tmp_path / "out.md")])
    by_claim = {r["claim"][:1]: r for r in results}
    assert list(by_claim) == ["1", "2", "4", "5", "3"]
    assert by_claim["1"]["skipped"] == "needs 8 pool seeds, has 6"  # four scales x two seeds
    for claim in "2453":
        assert by_claim[claim]["assignments"] == 30 and 0 <= by_claim[claim]["false_verdict_rate"] <= 1
    assert "| 4 (table: FGSM/BIM) | 30 |" in (tmp_path / "out.md").read_text()
    assert len(list((tmp_path / "pool").glob("*/seed~*/eval.csv"))) == 6
