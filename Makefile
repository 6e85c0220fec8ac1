# containerizer: the single entry point. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_N ?= 300

.DEFAULT_GOAL := help
.PHONY: help install services runtime lint format typecheck unit integration test bench \
	bench-lifecycle bench-pulls bench-stats bench-burst bench-footprint bench-hosts up clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## Create .venv and install containerizer with its dev tools.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip' >/dev/null 2>&1 || scripts/services.sh --python-only
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

runtime:  ## Install Docker and Redis if missing and start dockerd (what `up` needs).
	scripts/services.sh --runtime

services:  ## Install and start everything the tests need: dockerd, redis, registries, test images.
	scripts/services.sh

lint: install  ## ruff check and ruff format --check.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install  ## mypy --strict on config, tasks and workers.
	$(BIN)/mypy

unit: install  ## Unit tests only (no services).
	$(BIN)/python -m pytest tests/unit

integration: install services  ## Integration tests only.
	$(BIN)/python -m pytest tests/integration

test: install services lint typecheck  ## Everything: services, lint, types, unit and integration tests.
	$(BIN)/python -m pytest
	@echo "--- the lifecycle and duplicate-delivery tests again, with RabbitMQ as the broker"
	CONTAINERIZER_TEST_BROKER=rabbitmq $(BIN)/python -m pytest tests/integration/test_lifecycle.py \
		tests/integration/test_idempotency.py

bench: bench-lifecycle bench-pulls bench-stats bench-burst bench-footprint bench-hosts  ## All benchmarks (figures in README.md).

bench-lifecycle: install services  ## create+start+stop+remove: tasks vs docker-py.
	$(BIN)/python -m bench.lifecycle -n $(BENCH_N)

bench-pulls: install services  ## 20 concurrent pulls of one 100 MB image: service vs docker-py.
	$(BIN)/python -m bench.pulls -n 20

bench-stats: install services  ## Stats sweeps of 100, 250, 500 containers vs docker stats and docker-py.
	$(BIN)/python -m bench.stats --plot bench/stats.png

bench-burst: install services  ## Bursts of 50 and 200 runs and removes vs docker-py; 1,000 mixed tasks.
	$(BIN)/python -m bench.burst -n 50 -n 200 --rounds 3 --plot bench/burst.png

bench-footprint: install services  ## PSS of everything `up` runs, idle and with 100 containers.
	$(BIN)/python -m bench.footprint -n 100

bench-hosts: install services  ## 40 runs over two hosts (a private dockerd) vs one.
	$(BIN)/python -m bench.hosts

up: install runtime  ## Run the service: workers, beat and Flower (Ctrl-C stops it).
	$(BIN)/containerizer up

clean:  ## Remove the virtualenv and caches.
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info

# Offline image builds (Dockerfile, PIP_INSTALL_ARGS): wheels of containerizer, every dependency and
# setuptools (its build backend), made by .venv's Python, which must be the image's minor version
# (3.11). async-timeout is what redis-py needs below Python 3.11.3 (Debian 12 has 3.11.2); pip
# leaves it out when .venv's Python is newer. The directory ignores itself in git.
.PHONY: wheels
wheels: install  ## Wheels for an offline `docker build` (docker/wheels).
	$(BIN)/pip wheel -q -w docker/wheels . 'setuptools>=77' 'async-timeout>=4.0.3'
	@printf '*\n' > docker/wheels/.gitignore
