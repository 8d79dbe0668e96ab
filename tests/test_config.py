"""Config validation: every bad value stops with one line naming the key (and the allowed values)."""

import copy
import functools
import re

import pytest
import yaml

from abcl.config import AttackSpec, ConfigError, attack_specs, load_config, validate_config

GOOD = yaml.safe_load(open("config/config.yaml"))


def with_change(path, value):
    config = copy.deepcopy(GOOD)
    node = config
    keys = path.split("/")
    for key in keys[:-1]:
        node = node[key]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return config


class _Delete:
    def __repr__(self):  # a stable test id (pytest-xdist workers must collect the same names)
        return "DELETE"


DELETE = _Delete()

BAD_CONFIGS = [
    # (key path, bad value, expected message fragment)
    ("dataset", "cifar10", "at 'dataset': 'cifar10' is not one of: mnist5k, mnist, fashion-mnist"),
    ("losses/arcface", {"s": 5}, "at 'losses': Additional properties are not allowed ('arcface' was unexpected)"),
    ("attacks/pgd_linf", {"eps": [0.1]}, "at 'attacks': Additional properties are not allowed ('pgd_linf'"),
    ("losses/cos_sce/s", -1, "at 'losses/cos_sce/s': -1 is less than or equal to the minimum of 0"),
    ("losses/cosface/s", "five", "at 'losses/cosface/s': 'five' is not of type 'number'"),
    ("losses/ht_sce/m", -0.2, "at 'losses/ht_sce/m': -0.2 is less than the minimum of 0"),
    ("grids/fig1_k1", [0, -512], "at 'grids/fig1_k1/1': -512 is less than the minimum of 0"),
    ("grids/fig1_k2", [0, "64"], "at 'grids/fig1_k2/1': '64' is not of type 'number'"),
    ("grids/fig2_s", [], "at 'grids/fig2_s': [] should be non-empty"),
    ("grids/fig1_k1", [0, 0], "at 'grids/fig1_k1': [0, 0] has non-unique elements"),
    ("seeds", [0, 0], "at 'seeds': [0, 0] has non-unique elements"),
    ("seeds", [-1], "at 'seeds/0': -1 is less than the minimum of 0"),
    ("seeds", 0, "at 'seeds': 0 is not of type 'array'"),
    ("attacks/fgsm_linf/eps", [-0.1], "at 'attacks/fgsm_linf/eps/0': -0.1 is less than or equal to the minimum of 0"),
    ("attacks/fgsm_l2/eps", [0], "at 'attacks/fgsm_l2/eps/0': 0 is less than or equal to the minimum of 0"),
    ("attacks/bim_linf/steps", 0, "at 'attacks/bim_linf/steps': 0 is less than the minimum of 1"),
    ("attacks", {}, "at 'attacks': {} should be non-empty"),
    ("attacks", DELETE, "at '(top level)': 'attacks' is a required property"),
    ("train/epochs", 0, "at 'train/epochs': 0 is less than the minimum of 1"),
    ("train/batch_size", "big", "at 'train/batch_size': 'big' is not of type 'integer'"),
    ("train/lr", 0, "at 'train/lr': 0 is less than or equal to the minimum of 0"),
    ("train/dropout", 1.5, "at 'train/dropout': 1.5 is greater than the maximum of 1"),
    ("train/epoch", 3, "at 'train': Additional properties are not allowed ('epoch' was unexpected)"),
    ("train/arch", "resnet", "at 'train/arch': 'resnet' is not one of: small, alexnet"),
    ("train/device", "tpu", "at 'train/device': 'tpu' is not one of: auto, cpu, cuda"),
    ("download", "http", "at 'download': 'http' is not one of: None, npm, torchvision"),
    ("sedes", [0], "at '(top level)': Additional properties are not allowed ('sedes' was unexpected)"),
    ("abcl/k1", -512, "at 'abcl/k1': -512 is less than the minimum of 0"),
    ("embed/n_per_set", 10, "at 'embed/n_per_set': 10 is less than the minimum of 50"),
    ("eval/n_test", 0, "at 'eval/n_test': 0 is less than the minimum of 1"),
    ("eval/adaptive_n_test", 0, "at 'eval/adaptive_n_test': 0 is less than the minimum of 1"),
    ("data_source", "/data/mnist", "at 'data_source': mnist5k is embedded; data_source and download must be null"),
    ("download", "npm", "at 'download': mnist5k is embedded; data_source and download must be null"),
    ("attacks/bim_linf", DELETE, "at 'attacks': Fig. 3 shows a BIM L∞ adversarial set"),
    ("abcl", {"k1": 0, "k2": 0}, "at 'abcl': ABCL (k1=0, k2=0) is the same model as HT-SCE"),
    ("attacks/fgsm_linf/eps", [0.1, 1.5], "at 'attacks/fgsm_linf/eps/1': an L∞ budget lies in (0, 1], the range of a pixel"),
    ("adaptive_attacks/pgd_linf", {"eps": [2.0], "steps": 3},
     "at 'adaptive_attacks/pgd_linf/eps/0': an L∞ budget lies in (0, 1]"),
    ("embed/bim_linf_eps", 1.2, "at 'embed/bim_linf_eps': 1.2 is greater than the maximum of 1"),
    ("eval/n_test", 5000, "at 'eval/n_test': 5000 images asked for, mnist5k has 1,000 test images"),
    ("eval/adaptive_n_test", 1001, "at 'eval/adaptive_n_test': 1001 images asked for, mnist5k has 1,000 test images"),
    ("embed/n_per_set", 2000, "at 'embed/n_per_set': 2000 images asked for, mnist5k has 1,000 test images"),
]


