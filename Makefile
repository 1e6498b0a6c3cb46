# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv if missing.
# .venv uses the newest Python 3.12+ found (Django 6 needs it), else python3 (3.11 works too).
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null)
PYTHON ?= $(shell for v in 3.13 3.12; do \
	for p in $(PYENV_ROOT)/versions/$$v*/bin/python3; do [ -x "$$p" ] && { echo "$$p"; exit 0; }; done; \
	command -v python$$v >/dev/null 2>&1 && python$$v -c '' 2>/dev/null && { echo python$$v; exit 0; }; \
	done; echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/sqlite_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
