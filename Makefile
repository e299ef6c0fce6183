# Two commands on a fresh machine: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= $(if $(wildcard config.json),config.json,config.json.example)

.PHONY: run test lint demo clean native native-required

# The native packet path (docs/decisions/0017-native-packet-path.md): a C extension built in
# place. `make run` tries it and goes on without it (the pure-Python path is selected and
# logged); `make test` installs the -dev packages when it can (.ci/native-deps.sh) and
# requires it, so the tests cover both paths.


native: | $(BIN)/python
	-@sh audionode/native/build.sh $(abspath $(BIN)/python) 2>&1 || echo "native packet path not built: the pure-Python path will run"

native-required: | $(BIN)/python
	bash .ci/native-deps.sh
	sh audionode/native/build.sh $(abspath $(BIN)/python)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Discodo 3.0.5's own client (tests/web/test_discodo_client.py) pins a websockets that cannot
# share the node's environment: it lives in its own folder, loaded by a subprocess.
DISCODO_CLIENT := $(VENV)/discodo-3.0.5

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps --target $(DISCODO_CLIENT) discodo==3.0.5 websockets==13.1
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed native
	$(BIN)/audionode run --config $(CONFIG)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check $(wildcard audionode tests plugins bench examples)
	$(BIN)/mypy --strict audionode examples
	$(BIN)/lint-imports

# The browser tests (tests/web/test_dashboard.py) use Debian's chromium; installed when root.
test: lint native-required
	.ci/install-browser
	REQUIRE_NATIVE_PACKETS=1 $(BIN)/python -m pytest -q

demo: $(VENV)/.run-installed
	$(BIN)/audionode demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache audionode/native/_packet*.so