def test_default_and_paper_configs_are_valid():
    assert validate_config(GOOD)["train"]["ab_warmup_epochs"] == 1.0
    assert load_config("config/paper.yaml")["seeds"] == [0, 1, 2]


@pytest.mark.parametrize("path,value,message", BAD_CONFIGS, ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD_CONFIGS])
def test_bad_config_names_the_key(path, value, message):
    with pytest.raises(ConfigError) as caught:
        validate_config(with_change(path, value))
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("config error at '")
    assert message in text


def test_l2_budgets_may_exceed_one():
    assert validate_config(with_change("attacks/fgsm_l2/eps", [1.5, 3.0]))["attacks"]["fgsm_l2"]["eps"] == [1.5, 3.0]


def test_a_missing_data_source_folder_is_refused_before_planning(tmp_path):
    config = with_change("dataset", "mnist")
    config["data_source"] = str(tmp_path / "absent")
    with pytest.raises(ConfigError, match=r"at 'data_source': .*absent is not a folder"):
        validate_config(config)
    config["data_source"] = str(tmp_path)  # a folder, but without the files
    with pytest.raises(ConfigError, match=r"at 'data_source': .* lacks train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                          r"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte \(or .gz\)"):
        validate_config(config)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"")  # their contents are the data preparation's to check
    assert validate_config(config)["data_source"] == str(tmp_path)


@pytest.mark.parametrize("written", ["1e-3", "1E-3", "5e-4", "1.0e-3", ".5e-3"])
def test_learning_rates_written_as_ml_users_write_them_are_numbers(tmp_path, written):
    """PyYAML (YAML 1.1) reads 1e-3 as a string; the config reads it as YAML 1.2 does: from a
    file, from --config (a string in a mapping) and from --set."""
    from abcl.config import resolve_config
    overlay = tmp_path / "lr.yaml"
    overlay.write_text(f"train: {{lr: {written}, weight_decay: {written}}}\n")
    assert yaml.safe_load(overlay.read_text())["train"]["lr"] in (written, float(written))  # PyYAML: a string or not
    value = float(written)
    from_file = resolve_config(["config/config.yaml", overlay])
    assert from_file["train"]["lr"] == value and from_file["train"]["weight_decay"] == value
    assert resolve_config(["config/config.yaml"], {"train": {"lr": written}})["train"]["lr"] == value
    assert resolve_config(["config/config.yaml"], {"train.lr": written})["train"]["lr"] == value
    assert resolve_config(["config/config.yaml"], {"tag": "1e-3"})["tag"] == "1e-3"  # a string where one fits


