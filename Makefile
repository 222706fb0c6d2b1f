# Two entry points, both self-bootstrapping on a fresh machine:
#   make figures   rebuild every figure on the embedded default data
#   make test      run the test suite (what CI runs)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: figures figures-quick test demo bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

figures: $(STAMP)
	$(BIN)/python -m paper_figs

figures-quick: $(STAMP)
	$(BIN)/python -m paper_figs --quick

demo: $(STAMP)
	$(BIN)/python -m theory demo

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
