# Tessera: `make demo` runs the main job, `make test` runs the test suite.
# Both bootstrap .venv from nothing (needs only python3 >= 3.10, a C++ compiler, make and perl).
# `make formal` runs every formal proof of formal/ (make test runs the quick ones, docs/verification.md).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tessera-installed

.PHONY: demo test bench formal clean distclean

demo: $(STAMP)
	$(BIN)/tessera demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

formal: $(STAMP)
	$(BIN)/python -m formal

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

clean:
	rm -rf build sim_build .pytest_cache

distclean: clean
	rm -rf $(VENV)