def test_full_mnist_needs_a_source():
    config = with_change("dataset", "mnist")
    with pytest.raises(ConfigError, match=r"at '\(top level\)': full MNIST needs data_source"):
        validate_config(config)


def test_unreadable_yaml_is_one_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("dataset: mnist5k\nseeds: [0\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid YAML")):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("dataset: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_attack_specs_expand_budgets_and_steps():
    specs = attack_specs(validate_config(GOOD)["attacks"])
    assert len(specs) == 12
    bim = next(s for s in specs if s.key == "bim_linf" and s.eps == 0.3)
    assert bim.steps == 10 and bim.alpha == pytest.approx(2.5 * 0.3 / 10)
    assert bim.alpha * bim.steps > bim.eps, "BIM must be able to reach the boundary of its ball"


@pytest.mark.parametrize("attacks,message", [
    ({"fgsm_l3": {"eps": [1.0]}}, "Additional properties are not allowed ('fgsm_l3' was unexpected)"),
    ({"bim_linf": {"eps": [-0.1], "steps": 10}}, "attack error at 'bim_linf/eps/0': -0.1 is less than or equal"),
    ({"pgd_l2": {"eps": [1.0]}}, "attack error at 'pgd_l2': 'steps' is a required property"),
])
def test_bad_attacks_given_directly_are_refused(attacks, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        attack_specs(attacks)


def test_kurakin_schedule_is_refused_on_l2():
    with pytest.raises(ConfigError, match=re.escape("at 'attacks/bim_l2': kurakin_schedule is for L∞ attacks only")):
        validate_config(with_change("attacks/bim_l2/kurakin_schedule", True))
    with pytest.raises(ConfigError, match="kurakin_schedule is for L∞ attacks only"):
        AttackSpec("bim", "l2", 2.0, steps=10, kurakin_schedule=True)


def test_kurakin_schedule_records_the_steps_it_runs():
    import torchattacks

    from abcl.attacks import build_attack
    from abcl.config import TrainConfig
    from abcl.models import build_model
    specs = attack_specs({"bim_linf": {"eps": [0.1, 0.3], "steps": 10, "kurakin_schedule": True}})
    assert [s.steps for s in specs] == [29, 80]  # min(255 eps + 4, 1.25 * 255 eps), as Kurakin et al.
    assert all(s.alpha == pytest.approx(1 / 255) for s in specs)
    for spec in specs:  # torchattacks' own schedule (steps=0) gives the same count
        model = build_model(TrainConfig()).eval()
        assert build_attack(model, spec).steps == torchattacks.BIM(model, eps=spec.eps, steps=0).steps


def test_plan_gives_fewer_seeds_only_to_models_no_claim_reads():
    from abcl.plan import experiment_plan
    config = validate_config(with_change("seeds", list(range(6))))
    config["eval"]["figure_seeds"], config["adversarial"]["seeds"] = 2, 1
    plan = experiment_plan(config)

    def seeds(name):
        return sorted(run.seed for run in plan.runs if run.name == name)
    # Fig. 1's inner grid points are drawn, never compared: the first two seeds
    assert seeds("HT-SCE+AB 0/64") == seeds("HT-SCE+AB 512/0") == [0, 1]
    # every model a claim compares keeps every seed: HT-SCE 0/0 and ABCL (claim 2), Fig. 2 (claim 1), the table
    for name in ("HT-SCE", "ABCL", "SCE", "CosFace", "Cos-SCE s=1", "Cos-SCE s=16"):
        assert seeds(name) == list(range(6)), name
    assert seeds("ABCL PGD-AT") == [0]
    # claim 3 over seeds: with embed.every_seed every seed's SCE, CosFace and ABCL are embedded
    assert len(plan.for_output("fig3")) == (18 if config["embed"]["every_seed"] else 3)


def test_a_later_stage_trains_only_what_the_claims_read():
    """config/stage.yaml: eval.full_seeds and eval.figure_seeds at 0 mean none (null: every
    seed), so a stage that follows the first runs no adaptive attack and no drawn-only cell."""
    from abcl.config import resolve_config
    from abcl.plan import experiment_plan, results_dir
    config = resolve_config(["config/alexnet.yaml", "config/stage.yaml"],
                            {"tag": "alexnet-seeds102-105", "seeds": ["102", "105"]})
    plan = experiment_plan(config)
    assert results_dir(config) == "results/mnist5k-alexnet-seeds102-105"
    assert not [run for run in plan.runs if run.name in ("HT-SCE+AB 0/64", "HT-SCE+AB 512/0")]
    claimed = [run for run in plan.runs if "adversarial" not in run.outputs]  # the adversarial grid is a target of its own
    assert all(set(run.attacks) == {"fgsm_linf", "bim_linf", "fgsm_l2", "bim_l2"} for run in claimed)
    assert all(len(options["eps"]) == 1 for run in claimed for options in run.attacks.values())
    assert len(claimed) == 2 * 8  # per seed: Fig. 2's four scales, SCE, CosFace, HT-SCE, ABCL
    assert len(plan.for_output("fig3")) == 2 * 3


def test_make_alexnet_runs_what_the_claims_read_and_alexnet_adaptive_adds_the_rest():
    """The 4-hour budget: config/alexnet.yaml alone trains and attacks only what the claims and
    figures read; config/alexnet-adaptive.yaml, laid over it, adds the first seed's adaptive attacks
    and Fig. 1's drawn-only points on three seeds, into the same folder (so it resumes that run)."""
    import shlex
    import subprocess
    from abcl.config import resolve_config
    from abcl.plan import experiment_plan, results_dir

    def configfiles(target):
        recipe = subprocess.run(["make", "-n", "-o", "setup", target], capture_output=True, text=True,
                                check=True).stdout
        line = next(line for line in recipe.splitlines() if "snakemake" in line)  # not make[1]'s own lines
        words = shlex.split(line.split("snakemake", 1)[1])
        return words[words.index("--configfile") + 1:]
    assert configfiles("alexnet") == ["config/alexnet.yaml"]
    assert configfiles("alexnet-adaptive") == ["config/alexnet.yaml", "config/alexnet-adaptive.yaml"]
    lean = resolve_config(configfiles("alexnet"), {})
    full = resolve_config(configfiles("alexnet-adaptive"), {})
    assert results_dir(lean) == results_dir(full) == "results/mnist5k-alexnet"
    lean_plan, full_plan = experiment_plan(lean), experiment_plan(full)
    drawn_only = ("HT-SCE+AB 0/64", "HT-SCE+AB 512/0")
    assert sorted(run.seed for run in lean_plan.runs if run.name in drawn_only) == [100, 100]
    assert sorted(run.seed for run in full_plan.runs if run.name in drawn_only) == [100, 100, 101, 101, 102, 102]
    basic = {"fgsm_linf", "bim_linf", "fgsm_l2", "bim_l2"}
    claimed = [run for run in lean_plan.runs if "adversarial" not in run.outputs]
    assert all(set(run.attacks) == basic for run in claimed)
    assert all(len(options["eps"]) == 1 for run in claimed for options in run.attacks.values())
    extra = [run for run in full_plan.runs if set(run.attacks) > basic and "adversarial" not in run.outputs]
    assert extra and {run.seed for run in extra} == {100}
    # what the claims read is the same in both: every seed's compared models
    def compared(plan):
        return {(run.name, run.seed) for run in plan.runs if run.name not in drawn_only and "adversarial" not in run.outputs}
    assert compared(lean_plan) == compared(full_plan)


@pytest.mark.parametrize("run, first, folder", [("alexnet", "", "results/mnist5k-alexnet-seeds107-108"),
                                                ("cpu-full", "1", "results/mnist-cpu-full-seeds0-1")])
def test_make_stage_runs_the_folder_it_snapshots(run, first, folder):
    """`make stage`: a later stage adds config/stage.yaml, the first (FIRST=1) runs the run's own
    config; the folder the workflow writes (its plan's results_dir) is the one the recipe
    snapshots, so no stage is snapshotted from another folder."""
    import shlex
    import subprocess
    from abcl.config import resolve_config
    from abcl.plan import results_dir
    seeds = folder.rsplit("seeds", 1)[1].replace("-", ",")
    recipe = subprocess.run(["make", "-n", "-o", "setup", "stage", f"RUN={run}", f"SEEDS={seeds}", f"FIRST={first}"],
                            capture_output=True, text=True, check=True).stdout
    words = shlex.split(recipe.split("snakemake", 1)[1].split("folder=")[0].replace("\\\n", " "))
    configfiles = words[words.index("--configfile") + 1:words.index("--config")]
    assert configfiles == [f"config/{run}.yaml"] + ([] if first else ["config/stage.yaml"])
    tag, seed_list = words[words.index("--config") + 1:][:2]
    config = resolve_config(configfiles, {"tag": tag.split("=", 1)[1],
                                          "seeds": seed_list.split("=", 1)[1].strip("[]").split(",")})
    assert results_dir(config) == folder
    assert f"ls -d results/*-{tag.split('=', 1)[1]}" in recipe


def test_plan_names_each_model_once_and_gives_adaptive_attacks_to_the_table_only():
    from abcl.plan import experiment_plan
    one_seed = with_change("seeds", [0])
    plan = experiment_plan(validate_config(one_seed))
    assert len({run.path for run in plan.runs}) == len(plan.runs) == 10 + 6  # + the adversarial grid
    assert len([run for run in plan.runs if "adversarial" not in run.outputs]) == 10
    assert [r.name for r in plan.for_output("table")] == ["SCE", "CosFace", "HT-SCE", "ABCL"]
    assert [r.name for r in plan.for_output("fig3")] == ["SCE", "CosFace", "ABCL"]
    abcl = plan.find("ABCL")
    assert abcl.outputs == ("fig1", "fig3", "table") and (abcl.train.k1, abcl.train.k2) == (512, 64)
    assert plan.find("HT-SCE+AB 0/64").outputs == ("fig1",)
    for run in plan.runs:
        assert ("pgd_linf" in run.attacks) == ("table" in run.outputs)
        assert set(run.embed_attacks) == ({"bim_linf", "fgsm_l2"} if "fig3" in run.outputs else set())


def test_seeds_multiply_the_plan_and_extra_seeds_get_the_middle_budgets_only():
    from abcl.plan import experiment_plan
    three = with_change("seeds", [0, 1, 2])
    three["embed"]["every_seed"] = False
    plan = experiment_plan(validate_config(three))  # eval.full_seeds 1
    assert len([run for run in plan.runs if "adversarial" not in run.outputs]) == 30
    table = plan.for_output("table")
    assert [(r.name, r.seed) for r in table[:3]] == [("SCE", 0), ("SCE", 1), ("SCE", 2)]
    assert [("pgd_linf" in r.attacks, "autoattack_linf" in r.attacks) for r in table if r.name == "SCE"] == \
        [(True, True), (False, False), (False, False)]
    assert [r.attacks["bim_linf"]["eps"] for r in table if r.name == "SCE"] == [[0.1, 0.2, 0.3], [0.2], [0.2]]
    # Figs. 1 and 2 (and claims 1 and 2) read the middle budget only: figure-only models get no other
    cos_sce = plan.find("Cos-SCE s=4", seed=2)
    assert {k: v["eps"] for k, v in cos_sce.attacks.items()} == {
        "fgsm_linf": [0.2], "bim_linf": [0.2], "fgsm_l2": [2.0], "bim_l2": [2.0]}
    assert [r.seed for r in plan.for_output("fig3")] == [0, 0, 0]
    three["embed"]["every_seed"] = True
    every = experiment_plan(validate_config(three))
    assert [r.seed for r in every.for_output("fig3")] == [0, 1, 2] * 3
    every_full = experiment_plan(validate_config(with_change("eval/full_seeds", None)))
    assert all("pgd_linf" in r.attacks for r in every_full.for_output("table"))
    moved = with_change("abcl", {"k1": 256, "k2": 32})
    renamed = experiment_plan(validate_config(moved))
    assert renamed.find("ABCL").train.k1 == 256 and renamed.find("HT-SCE+AB 512/64").outputs == ("fig1",)


# ---------------------------------------------------------------- overrides and overlays
def test_command_line_strings_take_the_schemas_types():
    """What snakemake --config hands over (its parser keeps nested values as strings)."""
    from abcl.config import resolve_config
    from abcl.plan import results_dir
    config = resolve_config(["config/config.yaml"], {
        "seeds": ["0", "1"], "train": {"epochs": "2", "kernels": "fast"}, "tag": "null", "download": "null",
        "embed.every_seed": "true", "eval.n_test": "100", "claims": {"alpha": "0.1"}})
    assert config["seeds"] == [0, 1] and config["train"]["epochs"] == 2 and config["train"]["kernels"] == "fast"
    assert config["tag"] is None and results_dir(config) == "results/mnist5k"  # a null tag is no tag
    assert config["download"] is None and config["embed"]["every_seed"] is True
    assert config["eval"]["n_test"] == 100 and config["claims"]["alpha"] == 0.1
    assert config["train"]["lr"] == 0.002  # untouched keys keep the file's values
    with pytest.raises(ConfigError, match="'train/epochs': 'two' is not of type 'integer'"):
        resolve_config(["config/config.yaml"], {"train": {"epochs": "two"}})
    assert resolve_config(["config/config.yaml"], {"tag": "ci"})["tag"] == "ci"  # a string stays a string


def test_files_merge_as_snakemake_merges_them(tmp_path):
    """abcl validate-config/plan and the workflow see the same config: the first file whole,
    later ones overlaid key by key (Snakemake's update_config), nothing from config/config.yaml
    underneath a file that does not name it."""
    from snakemake.utils import update_config

    from abcl.config import complete_config, merge, resolve_config
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("seeds: [0]\ntrain: {epochs: 2}\nattacks: {fgsm_linf: {eps: [0.3]}}\ntag: mine\n")
    base, top = yaml.safe_load(open("config/config.yaml")), yaml.safe_load(overlay.read_text())
    snakemakes = copy.deepcopy(base)
    update_config(snakemakes, top)
    assert merge(base, top) == snakemakes
    assert resolve_config(["config/config.yaml", overlay]) == complete_config(snakemakes)
    merged = resolve_config(["config/config.yaml", overlay])
    assert merged["train"]["epochs"] == 2 and merged["train"]["lr"] == 0.002
    assert merged["attacks"]["fgsm_linf"]["eps"] == [0.3] and "bim_linf" in merged["attacks"]
    custom = copy.deepcopy(base)  # a whole config of one's own, without AutoAttack and Square
    custom["adaptive_attacks"] = {k: v for k, v in custom["adaptive_attacks"].items()
                                  if not k.startswith(("autoattack", "square"))}
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump(custom))
    assert not any(k.startswith("autoattack") for k in resolve_config([alone])["adaptive_attacks"])


def test_a_results_folder_holding_other_models_is_refused(tmp_path):
    import json

    from abcl.config import resolve_config

    from abcl.plan import experiment_plan, refuse_other_training
    plan = experiment_plan(resolve_config(["config/config.yaml"]))
    run = plan.runs[0]
    record = tmp_path / "models" / run.path / "train.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"config_hash": run.train.hash, "config": run.train.to_dict()}))
    refuse_other_training(plan, tmp_path)  # the same models: fine
    other = experiment_plan(resolve_config(["config/config.yaml"], {"train": {"epochs": "1"}}))
    with pytest.raises(ConfigError, match=rf"holds HT-SCE seed {run.seed} trained with other settings \(epochs 8 -> 1\); "
                                          r"give this config a results folder of its own"):
        refuse_other_training(other, tmp_path)
    device_only = experiment_plan(resolve_config(["config/config.yaml"], {"train": {"device": "cpu", "threads": "2"}}))
    refuse_other_training(device_only, tmp_path)  # how a job runs is not what it trains


def test_a_whole_config_after_an_overlay_is_refused_not_merged_silently(tmp_path, capsys):
    from abcl.config import check_file_order, resolve_config
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("tag: mine\ntrain: {epochs: 2}\n")
    with pytest.raises(ConfigError, match=r"config/config.yaml is a whole config given after .*mine.yaml: it would "
                                          r"override .*mine.yaml's train.epochs \(2 -> 8\); give the whole config "
                                          r"first and overlays after it"):
        resolve_config([overlay, "config/config.yaml"])
    assert resolve_config(["config/config.yaml", overlay])["train"]["epochs"] == 2  # the right order
    whole = yaml.safe_load(open("config/config.yaml"))
    whole["seeds"] = [5]
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(whole))  # a whole config after a whole config: allowed, and said
    assert check_file_order(["config/config.yaml", other]) == \
        [f"note: {other} overrides 1 key(s) of the whole config before it (seeds)"]
    assert resolve_config(["config/config.yaml", other])["seeds"] == [5]
    assert "overrides 1 key(s)" in capsys.readouterr().err


