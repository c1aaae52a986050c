# The README's commands. Each target creates .venv on first use (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export OMP_NUM_THREADS ?= 1
# The env whose release `make reproduce` rebuilds (make reproduce ENV=hf_ad/Bandit-v0, or
# ENV=hf_ad/PixelWatermaze-v0; the ids scripts/reproduce.sh accepts).
ENV := hf_ad/DarkRoom-v0

.PHONY: setup demo test test-slow lint bench bench-scale bench-gpu reproduce clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,hub-test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hf-ad demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check hf_ad scripts tests
	$(BIN)/ruff format --check hf_ad scripts tests

bench: $(STAMP)
	$(BIN)/python scripts/bench.py all

bench-scale: $(STAMP)  # training on 100M transitions read in place (minutes; ~7 GB, mostly the datasets Arrow cache)
	$(BIN)/python scripts/bench.py scale

bench-gpu: $(STAMP)  # on a CUDA GPU (install a CUDA build of torch first): speed and a short training (minutes)
	$(BIN)/python scripts/bench.py gpu

reproduce: $(STAMP)
	ENV_ID=$(ENV) bash scripts/reproduce.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
