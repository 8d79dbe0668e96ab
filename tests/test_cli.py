"""Every command's help renders (argparse %-formats help strings: a stray % breaks --help)."""

import argparse
import re

import pytest

from abcl.cli import build_parser


def subcommands():
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, actions[0].choices


def test_top_level_help_lists_every_command():
    parser, commands = subcommands()
    text = parser.format_help()
    assert all(name in text for name in commands)


@pytest.mark.parametrize("name", sorted(subcommands()[1]))
def test_command_help_renders(name):
    text = subcommands()[1][name].format_help()
    assert text.startswith(f"usage: abcl {name}")


# ---------------------------------------------------------------- one line for every mistake
def _eval_csv(path, loss: str, config_hash: str = "0123456789ab"):
    import pandas as pd
    rows = [{"loss": loss, "s": 5.0, "m": 0.0, "k1": 0.0, "k2": 0.0, "seed": 0, "attack": attack, "norm": norm,
             "eps": eps, "steps": 0, "restarts": 0, "queries": 0, "accuracy": 0.5, "n": 10, "common_accuracy": 0.5,
             "n_common": 10, "config_hash": config_hash}
            for attack, norm, eps in (("clean", "none", 0.0), ("fgsm", "linf", 0.2), ("bim", "linf", 0.2))]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def mistakes(tmp_path):
    """Wrong inputs of each kind: a missing file, a file that is not a CSV, the wrong loss's CSV."""
    (tmp_path / "run").mkdir()
    (tmp_path / "garbage.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 not, a\n csv, \"at all")
    return {"missing": str(tmp_path / "missing.csv"), "garbage": str(tmp_path / "garbage.csv"),
            "sce": _eval_csv(tmp_path / "sce.csv", "sce"), "cos_sce": _eval_csv(tmp_path / "cos.csv", "cos_sce"),
            "run": str(tmp_path / "run"), "out": str(tmp_path / "out")}


MISTAKES = {  # command: (arguments, what its one line must say)
    "validate-config": (["{missing}"], "missing.csv: config file not found"),
    "plan": (["--config", "config/config.yaml", "--set", "train.epochs=two"], "'two' is not of type 'integer'"),
    "prepare-data": (["--dataset", "mnist", "--source", "{run}", "--out", "{out}/d.pt"], "file not found"),
    "train": (["--train-config", '{{"loss": "nope"}}', "--data", "{missing}", "--out-dir", "{out}"], "loss"),
    "evaluate": (["--model", "{missing}", "--data", "{missing}", "--out", "{out}/e.csv",
                  "--attacks", '{{"fgsm_linf": {{"eps": [0.1]}}}}'], "missing.csv: model not found"),
    "features": (["--model", "{missing}", "--data", "{missing}", "--out", "{out}/f.npz",
                  "--attacks", '{{"fgsm_linf": {{"eps": [0.1]}}}}'], "missing.csv: model not found"),
    "fingerprint": (["--compare", "{missing}"], "missing.csv: No such file or directory"),
    "tsne": (["--features", "{missing}", "--out", "{out}/t.csv", "--scores", "{out}/s.csv"],
             "missing.csv: file not found"),
    "fig1": (["--out", "{out}/f1.png", "{cos_sce}"], "Fig. 1 needs evaluations of HT-SCE models"),
    "fig2": (["--out", "{out}/f2.png", "{sce}"], "Fig. 2 needs evaluations of Cos-SCE models"),
    "fig3": (["--out", "{out}/f3.png", "--embedding", "SCE={garbage}"], "garbage.csv: not a t-SNE CSV"),
    "table": (["--out-md", "{out}/t.md", "--out-csv", "{out}/t.csv", "SCE={missing}"], "missing.csv: file not found"),
    "masking": (["--evals", "SCE={sce}", "--gradients", "{garbage}", "--out", "{out}/m.csv"],
                "garbage.csv: not a gradient CSV"),
    "claims": (["--fig1", "X={missing}", "--fig2", "{sce}", "--table", "SCE={sce}", "--separability", "{sce}",
                "--correct", "{sce}", "--dataset-record", "{missing}", "--out", "{out}/c.md"], "file not found"),
    "adversarial": (["--evals", "SCE={garbage}", "--correct", "{sce}", "--out-csv", "{out}/a.csv",
                     "--out-md", "{out}/a.md"], "garbage.csv: not an evaluation CSV"),
    "fig-adversarial": (["--out", "{out}/fa.png", "SCE={garbage}"], "garbage.csv: not an evaluation CSV"),
    "configurations": (["{run}"], "not a finished workflow run"),
    "snapshot": (["{run}", "--out", "{out}/snap"], "not a finished run (no claims.md): nothing to snapshot"),
    "resources": (["{run}", "--out", "{out}/r.yaml"], "no finished run to read"),
    "pool": (["{run}", "{run}", "--out", "{out}/pooled"], "not a finished run's snapshot (no claims.md"),
    "specification": (["nope"], "no specification 'nope'; declared: ours, basis-cosface"),
    "specification-curve": (["--file", "{missing}"], "missing.csv: config file not found"),
    "power": (["{run}"], "comparisons.csv: missing; the claims rule writes it"),
    "shift": (["{run}", "{run}"], "comparisons.csv: missing; a finished run or its snapshot has one"),
    "leaderboard": (["--out-csv", "{out}/l.csv", "--out-md", "{out}/l.md", "SCE={garbage}"],
                    "garbage.csv: not an evaluation CSV"),
}


