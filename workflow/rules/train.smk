rule train:
    input:
        data=rules.prepare_data.output.data,
    output:
        model=f"{MODEL_DIR}/model.pt",
        record=f"{MODEL_DIR}/train.json",
    log:
        f"{MODEL_DIR}/train.log",
    benchmark:
        f"{MODEL_DIR}/train.benchmark.tsv"
    group:
        "train"
    conda:
        "../envs/abcl.yaml"
    threads: config["train"]["threads"]
    resources:
        **model_resources("train"),
        gpu=config["train"]["gpu"],
    params:
        name=lambda wildcards: planned_run(wildcards).name,
        train=lambda wildcards: planned_run(wildcards).train.to_json(),
        kernels=config["train"]["kernels"],
        # the count the config asks for, not the scheduler's {threads}, which --cores may lower:
        # a reduction splits by thread count, so a change must rerun the job
        threads=config["train"]["threads"],
        cuda_graphs=CUDA_GRAPHS,
    message:
        "train {params.name}: {wildcards.run}"
    shell:
        "abcl train --train-config '{params.train}' --data {input.data} "
        "--out-dir $(dirname {output.model}) --device $ABCL_DEVICE --threads {params.threads} "
        "--kernels {params.kernels} "
        "{params.cuda_graphs} > {log} 2>&1"
