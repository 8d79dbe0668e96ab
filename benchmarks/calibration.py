"""Calibration of the verdict rule under a known null, on real trained models.

Trains N seeds of ONE configuration (a run of a config's plan, e.g. ABCL), evaluates each with the
config's paper attacks (FGSM and BIM) at their middle budgets, the ones the claims compare, then fills the roles of every claim with disjoint sets of
those seeds: claim 1's scales, claim 2's HT-SCE (0, 0) and ABCL, claim 4's SCE, CosFace and ABCL,
claim 5's three adversarially trained losses (its verdict code on BIM), and, with --separability,
claim 3's three feature spaces (t-SNE k-NN per seed). The true difference between roles is zero
by construction, so every SUPPORTED or CONTRADICTED is a false verdict: its rate must stay at or
below the nominal alpha. Also reported: how often one side of a single superiority comparison has
an unadjusted one-sided p below alpha / 2, the paired t-test's own calibration (about alpha / 2
when it is valid).

    python benchmarks/calibration.py --config config/config.yaml --run ABCL --pool-seeds 12 \\
        --seeds-per-role 3 --assignments 2000 --separability --markdown benchmarks/measured/calibration.md

The assignments are a fixed random sample of all ways to deal the pool's seeds to the roles
(every way when there are at most --assignments of them); they share seeds, so they are not
independent draws and the rate's Monte Carlo interval is optimistic.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import write_results  # benchmarks/common.py, beside this script

from abcl.config import attack_specs, load_config
from abcl.plan import ABCL, COSFACE, HT_SCE, SCE, experiment_plan, middle_budgets
from abcl.data import load_dataset, load_prepared, save_dataset
from abcl.evaluate import evaluate
from abcl.claims import ab_repairs, adversarial, robustness, scale, separation
from abcl.statistics import CONTRADICTED, SUPERIOR, SUPPORTED
from abcl.tables import save_correct
from abcl.train import load_model, train_model


# ---------------------------------------------------------------- the pool: N seeds of one run
def build_pool(config: dict, run_name: str, seeds: list[int], folder: Path,
               separability: bool) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Train and evaluate each seed once (a finished seed is read back, so a rerun resumes)."""
    dataset_path = folder / "data.pt"
    if not dataset_path.exists():
        save_dataset(load_dataset(config["dataset"], config.get("data_source"), config.get("download")), dataset_path)
    dataset = load_prepared(dataset_path)
    base = experiment_plan(config).find(run_name)
    if separability and not base.embed_attacks:
        raise SystemExit(f"calibration: --separability needs a Fig. 3 model (SCE, CosFace, ABCL), not {run_name}")
    specs = attack_specs(middle_budgets(config["attacks"]))  # what the claims compare, as for seeds after the first
    frames, scores = [], []
    for seed in seeds:
        cfg = type(base.train).from_dict({**base.train.to_dict(), "seed": seed})
        out = folder / f"seed~{seed}"
        if not (out / "eval.csv").exists():
            started = time.perf_counter()
            train_model(cfg, dataset, out, device="cpu", progress=False)
            model, _ = load_model(out / "model.pt")
            rows, correct = evaluate(model, cfg, dataset, specs, n_test=config["eval"]["n_test"],
                                     batch_size=config["eval"]["batch_size"], device="cpu")
            save_correct(correct, cfg.hash, out / "correct.npz")
            rows.to_csv(out / "eval.csv", index=False)
            print(f"seed {seed}: trained and evaluated in {time.perf_counter() - started:.0f} s", flush=True)
        frames.append(pd.read_csv(out / "eval.csv"))
        if separability:
            scores.append(_separability(config, cfg, attack_specs(base.embed_attacks), out, dataset))
    return pd.concat(frames, ignore_index=True), (pd.concat(scores, ignore_index=True) if scores else None)


def _separability(config: dict, cfg, specs: list, out: Path, dataset) -> pd.DataFrame:
    """Fig. 3's features and t-SNE of one pool seed, sampled as the workflow samples them."""
    from abcl.embed import embed_features, separability
    from abcl.evaluate import extract_features
    path = out / "separability.csv"
    if not path.exists():
        model, _ = load_model(out / "model.pt")
        arrays = extract_features(model, dataset, config["embed"]["n_per_set"], specs, device="cpu", seed=cfg.seed)
        arrays |= {"loss": np.array(cfg.loss), "config_hash": np.array(cfg.hash), "seed": np.array(cfg.seed)}
        separability(arrays, embed_features(arrays, config["embed"]["perplexity"])).to_csv(path, index=False)
    return pd.read_csv(path)


