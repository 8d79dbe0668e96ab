"""Adaptive attacks, the independent reference check, the masking report and the claims verdicts."""

import json
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
from abcl.report import claim_robustness, claim_scale, claims_report, masking_report, summarize
from abcl.data import as_float_images
from abcl.train import load_model, train_model


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
                         "arch": "small", "config_hash": f"{loss}{k1}{k2}{s}{seed}"})
    return pd.DataFrame(rows)


def fake_correct(evals):
    """Per-image results consistent with ``evals``: the first round(accuracy * n) images right."""
    from abcl.config import evaluation_key
    return {(r.config_hash, evaluation_key(r.attack, r.norm, r.eps)): np.arange(r.n) < round(r.accuracy * r.n)
            for r in evals.itertuples()}


def table_models(abcl_fgsm):
    base = {("clean", "none", 0.0): 0.97, ("bim", "linf", 0.2): 0.10}
    return fake_evals({
        ("sce", 0, 0, 0, seed): {**base, ("fgsm", "linf", 0.2): 0.40} for seed in (0, 1, 2)
    } | {
        ("cosface", 0, 0, 5, seed): {**base, ("fgsm", "linf", 0.2): 0.60 + 0.01 * seed} for seed in (0, 1, 2)
    } | {
        ("ht_sce", 512, 64, 5, seed): {**base, ("fgsm", "linf", 0.2): abcl_fgsm + 0.01 * seed} for seed in (0, 1, 2)
    })


def test_claim_verdict_follows_the_numbers():
    def verdict(evals):
        return claim_robustness(evals, fake_correct(evals))[1]
    supported = verdict(table_models(abcl_fgsm=0.75).query("attack != 'bim'"))
    contradicted = verdict(table_models(abcl_fgsm=0.30).query("attack != 'bim'"))
    partly = verdict(table_models(abcl_fgsm=0.75))
    assert supported == "SUPPORTED"
    assert contradicted == "NOT SUPPORTED"
    assert partly == "PARTLY SUPPORTED"  # BIM is equal for all three models


def test_scale_claim_follows_the_numbers():
    def fig2(accuracy_of_s):
        return fake_evals({("cos_sce", 0, 0, s, 0): {("clean", "none", 0.0): acc} for s, acc in accuracy_of_s.items()},
                          n=10_000)
    def verdict(accuracy_of_s):
        evals = fig2(accuracy_of_s)
        return claim_scale(evals, fake_correct(evals))[1]
    assert verdict({1: 0.95, 4: 0.99, 8: 0.97, 16: 0.90}) == "SUPPORTED"
    assert verdict({1: 0.99, 4: 0.95, 8: 0.97, 16: 0.99}) == "NOT SUPPORTED"
    assert verdict({1: 0.99, 8: 0.97}).startswith("CANNOT BE CHECKED")


def test_claims_report_is_complete_markdown():
    evals = table_models(abcl_fgsm=0.75)
    fig1 = fake_evals({("ht_sce", k1, k2, 5, 0): {("clean", "none", 0.0): 0.9 if (k1, k2) == (0, 0) else 0.98}
                       for k1 in (0, 512) for k2 in (0, 64)}, n=10_000)
    fig2 = fake_evals({("cos_sce", 0, 0, s, 0): {("clean", "none", 0.0): a} for s, a in {4: .99, 16: .9}.items()})
    scores = pd.DataFrame([{"model": m, "set": st, "n": 500, "silhouette": 0.5, "tsne_knn_accuracy": acc}
                           for m, acc in (("SCE", 0.8), ("CosFace", 0.9), ("ABCL", 0.97)) for st in ("train", "test")])
    correct = fake_correct(pd.concat([evals, fig1, fig2]))
    text = claims_report(fig1, fig2, evals, scores, None, correct)
    assert "paired t over 3 seeds" in text and "McNemar exact on 10000 images" in text
    assert text.count("**Verdict: ") == 4
    assert "Claim 3" in text and "**Verdict: SUPPORTED**" in text


def test_paired_comparison_is_mcnemar_on_one_seed_and_a_t_interval_over_seeds():
    from abcl.report import paired
    one = fake_evals({("sce", 0, 0, 0, 0): {("fgsm", "linf", 0.2): 0.50},
                      ("cosface", 0, 0, 5, 0): {("fgsm", "linf", 0.2): 0.56}}, n=1000)
    a, b = (one[one.loss == loss] for loss in ("cosface", "sce"))
    verdict, test = paired(a, b, fake_correct(one))
    # 60 discordant pairs all one way: exact two-sided binomial p = 2 * 0.5^60
    assert verdict == "higher" and test == f"McNemar exact on 1000 images: 60 vs 0 discordant, p = {2 * 0.5 ** 60:.2g}"
    correct = fake_correct(one)
    key = next(k for k in correct if k[0] == b.config_hash.iloc[0])
    correct[key] = np.roll(correct[key], 30)  # same accuracy, different images: 30 vs ... discordant
    assert paired(a, b, correct)[0] in ("higher", "indistinguishable")
    import scipy.stats
    assert paired(a, a, correct) == ("indistinguishable", "McNemar exact on 1000 images: 0 vs 0 discordant, p = 1")
    seeds = fake_evals({("sce", 0, 0, 0, s): {("fgsm", "linf", 0.2): 0.50 + 0.01 * s} for s in range(3)}
                       | {("cosface", 0, 0, 5, s): {("fgsm", "linf", 0.2): 0.52 + 0.02 * s} for s in range(3)})
    a, b = (seeds[seeds.loss == loss] for loss in ("cosface", "sce"))
    verdict, test = paired(a, b, {})
    low, high = scipy.stats.t.interval(0.95, 2, loc=0.03, scale=scipy.stats.sem([0.02, 0.03, 0.04]))
    assert verdict == "higher" and test == f"paired t over 3 seeds: [{100 * low:+.1f}, {100 * high:+.1f}] points"


