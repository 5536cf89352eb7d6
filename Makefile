# The two commands a new user needs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Lambda runs Python 3.12: the unit and integration suites run under it too, where pyenv has it.
PYTHON312 ?= $(shell PYENV_VERSION=3.12.1 command -v python3.12 2>/dev/null)
VENV312 := .venv312
PYTEST := $(BIN)/python -m pytest
# checkov and the SAM CLI pin libraries the project pins otherwise: each has a venv of its own.
TOOLS := .venv-tools
CHECKOV := $(TOOLS)/checkov/bin/checkov
SAM := $(TOOLS)/sam/bin/sam
# Nothing they run may reach beyond loopback (checkov looks up its vendor's API otherwise).
LOOPBACK_ONLY := $(shell unshare -n true 2>/dev/null && echo unshare -n --)

.PHONY: demo test lint lint-types scan build test-unit test-integration test-e2e test-infra \
	test-py312 bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/qwen-edit local demo --serve

# Lint and the template's checks first, then every layer of the pyramid in one parallel run,
# then Python 3.12.
test: $(BIN)/.installed lint scan build
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || echo "Chromium or \
	chromedriver not found: the console's browser tests (tests/e2e/test_console_browser.py) are \
	skipped. Install them with: apt-get install chromium chromium-driver (.ci/run does)."
	$(PYTEST)
	$(MAKE) --no-print-directory test-py312

lint: $(BIN)/.installed lint-types
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

# mypy: strict on layers/ and functions/ (pyproject.toml), checked on cli/ and benchmarks/.
lint-types: $(BIN)/.installed
	$(BIN)/mypy layers/core/qwen_edit functions/*/app.py cli/qwen_edit_cli
	MYPYPATH=benchmarks $(BIN)/mypy benchmarks

$(TOOLS)/%/.installed: requirements/%.txt
	rm -rf $(TOOLS)/$*
	PYENV_VERSION=3.12.1 $(or $(PYTHON312),$(PYTHON)) -m venv $(TOOLS)/$*
	$(TOOLS)/$*/bin/python -m pip install --quiet --upgrade pip==26.3
	$(TOOLS)/$*/bin/python -m pip install --quiet --no-deps -r requirements/$*.txt
	touch $@

# The IaC security scan: fails on any check not fixed or suppressed with a reason in the template.
scan: $(TOOLS)/checkov/.installed
	BC_SKIP_MAPPING=TRUE $(LOOPBACK_ONLY) $(CHECKOV) --file template.yaml \
		--framework cloudformation --skip-download --compact --quiet

# What `sam deploy` ships: the template validated and linted, the layer built for arm64 (Python
# 3.12 builds it; tests/infra/test_build.py looks inside).
build: $(TOOLS)/sam/.installed
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint
ifeq ($(PYTHON312),)
	@echo "Python 3.12 not found: sam build, which needs it, is skipped."
else
	SAM_CLI_TELEMETRY=0 PYENV_VERSION=3.12.1 $(SAM) build
endif

test-unit: $(BIN)/.installed
	$(PYTEST) -n 0 tests/unit

test-integration: $(BIN)/.installed
	$(PYTEST) tests/integration

test-e2e: $(BIN)/.installed
	$(PYTEST) tests/e2e

test-infra: $(BIN)/.installed
	$(BIN)/cfn-lint template.yaml
	$(PYTEST) -n 0 tests/infra

$(VENV312)/.installed: pyproject.toml
	PYENV_VERSION=3.12.1 $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet --upgrade pip==26.3
	$(VENV312)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

test-py312:
ifeq ($(PYTHON312),)
	@echo "Python 3.12 not found: the 3.12 run of the unit and integration suites is skipped."
else
	$(MAKE) --no-print-directory $(VENV312)/.installed
	PYENV_VERSION=3.12.1 $(VENV312)/bin/python -m pytest tests/unit tests/integration
endif

# Writes docs/benchmarks.md, docs/burst.png and docs/burst-no-faults.png (about 15 minutes on 2 cores).
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/cost_per_job.py
	$(BIN)/python benchmarks/latency.py
	$(BIN)/python benchmarks/burst.py
	$(BIN)/python benchmarks/burst.py --no-faults
	$(BIN)/python benchmarks/scheduling.py
	$(BIN)/python benchmarks/key_pool.py
	$(BIN)/python benchmarks/budget_race.py
	$(BIN)/python benchmarks/workflow_transitions.py

clean:
	rm -rf $(VENV) $(VENV312) $(TOOLS) .aws-sam demo-output .pytest_cache .mypy_cache .ruff_cache .hypothesis
