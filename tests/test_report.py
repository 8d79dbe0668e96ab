"""Adaptive attacks, the independent reference check, the masking report and the claims verdicts."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from abcl import ABCLError
from abcl.attacks import perturb
from abcl.config import AttackSpec, TrainConfig, attack_specs
from abcl.evaluate import evaluate_model, gradient_report
from abcl.claims import ab_repairs, compare_accuracy, paper_claims, robustness, scale, separation
from abcl.report import claim_markdown, claims_report, masking_report
from abcl.data import as_float_images
from abcl.embed import adversarial_set_titles
from abcl.train import load_model, train_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained_sce(mnist5k, tmp_path_factory):
    out = tmp_path_factory.mktemp("sce")
    train_model(TrainConfig(loss="sce", epochs=3), mnist5k, out, device="cpu", progress=False)
    return load_model(out / "model.pt")


def reference_bim(model, x, y, eps, alpha, steps, norm):
    """Independent plain-loop BIM: sum-reduced float64 cross-entropy, manual projection."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv).double(), y, reduction="sum")
        grad, = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            if norm == "linf":
                adv = torch.min(torch.max(adv + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
            else:
                step = grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                delta = adv + alpha * step - x
                scale = (eps / delta.flatten(1).norm(dim=1)).clamp(max=1).view(-1, 1, 1, 1)
                adv = (x + delta * scale).clamp(0, 1)
    return adv.detach()


@pytest.mark.parametrize("name,norm,eps,steps", [("fgsm", "linf", 0.2, 1), ("bim", "linf", 0.2, 10),
                                                 ("fgsm", "l2", 2.0, 1), ("bim", "l2", 2.0, 10)])
def test_attacks_agree_with_independent_reference_on_trained_model(trained_cosface, mnist5k, name, norm, eps, steps):
    model, _ = trained_cosface
    x, y = as_float_images(mnist5k.test_x[:100]), mnist5k.test_y[:100]
    spec = AttackSpec(name, norm, eps, steps=steps)
    ours = perturb(model, spec, x, y)
    reference = reference_bim(model, x, y, eps, spec.alpha, steps, norm)
    # The two gradient paths round differently in float32. Per sample the results agree to 1e-4;
    # over 10 iterated steps a rare sample sitting on a ReLU kink may drift apart (seen: 1 in 100).
    per_sample = (ours - reference).flatten(1).abs().amax(dim=1)
    assert (per_sample <= 1e-4).float().mean() >= 0.97, per_sample.topk(5).values
    delta_ours, delta_ref = (ours - x).flatten(1), (reference - x).flatten(1)
    cosine = F.cosine_similarity(delta_ours, delta_ref)
    assert (cosine > 0.999).float().mean() >= 0.97, cosine.topk(5, largest=False).values


def test_adaptive_attacks_bounded_by_clean_and_at_least_as_strong_as_bim(trained_cosface, mnist5k):
    model, cfg = trained_cosface
    specs = attack_specs({"bim_linf": {"eps": [0.15], "steps": 10}, "pgd_linf": {"eps": [0.15], "steps": 20, "restarts": 2},
                          "apgd_ce_linf": {"eps": [0.15], "steps": 20}, "apgd_dlr_linf": {"eps": [0.15], "steps": 20}})
    rows = evaluate_model(model, cfg, mnist5k, specs, n_test=300, device="cpu").set_index("attack").accuracy
    assert all(rows[a] <= rows["clean"] for a in ("pgd", "apgd_ce", "apgd_dlr", "worst_case"))
    assert rows["pgd"] <= rows["bim"] + 0.02, "PGD with restarts and twice the steps must match BIM"
    assert rows["worst_case"] <= min(rows["bim"], rows["pgd"], rows["apgd_ce"], rows["apgd_dlr"])


def test_adaptive_attacks_on_a_prefix_compare_on_the_images_all_attacks_saw(trained_cosface, mnist5k):
    model, cfg = trained_cosface
    specs = attack_specs({"fgsm_linf": {"eps": [0.15]}, "pgd_linf": {"eps": [0.15], "steps": 5, "restarts": 1}})
    rows = evaluate_model(model, cfg, mnist5k, specs, n_test=300, batch_size=100, device="cpu",
                          adaptive_n_test=100).set_index("attack")
    assert rows.loc["fgsm", "n"] == 300 and rows.loc["pgd", "n"] == 100 and rows.loc["worst_case", "n"] == 100
    assert (rows.n_common == 100).all()
    # FGSM's accuracy over the shared prefix is what FGSM scores on those 100 images alone
    alone = evaluate_model(model, cfg, mnist5k, specs[:1], n_test=100, batch_size=100, device="cpu")
    assert rows.loc["fgsm", "common_accuracy"] == alone.set_index("attack").loc["fgsm", "accuracy"]
    assert rows.loc["pgd", "common_accuracy"] == rows.loc["pgd", "accuracy"]
    assert rows.loc["worst_case", "accuracy"] <= min(rows.loc["fgsm", "common_accuracy"], rows.loc["pgd", "accuracy"])
    # without adaptive attacks nothing is cut
    plain = evaluate_model(model, cfg, mnist5k, specs[:1], n_test=300, batch_size=100, device="cpu",
                           adaptive_n_test=100)
    assert (plain.n == 300).all() and (plain.n_common == 300).all()


def test_masking_report_flags_saturated_model_not_sce(trained_cosface, trained_sce, mnist5k):
    specs = attack_specs({"fgsm_linf": {"eps": [0.2]}, "bim_linf": {"eps": [0.2], "steps": 5}})
    frames, grads = [], []
    saturated, cfg_cos = trained_cosface
    original = saturated.head.s
    saturated.head.s = 300.0
    saturated_cfg = TrainConfig(loss="cos_sce", s=300.0, epochs=3)
    try:
        for model, cfg in ((trained_sce[0], trained_sce[1]), (saturated, saturated_cfg)):
            frames.append(evaluate_model(model, cfg, mnist5k, specs, n_test=200, device="cpu"))
            grads.append(gradient_report(model, cfg, mnist5k, n_test=200, device="cpu"))
    finally:
        saturated.head.s = original
    report = masking_report(pd.concat(frames).assign(model=lambda f: f.loss), pd.concat(grads), gap_points=10,
                            max_vanished_fraction=0.05).set_index("loss")
    assert not report.loc["sce", "masking_suspected"], report.loc["sce", "flags"]
    assert report.loc["sce", "frac_vanished_gradient"] == 0
    assert report.loc["cos_sce", "masking_suspected"]
    assert "vanished gradient" in report.loc["cos_sce", "flags"]


NAMES = {("sce", 0, 0): "SCE", ("cosface", 0, 0): "CosFace", ("ht_sce", 0, 0): "HT-SCE", ("ht_sce", 512, 64): "ABCL"}


def fake_evals(accuracies, n=1000):
    """Evaluation rows for (model loss, k1, k2, s, seed) -> {(attack, norm, eps): accuracy}, named
    as the plan names them (the table's four models; others by their settings)."""
    rows = []
    for (loss, k1, k2, s, seed), values in accuracies.items():
        name = NAMES.get((loss, k1, k2), f"{loss} {k1}/{k2} s={s}")
        for (attack, norm, eps), acc in values.items():
            rows.append({"model": name, "loss": loss, "k1": k1, "k2": k2, "s": s, "m": 0.0, "seed": seed,
                         "attack": attack, "norm": norm, "eps": eps, "accuracy": acc, "n": n, "dataset": "mnist5k",
                         "common_accuracy": acc, "n_common": n,
                         "steps": 10 if attack != "clean" else 0, "queries": 500 if attack == "autoattack" else 0,
                         "arch": "small", "config_hash": f"{loss}{k1}{k2}{s}{seed}"})
    return pd.DataFrame(rows)


def fake_correct(evals):
    """Per-image results consistent with ``evals``: the first round(accuracy * n) images right."""
    from abcl.config import evaluation_key
    return {(r.config_hash, evaluation_key(r.attack, r.norm, r.eps)): np.arange(r.n) < round(r.accuracy * r.n)
            for r in evals.itertuples()}


# per-seed noise of a trained network (fractions): the seed is the unit, so tests need spread
NOISE = (0.0, 0.012, -0.008, 0.005, -0.011)
PROTOCOL = "000123456789"  # comparisons.csv's protocol hash, digits only: it must stay text


def table_models(abcl_fgsm, seeds=(0, 1, 2, 3, 4)):
    base = {("clean", "none", 0.0): 0.97, ("bim", "linf", 0.2): 0.10}
    return fake_evals({
        ("sce", 0, 0, 0, seed): {**base, ("fgsm", "linf", 0.2): 0.40 + NOISE[seed]} for seed in seeds
    } | {
        ("cosface", 0, 0, 5, seed): {**base, ("fgsm", "linf", 0.2): 0.60 - NOISE[seed]} for seed in seeds
    } | {
        ("ht_sce", 512, 64, 5, seed): {**base, ("fgsm", "linf", 0.2): abcl_fgsm + NOISE[seed] / 2} for seed in seeds
    })


def test_claim_verdict_follows_the_numbers():
    def verdict(evals):
        return robustness(evals, fake_correct(evals)).outcome
    assert verdict(table_models(abcl_fgsm=0.75).query("attack != 'bim'")) == "SUPPORTED"
    assert verdict(table_models(abcl_fgsm=0.30).query("attack != 'bim'")) == "CONTRADICTED"
    assert verdict(table_models(abcl_fgsm=0.75)) == "NOT SHOWN"  # BIM is the same for all three models
    assert verdict(table_models(abcl_fgsm=0.75, seeds=(0,)).query("attack != 'bim'")) == "NOT SHOWN"  # one seed


def test_claim_4_compares_the_middle_budgets_and_names_masking_flags():
    evals = table_models(abcl_fgsm=0.75)
    evals = pd.concat([evals, evals[evals.attack == "fgsm"].assign(eps=0.1, accuracy=0.2),
                       evals[evals.attack == "fgsm"].assign(eps=0.3, accuracy=0.9)], ignore_index=True)
    masking = pd.DataFrame([{"model": "CosFace", "seed": 0, "masking_suspected": True,
                             "flags": "FGSM beats BIM (linf eps=0.2)"},
                            {"model": "SCE", "seed": 0, "masking_suspected": False, "flags": ""}])
    claim = robustness(evals, fake_correct(evals), masking)
    assert {c.label for c in claim.comparisons} == {
        f"ABCL vs {m}, {a} L∞ ε=0.2" for m in ("SCE", "CosFace") for a in ("FGSM", "BIM")}
    body = claim_markdown(claim)
    assert "- CosFace seed 0: FGSM beats BIM (linf eps=0.2)" in body and "SCE seed 0" not in body


def test_scale_claim_follows_the_numbers():
    def verdict(accuracy_of_s, seeds=(0, 1, 2, 3, 4)):
        evals = fake_evals({("cos_sce", 0, 0, s, seed): {("clean", "none", 0.0): acc + NOISE[seed] * (s / 16)}
                            for s, acc in accuracy_of_s.items() for seed in seeds}, n=10_000)
        return scale(evals, fake_correct(evals))
    supported = verdict({1: 0.95, 4: 0.99, 8: 0.99, 16: 0.90})
    assert supported.outcome == "SUPPORTED"
    # s = 4 against 16 (higher) and against 1 and 8 (not worse by more than 2 points): pre-specified
    assert [c.kind for c in supported.comparisons] == ["superior", "not worse", "not worse"]
    assert verdict({1: 0.99, 4: 0.95, 8: 0.97, 16: 0.99}).outcome == "CONTRADICTED"
    assert verdict({1: 0.95, 4: 0.99, 8: 0.97, 16: 0.90}, seeds=(0,)).outcome == "NOT SHOWN"
    unmeasurable = verdict({1: 0.99, 8: 0.97})
    assert unmeasurable.outcome == "NOT SHOWN" and "needs a grid value of s in [4, 5]" in claim_markdown(unmeasurable)


def test_claims_report_is_complete_markdown():
    evals = table_models(abcl_fgsm=0.75)
    fig1 = fake_evals({("ht_sce", k1, k2, 5, seed): {("clean", "none", 0.0): (0.9 if (k1, k2) == (0, 0) else 0.98)
                                                     + NOISE[seed]}
                       for k1 in (0, 512) for k2 in (0, 64) for seed in range(3)}, n=10_000)
    fig2 = fake_evals({("cos_sce", 0, 0, s, 0): {("clean", "none", 0.0): a} for s, a in {4: .99, 16: .9}.items()})
    scores = pd.DataFrame([{"model": m, "set": st, "n": 500, "silhouette": 0.5, "seed": seed,
                            "tsne_knn_accuracy": acc + sign * NOISE[seed]}
                           for m, acc, sign in (("SCE", 0.6, 1), ("CosFace", 0.8, -1), ("ABCL", 0.97, 0.5))
                           for st in ("train", "test") for seed in range(5)])
    correct = fake_correct(pd.concat([evals, fig1, fig2]))
    text = claims_report(paper_claims(fig1, fig2, evals, scores, None, correct), evals, None)
    assert "paired t-test over 5 seeds" in text and "McNemar exact on 1000 items" in text
    assert text.count("**Verdict: ") == 4 and "Holm" in text and "NOT SHOWN" in text
    assert "## Claim 3" in text and "**Verdict: SUPPORTED**" in text
    assert "one seed: each comparison is about two trained networks" in text  # claim 1 has one seed here


def test_separation_claim_pairs_points_with_one_seed_and_seeds_otherwise():
    knn = {"SCE": 0.80, "CosFace": 0.88, "ABCL": 0.95}
    over_seeds = pd.DataFrame([{"model": m, "set": "test", "n": 1000, "silhouette": 0.5, "seed": seed,
                                "tsne_knn_accuracy": knn[m] + sign * NOISE[seed]}
                               for m, sign in zip(knn, (1, -1, 0.5)) for seed in range(5)])
    assert separation(over_seeds).outcome == "SUPPORTED"
    one = over_seeds[over_seeds.seed == 0]
    points = {(m, "test"): np.arange(1000) < round(1000 * knn[m]) for m in knn}
    paired = separation(one, points)
    assert paired.outcome == "NOT SHOWN" and paired.comparisons[0].test.startswith("McNemar exact on 1000 items: 80 vs 0")
    with pytest.raises(ABCLError, match="pass the t-SNE embeddings"):
        separation(one)


def test_claim_3_names_each_adversarial_set_by_its_budget():
    knn = {"SCE": 0.80, "CosFace": 0.88, "ABCL": 0.95}
    sets = ("test", "bim_linf", "fgsm_l2")
    scores = pd.DataFrame([{"model": m, "set": st, "n": 1000, "silhouette": 0.5, "seed": 0, "tsne_knn_accuracy": knn[m]}
                           for m in knn for st in sets])
    points = {(m, st): np.arange(1000) < round(1000 * knn[m]) for m in knn for st in sets}
    found = separation(scores, points, set_titles=adversarial_set_titles(0.15, 2.5))
    labels = [c.label for c in found.comparisons]
    assert "CosFace vs SCE, BIM L∞ ε=0.15 adversarial test" in labels
    assert "ABCL vs CosFace, FGSM L2 ε=2.5 adversarial test" in labels and "ABCL vs SCE, test" in labels
    assert not any(label.endswith(("bim_linf", "fgsm_l2")) for label in labels)
    assert "BIM L∞ ε=0.15 adversarial test" in found.planned


def test_a_comparison_of_one_seed_is_mcnemar_on_the_same_images():
    one = fake_evals({("sce", 0, 0, 0, 0): {("fgsm", "linf", 0.2): 0.50},
                      ("cosface", 0, 0, 5, 0): {("fgsm", "linf", 0.2): 0.56}}, n=1000)
    a, b = (one[one.loss == loss] for loss in ("cosface", "sce"))
    found = compare_accuracy("CosFace vs SCE", a, b, fake_correct(one))
    assert found.one_seed and found.p_support == pytest.approx(0.5 ** 60)
    with pytest.raises(ABCLError, match="no per-image results"):
        compare_accuracy("CosFace vs SCE", a, b, {})


def test_leaderboard_ranks_by_autoattack_with_intervals():
    from abcl.report import leaderboard, leaderboard_markdown
    evals = fake_evals({("sce", 0, 0, 0, 0): {("clean", "none", 0.0): 0.99, ("autoattack", "linf", 0.2): 0.10},
                        ("cosface", 0, 0, 5, 0): {("clean", "none", 0.0): 0.98, ("autoattack", "linf", 0.2): 0.30}})
    table = leaderboard(evals)
    assert table.model.tolist() == ["CosFace", "SCE"] and (table.seeds == 1).all()
    low, high = scipy_wilson(300, 1000)
    row = table.iloc[0]
    column = "AutoAttack L∞ ε=0.2 (10 it., 500 q.)"  # the budget in the label: not the standard 100 / 5000
    assert row[f"{column} mean"] == 0.30 and row[f"{column} ci95 low"] == pytest.approx(low)
    assert row["training loss"] == "cosface s=5" and row["AutoAttack images"] == 1000 and row["AutoAttack seeds"] == 1
    text = leaderboard_markdown(table)
    assert f"30.0 [{100 * low:.1f}, {100 * high:.1f}]" in text
    assert "a reduced budget (10 it., 500 q.; the standard is 100 iterations and 5000 queries)" in text
    assert "standard budget" in leaderboard_markdown(leaderboard(evals.assign(steps=100, queries=5000)))


def test_without_adaptive_attacks_the_reports_say_what_did_not_run():
    """A run with FGSM and BIM only (eval.full_seeds: 0, as `make alexnet` and every later stage):
    masking.csv records the checks that could run, claims.md names the ones that could not, and
    neither the budget check nor the leaderboard reads as if AutoAttack had run."""
    from abcl.report import autoattack_budget_check, leaderboard, leaderboard_markdown
    evals = fake_evals({("cosface", 0, 0, 5, 0): {("clean", "none", 0.0): 0.97, ("fgsm", "linf", 0.2): 0.50,
                                                  ("bim", "linf", 0.2): 0.30}})
    gradients = pd.DataFrame([{"config_hash": evals.config_hash.iloc[0], "frac_vanished_gradient": 0.0,
                               "median_gradient_norm": 0.1}])
    masking = masking_report(evals, gradients, gap_points=10, max_vanished_fraction=0.05)
    assert masking.checks.iloc[0] == "vanished input gradients; FGSM beating BIM"
    assert autoattack_budget_check(evals) == ("not run (no AutoAttack)", False)
    text = claims_report([], evals, masking)
    assert ("None of the 1 models shows signs of gradient masking (checked: vanished input gradients, FGSM "
            "beating BIM; not run, for want of the attacks: CE/DLR disagreement, Square beating every gradient "
            "attack, adaptive attacks far stronger than FGSM/BIM)") in text
    assert "AutoAttack's budget check" not in text
    older = claims_report([], evals, masking.drop(columns="checks"))  # a masking.csv written before the column
    assert "which of them ran is not recorded" in older and "CE/DLR" not in older
    board = leaderboard_markdown(leaderboard(evals))
    assert board.startswith("No AutoAttack ran in this run") and "Robust accuracy under AutoAttack" not in board
    with_adaptive = fake_evals({("cosface", 0, 0, 5, 0): {("clean", "none", 0.0): 0.97, ("bim", "l2", 2.0): 0.70,
                                                        ("apgd_ce", "l2", 2.0): 0.65, ("apgd_dlr", "l2", 2.0): 0.6,
                                                        ("square", "l2", 2.0): 0.66}})
    every = masking_report(with_adaptive, gradients.assign(config_hash=with_adaptive.config_hash.iloc[0]),
                           gap_points=10, max_vanished_fraction=0.05)
    assert every.checks.iloc[0] == ("vanished input gradients; CE/DLR disagreement; Square beating every gradient "
                                    "attack; adaptive attacks far stronger than FGSM/BIM")


def scipy_wilson(k, n):
    import scipy.stats
    return scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson")


@pytest.mark.parametrize("accuracies,expected", [
    ({("fgsm", "linf", 0.2): 0.30, ("bim", "linf", 0.2): 0.60}, "FGSM beats BIM (linf eps=0.2)"),
    ({("apgd_ce", "l2", 2.0): 0.70, ("apgd_dlr", "l2", 2.0): 0.20}, "APGD-DLR beats APGD-CE by >10 points"),
    ({("bim", "l2", 2.0): 0.70, ("pgd", "l2", 2.0): 0.40}, "FGSM/BIM overestimate robustness"),
    ({("bim", "l2", 2.0): 0.70, ("apgd_ce", "l2", 2.0): 0.65, ("square", "l2", 2.0): 0.40},
     "Square (gradient-free) beats every gradient attack by >10 points (l2 eps=2)"),
    ({("fgsm", "linf", 0.2): 0.50, ("bim", "linf", 0.2): 0.30, ("apgd_ce", "l2", 2.0): 0.20,
      ("apgd_dlr", "l2", 2.0): 0.35}, ""),
])
def test_masking_flags_follow_attack_ordering(accuracies, expected):
    evals = fake_evals({("cosface", 0, 0, 5, 0): {("clean", "none", 0.0): 0.97, **accuracies}})
    gradients = pd.DataFrame([{"config_hash": evals.config_hash.iloc[0], "frac_vanished_gradient": 0.0,
                               "median_gradient_norm": 0.1}])
    report = masking_report(evals, gradients, gap_points=10, max_vanished_fraction=0.05).iloc[0]
    assert report.masking_suspected == bool(expected)
    assert expected in report["flags"]


def test_table_refuses_two_configurations_under_one_name(tmp_path):
    from abcl.tables import read_named_csvs, robustness_table
    evals = table_models(abcl_fgsm=0.75)
    paths = {}
    for (model, seed), rows in evals.groupby(["model", "seed"], sort=False):
        paths[(model, seed)] = tmp_path / f"{model}-{seed}.csv"
        rows.drop(columns="model").to_csv(paths[(model, seed)], index=False)
    pairs = [f"{model}={path}" for (model, _), path in paths.items()]
    table = robustness_table(read_named_csvs(pairs))
    assert table.model.tolist() == ["SCE", "CosFace", "ABCL"]  # the order given, names as given
    other = tmp_path / "other.csv"
    pd.read_csv(paths[("SCE", 0)]).assign(config_hash="another-sce-config").to_csv(other, index=False)
    with pytest.raises(ABCLError, match="two configurations of SCE seed 0"):
        read_named_csvs([*pairs, f"SCE={other}"])
    with pytest.raises(ABCLError, match="two evaluations of SCE seed 0 at clean none 0"):
        read_named_csvs([*pairs, pairs[0]])
    with pytest.raises(ABCLError, match="expected NAME=PATH"):
        read_named_csvs([str(paths[("SCE", 0)])])


def test_claim_2_compares_abcl_with_plain_ht_sce_found_by_their_plan_names():
    grid = {(k1, k2): 0.9 if (k1, k2) == (0, 0) else 0.98 for k1 in (0, 256, 512) for k2 in (0, 32, 64)}
    fig1 = fake_evals({("ht_sce", k1, k2, 5, seed): {("clean", "none", 0.0): acc + (k1 - 200) / 200 * NOISE[seed]}
                       for (k1, k2), acc in grid.items() for seed in range(3)}, n=10_000)
    correct = fake_correct(fig1)
    claim = ab_repairs(fig1, correct)
    assert claim.outcome == "SUPPORTED" and "(512, 64) repair it" in claim.statement
    assert [c.label for c in claim.comparisons] == ["ABCL vs HT-SCE, clean"]  # pre-specified: no best-of-grid
    fig1.loc[fig1.k1 == 256, "model"] = fig1.loc[fig1.k1 == 256, "model"].where(fig1.k2 != 32, "ABCL")
    fig1.loc[(fig1.k1 == 512) & (fig1.k2 == 64), "model"] = "HT-SCE+AB 512/64"
    assert "(256, 32) repair it" in ab_repairs(fig1, correct).statement  # a config's own ABCL setting
    assert ab_repairs(fig1[fig1.model != "ABCL"], correct).outcome == "NOT SHOWN"
    # ABCL on the CosFace basis (abcl.basis: cosface): Fig. 1's chosen cell is HT-SCE+AB, claim 2 compares it
    fig1.loc[fig1.model == "ABCL", "model"] = "HT-SCE+AB"
    claim = ab_repairs(fig1, correct)
    assert claim.outcome == "SUPPORTED" and "(256, 32) repair it" in claim.statement
    assert [c.label for c in claim.comparisons] == ["HT-SCE+AB vs HT-SCE, clean"]


# per-seed (a, b) accuracies of comparisons that read as the verdict says, over three seeds
EVIDENCE = {
    "SUPPORTED": [("ABCL vs SCE, FGSM L∞ ε=0.2", [(0.70, 0.40), (0.71, 0.40), (0.69, 0.40)])],
    "CONTRADICTED": [("ABCL vs SCE, FGSM L∞ ε=0.2", [(0.70, 0.40), (0.71, 0.40), (0.69, 0.40)]),
                     ("ABCL vs CosFace, BIM L∞ ε=0.2", [(0.05, 0.35), (0.06, 0.35), (0.04, 0.35)]),
                     ("ABCL vs CosFace, BIM L2 ε=2", [(0.10, 0.40), (0.12, 0.40), (0.11, 0.40)]),
                     ("ABCL vs CosFace, FGSM L2 ε=2", [(0.50, 0.50), (0.52, 0.50), (0.49, 0.50)])],
    "NOT SHOWN": [("ABCL vs SCE, clean", [(0.97, 0.96), (0.96, 0.97), (0.965, 0.96)])],
}


def fake_comparisons(verdicts, arch):
    from abcl.claims import COMPARISON_COLUMNS
    rows = [{"claim": str(i), "comparison": label, "kind": "superior", "margin": 0.0, "settings": "x", "seed": seed,
             "a": a, "b": b, "dataset": "mnist5k", "arch": arch, "epochs": 8, "batch_size": 128, "lr": 0.002,
             "optimizer": "adam", "schedule": "onecycle", "weight_decay": 0.0, "dropout": 0.5, "n_test": 400,
             "protocol": "123456789012"}
            for i, v in enumerate(verdicts, 1) for label, seeds in EVIDENCE[v] for seed, (a, b) in enumerate(seeds)]
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def fake_run(folder, dataset, n_train, verdicts, abcl_fgsm, arch="small"):
    """A finished run's files as the workflow writes them: claims.md, comparisons.csv, table.csv,
    the dataset record."""
    (folder / "data").mkdir(parents=True)
    fake_comparisons(verdicts, arch).to_csv(folder / "comparisons.csv", index=False)
    (folder / "data" / f"{dataset}.json").write_text(json.dumps({"dataset": dataset, "n_train": n_train}))
    (folder / "claims.md").write_text("# Do our runs reproduce the paper's claims?\n\n" + "\n".join(
        f"## Claim {i} (x): words.\n\n**Verdict: {v}**\n\n| table |\n" for i, v in enumerate(verdicts, 1)))
    rows = [(m, e, acc / 100, seeds, images) for m, acc in (("SCE", 40.0), ("CosFace", 60.0), ("ABCL", abcl_fgsm))
            for e, seeds, images in (("clean", 3, 400), ("FGSM L∞ ε=0.2", 3, 400),
                                     ("AutoAttack L∞ ε=0.2 (10 it., 500 q.)", 1, 200))]
    pd.DataFrame(rows, columns=["model", "evaluation", "mean", "seeds", "n_images"]).to_csv(folder / "table.csv",
                                                                                           index=False)


def test_configurations_side_by_side_come_from_each_runs_files(tmp_path):
    from abcl.runs import README_BEGIN, README_END, configurations_markdown, replace_generated_block
    fake_run(tmp_path / "mnist5k", "mnist5k", 4000, ["NOT SHOWN"] * 4, 55.0)
    fake_run(tmp_path / "mnist-cpu-full", "mnist", 60000, ["SUPPORTED", "NOT SHOWN", "CONTRADICTED",
                                                           "CONTRADICTED"], 71.5)
    (tmp_path / "mnist-cpu-full" / "adversarial.md").write_text(
        "| t |\n## Claim 5 (ours, beyond the paper): ABCL adds.\n\n**Verdict: NOT SHOWN**\n")
    # jobs: a clean training (60 s) and the adversarial target's (600 s), which claims.md does not judge
    for path, seconds in (("models/loss~sce/s~0/m~0/k1~0/k2~0/seed~0/train.benchmark.tsv", 60),
                          ("models/at~pgd/loss~sce/s~0/m~0/k1~0/k2~0/seed~0/train.benchmark.tsv", 600)):
        (tmp_path / "mnist5k" / path).parent.mkdir(parents=True)
        (tmp_path / "mnist5k" / path).write_text(f"s\tmax_rss\n{seconds}\t700\n")
    block = configurations_markdown([tmp_path / "mnist5k", tmp_path / "mnist-cpu-full"])
    lines = block.splitlines()
    # each column names its network, training images and seeds (table.csv's widest count, not every seed
    # folder on disk)
    assert "mnist5k: small net · 4,000 images · 3 seeds" in lines[0]
    assert "mnist-cpu-full: small net · 60,000 images · 3 seeds" in lines[0]
    compute = next(line for line in lines if line.startswith("| compute"))
    assert compute.split("|")[2].strip() == "1 min in 1 jobs"  # the adversarial target's job is not the run's
    judged = tmp_path / "mnist5k" / "claims.md"  # claim 5 in the default run (adversarial.in_default_run): it is
    judged.write_text(judged.read_text() + "\n## Claim 5 (ours): words.\n\n**Verdict: NOT SHOWN**\n")
    compute = next(line for line in configurations_markdown([tmp_path / "mnist5k"]).splitlines()
                   if line.startswith("| compute"))
    assert compute.split("|")[2].strip() == "11 min in 2 jobs"
    claim4 = next(line for line in lines if line.startswith("| 4 (table)"))
    # mixed evidence shown, not hidden behind one word: for, against, open
    assert claim4.split("|")[2].strip() == "NOT SHOWN (0 for, 0 against, 1 open)"
    assert claim4.split("|")[3].strip() == "CONTRADICTED (1 for, 2 against, 1 open)"
    claim1 = next(line for line in lines if line.startswith("| 1 (Fig. 2)"))
    assert claim1.split("|")[3].strip() == "SUPPORTED (1 for, 0 against, 0 open)"
    claim5 = next(line for line in lines if line.startswith("| 5 (ours)"))
    assert claim5.split("|")[2].strip() == "not run"
    assert claim5.split("|")[3].strip() == "NOT SHOWN (adversarial.md, `make adversarial`)"
    assert "- 4 (table): ABCL more robust to FGSM and BIM than SCE and CosFace: small net · 60,000 images · 3 seeds: " \
           "ABCL below CosFace at BIM L∞ ε=0.2, BIM L2 ε=2." in lines
    # claims that every run judges alike share a line
    assert ("- Claims 3 and 4: NOT SHOWN on the small net · 4,000 images · 3 seeds; CONTRADICTED on the small net · "
            "60,000 images · 3 seeds.") in lines
    assert "- Claim 1: NOT SHOWN on the small net · 4,000 images · 3 seeds; SUPPORTED on the small net · " \
           "60,000 images · 3 seeds." in lines
    assert "- Claim 2: NOT SHOWN on both runs." in lines  # one verdict on every run: said once
    assert any(line.startswith("| small net · 60,000 images · 3 seeds | ABCL ") and "| 71.5 " in line
               for line in lines)
    assert "AutoAttack L∞ ε=0.2 (10 it., 500 q.)" in next(line for line in lines if line.startswith("| run "))
    # a column with fewer seeds than the model's others says so, and on how many test images
    assert "71.5 (1 seed, 200 images)" in block
    (tmp_path / "mnist5k" / "comparisons.csv").unlink()
    with pytest.raises(ABCLError, match="no comparisons.csv"):
        configurations_markdown([tmp_path / "mnist5k"])
    readme = f"intro\n{README_BEGIN}\nold numbers\n{README_END}\nrest\n"
    assert replace_generated_block(readme, block) == f"intro\n{README_BEGIN}\n{block}{README_END}\nrest\n"
    with pytest.raises(ABCLError, match="no generated block"):
        replace_generated_block("no markers", block)


def test_a_snapshot_regenerates_the_same_block_without_the_run(tmp_path):
    """README's block comes from committed snapshots (docs/runs/): the same text as from the run."""
    from abcl.runs import configurations_markdown, snapshot_run
    run = tmp_path / "results" / "mnist5k-alexnet"
    fake_run(run, "mnist5k", 4000, ["NOT SHOWN", "CONTRADICTED", "NOT SHOWN", "SUPPORTED"], 55.0, arch="alexnet")
    bench = run / "models/loss~sce/s~0/m~0/k1~0/k2~0/seed~0/train.benchmark.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\tmax_rss\n216.5\t1000\n")
    copied = snapshot_run(run, tmp_path / "docs" / "runs" / "mnist5k-alexnet")
    assert {"claims.md", "comparisons.csv", "table.csv", "data/", "jobs.csv"} <= set(copied)
    from_snapshot = configurations_markdown([tmp_path / "docs" / "runs" / "mnist5k-alexnet"])
    assert from_snapshot == configurations_markdown([run])
    assert "mnist5k-alexnet: AlexNet-style net · 4,000 images · 3 seeds" in from_snapshot
    assert "4 min in 1 jobs" in from_snapshot
    (run / "claims.md").unlink()
    with pytest.raises(ABCLError, match="not a finished run"):
        snapshot_run(run, tmp_path / "elsewhere")


def test_readme_holds_the_generated_configurations_block():
    """README's "What the runs say" is what `make readme-configurations` makes of the committed
    snapshots (docs/runs/) of the runs the Makefile names: generated, not typed, and current."""
    import re

    from abcl.runs import README_BEGIN, README_END, configurations_markdown
    root = Path(__file__).resolve().parent.parent
    block = (root / "README.md").read_text().split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    named = re.search(r"^README_RUNS = (.*)$", (root / "Makefile").read_text(), re.M).group(1).split()
    snapshots = [root / "docs" / "runs" / run for run in named if (root / "docs" / "runs" / run).is_dir()]
    assert snapshots, "no snapshot of README's runs in docs/runs/"
    assert block.strip() == configurations_markdown(snapshots).strip()
    assert "PARTLY" not in block  # verdicts of the current rule only: SUPPORTED, CONTRADICTED, NOT SHOWN


def test_adversarial_report_compares_abcl_with_each_loss_under_each_training_method():
    """Claim 5 per training method (the end-to-end run trains one, PGD-AT): ABCL against every
    other loss trained the same way, paired over seeds, on the same AutoAttack images."""
    from abcl.report import adversarial_report
    autoattack = {"PGD-AT": {"sce": 0.40, "ht_sce": 0.55}, "TRADES": {"sce": 0.50, "ht_sce": 0.50}}
    frames = []
    for method, accuracy in autoattack.items():
        evals = fake_evals({(loss, k1, k2, s, seed): {("clean", "none", 0.0): 0.95,
                                                     ("autoattack", "linf", 0.3): accuracy[loss] + NOISE[seed] * k1 / 512}
                            for loss, k1, k2, s in (("sce", 0, 0, 0), ("ht_sce", 512, 64, 5)) for seed in range(5)})
        frames.append(evals.assign(model=evals.model + f" {method}", config_hash=evals.config_hash + method,
                                   adv_eps=0.3, adv_steps=2, adv_step_size=0.375, epochs=8))
    evals = pd.concat(frames, ignore_index=True)
    text = adversarial_report(evals, fake_correct(evals))
    assert "| SCE PGD-AT " in text and "| ABCL TRADES " in text and "2 steps of 0.375) for 8 epochs" in text
    assert "Madry et al.'s MNIST model ≈ 83 epochs" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| ABCL vs SCE") and "t-test" in line}  # the comparison table, not the power table
    assert "paired t-test over 5 seeds" in rows["ABCL vs SCE (PGD-AT), AutoAttack L∞ ε=0.3 (10 it., 500 q.)"]
    assert rows["ABCL vs SCE (PGD-AT), AutoAttack L∞ ε=0.3 (10 it., 500 q.)"].rstrip(" |").endswith("supports")
    assert rows["ABCL vs SCE (TRADES), AutoAttack L∞ ε=0.3 (10 it., 500 q.)"].rstrip(" |").endswith("neither")
    assert "**Verdict: NOT SHOWN**" in text


def test_worst_case_at_a_budget_counts_every_attack_at_a_smaller_one():
    from abcl.evaluate import nested_worst_cases
    clean = torch.ones(4, dtype=torch.bool)
    at_01 = torch.tensor([False, True, True, True])  # the small budget breaks image 0 ...
    at_02 = torch.tensor([True, False, True, True])  # ... which the larger one missed; it breaks image 1
    found = {(n, e): alive.tolist() for n, e, alive in nested_worst_cases(
        clean, [("linf", 0.1, at_01), ("linf", 0.2, at_02), ("linf", 0.1, at_01), ("l2", 2.0, at_02)])}
    assert found[("linf", 0.1)] == [False, True, True, True]
    assert found[("linf", 0.2)] == [False, False, True, True]  # image 0 counts as broken at 0.2 too
    assert ("l2", 2.0) not in found  # one attack alone is no worst case


@pytest.mark.slow
def test_worst_case_never_rises_with_eps_nor_exceeds_an_attack_it_includes(trained_cosface, mnist5k):
    from abcl.tables import robustness_tables
    model, cfg = trained_cosface
    specs = attack_specs({"fgsm_linf": {"eps": [0.05, 0.1, 0.2]}, "bim_linf": {"eps": [0.05, 0.1, 0.2], "steps": 5},
                          "pgd_linf": {"eps": [0.1], "steps": 5, "restarts": 1}})
    rows = evaluate_model(model, cfg, mnist5k, specs, n_test=300, batch_size=300, device="cpu", adaptive_n_test=100)
    worst = rows[rows.attack == "worst_case"].sort_values("eps")
    assert worst.eps.tolist() == [0.05, 0.1, 0.2] and (worst.n == 100).all()
    assert worst.accuracy.is_monotonic_decreasing
    for row in worst.itertuples():
        included = rows[(rows.attack != "worst_case") & (rows.attack != "clean") & (rows.eps <= row.eps)]
        assert row.accuracy <= included.common_accuracy.min()
    # the table shows them on their common images beside each attack on the same images, with counts
    tables = robustness_tables(rows.assign(model="CosFace"))
    assert tables[0][0].startswith("Clean and the paper's attacks on the first 300 test images")
    heading, common = tables[1]
    assert "on the first 100 test images" in heading
    cells = common.iloc[0]
    worst_02, bim_02 = float(cells["worst case L∞ ε=0.2"]), float(cells["BIM L∞ ε=0.2"])
    assert worst_02 <= bim_02 and worst_02 <= float(cells["worst case L∞ ε=0.1"])
    # without adaptive attacks an evaluation has no worst case: it would be FGSM/BIM's alone
    plain = evaluate_model(model, cfg, mnist5k, specs[:6], n_test=100, device="cpu")
    assert "worst_case" not in set(plain.attack)


def test_autoattack_budget_check_compares_it_with_apgd_ce_at_100_iterations_on_the_same_images():
    from abcl.report import autoattack_budget_check
    rows = fake_evals({("cosface", 0, 0, 5, 0): {("autoattack", "linf", 0.2): 0.05, ("apgd_ce", "linf", 0.2): 0.015,
                                                 ("autoattack", "l2", 2.0): 0.20, ("apgd_ce", "l2", 2.0): 0.25}})
    rows.loc[rows.attack == "apgd_ce", "steps"] = 100
    text, weaker = autoattack_budget_check(rows)
    assert weaker and "linf ε=0.2: AutoAttack (10 it., 500 q.) 5.0% vs APGD-CE (100 it.) 1.5%, weaker by 3.5 points" in text
    assert "l2 ε=2: AutoAttack (10 it., 500 q.) 20.0% vs APGD-CE (100 it.) 25.0%;" in text  # stronger there: no "weaker"
    rows.loc[rows.attack == "apgd_ce", "steps"] = 20  # a shorter APGD-CE is no check of the budget
    assert autoattack_budget_check(rows) == ("not run (no APGD-CE at 100 iterations beside AutoAttack)", False)


def test_comparisons_csv_pools_disjoint_seed_sets_of_one_experiment(tmp_path):
    from abcl.claims import per_seed_frame, pooled_comparisons, read_comparisons
    evals = table_models(abcl_fgsm=0.75)  # seeds 0-4
    first, second = (per_seed_frame([robustness(part, {})], evals, PROTOCOL)
                     for part in (evals[evals.seed < 3], evals[evals.seed >= 3]))
    pooled = pooled_comparisons([first, second])["4"]
    whole = robustness(evals, {}).comparisons
    assert [(c.label, c.seeds, c.kind) for c in pooled] == [(c.label, 5, c.kind) for c in whole]
    assert [c.diff for c in pooled] == pytest.approx([c.diff for c in whole])
    assert [c.p_against for c in pooled] == pytest.approx([c.p_against for c in whole])
    assert len(pooled_comparisons([first, first])["4"][0].per_seed) == 3  # the same run twice counts once
    with pytest.raises(ABCLError, match="seed 0 gives two different results .* not one experiment"):
        pooled_comparisons([first, first.assign(a=first.a + 0.01)])
    with pytest.raises(ABCLError, match=r"different experiments \(epochs=; epochs=3\)"):
        pooled_comparisons([first, second.assign(epochs=3)])
    # the same training, other attacks or t-SNE sets (abcl.config.comparison_protocol): not one experiment
    with pytest.raises(ABCLError, match=r"\(protocol=aaa; protocol=bbb \(the attacks, test images, t-SNE sets"):
        pooled_comparisons([first.assign(protocol="aaa"), second.assign(protocol="bbb")])
    with pytest.raises(ABCLError, match="a comparisons.csv without its protocol"):  # written without --config
        pooled_comparisons([first, second.assign(protocol="")])
    # through the files: a hash of digits only stays text, so two of them cannot both read as one number
    for name, frame, protocol in (("a", first, "1e3000000000"), ("b", second, "1e3000000001")):
        frame.assign(protocol=protocol).to_csv(tmp_path / f"{name}.csv", index=False)
    with pytest.raises(ABCLError, match="protocol=1e3000000000; protocol=1e3000000001"):
        pooled_comparisons([read_comparisons(tmp_path / "a.csv"), read_comparisons(tmp_path / "b.csv")])
    assert first.settings.iloc[0] == "loss=ht_sce k1=512 k2=64 s=5 m=0 vs loss=sce k1=0 k2=0 s=0 m=0"
    # one config's comparison, another's loss settings, kind or margin: not one experiment either
    for column, other in (("settings", "loss=ht_sce k1=256 k2=64 s=5 m=0 vs loss=sce k1=0 k2=0 s=0 m=0"),
                          ("kind", "not worse"), ("margin", 0.02)):
        with pytest.raises(ABCLError, match=f"the runs compare different {column}"):
            pooled_comparisons([first, second.assign(**{column: other})])
    with pytest.raises(ABCLError, match="1 seed in all the runs; a comparison over seeds needs two"):
        pooled_comparisons([first[first.seed == 0]])


def test_comparisons_csv_names_the_reading_of_the_method_so_two_readings_never_pool():
    from abcl.claims import per_seed_frame, pooled_comparisons
    evals = table_models(abcl_fgsm=0.75)
    # eval.csv carries ab_form only for a model trained with a reading other than the default
    linear = evals.assign(ab_form=np.where(evals.k1 > 0, "linear", None))
    first = per_seed_frame([robustness(evals[evals.seed < 3], {})], evals, PROTOCOL)
    second = per_seed_frame([robustness(linear[linear.seed >= 3], {})], linear, PROTOCOL)
    abcl_vs_sce = second[second.comparison.str.contains("SCE") & ~second.comparison.str.contains("HT-SCE")]
    assert set(abcl_vs_sce.settings.str.startswith("loss=ht_sce k1=512 k2=64 s=5 m=0 ab_form=linear vs "
                                                   "loss=sce k1=0 k2=0 s=0 m=0")) == {True}
    assert "ab_form" not in "".join(first.settings)
    with pytest.raises(ABCLError, match="the runs compare different settings"):
        pooled_comparisons([first, second])


def test_abcl_power_prints_the_pooled_power_table_and_names_a_missing_file(tmp_path, capsys):
    from abcl.claims import per_seed_frame
    from abcl.cli import main
    evals = table_models(abcl_fgsm=0.75)
    for name, part in (("a", evals[evals.seed < 3]), ("b", evals[evals.seed >= 3])):
        (tmp_path / name).mkdir()
        per_seed_frame([robustness(part, {})], evals, PROTOCOL).to_csv(tmp_path / name / "comparisons.csv", index=False)
    main(["power", str(tmp_path / "a"), str(tmp_path / "b"), "--precision-points", "2"])
    out = capsys.readouterr().out
    assert "## Claim 4: NOT SHOWN (exploratory) over 5 seeds" in out and "seeds for ±2" in out
    assert "*Exploratory.*" in out and "optional stopping" in out
    assert "ABCL vs SCE, FGSM L∞ ε=0.2" in out and "80% power to support" in out
    (tmp_path / "c").mkdir()
    assert main(["power", str(tmp_path / "c")]) == 2
    assert "c/comparisons.csv: missing" in capsys.readouterr().err
    assert main(["power"]) == 2 and "no finished run to read" in capsys.readouterr().err


def test_seed_sets_reports_each_sets_verdicts_flips_and_refuses_shared_seeds(tmp_path):
    """benchmarks/seed_sets.py on two disjoint seed sets of one (fake) experiment: one run whose
    ABCL is far above SCE and CosFace, one where it is far below, must be reported as a flip."""
    sys.path.insert(0, str(ROOT))
    from abcl.claims import per_seed_frame
    from benchmarks.seed_sets import stability
    for name, abcl, seeds in (("a", 0.80, (0, 1, 2)), ("b", 0.05, (3, 4))):
        evals = table_models(abcl, seeds)
        under_bim = (evals.model == "ABCL") & (evals.attack == "bim")
        evals.loc[under_bim, "accuracy"] = abcl / 2 + 0.1 + evals.seed[under_bim].map(lambda seed: NOISE[seed])
        evals.common_accuracy = evals.accuracy
        found = [robustness(evals, {})]
        (tmp_path / name).mkdir()
        per_seed_frame(found, evals, PROTOCOL).to_csv(tmp_path / name / "comparisons.csv", index=False)
        (tmp_path / name / "claims.md").write_text(claims_report(found, evals, None))
    text = " ".join(stability([tmp_path / "a", tmp_path / "b"], 0.05, 3.0).split())  # tables unpadded
    assert "| Claim 4 | SUPPORTED | CONTRADICTED | FLIP |" in text and "**1 SUPPORTED↔CONTRADICTED flip: Claim 4.**" in text
    assert "a (seeds 0-2)" in text and "b (seeds 3, 4)" in text and " over 5 seeds" in text
    with pytest.raises(SystemExit, match="share seeds \\[0, 1, 2\\]"):
        stability([tmp_path / "a", tmp_path / "a"], 0.05, 3.0)
    # a set read from two runs and cut to a seed range
    sets = [f"{tmp_path / 'a'}+{tmp_path / 'b'}:1-3", f"{tmp_path / 'b'}:4-4"]
    with pytest.raises(ABCLError, match="1 seed in all the runs"):  # a one-seed set is no comparison over seeds
        stability(sets, 0.05, 3.0)
    joined = " ".join(stability([f"{tmp_path / 'a'}+{tmp_path / 'b'}:2-3", f"{tmp_path / 'a'}:0-1"], 0.05, 3.0).split())
    assert "b:2-3 (seeds 2, 3)" in joined and "a:0-1 (seeds 0, 1)" in joined


def test_fig1_says_how_many_seeds_each_cell_averages(tmp_path):
    """Drawn-only cells train fewer seeds (eval.figure_seeds): the title and the summary say so per cell."""
    from abcl.figures import fig1_heatmaps, seeds_per_cell
    cells = {(0, 0): 5, (512, 64): 5, (0, 64): 3, (512, 0): 3}
    fig1 = fake_evals({("ht_sce", k1, k2, 5, seed): {("clean", "none", 0.0): 0.97, ("bim", "linf", 0.2): 0.1}
                       for (k1, k2), n in cells.items() for seed in range(n)})
    summary = fig1_heatmaps(fig1, tmp_path / "fig1.png")
    assert dict(zip(zip(summary.k1, summary.k2), summary.seeds)) == cells
    assert seeds_per_cell(summary.drop_duplicates(["k1", "k2"]).set_index(["k1", "k2"]).seeds) == \
        "mean of 5 seeds at 0/0, 512/64; of 3 seeds at 0/64, 512/0"
    assert seeds_per_cell(pd.Series({(0, 0): 1})) == "mean of 1 seed"
    assert (tmp_path / "fig1.png").exists() and (tmp_path / "fig1.pdf").exists()


def test_one_mean_shows_the_same_digits_in_table_md_and_readme():
    """table.md averages percentages, README's block reads table.csv's mean fraction: both print it
    through tables.percent, so 0.9685 (96.85, which binary floats hold as 96.8499...) is 96.9 in both."""
    from abcl.claims import _pct
    from abcl.report import stats_table
    from abcl.tables import percent, robustness_table
    evals = fake_evals({("sce", 0, 0, 0, seed): {("clean", "none", 0.0): acc}
                        for seed, acc in enumerate((0.968, 0.969))})
    assert robustness_table(evals).loc[0, "clean"] == "96.9 ± 0.1"
    mean = stats_table(evals).set_index("evaluation").loc["clean", "mean"]
    assert _pct(mean) == percent(mean) == "96.9"
    assert [percent(x) for x in (0.96849999, 0.0005, 1.0, 0.0, float("nan"))] == ["96.8", "0.1", "100.0", "0.0", "nan"]


def test_fig3_title_names_the_seed_whose_networks_it_draws(tmp_path, monkeypatch):
    """Fig. 3 draws one network per loss: its title names their seed, taken from the scores."""
    from abcl import figures
    titles = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: titles.append(fig.get_suptitle()))
    rng = np.random.default_rng(0)
    sets = list(figures.SET_TITLES)
    frame = pd.DataFrame({"set": np.repeat(sets, 10), "label": np.tile(np.arange(10), len(sets)),
                          "tsne_x": rng.normal(size=10 * len(sets)), "tsne_y": rng.normal(size=10 * len(sets)),
                          "knn_correct": True})
    scores = pd.DataFrame({"set": sets, "silhouette": 0.1, "tsne_knn_accuracy": 0.9, "seed": 7})
    figures.fig3_tsne({"SCE": frame, "ABCL": frame}, tmp_path / "fig3.png", {"SCE": scores, "ABCL": scores}, seed=7)
    figures.fig3_tsne({"SCE": frame}, tmp_path / "fig3.png")
    assert titles[0].endswith("(one network per loss, seed 7)")
    assert "seed" not in titles[1]
