"""abcl.runs: the stages of one run pooled into one snapshot (abcl pool)."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abcl import ABCLError
from abcl.runs import claim_texts, configurations_markdown, pool_stages, pooled_table
from abcl.statistics import summarize

INTERIM = Path(__file__).parents[1] / "docs" / "runs" / "mnist5k-alexnet-interim"
COMPARISON_ROW = re.compile(r"^\| (?:ABCL|CosFace|s=4) vs .*$", re.M)


def _cells(claims_md: str) -> list[list[str]]:
    """claims.md's comparison rows, cell by cell, claim 3's sets named with their budgets."""
    from abcl.embed import adversarial_set_titles
    titles = adversarial_set_titles(0.2, 2.0)
    claims_md = re.sub(r"\b(bim_linf|fgsm_l2)\b", lambda m: titles[m.group(1)], claims_md)
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in COMPARISON_ROW.findall(claims_md)]


def _stages(tmp_path: Path, seeds: list[list[int]]) -> list[Path]:
    """The committed interim snapshot cut into stages by seed: each stage's comparisons.csv its
    seeds' rows, its claims.md and table.csv saying it ran those seeds (table.csv keeps the
    four-seed means: only the seed counts are the stage's)."""
    frame = pd.read_csv(INTERIM / "comparisons.csv", dtype={"protocol": str})
    folders = []
    for i, part in enumerate(seeds):
        folder = tmp_path / f"stage{i}"
        shutil.copytree(INTERIM, folder)
        frame[frame.seed.isin(part)].to_csv(folder / "comparisons.csv", index=False)
        header = f"from {len(part)} seed(s) ({', '.join(map(str, part))})"
        text = (INTERIM / "claims.md").read_text().replace("from 4 seed(s) (100, 101, 103, 104)", header)
        (folder / "claims.md").write_text(text)
        table = pd.read_csv(INTERIM / "table.csv")
        table.assign(seeds=[min(k, len(part)) for k in table.seeds]).to_csv(folder / "table.csv", index=False)
        folders.append(folder)
    return folders


def test_pooled_table_is_the_table_of_every_seed():
    rng = np.random.default_rng(0)
    accuracies = pd.Series(rng.uniform(0.1, 0.9, 10)).round(4)
    parts = [accuracies[:4], accuracies[4:5], accuracies[5:]]  # a one-seed stage too

    def table(values):
        return pd.DataFrame([{"model": "ABCL", "evaluation": "BIM L∞ ε=0.2", **{
            k: v for k, v in summarize(values, 400).items() if k != "half"}, "n_images": 400}])[
            ["model", "evaluation", "mean", "sd", "ci95_low", "ci95_high", "seeds", "n_images"]]
    pooled = pooled_table([table(p) for p in parts]).iloc[0]
    whole = table(accuracies).iloc[0]
    assert pooled.seeds == 10
    for column in ("mean", "sd", "ci95_low", "ci95_high"):
        assert pooled[column] == pytest.approx(whole[column], rel=1e-12)


def test_pooled_stages_reach_the_verdicts_of_one_run(tmp_path):
    stages = _stages(tmp_path, [[100, 101], [103], [104]])
    out = tmp_path / "pooled"
    pool_stages(stages, out)
    pooled, whole = (out / "claims.md").read_text(), (INTERIM / "claims.md").read_text()
    # every comparison, with its difference, interval, test and reading, as the four-seed run gave it
    # (the interim was judged before claim 3's sets carried budgets: the pool names them as now)
    assert _cells(pooled) == _cells(whole) != []
    assert re.findall(r"\*\*Verdict: (\w[\w ]*)", pooled) == re.findall(r"\*\*Verdict: (\w[\w ]*)", whole)
    assert claim_texts(pooled) == claim_texts(whole)
    assert "4 seeds in all (100, 101, 103, 104): `stage0` (seeds 100, 101: " in pooled and "`stage2` (seeds 104: " in pooled
    assert "**Network:** the AlexNet-style net" in pooled
    assert list(pd.read_csv(out / "stages.csv").seeds) == ["100 101", "103", "104"]
    assert pd.read_csv(out / "table.csv").seeds.max() == 4
    # AutoAttack ran in one stage: the pool's leaderboard is that stage's, and says so
    assert (out / "leaderboard.md").read_text() == ("From the stage `stage0` alone (seeds 100 101; AutoAttack ran "
                                                    "there), clean accuracy over its seeds too; table.md gives every "
                                                    "seed's.\n\n" + (INTERIM / "leaderboard.md").read_text())
    # README's block reads it like a run, and checks claims.md against comparisons.csv
    block = configurations_markdown([out])
    assert "NOT SHOWN (4 for, 0 against, 4 open)" in block
    # the accuracy table shows every model a claim compares, HT-SCE (claim 2's) among them
    shown = re.findall(r"^\| AlexNet-style net · 4,000 images · 4 seeds \| ([\w-]+) \|", block, re.M)
    assert shown == ["SCE", "CosFace", "HT-SCE", "ABCL"]


