rule masking:
    input:
        evals=model_files("table", "eval.csv"),
        gradients=model_files("table", "gradients.csv"),
    output:
        csv=report(
            f"{RESULTS}/masking.csv",
            caption="../report/masking.rst",
            category="Robustness checks",
        ),
    log:
        f"{RESULTS}/logs/masking.log",
    benchmark:
        f"{RESULTS}/benchmarks/masking.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        gap_points=config["masking"]["gap_points"],
        max_vanished=config["masking"]["max_vanished_fraction"],
        evals=named_files("table", "eval.csv"),
    shell:
        "abcl masking --evals {params.evals} --gradients {input.gradients} "
        "--gap-points {params.gap_points} --max-vanished-fraction {params.max_vanished} "
        "--out {output.csv} > {log} 2>&1"


rule claims:
    input:
        fig1=model_files("fig1", "eval.csv"),
        fig2=model_files("fig2", "eval.csv"),
        table=model_files("table", "eval.csv"),
        separability=if_planned("fig3", rules.fig3.output.scores),
        embeddings=model_files("fig3", "tsne.csv"),
        masking=if_planned("table", rules.masking.output.csv),
        correct=sorted(
            set(
                model_files("fig1", "correct.npz")
                + model_files("fig2", "correct.npz")
                + model_files("table", "correct.npz")
                + adversarial_in_default_run("correct.npz")
            )
        ),
        adversarial=adversarial_in_default_run("eval.csv"),
        dataset_record=rules.prepare_data.output.checksum,
    output:
        md=report(
            f"{RESULTS}/claims.md",
            caption="../report/claims.rst",
            category="Robustness checks",
        ),
        comparisons=f"{RESULTS}/comparisons.csv",
    log:
        f"{RESULTS}/logs/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        fig1=named_files("fig1", "eval.csv"),
        table=named_files("table", "eval.csv"),
        embeddings=named_files("fig3", "tsne.csv"),
        adversarial=claims_adversarial_args(),
        alpha=config["claims"]["alpha"],
        margin_points=config["claims"]["margin_points"],
        precision_points=config["claims"]["precision_points"],
        protocol=comparison_protocol(config),
        judge=" ".join(map(str, JUDGED)),
        bim_linf_eps=config["embed"]["bim_linf_eps"],
        fgsm_l2_eps=config["embed"]["fgsm_l2_eps"],
        separability=lambda wildcards, input: flag("--separability", input.separability),
        masking=lambda wildcards, input: flag("--masking", input.masking),
    shell:
        "abcl claims --judge {params.judge} --fig1 {params.fig1} --fig2 {input.fig2} --table {params.table} "
        "{params.separability} --embeddings {params.embeddings} {params.masking} "
        "--correct {input.correct} --dataset-record {input.dataset_record} "
        "--alpha {params.alpha} --margin-points {params.margin_points} "
        "--precision-points {params.precision_points} --comparisons {output.comparisons} "
        "--protocol {params.protocol} --bim-linf-eps {params.bim_linf_eps} --fgsm-l2-eps {params.fgsm_l2_eps} "
        "{params.adversarial} --out {output.md} > {log} 2>&1"


rule leaderboard:
    input:
        evals=model_files("table", "eval.csv"),
    output:
        csv=f"{RESULTS}/leaderboard.csv",
        md=report(
            f"{RESULTS}/leaderboard.md",
            caption="../report/leaderboard.rst",
            category="Robustness checks",
        ),
    log:
        f"{RESULTS}/logs/leaderboard.log",
    benchmark:
        f"{RESULTS}/benchmarks/leaderboard.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        evals=named_files("table", "eval.csv"),
    shell:
        "abcl leaderboard --out-csv {output.csv} --out-md {output.md} {params.evals} > {log} 2>&1"


rule adversarial_report:
    input:
        evals=model_files("adversarial", "eval.csv"),
        correct=model_files("adversarial", "correct.npz"),
    output:
        csv=f"{RESULTS}/adversarial.csv",
        md=report(
            f"{RESULTS}/adversarial.md",
            caption="../report/adversarial.rst",
            category="Beyond the paper",
        ),
    log:
        f"{RESULTS}/logs/adversarial.log",
    benchmark:
        f"{RESULTS}/benchmarks/adversarial.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        evals=named_files("adversarial", "eval.csv"),
        alpha=config["claims"]["alpha"],
    shell:
        "abcl adversarial --out-csv {output.csv} --out-md {output.md} --correct {input.correct} "
        "--alpha {params.alpha} --evals {params.evals} > {log} 2>&1"


rule adversarial:
    input:
        adversarial_outputs,
