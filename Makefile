# Two commands on a fresh machine: `make test` and `make demo`.
# Each creates .venv if missing and installs the package with pinned versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: test demo lint typecheck bench venv clean

$(STAMP): setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/captum-ho demo

lint: $(STAMP)
	$(BIN)/ruff check captum_higher_order tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy captum_higher_order

bench: $(STAMP)
	$(BIN)/python benchmarks/hvp.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
