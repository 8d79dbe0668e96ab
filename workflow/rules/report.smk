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
        separability=rules.fig3.output.scores,
        masking=rules.masking.output.csv,
        correct=sorted(
            set(
                model_files("fig1", "correct.npz")
                + model_files("fig2", "correct.npz")
                + model_files("table", "correct.npz")
            )
        ),
    output:
        md=report(
            f"{RESULTS}/claims.md",
            caption="../report/claims.rst",
            category="Robustness checks",
        ),
    log:
        f"{RESULTS}/logs/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        fig1=named_files("fig1", "eval.csv"),
        table=named_files("table", "eval.csv"),
    shell:
        "abcl claims --fig1 {params.fig1} --fig2 {input.fig2} --table {params.table} "
        "--separability {input.separability} --masking {input.masking} "
        "--correct {input.correct} --out {output.md} > {log} 2>&1"


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
