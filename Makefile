# lhsoak — the two commands a user needs are `make soak` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= auto

.PHONY: help setup test unit lint fmt soak bench report nightly-kind nightly-k3d clean

help:
	@echo "make soak    run the soak suite (against the built-in lab unless KUBECONFIG/INVENTORY are given)"
	@echo "make test    lint, type-check and run the harness's own tests"
	@echo "make setup   create $(VENV) and install everything the project needs"
	@echo "make lint    ruff (lint + format check), mypy, import-linter"
	@echo "make bench   benchmarks; writes reports/bench/<date>.json"
	@echo "make report  the Allure HTML report of the newest run (RUN=<run-id> for another)"
	@echo "make nightly-kind / nightly-k3d   build a kind/k3d cluster with Longhorn, soak it, report, delete it"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,aws]'
	@touch $@

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check lib tests suites bench conftest.py
	$(BIN)/ruff format --check lib tests suites bench conftest.py
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: setup
	$(BIN)/ruff check --fix lib tests suites bench conftest.py
	$(BIN)/ruff format lib tests suites bench conftest.py

# The Allure command line and the Chromium driver for the report check, pinned by the lockfile.
REPORT_TOOLS := infra/report/node_modules/.package-lock.json
$(REPORT_TOOLS): infra/report/package-lock.json
	npm ci --prefix infra/report --no-audit --no-fund --ignore-scripts

RUN ?=
report: setup $(REPORT_TOOLS)
	$(BIN)/lhsoak report $(RUN) --html

unit: setup $(REPORT_TOOLS)
	$(BIN)/pytest -n $(PYTEST_WORKERS) tests suites/regression

test: lint unit

bench: setup
	$(BIN)/python -m bench $(BENCH)

# `make soak` runs against the built-in lab unless a cluster is named on the command line:
#   make soak KUBECONFIG=~/.kube/lab INVENTORY=inventory.yaml [SOAK_ARGS="--plan worker --iterations 10"]
# (a KUBECONFIG merely exported in the shell does not count: the lab is the safe default).
LAB_PROFILE ?= healthy
SUITE ?= soak
SOAK_TARGET = $(if $(filter command line,$(origin KUBECONFIG)),--kubeconfig $(KUBECONFIG)) $(if $(INVENTORY),--inventory $(INVENTORY))
soak: setup
	set -f; $(BIN)/lhsoak soak --suite $(SUITE) --lab-profile $(LAB_PROFILE) $(SOAK_TARGET) -- $(SOAK_ARGS)

NIGHTLY_ARGS ?=
nightly-kind: setup $(REPORT_TOOLS)
	$(BIN)/lhsoak provision nightly --provider kind $(NIGHTLY_ARGS)

nightly-k3d: setup $(REPORT_TOOLS)
	$(BIN)/lhsoak provision nightly --provider k3d $(NIGHTLY_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
