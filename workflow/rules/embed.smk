rule features:
    input:
        model=rules.train.output.model,
        data=rules.prepare_data.output.data,
    output:
        npz=f"{MODEL_DIR}/features.npz",
    log:
        f"{MODEL_DIR}/features.log",
    benchmark:
        f"{MODEL_DIR}/features.benchmark.tsv"
    conda:
        "../envs/abcl.yaml"
    threads: config["train"]["threads"]
    resources:
        **measured("features"),
        gpu=config["train"]["gpu"],  # it runs attacks: on the GPU when training is
    params:
        name=lambda wildcards: planned_run(wildcards).name,
        n_per_set=config["embed"]["n_per_set"],
        attacks=lambda wildcards: planned_run(wildcards).embed_attacks_json(),
        kernels=config["train"]["kernels"],
        # the count the config asks for, not the scheduler's {threads}, which --cores may lower:
        # a reduction splits by thread count, so a change must rerun the job
        threads=config["train"]["threads"],
    message:
        "latent features of {params.name}: {wildcards.run}"
    shell:
        "abcl features --model {input.model} --data {input.data} --n-per-set {params.n_per_set} "
        "--attacks '{params.attacks}' --device $ABCL_DEVICE --threads {params.threads} "
        "--kernels {params.kernels} "
        "--out {output.npz} > {log} 2>&1"


rule tsne:
    input:
        npz=rules.features.output.npz,
    output:
        embedding=f"{MODEL_DIR}/tsne.csv",
        scores=f"{MODEL_DIR}/separability.csv",
    log:
        f"{MODEL_DIR}/tsne.log",
    benchmark:
        f"{MODEL_DIR}/tsne.benchmark.tsv"
    conda:
        "../envs/abcl.yaml"
    threads: config["embed"]["tsne_threads"]
    resources:
        **measured("tsne"),
    params:
        name=lambda wildcards: planned_run(wildcards).name,
        perplexity=config["embed"]["perplexity"],
        threads=config["embed"]["tsne_threads"],  # the config's count, whatever --cores allows
    message:
        "t-SNE of {params.name}: {wildcards.run}"
    shell:
        "abcl tsne --features {input.npz} --perplexity {params.perplexity} --threads {params.threads} "
        "--out {output.embedding} --scores {output.scores} > {log} 2>&1"
