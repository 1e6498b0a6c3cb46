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

.PHONY: demo test lint bench clean dist flask-example django-example

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# The Flask example app (examples/flask_app/README.md): web server and worker, Ctrl-C stops both.
flask-example: $(STAMP)
	$(BIN)/python examples/flask_app/run.py

# The Django example project (examples/django_shop/README.md): migrate, server and worker.
django-example: $(STAMP)
	$(BIN)/python examples/django_shop/run.py

# Two pytest processes (pytest-xdist): about 8 minutes here instead of 14. The Django tests
# stay together in one of them (tests/conftest.py puts them in one xdist group).
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# ruff, mypy --strict, and the layering contracts of pyproject.toml (docs/architecture.md)
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# An sdist and a wheel in dist/, for `pip install dist/conveyor-*.whl` in your own project.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

bench: $(STAMP)
	$(BIN)/python benchmarks/sqlite_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The Redis benchmark against Celery, Dramatiq, RQ and Huey (benchmarks/README.md).
# The peers live in their own venv, pinned; Conveyor runs from .venv with redis-py.
# Needs redis-server on 127.0.0.1:6379; uses (and flushes) DB 15. ARGS=--quick for a short run.
PEERS_VENV := benchmarks/.venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP): benchmarks/requirements-peers.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q -r benchmarks/requirements-peers.txt
	touch $(PEERS_STAMP)

.PHONY: bench-redis
bench-redis: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python -c 'import redis' 2>/dev/null || $(BIN)/python -m pip install -q -e '.[redis]'
	$(PEERS_VENV)/bin/python benchmarks/redis_peers.py $(ARGS)

# Workloads with real task bodies (round trip, sleep, CPU, mix) at 1x2, 1x8, 2x8 and each
# library's best setting, against the same peers in the same venvs, and an async workload
# against arq, SAQ and Taskiq (their own venv, benchmarks/.venv-async) (benchmarks/README.md).
# Uses (and flushes) DB 15. ARGS="--workloads roundtrip --configs 1x8 --rounds 1" for a cell.
ASYNC_VENV := benchmarks/.venv-async
ASYNC_STAMP := $(ASYNC_VENV)/.installed

$(ASYNC_STAMP): benchmarks/requirements-async.txt
	test -x $(ASYNC_VENV)/bin/python || $(PYTHON) -m venv $(ASYNC_VENV)
	$(ASYNC_VENV)/bin/python -m pip install -q -r benchmarks/requirements-async.txt
	touch $(ASYNC_STAMP)

.PHONY: bench-workloads
bench-workloads: $(STAMP) $(PEERS_STAMP) $(ASYNC_STAMP)
	$(BIN)/python -c 'import redis' 2>/dev/null || $(BIN)/python -m pip install -q -e '.[redis]'
	$(PEERS_VENV)/bin/python benchmarks/redis_workloads.py $(ARGS)

# The RabbitMQ benchmark against Celery and Dramatiq (benchmarks/README.md), in the same venvs.
# Needs RabbitMQ on 127.0.0.1:5672 (guest) and rabbitmqctl (it makes and deletes a vhost per
# run), and redis-server for results: uses (and flushes) DB 15. ARGS=--quick for a short run.
.PHONY: bench-rabbitmq
bench-rabbitmq: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python -c 'import aiormq, redis' 2>/dev/null || $(BIN)/python -m pip install -q -e '.[amqp,redis]'
	$(PEERS_VENV)/bin/python benchmarks/rabbitmq_peers.py $(ARGS)
