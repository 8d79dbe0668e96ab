"""The specification curve: config/specifications.yaml, each specification's overlay, and the
curve and table drawn from snapshots (abcl.specifications)."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from abcl.config import ConfigError, resolve_config
from abcl.plan import experiment_plan, results_dir
from abcl.specifications import KEY_COMPARISONS, curve, load, missing, overlay, specifications_markdown, verdicts

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "config" / "specifications.yaml"
INTERIM = ROOT / "docs" / "runs" / "mnist5k-alexnet-interim"


def test_every_specification_is_a_valid_run_that_trains_only_what_its_claims_compare(tmp_path):
    spec = load(SPECS)
    for name, entry in spec["specifications"].items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(overlay(spec, name)))
        config = resolve_config([ROOT / spec["base"], path])
        assert results_dir(config) == f"results/mnist5k-spec-{name}"
        plan = experiment_plan(config)
        outputs = {o for run in plan.runs if "adversarial" not in run.outputs for o in run.outputs}
        wanted = {{1: "fig2", 2: "fig1", 3: "fig3", 4: "table"}[c] for c in entry["judge"]}
        assert outputs == wanted, name
        assert sorted({run.seed for run in plan.runs}) == spec["seeds"]
    # the one choice each changes reaches the models: ABCL's AB form, HT-SCE's margin
    linear = resolve_config([ROOT / spec["base"]], overlay(spec, "ab-linear"))
    assert experiment_plan(linear).find("ABCL").train.ab_form == "linear"
    assert experiment_plan(resolve_config([ROOT / spec["base"]], overlay(spec, "ht-margin-0"))).find("HT-SCE").train.m == 0


def test_a_specification_of_an_undeclared_choice_or_value_is_refused(tmp_path):
    raw = yaml.safe_load(SPECS.read_text())
    raw["specifications"]["ab-linear"]["choice"] = {"AB terms' form": "cubic"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match="sets AB terms' form to 'cubic'; declared values: squared, linear"):
        load(bad)
    raw["specifications"]["ab-linear"]["judge"] = [5]
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match="specifications error at 'specifications/ab-linear/judge/0'"):
        load(bad)


def _spec_with_snapshots(tmp_path: Path) -> dict:
    """The declared specifications, two of them finished: ours and a copy whose ABCL is 5 points lower."""
    spec = load(SPECS)
    frame = pd.read_csv(INTERIM / "comparisons.csv", dtype={"protocol": str})
    for name, shift in (("ours", 0.0), ("ab-linear", -0.05)):
        folder = tmp_path / f"spec-{name}"
        folder.mkdir()
        moved = frame.copy()
        moved.loc[moved.comparison.str.startswith("ABCL vs"), "a"] += shift
        moved.to_csv(folder / "comparisons.csv", index=False)
    spec["runs"] = {}
    return spec


def test_the_curve_reads_each_finished_snapshot(tmp_path, monkeypatch):
    import abcl.specifications as specifications
    spec = _spec_with_snapshots(tmp_path)
    monkeypatch.setattr(specifications, "SNAPSHOTS", tmp_path)
    frame = curve(spec)
    assert set(frame.name) == {"ours", "ab-linear"} and "ab-no-warmup" in missing(spec)
    ours = frame[(frame.name == "ours") & (frame.comparison == "ABCL vs CosFace, BIM L∞ ε=0.2")].iloc[0]
    linear = frame[(frame.name == "ab-linear") & (frame.comparison == "ABCL vs CosFace, BIM L∞ ε=0.2")].iloc[0]
    assert ours["diff"] == pytest.approx(-4.6875) and ours.seeds == 4  # the interim's ABCL - CosFace, in points
    assert linear["diff"] == pytest.approx(ours["diff"] - 5) and linear["high"] - linear["low"] == pytest.approx(
        ours["high"] - ours["low"])
    assert linear["AB terms' form"] == "linear" and ours["AB terms' form"] == "squared"
    assert set(frame.comparison) <= {label for _, label in KEY_COMPARISONS}
    text = specifications_markdown(spec, frame, verdicts(spec))
    assert "| ab-linear " in text and "AB terms' form: linear" in text and "Not finished yet" in text
    assert "NOT SHOWN (4 for, 0 against, 4 open)" in text  # ours: the interim's claim 4
    verdict_rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")]
                    for line in text.splitlines() if "AB terms' form" in line or "nothing (ours)" in line}
    assert "small net · 4,000 images" in verdict_rows["ab-linear"]  # each verdict names its network
    assert "small net · 4,000 images" in verdict_rows["ours"]


def test_the_figure_is_drawn(tmp_path, monkeypatch):
    import abcl.specifications as specifications
    from abcl.figures import specification_curve
    spec = _spec_with_snapshots(tmp_path)
    monkeypatch.setattr(specifications, "SNAPSHOTS", tmp_path)
    frame = curve(spec)
    drawn = specification_curve(frame, spec["choices"], tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 20_000 and (tmp_path / "curve.pdf").exists()
    assert len(drawn) == len(frame) and set(drawn.comparison) == set(frame.comparison)
    for _, panel in drawn.groupby("comparison"):  # sorted by estimate, coloured by where its interval lies
        assert list(panel.sort_values("position")["diff"]) == sorted(panel["diff"])
        assert all((row.side == "for") == (row.low > 0) and (row.side == "against") == (row.high < 0)
                   for row in panel.itertuples())
    bim = drawn[drawn.comparison == "ABCL vs CosFace, BIM L∞ ε=0.2"].sort_values("position")
    assert list(bim.name) == ["ab-linear", "ours"]  # ab-linear's copy sits 5 points lower


def test_a_snapshot_that_judged_fewer_claims_is_still_to_run(tmp_path, monkeypatch):
    """`make specifications` reruns a specification until its snapshot judges every claim it declares."""
    import abcl.specifications as specifications
    from abcl.specifications import to_run
    spec = _spec_with_snapshots(tmp_path)
    monkeypatch.setattr(specifications, "SNAPSHOTS", tmp_path)
    assert "ours" not in to_run(spec) and to_run(spec)["ab-no-warmup"] == [2, 4]
    frame = pd.read_csv(tmp_path / "spec-ours" / "comparisons.csv", dtype={"protocol": str})
    frame[frame.claim.isin([2, 4])].to_csv(tmp_path / "spec-ours" / "comparisons.csv", index=False)
    assert to_run(spec)["ours"] == [1, 3] and "ours (claims 1, 3 to run)" in missing(spec)
    # a snapshot drawn in another kernel tier than the specifications pin differs in more than its
    # choice: it is rerun whole
    assert spec["overlay"]["train"]["kernels"] == "portable-avx2"
    machines = "device,kernels,cpu,cpu_vendor,cpu_isa,torch,trainings\ncpu,{},AMD EPYC,AuthenticAMD,avx512,2.14.1,32\n"
    (tmp_path / "spec-ab-linear" / "machines.csv").write_text(machines.format("portable-avx2"))
    assert "ab-linear" not in to_run(spec)
    (tmp_path / "spec-ab-linear" / "machines.csv").write_text(machines.format("portable-avx512"))
    assert to_run(spec)["ab-linear"] == [2, 4]
    assert "ab-linear (ran in portable-avx512: to rerun in the pinned tier)" in missing(spec)
