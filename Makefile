# Two commands on a fresh machine: `make test` and `make demo`.
# Each creates .venv if missing and installs the package with pinned versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The oldest Captum that setup.py admits; the engine and contract suites run against it too.
OLDEST_CAPTUM := 0.8.0
OLDEST_DIR := $(VENV)/captum-$(OLDEST_CAPTUM)

.PHONY: test test-oldest-captum demo lint typecheck bench venv clean

$(STAMP): setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) test-oldest-captum

$(OLDEST_DIR)/.installed: $(STAMP)
	$(BIN)/python -m pip install --no-deps --target $(OLDEST_DIR) captum==$(OLDEST_CAPTUM)
	touch $@

# Captum's private helpers move between releases: _captum.py must work on both ends.
test-oldest-captum: $(OLDEST_DIR)/.installed
	PYTHONPATH=$(OLDEST_DIR) CAPTUM_HO_EXPECT_CAPTUM=$(OLDEST_CAPTUM) \
		$(BIN)/python -m pytest tests/test_captum_compat.py tests/hessian tests/contract

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

# The documentation site (mkdocs.yml): guides, API reference from the docstrings, the
# executed tutorials and the benchmark tables, into site/. Strict: any warning (a
# broken link or reference) fails.
.PHONY: docs notebooks dist-check
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# Re-execute every tutorial at full size and store it with its outputs and figures.
notebooks: $(STAMP)
	$(BIN)/python tutorials/make_notebooks.py

# Release check: sdist + wheel, twine check, both hold the zoo weights and py.typed
# (tools/dist_check.py), then the wheel, unpacked alone onto PYTHONPATH (no network; its
# dependencies come from this venv), runs `captum-ho --version` and `captum-ho demo`
# from outside the source tree.
dist-check: $(STAMP)
	rm -rf dist build/dist-check
	$(BIN)/python -m build --sdist --wheel --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(BIN)/python tools/dist_check.py dist --install build/dist-check
