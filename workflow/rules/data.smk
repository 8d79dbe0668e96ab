rule prepare_data:
    output:
        data=f"{RESULTS}/data/{DATASET}.pt",
        checksum=f"{RESULTS}/data/{DATASET}.json",
    log:
        f"{RESULTS}/logs/prepare_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data.tsv"
    conda:
        "../envs/abcl.yaml"
    params:
        dataset=DATASET,
        source=f"--source {config['data_source']}" if config["data_source"] else "",
        download=f"--download {config['download']}" if config["download"] else "",
    shell:
        "abcl prepare-data --dataset {params.dataset} {params.source} {params.download} "
        "--out {output.data} > {log} 2>&1"
