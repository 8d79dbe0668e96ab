rule fig1:
    input:
        model_files("fig1", "eval.csv"),
    output:
        png=report(
            f"{RESULTS}/figures/fig1.png",
            caption="../report/fig1.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/fig1.pdf",
    log:
        f"{RESULTS}/logs/fig1.log",
    benchmark:
        f"{RESULTS}/benchmarks/fig1.tsv"
    conda:
        "../envs/abcl.yaml"
    shell:
        "abcl fig1 --out {output.png} {input} > {log} 2>&1"


rule fig2:
    input:
        model_files("fig2", "eval.csv"),
    output:
        png=report(
            f"{RESULTS}/figures/fig2.png",
            caption="../report/fig2.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/fig2.pdf",
    log:
        f"{RESULTS}/logs/fig2.log",
    benchmark:
        f"{RESULTS}/benchmarks/fig2.tsv"
    conda:
        "../envs/abcl.yaml"
    shell:
        "abcl fig2 --out {output.png} {input} > {log} 2>&1"


rule fig3:
    input:
        embeddings=model_files("fig3", "tsne.csv"),
        scores=model_files("fig3", "separability.csv"),
    output:
        png=report(
            f"{RESULTS}/figures/fig3.png",
            caption="../report/fig3.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/fig3.pdf",
        scores=f"{RESULTS}/separability.csv",
    log:
        f"{RESULTS}/logs/fig3.log",
    benchmark:
        f"{RESULTS}/benchmarks/fig3.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        embeddings=named_files("fig3", "tsne.csv"),
        scores=named_files("fig3", "separability.csv"),
        bim_linf_eps=config["embed"]["bim_linf_eps"],
        fgsm_l2_eps=config["embed"]["fgsm_l2_eps"],
    shell:
        "abcl fig3 --out {output.png} --embedding {params.embeddings} --scores {params.scores} "
        "--bim-linf-eps {params.bim_linf_eps} --fgsm-l2-eps {params.fgsm_l2_eps} "
        "--scores-out {output.scores} > {log} 2>&1"


rule table:
    input:
        evals=model_files("table", "eval.csv"),
        masking=f"{RESULTS}/masking.csv",
    output:
        csv=f"{RESULTS}/table.csv",
        md=report(
            f"{RESULTS}/table.md",
            caption="../report/table.rst",
            category="Table",
        ),
    log:
        f"{RESULTS}/logs/table.log",
    benchmark:
        f"{RESULTS}/benchmarks/table.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        evals=named_files("table", "eval.csv"),
    shell:
        "abcl table --out-csv {output.csv} --out-md {output.md} --masking {input.masking} "
        "{params.evals} > {log} 2>&1"


rule fig_adversarial:
    input:
        model_files("adversarial", "eval.csv"),
    output:
        png=report(
            f"{RESULTS}/figures/adversarial.png",
            caption="../report/adversarial.rst",
            category="Beyond the paper",
        ),
        pdf=f"{RESULTS}/figures/adversarial.pdf",
    log:
        f"{RESULTS}/logs/fig_adversarial.log",
    benchmark:
        f"{RESULTS}/benchmarks/fig_adversarial.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        evals=named_files("adversarial", "eval.csv"),
    shell:
        "abcl fig-adversarial --out {output.png} {params.evals} > {log} 2>&1"