# ---------------------------------------------------------------- dealing seeds to roles
def deals(pool_seeds: list[int], roles: int, per_role: int, limit: int, rng: random.Random):
    """Ways to give each role ``per_role`` distinct pool seeds (ordered: the i-th seeds of two roles
    are paired): every way when there are at most ``limit``, else ``limit`` drawn at random."""
    need = roles * per_role
    total = math.perm(len(pool_seeds), need)
    if total <= limit:
        for picked in itertools.permutations(pool_seeds, need):
            yield [picked[r * per_role:(r + 1) * per_role] for r in range(roles)]
        return
    for _ in range(limit):
        picked = rng.sample(pool_seeds, need)
        yield [picked[r * per_role:(r + 1) * per_role] for r in range(roles)]


def relabel(pool: pd.DataFrame, seeds: tuple[int, ...], **role) -> pd.DataFrame:
    """The pool's rows of ``seeds`` as one role: renumbered seeds 0..k-1 (the pairing), the role's
    settings, and a config hash of its own per seed (per-image results are looked up by it)."""
    parts = []
    for new_seed, seed in enumerate(seeds):
        part = pool[pool.seed == seed].assign(seed=new_seed, **role)
        parts.append(part.assign(config_hash=f"{part.config_hash.iloc[0]}|{role}|{new_seed}"))
    return pd.concat(parts, ignore_index=True)


CLAIMS = {
    # claim: (roles as relabel settings, the verdict function over the relabelled frames); with two or
    # more seeds per role no comparison reads per-image results, so none are passed
    "1 (Fig. 2: scale)": ([{"loss": "cos_sce", "s": s, "model": f"Cos-SCE s={s:g}"} for s in (1.0, 4.0, 8.0, 16.0)],
                          lambda frames, alpha: scale(pd.concat(frames), {}, alpha)),
    "2 (Fig. 1: AB terms)": ([{"loss": "ht_sce", "k1": 0.0, "k2": 0.0, "model": HT_SCE},
                              {"loss": "ht_sce", "k1": 512.0, "k2": 64.0, "model": ABCL}],
                             lambda frames, alpha: ab_repairs(pd.concat(frames), {}, alpha)),
    "4 (table: FGSM/BIM)": ([{"model": SCE}, {"model": COSFACE}, {"model": ABCL}],
                            lambda frames, alpha: robustness(pd.concat(frames), {}, None, alpha)),
    "5 (adversarial training)": ([{"model": f"{m} PGD-AT"} for m in (SCE, COSFACE, ABCL)],
                                 lambda frames, alpha: adversarial(pd.concat(frames), {}, alpha)),
}


def calibrate(pool: pd.DataFrame, scores: pd.DataFrame | None, per_role: int, limit: int, alpha: float,
              rng_seed: int = 0) -> list[dict]:
    if per_role < 2:
        raise SystemExit("calibration: --seeds-per-role must be 2 or more (one seed per role gives no verdict)")
    pool_seeds = sorted(pool.seed.unique())
    claims = dict(CLAIMS)
    if scores is not None:
        claims["3 (Fig. 3: separation)"] = ([{"model": m} for m in (SCE, COSFACE, ABCL)], None)
    results = []
    for name, (roles, judge) in claims.items():
        if len(pool_seeds) < len(roles) * per_role:
            results.append({"claim": name, "assignments": 0, "seeds_per_role": per_role,
                            "skipped": f"needs {len(roles) * per_role} pool seeds, has {len(pool_seeds)}"})
            continue
        rng = random.Random(rng_seed)
        outcomes, single, comparisons = [], 0, 0
        for deal in deals(pool_seeds, len(roles), per_role, limit, rng):
            if judge is None:  # claim 3: per-seed k-NN scores
                frames = [relabel(scores, seeds, **role) for seeds, role in zip(deal, roles)]
                found = separation(pd.concat(frames), None, alpha)
            else:
                frames = [relabel(pool, seeds, **role) for seeds, role in zip(deal, roles)]
                found = judge(frames, alpha)
            outcomes.append(found.outcome)
            # the t-test's own calibration: superiority comparisons (their nulls are true here; a "not
            # worse" one's support is a true alternative) whose differences vary (no degenerate p = 1)
            p_values = [p for c in found.comparisons if c.kind == SUPERIOR and c.test.startswith("paired t-test")
                        for p in (c.p_support, c.p_against)]
            single += sum(p < alpha / 2 for p in p_values)
            comparisons += len(p_values)
        n = len(outcomes)
        false = sum(o in (SUPPORTED, CONTRADICTED) for o in outcomes)
        results.append({"claim": name, "assignments": n, "seeds_per_role": per_role,
                        "supported": sum(o == SUPPORTED for o in outcomes) / n,
                        "contradicted": sum(o == CONTRADICTED for o in outcomes) / n,
                        "false_verdict_rate": false / n,
                        "single_side_rate": single / comparisons if comparisons else float("nan"),
                        "single_sides": comparisons})
    return results


