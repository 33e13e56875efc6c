# Parley: two commands on a fresh machine. `make run` starts everything; `make test` checks it.
SHELL := /bin/bash
PYTHON ?= python3
# uv from PATH, or the one `make uv` installs into this Python (run as `python3 -m uv`)
UV ?= $(or $(shell command -v uv 2>/dev/null),$(PYTHON) -m uv)

.PHONY: run test lint format typecheck imports contracts-check unit integration bench sync uv clean help k8s-topics

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

uv: ## install uv if it is missing
	@$(UV) --version >/dev/null 2>&1 || { echo "installing uv"; \
		$(PYTHON) -m pip install --quiet uv 2>/dev/null || \
		$(PYTHON) -m pip install --quiet --user --break-system-packages uv; }

sync: uv ## create .venv with every workspace member, exactly as uv.lock pins it
	@$(UV) sync --frozen --all-packages --group dev --quiet

run: sync ## start PostgreSQL, Redis, the Kafka broker and every service (Ctrl-C stops all)
	@$(UV) run --frozen parley dev

lint: sync ## ruff: the checks, and the one format every file is written in
	@$(UV) run --frozen ruff check $(wildcard libs services tests bench deploy)
	@$(UV) run --frozen ruff format --check --quiet $(wildcard libs services tests bench deploy)

format: sync ## rewrite every file in ruff's format (what `make lint` checks)
	@$(UV) run --frozen ruff format $(wildcard libs services tests bench deploy)

typecheck: sync ## mypy (strict for libs/)
	@$(UV) run --frozen mypy libs/contracts/src libs/servicekit/src libs/parley/src $(wildcard services/*/src)

imports: sync ## import-linter: who may import whom
	@$(UV) run --frozen lint-imports

contracts-check: sync ## the committed event schema snapshot matches the code
	@$(UV) run --frozen python -m contracts.compatibility

test: lint typecheck imports contracts-check ## everything CI runs: lint, types, imports, all tests
	@$(UV) run --frozen pytest

unit: sync ## only the tests that need no infrastructure
	@$(UV) run --frozen pytest -m "not integration"

MARKS ?= integration
integration: sync ## only the tests over real PostgreSQL, Redis and Kafka (MARKS: another -m)
	@$(UV) run --frozen pytest -m "$(MARKS)"

bench: sync ## the event pipeline benchmark (prints figures; never fails on timings)
	@$(UV) run --frozen python bench/event_pipeline.py

k8s-topics: sync ## regenerate deploy/k8s/base/kafka/topics.yaml from the topic registry
	@$(UV) run --frozen python deploy/kafka/topics.py k8s > deploy/k8s/base/kafka/topics.yaml

clean: ## remove the embedded data (.parley/) and caches
	rm -rf .parley .pytest_cache .mypy_cache .ruff_cache
