# Two set-up commands, from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint unit demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check vaultsched tests bench vault/scripts
	$(BIN)/ruff format --check vaultsched tests bench vault/scripts
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

demo: $(STAMP)
	$(BIN)/vaultsched demo

# Not part of `make test`: figures, not pass/fail. Results go in docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python bench/firing_latency.py --seconds 30 --tasks 1
	$(BIN)/python bench/firing_latency.py --seconds 30 --tasks 4
	$(BIN)/python bench/firing_latency.py --seconds 30 --tasks 20
	$(BIN)/python bench/edit_latency.py --edits 200 --tasks 100

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
