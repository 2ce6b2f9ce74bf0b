# carelog developer tasks. `make` alone lists them.
.DEFAULT_GOAL := help
VENV ?= .venv
BIN := $(VENV)/bin
PG15 ?= postgresql://postgres@127.0.0.1:5432/postgres

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: ## Create the venv and install carelog with the dev extras
	python3 -m venv $(VENV) && $(BIN)/pip install -e '.[dev]'

up: ## Run carelog (embedded PostgreSQL, migrations, API on 127.0.0.1:8000)
	$(BIN)/carelog up

demo: ## Run carelog with demo organizations, experts, patients and records
	$(BIN)/carelog up --demo

test: ## Run the whole test suite on the embedded PostgreSQL
	$(BIN)/pytest

test-pg15: ## Run the suite on the machine's PostgreSQL 15 ($$PG15)
	CARELOG_TEST_DATABASE_URL=$(PG15) $(BIN)/pytest -m "not slow"

lint: ## ruff lint and format check
	$(BIN)/ruff check src tests && $(BIN)/ruff format --check src tests

format: ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests && $(BIN)/ruff format src tests

typecheck: ## mypy --strict on src/
	$(BIN)/mypy

contracts: ## import-linter architecture contracts
	$(BIN)/lint-imports --no-cache

ci: ## What CI runs
	bash .ci/run

.PHONY: help install up demo test test-pg15 lint format typecheck contracts ci
