# rbnodia developer entry points.  `make demo` and `make test` are the two
# commands of the README; both create .venv on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rbnodia-installed
DEMO_REPO ?= demo_repo

.PHONY: help venv demo test test-fast bench clean

help:
	@echo "make demo   - build a demo Butler repo from simulated data and run the real/bogus pipeline"
	@echo "make test   - run the test suite (what CI runs)"
	@echo "make bench  - run the benchmarks and print the figures (BENCH_ARGS=--smoke for a quick check)"

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	@set -e; PYBIN=$$(scripts/find-python.sh); \
	if [ ! -x $(PY) ]; then echo "Creating $(VENV) with $$PYBIN"; "$$PYBIN" -m venv $(VENV); fi; \
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"; \
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e ".[train,sim,bps,test]"
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/rbnodia demo --repo $(DEMO_REPO) --clobber

# The whole suite, slow tests (BPS, benchmark smoke run) included, in one run.
test: venv
	$(PY) -m pytest -n 2 --dist loadscope -m "slow or not slow" tests

# Without the slow tests, for quick iterations.
test-fast: venv
	$(PY) -m pytest -n 2 --dist loadscope tests

# make bench BENCH_ARGS="--smoke" (CI size) or BENCH_ARGS="--sections 1,2"; results in bench_out/.
bench: venv
	$(PY) benchmarks/run_benchmarks.py $(BENCH_ARGS)

clean:
	rm -rf $(DEMO_REPO) build *.egg-info python/*.egg-info .pytest_cache
