# Two commands on a fresh machine: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= $(if $(wildcard config.json),config.json,config.json.example)

.PHONY: run test lint demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/audionode run --config $(CONFIG)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check $(wildcard audionode tests plugins bench)
	$(BIN)/mypy --strict audionode

test: lint
	$(BIN)/python -m pytest -q

demo: $(VENV)/.run-installed
	$(BIN)/audionode demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
