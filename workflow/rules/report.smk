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
        k1=config["abcl"]["k1"],
        k2=config["abcl"]["k2"],
    shell:
        "abcl masking --evals {input.evals} --gradients {input.gradients} "
        "--gap-points {params.gap_points} --max-vanished-fraction {params.max_vanished} "
        "--k1 {params.k1} --k2 {params.k2} "
        "--out {output.csv} > {log} 2>&1"


rule claims:
    input:
        fig1=model_files("fig1", "eval.csv"),
        fig2=model_files("fig2", "eval.csv"),
        table=model_files("table", "eval.csv"),
        separability=rules.fig3.output.scores,
        masking=rules.masking.output.csv,
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
        k1=config["abcl"]["k1"],
        k2=config["abcl"]["k2"],
    shell:
        "abcl claims --fig1 {input.fig1} --fig2 {input.fig2} --table {input.table} "
        "--separability {input.separability} --masking {input.masking} "
        "--k1 {params.k1} --k2 {params.k2} --out {output.md} > {log} 2>&1"
