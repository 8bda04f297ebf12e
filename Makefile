# Stockroute: `make test` and `make demo` work from a fresh clone (Python 3.11, Java 17, Maven).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv shell test test-all test-unit lint demo bench kafka-up kafka-down clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

# A sub-shell with the venv active: `stockroute` on PATH until `exit`.
shell: $(STAMP)
	@echo "stockroute is on PATH in this shell; 'exit' leaves it"
	@$(SHELL) --init-file <(echo '[ -f ~/.bashrc ] && . ~/.bashrc; . $(VENV)/bin/activate') -i

# Unit + agent + integration tests against a real local broker (started and stopped here
# unless KAFKA_BOOTSTRAP points at another cluster). The broker is stopped even on failure.
test: $(STAMP)
	@bash scripts/install-browser.sh
	@bash scripts/with-kafka.sh $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Everything, including the slow chaos / fuzz / end-to-end tests.
test-all: $(STAMP)
	@bash scripts/install-browser.sh
	@bash scripts/with-kafka.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/agent $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

demo: $(STAMP)
	@bash scripts/demo.sh

bench: $(STAMP)
	@bash scripts/with-kafka.sh $(BIN)/python -m bench.run

kafka-up: $(STAMP)
	$(BIN)/stockroute kafka up

kafka-down: $(STAMP)
	$(BIN)/stockroute kafka down

clean:
	rm -rf .data