def test_a_number_where_only_a_string_fits_is_that_string():
    """Snakemake's --config parser reads tag=123 as a number; abcl's --set keeps '123'."""
    from abcl.config import complete_config, resolve_config
    raw = yaml.safe_load(open("config/config.yaml"))
    assert complete_config({**raw, "tag": 123})["tag"] == "123"
    assert resolve_config(["config/config.yaml"], {"tag": "123"})["tag"] == "123"
    with pytest.raises(ConfigError, match="'seeds/0': 'x' is not of type 'integer'"):
        complete_config({**raw, "seeds": ["x"]})


def test_the_comparison_protocol_follows_what_changes_a_claims_numbers_only():
    """comparisons.csv's protocol: runs that `abcl power` may pool share it (other seeds, another
    tag, more embedded seeds); another attack setting, test-set size or t-SNE set gives another."""
    from abcl.config import comparison_protocol
    base = comparison_protocol(validate_config(copy.deepcopy(GOOD)))
    for path, value in (("seeds", [5, 6, 7]), ("tag", "other"), ("embed/every_seed", False),
                        ("eval/figure_seeds", 1), ("train/threads", 2)):
        assert comparison_protocol(validate_config(with_change(path, value))) == base, path
    for path, value in (("attacks/bim_linf/steps", 20), ("attacks/fgsm_l2/eps", [0.5, 1.5]), ("eval/n_test", 300),
                        ("embed/perplexity", 10), ("embed/n_per_set", 100), ("embed/bim_linf_eps", 0.1),
                        ("embed/fgsm_l2_eps", 1.0), ("train/ab_warmup_epochs", 0.0)):
        assert comparison_protocol(validate_config(with_change(path, value))) != base, path
    # a number written as 1 or 1.0 is one setting
    assert comparison_protocol(validate_config(with_change("embed/perplexity", 30))) == \
        comparison_protocol(validate_config(with_change("embed/perplexity", 30.0)))
    # claim 5's budget counts only where its rows are in comparisons.csv (adversarial.in_default_run)
    assert comparison_protocol(validate_config(with_change("adversarial/eps", 0.2))) == base
    claim5 = validate_config(with_change("adversarial/in_default_run", True))
    for path, value in (("adversarial/eps", 0.2), ("adversarial/trades_beta", 1.0), ("eval/adaptive_n_test", 100),
                        ("adaptive_attacks/autoattack_linf/queries", 100)):
        changed = copy.deepcopy(claim5)
        *keys, last = path.split("/")
        functools.reduce(dict.__getitem__, keys, changed)[last] = value
        assert comparison_protocol(validate_config(changed)) != comparison_protocol(claim5), path
    assert comparison_protocol(validate_config({**copy.deepcopy(claim5), "seeds": [8, 9]})) == comparison_protocol(claim5)