def test_leaderboard_ranks_by_autoattack_with_intervals():
    from abcl.report import leaderboard, leaderboard_markdown
    evals = fake_evals({("sce", 0, 0, 0, 0): {("clean", "none", 0.0): 0.99, ("autoattack", "linf", 0.2): 0.10},
                        ("cosface", 0, 0, 5, 0): {("clean", "none", 0.0): 0.98, ("autoattack", "linf", 0.2): 0.30}})
    table = leaderboard(evals)
    assert table.model.tolist() == ["CosFace", "SCE"] and (table.seeds == 1).all()
    low, high = scipy_wilson(300, 1000)
    row = table.iloc[0]
    assert row["AutoAttack L∞ eps=0.2 mean"] == 0.30 and row["AutoAttack L∞ eps=0.2 ci95 low"] == pytest.approx(low)
    assert row["training loss"] == "cosface s=5" and row["AutoAttack images"] == 1000
    assert f"30.0 [{100 * low:.1f}, {100 * high:.1f}]" in leaderboard_markdown(table)


def scipy_wilson(k, n):
    import scipy.stats
    return scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson")


def test_summary_interval_uses_seeds_or_binomial():
    one = summarize(pd.Series([0.9]), n_test=10_000)
    assert one["half"] == pytest.approx(1.96 * (0.9 * 0.1 / 10_000) ** 0.5, rel=1e-3)  # ~ normal approximation
    zero = summarize(pd.Series([0.0]), n_test=1000)
    assert zero["ci95_low"] == 0.0 and 0.003 < zero["ci95_high"] < 0.005  # Wilson: not a degenerate [0, 0]
    three = summarize(pd.Series([0.9, 0.92, 0.94]), n_test=10_000)
    assert three["sd"] == pytest.approx(0.02) and three["ci95_low"] < 0.9


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


def test_claim_2_finds_ht_sce_and_abcl_by_their_plan_names():
    from abcl.report import claim_ab_repairs
    grid = {(k1, k2): 0.9 if (k1, k2) == (0, 0) else 0.98 for k1 in (0, 256, 512) for k2 in (0, 32, 64)}
    fig1 = fake_evals({("ht_sce", k1, k2, 5, 0): {("clean", "none", 0.0): acc} for (k1, k2), acc in grid.items()},
                      n=10_000)
    correct = fake_correct(fig1)
    text, verdict, numbers = claim_ab_repairs(fig1, correct)
    assert verdict == "SUPPORTED" and "(512, 64) is a good setting" in text and "512/64 not below best" in numbers
    fig1.loc[fig1.k1 == 256, "model"] = fig1.loc[fig1.k1 == 256, "model"].where(fig1.k2 != 32, "ABCL")
    fig1.loc[(fig1.k1 == 512) & (fig1.k2 == 64), "model"] = "HT-SCE+AB 512/64"
    assert "(256, 32) is a good setting" in claim_ab_repairs(fig1, correct)[0]  # a config's own ABCL setting
    assert claim_ab_repairs(fig1[fig1.model != "ABCL"], correct)[1].startswith("CANNOT BE CHECKED")


def test_separation_claim_needs_both_metrics():
    from abcl.report import claim_separation

    def scores(knn, silhouette):
        return pd.DataFrame([{"model": m, "set": "test", "n": 1000, "tsne_knn_accuracy": knn[m],
                              "silhouette": silhouette[m]} for m in ("SCE", "CosFace", "ABCL")])
    good_knn = {"SCE": 0.80, "CosFace": 0.88, "ABCL": 0.95}
    good_sil = {"SCE": 0.3, "CosFace": 0.5, "ABCL": 0.7}
    assert claim_separation(scores(good_knn, good_sil))[1] == "SUPPORTED"
    assert claim_separation(scores(good_knn, {"SCE": 0.7, "CosFace": 0.5, "ABCL": 0.3}))[1] == "PARTLY SUPPORTED"
    unmeasured = claim_separation(scores({"SCE": float("nan"), "CosFace": 0.9, "ABCL": 0.95}, good_sil))
    assert unmeasured[1] == "PARTLY SUPPORTED" and "not measured" in unmeasured[2]
    assert claim_separation(scores({"SCE": 0.95, "CosFace": 0.9, "ABCL": 0.8},
                                    {"SCE": 0.7, "CosFace": 0.5, "ABCL": 0.3}))[1] == "NOT SUPPORTED"


