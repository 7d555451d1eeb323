# rbnodia developer entry points.  `make demo` and `make test` are the two
# commands of the README; both create .venv on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rbnodia-installed
DEMO_REPO ?= demo_repo

# Folders the linters check (files under change are excluded in pyproject.toml).
LINT_DIRS := python tests benchmarks scripts doc/conf.py
DOCSTRING_DIRS := python benchmarks scripts

.PHONY: help venv demo lint test test-fast bench docs doc-tables clean

help:
	@echo "make demo   - build a demo Butler repo from simulated data and run the real/bogus pipeline"
	@echo "make test   - lint, then run the test suite (what CI runs)"
	@echo "make lint   - ruff and numpydoc docstring validation (configured in pyproject.toml)"
	@echo "make bench  - run the benchmarks, print the figures and write doc/_generated/bench_results.rst"
	@echo "              (BENCH_ARGS=--smoke for a quick check)"
	@echo "make docs   - build the HTML documentation into build/docs (Sphinx, warnings are errors)"
	@echo "make doc-tables - rewrite doc/_generated/packaged_models.rst from the packaged model files"

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	@set -e; PYBIN=$$(scripts/find-python.sh); \
	if [ ! -x $(PY) ]; then echo "Creating $(VENV) with $$PYBIN"; "$$PYBIN" -m venv $(VENV); fi; \
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"; \
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[train,sim,bps,test]"
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/rbnodia demo --repo $(DEMO_REPO) --clobber

# ruff (pycodestyle, pyflakes, naming, docstrings, imports, pyupgrade), then
# numpydoc's docstring validation on the same files.
lint: venv
	@$(VENV)/bin/ruff check $(LINT_DIRS) || { echo "make lint: ruff found problems (see above; 'ruff check --fix' fixes some)."; exit 1; }
	@$(PY) scripts/numpydoc_lint.py $(DOCSTRING_DIRS) || { echo "make lint: docstrings do not pass numpydoc validation (see above)."; exit 1; }

# The whole suite, slow tests (BPS, benchmark smoke run) included, in one run.
test: lint
	$(PY) -m pytest -n 2 --dist loadscope -m "slow or not slow" tests

# Without the slow tests, for quick iterations.
test-fast: venv
	$(PY) -m pytest -n 2 --dist loadscope tests

# make bench BENCH_ARGS="--smoke" (CI size) or BENCH_ARGS="--sections 1,2"; results in bench_out/,
# the table of doc/performance.rst in doc/_generated/bench_results.rst.
bench: venv
	$(PY) benchmarks/run_benchmarks.py --doc-table doc/_generated/bench_results.rst --search-doc-dir doc/_generated $(BENCH_ARGS)

# The table of the packaged models that the documentation includes, from the
# model files' metadata; tests/test_docs_generated.py fails when it is out of date.
doc-tables: venv
	$(VENV)/bin/rbnodia info --models --format rst > doc/_generated/packaged_models.rst.tmp
	mv doc/_generated/packaged_models.rst.tmp doc/_generated/packaged_models.rst

# The HTML documentation (API pages from the docstrings); the [docs] extra is
# installed here only.
DOCS_STAMP := $(VENV)/.rbnodia-docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[docs]"
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html -d build/doctrees doc build/docs
	@echo "Documentation: build/docs/index.html"

clean:
	rm -rf $(DEMO_REPO) build doc/py-api *.egg-info python/*.egg-info .pytest_cache
