# One entry point for people and CI. `make run` and `make test` set everything up first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: setup run test lint dry-run lock clean-results

$(VENV)/.installed: requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# --no-deps with the complete lock: torchattacks' stale requests~=2.25.1 pin is never applied
	$(BIN)/pip install --quiet --no-deps -r requirements/lock.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

run: setup  ## the whole workflow on the embedded default (mnist5k, CPU)
	$(BIN)/snakemake --cores $(CORES) --profile profiles/local

test: setup  ## the test suite (minutes on 2 cores)
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check workflow/

dry-run: setup
	$(BIN)/snakemake -n --quiet

lock: setup  ## regenerate requirements/lock.txt from the current environment
	{ sed -n '1,3p' requirements/lock.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^abcl'; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

clean-results:
	rm -rf results/mnist5k results/mnist results/fashion-mnist