def fake_run(folder, dataset, n_train, verdicts, abcl_fgsm):
    """A finished run's files as the workflow writes them: claims.md, table.csv, the dataset record."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / f"{dataset}.json").write_text(json.dumps({"dataset": dataset, "n_train": n_train}))
    (folder / "claims.md").write_text("# Do our runs reproduce the paper's claims?\n\n" + "\n".join(
        f"## Claim {i} (x): words.\n\n**Verdict: {v}**\n\n| table |\n" for i, v in enumerate(verdicts, 1)))
    rows = [(m, e, acc / 100) for m, acc in (("SCE", 40.0), ("CosFace", 60.0), ("ABCL", abcl_fgsm))
            for e in ("clean", "FGSM L∞ ε=0.2")]
    pd.DataFrame(rows, columns=["model", "evaluation", "mean"]).to_csv(folder / "table.csv", index=False)


def test_configurations_side_by_side_come_from_each_runs_files(tmp_path):
    from abcl.report import README_BEGIN, README_END, configurations_markdown, replace_generated_block
    fake_run(tmp_path / "mnist5k", "mnist5k", 4000, ["NOT SUPPORTED"] * 4, 55.0)
    fake_run(tmp_path / "mnist-cpu-full", "mnist", 60000, ["SUPPORTED", "NOT SUPPORTED", "PARTLY SUPPORTED",
                                                           "PARTLY SUPPORTED"], 71.5)
    (tmp_path / "mnist-cpu-full" / "adversarial.md").write_text(
        "| t |\n## Claim 5 (ours, beyond the paper): ABCL adds.\n\n**Verdict: NOT SUPPORTED**\n")
    block = configurations_markdown([tmp_path / "mnist5k", tmp_path / "mnist-cpu-full"])
    lines = block.splitlines()
    assert "| claim " in lines[0] and "mnist5k (4,000 train images)" in lines[0] and "(60,000 train images)" in lines[0]
    claim4 = next(line for line in lines if line.startswith("| 4 (table)"))
    assert claim4.split("|")[2].strip() == "NOT SUPPORTED" and claim4.split("|")[3].strip() == "PARTLY SUPPORTED"
    claim5 = next(line for line in lines if line.startswith("| 5 (ours)"))
    assert claim5.split("|")[2].strip() == "not run" and claim5.split("|")[3].strip() == "NOT SUPPORTED"
    assert any(line.startswith("| mnist-cpu-full | ABCL ") and "| 71.5 " in line for line in lines)
    readme = f"intro\n{README_BEGIN}\nold numbers\n{README_END}\nrest\n"
    assert replace_generated_block(readme, block) == f"intro\n{README_BEGIN}\n{block}{README_END}\nrest\n"
    with pytest.raises(ABCLError, match="no generated block"):
        replace_generated_block("no markers", block)


def test_readme_holds_the_generated_configurations_block():
    from abcl.report import README_BEGIN, README_END
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    assert "| claim " in block and "mnist5k (4,000 train images)" in block and "(60,000 train images)" in block


def test_adversarial_report_compares_abcl_with_each_loss_under_each_training_method():
    """Claim 5 per training method (the end-to-end run trains one, PGD-AT): ABCL against every
    other loss trained the same way, paired, on the same AutoAttack images."""
    from abcl.report import adversarial_report
    autoattack = {"PGD-AT": {"sce": 0.40, "ht_sce": 0.55}, "TRADES": {"sce": 0.50, "ht_sce": 0.50}}
    frames = []
    for method, accuracy in autoattack.items():
        evals = fake_evals({("sce", 0, 0, 0, 0): {("clean", "none", 0.0): 0.95, ("autoattack", "linf", 0.3): accuracy["sce"]},
                            ("ht_sce", 512, 64, 5, 0): {("clean", "none", 0.0): 0.96,
                                                        ("autoattack", "linf", 0.3): accuracy["ht_sce"]}})
        frames.append(evals.assign(model=evals.model + f" {method}", config_hash=evals.config_hash + method,
                                   adv_eps=0.3, adv_steps=2, adv_step_size=0.375))
    evals = pd.concat(frames, ignore_index=True)
    text = adversarial_report(evals, fake_correct(evals))
    assert "| SCE PGD-AT " in text and "| ABCL TRADES " in text and "2 steps of 0.375" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| PGD-AT") or
            line.startswith("| TRADES")}
    assert "higher (McNemar exact on 1000 images: 150 vs 0 discordant" in rows["PGD-AT"]
    assert "indistinguishable (McNemar exact on 1000 images: 0 vs 0 discordant" in rows["TRADES"]
    assert "**Verdict: PARTLY SUPPORTED**" in text
