# One-command setup for a fresh machine: each target makes the virtualenv and installs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

## Open the app on a freshly seeded demo database.
demo: $(STAMP)
	$(BIN)/inspector demo

## Run the whole test suite (PostgreSQL tests need the server on 127.0.0.1:5432).
test: $(STAMP)
	$(BIN)/pytest -q

## Print the benchmark tables (not part of the tests).
bench: $(STAMP)
	$(BIN)/python tests/bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
