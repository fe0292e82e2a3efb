# Clickstream — every entry point. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
CLI    := $(BIN)/clickstream
STAMP  := $(VENV)/.installed
JARS   := .stack/jars/.resolved
PYTEST_ARGS ?=

.PHONY: help setup images demo stream batch dev-dashboard up down status logs clean test test-unit test-integration bench lint

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

# ---------------------------------------------------------------- install (idempotent)
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "error: Python 3.11 is needed (found $$($(PYTHON) --version)); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(JARS): $(STAMP) $(wildcard services/stack/poms/*/pom.xml)
	$(CLI) setup
	@touch $@

setup: $(STAMP) $(JARS) ## Install everything once: venv, pinned packages, server jars, Java check

# Without DOCKER_HOST a private dockerd runs for the build only (docker.io is installed if
# missing, as root); each image is rebuilt only when one of its inputs changed.
images: setup ## Build the Docker images (Kafka, Cassandra, Spark, app) for testcontainers and compose
	$(CLI) images $(if $(ONLY),--only $(ONLY))

# ---------------------------------------------------------------- the pipeline
RATE ?= 500
DAYS ?= 7
EVENTS_PER_DAY ?= 200000
CSV_DIR ?= .stack/csv

SCENARIO ?=
SCENARIO_ARGS = $(foreach s,$(SCENARIO),--scenario $(s))
SCHEMA_VERSION ?=
SEED ?=
PIPELINE_ARGS = $(SCENARIO_ARGS) $(if $(SCHEMA_VERSION),--schema-version $(SCHEMA_VERSION)) $(if $(SEED),--seed $(SEED))

demo: setup ## The whole pipeline + live dashboard on the local stack (RATE=events/s, SCENARIO=flash-sale@+10m ..., SCHEMA_VERSION=1|2|mix, SEED=); Ctrl-C stops it
	$(CLI) demo --rate $(RATE) $(PIPELINE_ARGS)

stream: setup ## Kafka + Cassandra + producer + Spark streaming job, no dashboard (RATE=, SCENARIO=, SCHEMA_VERSION=, SEED= as for demo)
	$(CLI) stream --rate $(RATE) $(PIPELINE_ARGS)

batch: setup ## Polars writes DAYS CSV days to CSV_DIR, the Spark batch job fills the _batch tables
	$(CLI) up --only cassandra
	$(CLI) generate --days $(DAYS) --events-per-day $(EVENTS_PER_DAY) --out $(CSV_DIR) --seed 1
	$(CLI) process --mode batch --input $(CSV_DIR)

dev-dashboard: setup ## Cassandra + dashboard only, at http://127.0.0.1:5006 (DEMO=1 loads demo data into empty tables)
	$(CLI) up --only cassandra
	$(CLI) dashboard $(if $(DEMO),--seed-demo)

# ---------------------------------------------------------------- the local stack
up: setup ## Start Kafka + Cassandra (ONLY=kafka,cassandra,spark for a subset or Spark too)
	$(CLI) up $(if $(ONLY),--only $(ONLY))

down: ## Stop every local server (data is kept)
	@if [ -x $(CLI) ]; then $(CLI) down; else echo "nothing installed, nothing running"; fi

status: setup ## Show which servers answer (exit 1 if one does not)
	$(CLI) status

logs: setup ## Show a server's last log lines (NAME=kafka|cassandra|spark-master|spark-worker)
	$(CLI) logs $(or $(NAME),kafka)

clean: ## Stop the stack and delete its data, logs and checkpoints (keeps jars and venv)
	@if [ -x $(CLI) ]; then $(CLI) clean; else echo "nothing to clean"; fi

# ---------------------------------------------------------------- tests
# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q chromium fonts-liberation; \
	else \
		echo "error: the browser tests need Chromium at $(CHROMIUM): sudo apt-get install -y chromium fonts-liberation"; exit 1; \
	fi

# Unit and integration tests run in separate pytest processes: a JVM started by the unit
# tests' plain SparkSession cannot load the connector jars the integration tests need.
test: setup $(CHROMIUM) ## Run all tests: unit, then integration against real Kafka, Cassandra and Spark
	$(BIN)/pytest tests $(PYTEST_ARGS) $(if $(JUNIT),--junitxml=$(JUNIT)/unit.xml)
	$(BIN)/pytest integration_tests $(PYTEST_ARGS) $(if $(JUNIT),--junitxml=$(JUNIT)/integration.xml)

test-unit: setup ## Unit tests only (no servers)
	$(BIN)/pytest tests $(PYTEST_ARGS)

test-integration: setup $(CHROMIUM) ## Integration tests only (private servers on free ports; CLICKSTREAM_TEST_BACKEND=testcontainers for containers)
	$(BIN)/pytest integration_tests $(PYTEST_ARGS)

lint: setup ## ruff, and the dependency rule (import-linter contracts in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

bench: up ## Starts the stack, runs the benchmarks; writes bench/results/<time>.json (BENCH=name to pick one, QUICK=1)
	$(BIN)/python -m bench $(if $(BENCH),--only $(BENCH)) $(if $(QUICK),--quick)
