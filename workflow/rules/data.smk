rule prepare_data:
    output:
        data=f"{RESULTS}/data/{DATASET}.pt",
        checksum=f"{RESULTS}/data/{DATASET}.json",
    params:
        source=f"--source {config['data_source']}" if config["data_source"] else "",
        download=f"--download {config['download']}" if config["download"] else "",
    log:
        f"{RESULTS}/logs/prepare_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data.tsv"
    shell:
        "{ABCL} prepare-data --dataset {DATASET} {params.source} {params.download} "
        "--out {output.data} > {log} 2>&1"