def test_readings_of_the_method_at_their_defaults_leave_every_models_hash_as_it_was():
    """ab_form, ht_latent_bias and precision came after models had been trained: at their defaults
    they stay out of a model's settings, so its hash, results folder and job params are unchanged
    (f3318a641f4d: the default config's ABCL, seed 100, before these keys existed)."""
    from abcl.plan import experiment_plan
    abcl = experiment_plan(load_config("config/config.yaml")).find("ABCL")
    assert abcl.train.hash == "f3318a641f4d"
    assert not {"ab_form", "ht_latent_bias", "precision"} & set(abcl.train.to_dict())


def test_each_reading_of_the_method_names_the_models_it_changes_and_no_others():
    from abcl.plan import experiment_plan
    config = load_config("config/config.yaml")
    config["train"] |= {"ab_form": "all_rivals", "ht_latent_bias": True, "precision": "bf16"}
    plan = experiment_plan(config)
    abcl, ht_sce, cosface = plan.find("ABCL"), plan.find("HT-SCE"), plan.find("CosFace")
    assert abcl.train.to_dict()["ab_form"] == "all_rivals" and abcl.train.to_dict()["ht_latent_bias"] is True
    assert "ab_form" not in ht_sce.train.to_dict()  # k1 = k2 = 0: no AB terms to read
    assert "ht_latent_bias" not in cosface.train.to_dict() and "ab_form" not in cosface.train.to_dict()
    assert all(run.train.to_dict()["precision"] == "bf16" for run in plan.runs)
    assert "ab_form=all_rivals" in abcl.train.describe()
    default = experiment_plan(load_config("config/config.yaml"))
    assert abcl.train.hash != default.find("ABCL").train.hash


