# Two entry points, both self-bootstrapping on a fresh machine:
#   make figures   rebuild every figure on the embedded default data
#   make test      run the whole test suite, slow end-to-end tests included (what CI runs)
# Helpers: figures-quick (small budgets), test-fast (skips the tests marked slow), demo, bench.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: figures figures-quick test test-fast demo bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]" -c constraints.txt
	touch $(STAMP)

figures: $(STAMP)
	$(BIN)/python -m paper_figs

figures-quick: $(STAMP)
	$(BIN)/python -m paper_figs --quick

demo: $(STAMP)
	$(BIN)/python -m theory demo

# No -m filter: tests marked slow run too.
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