def test_every_command_takes_its_thread_count_from_the_key_that_sets_it_in_the_workflow():
    """tsne's threads are embed.tsne_threads (the tsne rule's), the model commands' train.threads."""
    from abcl.cli import _CONFIG_KEYS
    commands = subcommands()[1]
    assert commands["tsne"].get_default(_CONFIG_KEYS)["threads"] == "embed.tsne_threads"
    for name in ("train", "evaluate", "features"):
        assert commands[name].get_default(_CONFIG_KEYS)["threads"] == "train.threads"


def test_every_command_has_a_mistake_case():
    assert set(MISTAKES) == set(subcommands()[1])


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_a_mistake_gets_one_line(name, mistakes, capsys):
    from abcl.cli import main
    arguments, message = MISTAKES[name]
    code = main([name, *(a.format(**mistakes) for a in arguments)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith(f"abcl {name}: error: "), err
    assert message in err, err


def test_claims_writes_comparisons_only_with_the_protocol_they_pool_by(tmp_path, capsys):
    """comparisons.csv records the comparison protocol (abcl.config.comparison_protocol): without
    --config or --protocol there is none to record, which is refused before any file is read."""
    from abcl.cli import main
    missing = str(tmp_path / "missing.csv")
    code = main(["claims", "--fig1", f"X={missing}", "--fig2", missing, "--table", f"SCE={missing}",
                 "--separability", missing, "--correct", missing, "--dataset-record", missing,
                 "--out", str(tmp_path / "c.md"), "--comparisons", str(tmp_path / "comparisons.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("abcl claims: error: claims --comparisons needs --config or --protocol: "
                                 "comparisons.csv records the protocol that abcl power pools runs by"), err


def test_claims_judged_need_their_inputs_and_no_others(tmp_path, capsys):
    """--judge 2 4 (a specification): Fig. 1's and the table's evaluations, no Fig. 2 or Fig. 3."""
    from abcl.cli import main
    missing = str(tmp_path / "missing.csv")
    code = main(["claims", "--judge", "2", "4", "--fig1", f"X={missing}", "--correct", missing,
                 "--dataset-record", missing, "--out", str(tmp_path / "c.md")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "abcl claims: error: judging claims 2, 4 needs --table", err
    code = main(["claims", "--judge", "2", "4", "--fig1", f"X={missing}", "--table", f"SCE={missing}",
                 "--correct", missing, "--dataset-record", missing, "--out", str(tmp_path / "c.md")])
    assert code == 2 and "missing.csv: file not found" in capsys.readouterr().err  # past the check: reads files


def test_validate_config_and_plan_separate_the_adversarial_target(capsys):
    from abcl.cli import main
    assert main(["validate-config", "config/config.yaml"]) == 0
    assert "144 models: 126 trained by `snakemake`, the default target, 18 more by `snakemake adversarial`" \
        in capsys.readouterr().out
    assert main(["plan", "--config", "config/config.yaml"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:3] == ["name", "seed", "target"]
    targets = [re.search(r"\s\d+\s+(all|adversarial)\s", row).group(1) for row in rows[1:]]
    assert targets.count("adversarial") == 18 and targets.count("all") == 126


@pytest.mark.parametrize("command", ["configurations", "resources", "power"])
def test_make_targets_before_any_run_get_one_line(command, capsys):
    """make readme-configurations and make resources pass the results folders that exist: none
    before any run."""
    from abcl.cli import main
    assert main([command]) == 2
    assert capsys.readouterr().err.strip() == (f"abcl {command}: error: no finished run to read: results/mnist5k "
                                              "(make run) or results/mnist-cpu-full (make cpu-full) must exist first")
