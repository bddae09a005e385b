# clusterproof: two commands for a new machine.
#   make demo   install what is missing, start the sandbox cluster and RGW, run every suite, write reports/latest/
#   make test   the project's own tests (unit tests, plus the suites against the sandbox): what CI runs
#   make unit   only the pure tests (no root, no sandbox, no RGW), for contributors
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test unit venv system-deps lint clean mutation

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

test: venv system-deps lint
	$(PY) -m pytest tests --durations=15

unit: venv
	$(PY) -m pytest tests -m "not needs_root and not needs_sandbox and not needs_rgw" -p no:cacheprovider

demo: venv system-deps
	$(PY) -m clusterproof.cli demo

lint: venv
	$(VENV)/bin/ruff check clusterproof fixtures suites tests bench conftest.py
	$(VENV)/bin/mypy --strict clusterproof fixtures

mutation: venv  ## mutation testing of the pure modules (slow: ~10 min on 2 cores); see tests/MUTATION.md
	rm -rf mutants
	$(VENV)/bin/mutmut run
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) build *.egg-info
