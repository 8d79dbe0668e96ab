rule evaluate:
    input:
        model=rules.train.output.model,
        data=rules.prepare_data.output.data,
    output:
        csv=f"{MODEL_DIR}/eval.csv",
        gradients=f"{MODEL_DIR}/gradients.csv",
        correct=f"{MODEL_DIR}/correct.npz",
    log:
        f"{MODEL_DIR}/eval.log",
    benchmark:
        f"{MODEL_DIR}/eval.benchmark.tsv"
    group:
        "evaluate"
    conda:
        "../envs/abcl.yaml"
    threads: config["train"]["threads"]
    resources:
        **model_resources("evaluate"),
        gpu=config["train"]["gpu"],
    params:
        name=lambda wildcards: planned_run(wildcards).name,
        attacks=lambda wildcards: planned_run(wildcards).attacks_json(),
        tiny_gradient=config["masking"]["tiny_gradient"],
        n_test=(
            f"--n-test {config['eval']['n_test']}" if config["eval"]["n_test"] else ""
        ),
        adaptive_n_test=(
            f"--adaptive-n-test {config['eval']['adaptive_n_test']}"
            if config["eval"]["adaptive_n_test"]
            else ""
        ),
        batch_size=config["eval"]["batch_size"],
        kernels=config["train"]["kernels"],
        # the count the config asks for, not the scheduler's {threads}, which --cores may lower:
        # a reduction splits by thread count, so a change must rerun the job
        threads=config["train"]["threads"],
    message:
        "evaluate {params.name} under every planned attack: {wildcards.run}"
    shell:
        "abcl evaluate --model {input.model} --data {input.data} --attacks '{params.attacks}' "
        "{params.n_test} {params.adaptive_n_test} --batch-size {params.batch_size} --device $ABCL_DEVICE "
        "--threads {params.threads} --kernels {params.kernels} --tiny-gradient {params.tiny_gradient} --out {output.csv} "
        "--gradients {output.gradients} --correct {output.correct} > {log} 2>&1"
