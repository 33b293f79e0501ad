# Agentry — one entry point for developers and CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV)/bin)
export PATH := $(BIN):$(PATH)
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install test test-unit test-cluster lint bench bench-tools run cluster-binaries postgres cluster-up cluster-down cluster-status demo crds clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed ## create .venv and install the project with its test extras

test: install cluster-binaries postgres ## run every suite: lint, unit, operator (kmock), then cluster and end-to-end
	$(MAKE) lint
	$(MAKE) test-unit
	$(MAKE) test-cluster

test-unit: install postgres ## fast suites only: unit and operator handler tests (no cluster)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not cluster and not e2e and not kind" tests/unit tests/operator

test-cluster: install cluster-binaries postgres ## suites on the local cluster (builds it the first time) and the fault-injection suite
	$(BIN)/pytest -m "cluster or e2e or kind or chaos" tests/cluster tests/e2e tests/chaos

lint: install ## ruff, mypy; promtool on the chart's alerts; kube-score on the chart and the operator's children
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PYTHON=$(BIN)/python hack/check-alert-rules.sh
	PYTHON=$(BIN)/python hack/kube-score.sh

bench: install cluster-binaries postgres bench-tools ## runtime (wrk), local cluster and operator benchmarks; results in docs/benchmarks.md
	$(BIN)/python -m benchmarks --cluster --operator

bench-tools: install ## what only the benchmarks need: wrk and valgrind from the OS packages, py-spy (the bench extra)
	hack/install-os-package.sh wrk wrk "the benchmarks' load generator"
	hack/install-os-package.sh valgrind valgrind "the instruction count of the runtime's request path"
	$(BIN)/pip install --quiet -e '.[test,bench]'

run: install ## the agent runtime alone, development mode, on http://127.0.0.1:8080
	AGENTRY_ENVIRONMENT=development AGENTRY_STATE_BACKEND=pvc AGENTRY_STATE_DIR=.state/dev \
	  $(BIN)/agentry-runtime serve

cluster-binaries: ## build the cluster's binaries (cached; promtool, kube-score: make lint) and install nftables if missing
	hack/install-host-packages.sh
	hack/build-binaries.sh >/dev/null

postgres: ## install PostgreSQL from the OS packages (postgresql, postgresql-client) when missing
	hack/install-postgres.sh

cluster-up: install cluster-binaries postgres ## start the local cluster (real control plane + process node) and its PostgreSQL
	$(BIN)/agentry-cluster up

cluster-down: install ## stop the local cluster started by cluster-up, and its PostgreSQL
	$(BIN)/agentry-cluster down

cluster-status: install ## show the local cluster's processes and kubeconfig
	$(BIN)/agentry-cluster status

demo: install postgres ## the whole product on a fresh machine: cluster, operator, an Agent, a reply (KIND=1 for kind)
	hack/demo.sh

crds: install ## regenerate crds/ and the chart's CRDs from the models
	$(BIN)/python -m agentry_operator.crd --write

clean: ## remove the virtual environment and caches (not the cluster binaries)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