@pytest.mark.parametrize("key,value,message", [("ab_form", "cubed", "'cubed' is not one of"),
                                               ("precision", "fp8", "'fp8' is not one of"),
                                               ("ht_latent_bias", "yes", "'yes' is not of type 'boolean'")])
def test_an_unknown_reading_is_refused_with_its_key(key, value, message):
    from abcl.config import validate_config
    config = load_config("config/config.yaml")
    config["train"][key] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_abcl_on_the_cosface_basis_is_a_model_of_its_own_and_fig1_stays_ht_sce():
    """abcl.basis: cosface reads App. B's "CosFace-based L_B definition" as ABCL's basis: the table's
    and Fig. 3's ABCL is CosFace + AB (CosFace's s and m); Fig. 1's chosen cell stays HT-SCE + AB."""
    from abcl.plan import HT_SCE_AB, experiment_plan
    config = load_config("config/config.yaml")
    default = experiment_plan(config)
    config["abcl"]["basis"] = "cosface"
    plan = experiment_plan(config)
    abcl = plan.find("ABCL")
    assert (abcl.train.loss, abcl.train.s, abcl.train.m, abcl.train.k1, abcl.train.k2) == ("cosface", 5, 0.35, 512, 64)
    assert abcl.outputs == ("fig3", "table") and abcl.path.startswith("loss~cosface/s~5/m~0.35/k1~512/k2~64/")
    cell = plan.find(HT_SCE_AB)
    assert cell.outputs == ("fig1",) and cell.train.hash == default.find("ABCL").train.hash
    assert len(plan.runs) == len(default.runs) + len(config["seeds"])  # ABCL trains on top of Fig. 1's cell
    assert experiment_plan(load_config("config/config.yaml")).find("ABCL").train.loss == "ht_sce"  # ours, the default