CAVEATS = """\
Caveats. The assignments deal seeds of one pool, so they are not independent draws: the rates'
precision is that of a few independent pools, not of the number of assignments (where a claim's
roles need every pool seed, as claim 1's four roles of three seeds do from twelve, its assignments
are reshufflings of one sample). Claim 5's verdict code is exercised on clean-trained seeds under BIM L∞ at the middle
budget (the claim itself compares adversarially trained models under AutoAttack at each budget,
under each training method): the same code on fewer comparisons.
"""


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"# Calibration of the verdict rule under a known null ({meta['date']})", "",
             f"Pool: {meta['pool_seeds']} seeds of `{meta['run']}` ({meta['config']}), each trained and evaluated "
             f"for real on {meta['dataset']}; {meta['seeds_per_role']} seeds per role; alpha = {meta['alpha']:g}. "
             "Every role of a claim is filled with other seeds of the same configuration, so any SUPPORTED or "
             "CONTRADICTED is false.", "",
             "| claim | assignments | SUPPORTED | CONTRADICTED | false verdicts (at most alpha) | "
             "one side of one comparison at p < alpha / 2, unadjusted (about alpha / 2 if the t-test is valid) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if r.get("skipped"):
            lines.append(f"| {r['claim']} | 0 | skipped: {r['skipped']} | | | |")
            continue
        lines.append(f"| {r['claim']} | {r['assignments']} | {100 * r['supported']:.1f}% | "
                     f"{100 * r['contradicted']:.1f}% | {100 * r['false_verdict_rate']:.1f}% | "
                     f"{100 * r['single_side_rate']:.1f}% of {r['single_sides']} |")
    return "\n".join(lines) + "\n\n" + CAVEATS


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--run", default=ABCL, help="the plan's run whose seeds form the pool")
    parser.add_argument("--pool-seeds", type=int, default=12)
    parser.add_argument("--seeds-per-role", type=int, default=3)
    parser.add_argument("--assignments", type=int, default=2000)
    parser.add_argument("--epochs", type=int, help="override train.epochs (tests)")
    parser.add_argument("--n-test", type=int, help="override eval.n_test (tests)")
    parser.add_argument("--n-per-set", type=int, help="override embed.n_per_set (tests)")
    parser.add_argument("--separability", action="store_true", help="also claim 3 (features and t-SNE per seed)")
    parser.add_argument("--pool-dir", default="results/calibration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="JSON of the rates")
    parser.add_argument("--markdown", help="the rates as a Markdown table (benchmarks/measured/)")
    args = parser.parse_args(argv)
    if args.seeds_per_role < 2:
        parser.error("--seeds-per-role must be 2 or more (one seed per role gives no verdict)")
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if args.epochs:
        config["train"]["epochs"] = args.epochs
    if args.n_test:
        config["eval"]["n_test"] = args.n_test
    if args.n_per_set:
        config["embed"]["n_per_set"] = args.n_per_set
    alpha = config["claims"]["alpha"]
    # one folder per pool setting, so a cached seed is only reused for the same training and evaluation
    pool_dir = Path(args.pool_dir) / (f"{config['dataset']}-{args.run}-e{config['train']['epochs']}"
                                      f"-n{config['eval']['n_test']}-p{config['embed']['n_per_set']}")
    pool, scores = build_pool(config, args.run, list(range(args.pool_seeds)), pool_dir, args.separability)
    results = calibrate(pool, scores, args.seeds_per_role, args.assignments, alpha)
    meta = {"date": time.strftime("%Y-%m-%d"), "pool_seeds": args.pool_seeds, "run": args.run, "config": args.config,
            "dataset": config["dataset"], "seeds_per_role": args.seeds_per_role, "alpha": alpha,
            "epochs": config["train"]["epochs"], "n_test": config["eval"]["n_test"]}
    text = markdown(results, meta)
    print(text)
    write_results({"meta": meta, "claims": results}, args.out, torch.device("cpu"))
    if args.markdown:
        Path(args.markdown).write_text(text)
    return results


if __name__ == "__main__":
    main()
