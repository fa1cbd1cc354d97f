# The README's two commands: `make demo` and `make test`. Both work on a fresh machine:
# they create .venv when it is missing, install gamelab into it, then run.
#
# torch: an already-installed torch is kept as it is (a CUDA build, say). When the base
# interpreter has torch, .venv is made with --system-site-packages so that it is reused.
# Otherwise a CPU build is installed: first from PyTorch's CPU index, then, if that index
# cannot be reached, `torch==$(TORCH_VERSION)` from the configured package sources.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: demo test test-all bench install install-test clean

$(PY):
	@if $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
		echo "reusing the torch of $(PYTHON)"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi

$(VENV)/.torch: | $(PY)
	@if $(PY) -c "import torch" >/dev/null 2>&1; then \
		$(PY) -c "import torch; print('using torch', torch.__version__)"; \
	else \
		$(PIP) install --timeout 20 --retries 1 --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)" \
		|| $(PIP) install "torch==$(TORCH_VERSION)"; \
	fi
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	@$(PY) -c "import pygambit" >/dev/null 2>&1 || echo "installing the test extras; pygambit (Gambit's solvers, the tests' reference) \
	may be built from source: about 8 minutes on 2 cores, once"
	$(PIP) install -q -e ".[test]"
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(PY) -m marl.demo

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$status

test-all: $(VENV)/.installed-test
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(PIP) install -q -e ".[bench]"
	$(PY) -m benchmarks.matrix
	$(PY) -m benchmarks.nfg
	$(PY) -m benchmarks.cfr
	$(PY) -m benchmarks.psro
	$(PY) -m benchmarks.psro_markov  # about 10 minutes: 12 MADDPG best responses on tag
	$(PY) -m benchmarks.neupl  # about 11 minutes: two 5-minute NeuPL runs on Leduc
	$(PY) -m benchmarks.neupl_markov  # about 15 minutes: PSRO and NeuPL on tag, a tournament, 4 best responses
	$(PY) -m benchmarks.sim
	$(PY) -m benchmarks.tournament
	$(PY) -m benchmarks.maddpg  # about 25 minutes: two 10-minute training runs
	$(PY) -m benchmarks.navigation  # about 60 minutes: GNN and MLP MAPPO, the online CBF, 1,024 agents

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
