# The two commands a new user needs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/qwen-edit local demo

test: $(BIN)/.installed lint
	$(BIN)/python -m pytest

# Writes docs/benchmarks.md and docs/burst.png (about 10 minutes on 2 cores).
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/cost_per_job.py
	$(BIN)/python benchmarks/latency.py
	$(BIN)/python benchmarks/burst.py

lint: $(BIN)/.installed
	$(BIN)/cfn-lint template.yaml

clean:
	rm -rf $(VENV) demo-output .pytest_cache