def test_pooled_table_of_seeds_that_all_score_alike_keeps_the_images_interval():
    parts = [pd.Series([0.97, 0.97, 0.97]), pd.Series([0.97, 0.97])]

    def table(values):
        return pd.DataFrame([{"model": "SCE", "evaluation": "clean", **{
            k: v for k, v in summarize(values, 400).items() if k != "half"}, "n_images": 400}])
    pooled, whole = pooled_table([table(p) for p in parts]).iloc[0], table(pd.concat(parts)).iloc[0]
    assert pooled.sd == 0 and (pooled.ci95_low, pooled.ci95_high) == pytest.approx((whole.ci95_low, whole.ci95_high))
    assert pooled.ci95_high > pooled.ci95_low  # Wilson over 5 x 400 images, not a zero-width t-interval


def test_a_stage_without_per_seed_comparisons_is_refused(tmp_path):
    """One seed: claims.md compares test images (McNemar), comparisons.csv has no row of that seed."""
    first, second = _stages(tmp_path, [[100, 101, 103], [104]])
    frame = pd.read_csv(second / "comparisons.csv", dtype={"protocol": str})
    frame.iloc[:0].to_csv(second / "comparisons.csv", index=False)
    with pytest.raises(ABCLError, match="stage1: its comparisons.csv holds no per-seed row .* two or more seeds"):
        pool_stages([first, second], tmp_path / "out")
    # a stage whose comparisons.csv lacks one of the seeds it ran
    first, second = _stages(tmp_path / "lacking", [[100, 101], [103, 104]])
    frame = pd.read_csv(second / "comparisons.csv", dtype={"protocol": str})
    frame[frame.seed == 103].to_csv(second / "comparisons.csv", index=False)
    with pytest.raises(ABCLError, match="holds seeds 103, but it ran 103, 104"):
        pool_stages([first, second], tmp_path / "out")


def test_pool_refuses_what_is_not_one_run(tmp_path):
    first, second = _stages(tmp_path, [[100, 101], [101, 103]])
    with pytest.raises(ABCLError, match="ran seed\\(s\\) 101 again"):
        pool_stages([first, second], tmp_path / "out")
    first, second = _stages(tmp_path / "protocol", [[100, 101], [103, 104]])
    frame = pd.read_csv(second / "comparisons.csv", dtype={"protocol": str})
    frame.assign(protocol="000000000000").to_csv(second / "comparisons.csv", index=False)
    with pytest.raises(ABCLError, match="different experiments"):
        pool_stages([first, second], tmp_path / "out")
    first, second = _stages(tmp_path / "data", [[100, 101], [103, 104]])
    record = next((second / "data").glob("*.json"))
    record.write_text(json.dumps({**json.loads(record.read_text()), "sha256": "0" * 64}))
    with pytest.raises(ABCLError, match="another dataset file"):
        pool_stages([first, second], tmp_path / "out")
    with pytest.raises(ABCLError, match="two or more stages"):
        pool_stages([first], tmp_path / "out")


def test_claim_3_labels_written_before_they_carried_budgets_pair_with_todays():
    from abcl.claims import budgeted_set_names, read_comparisons
    old = pd.Series(["ABCL vs SCE, bim_linf", "CosFace vs SCE, fgsm_l2", "ABCL vs SCE, BIM L∞ ε=0.2", "ABCL vs SCE, test"])
    assert list(budgeted_set_names(old)) == ["ABCL vs SCE, BIM L∞ ε=0.2 adversarial test",
                                             "CosFace vs SCE, FGSM L2 ε=2 adversarial test",
                                             "ABCL vs SCE, BIM L∞ ε=0.2", "ABCL vs SCE, test"]
    # the AlexNet-style stages were judged before the rename, the default's after: every
    # comparison pairs, and the older ones' protocol (which holds the budgets) is the default's
    runs = Path(__file__).parents[1] / "docs" / "runs"
    stage = "mnist5k-alexnet-seeds107-108-109"
    before, after = (read_comparisons(runs / name / "comparisons.csv") for name in (stage, "mnist5k"))
    assert "ABCL vs SCE, bim_linf" in set(pd.read_csv(runs / stage / "comparisons.csv").comparison)
    assert set(before.comparison) == set(after.comparison)
    assert set(before.protocol) == set(after.protocol)


@pytest.mark.parametrize("stages, out_name", [("ALEXNET_STAGES", "mnist5k-alexnet"),
                                               ("CPU_FULL_STAGES", "mnist-cpu-full")])
def test_committed_pools_are_their_committed_stages_pooled_again(tmp_path, stages, out_name):
    """docs/runs/ holds each long run's stages and their pool (README's columns): pooling the
    stages again with today's code gives the committed pool file for file, so a pooled verdict
    can be neither typed nor left behind by a change to the statistics."""
    root = Path(__file__).parents[1]
    line = re.search(rf"^{stages} = (.+)$", (root / "Makefile").read_text(), re.M).group(1)
    pool_stages([root / "docs" / "runs" / name for name in line.split()], tmp_path / out_name)
    committed = root / "docs" / "runs" / out_name

    def files(folder):
        return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())

    names = files(committed)
    assert names == files(tmp_path / out_name)
    for name in names:
        assert (tmp_path / out_name / name).read_bytes() == (committed / name).read_bytes(), name
