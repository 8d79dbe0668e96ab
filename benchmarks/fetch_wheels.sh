#!/usr/bin/env bash
# Collect, into .whl/, the wheels that the GPU machine (Python 3.12, no network) lacks for
# benchmarks/gpu_check.sh: snakemake and its dependencies, jsonschema, torchattacks; and openTSNE,
# which only the benchmark uses (scikit-learn's t-SNE against it, on that machine's cores).
# Binary wheels for CPython 3.12 where PyPI has them; pure-Python ones built here otherwise.
case "${1:-}" in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
PLATFORM="--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
# everything snakemake, the slurm plugin and jsonschema pull in, as resolved in this project's venv
names=$(.venv/bin/python - <<'PY'
from importlib import metadata
from packaging.requirements import Requirement
seen, todo = set(), ["snakemake", "jsonschema"]
present_on_gpu = {"torch", "torchvision", "numpy", "scipy", "tqdm", "requests", "pandas", "jinja2",
                  "markupsafe", "psutil", "packaging", "attrs", "typing-extensions", "pyyaml",
                  "urllib3", "idna", "certifi", "charset-normalizer", "wrapt", "tabulate",
                  "pillow", "filelock", "fsspec", "networkx", "sympy", "mpmath", "setuptools"}
while todo:
    name = todo.pop().lower().replace("_", "-")
    if name in seen:
        continue
    seen.add(name)
    for req in metadata.requires(name) or []:
        r = Requirement(req)
        if r.marker is None or r.marker.evaluate({"extra": ""}):
            todo.append(r.name)
for name in sorted(seen - present_on_gpu) + ["torchattacks"]:  # torchattacks without its torch pins
    print(f"{name}=={metadata.version(name)}")
PY
)
for spec in $names opentsne==1.0.4; do
  pip download -q --no-deps $PLATFORM -d .whl "$spec" 2>/dev/null \
    || .venv/bin/pip wheel -q --no-deps -w .whl "$spec"
done
du -sh .whl
