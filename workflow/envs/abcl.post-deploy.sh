#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment (abcl.yaml); GENERATED with it (make lock).
set -euo pipefail
pip install --no-deps torchattacks==3.5.1
# abcl from the checkout this workflow runs from (workflow/envs/ -> the repository root), editable:
# a code change needs no rebuild, a pin change (above or in abcl.yaml) does
root="$(cd "$(dirname "$0")/../.." && pwd)"
pip install --no-deps --no-build-isolation -e "$root"
