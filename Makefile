# One command each: setup, repro, test, lint (and benchmark). Each sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup repro test lint format benchmark benchmark-spark ui

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	touch $(STAMP)

repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

benchmark: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pipeline benchmark --nsmc-dir $(or $(NSMC_DIR),../shared/data/nsmc) --out-dir benchmarks

benchmark-spark: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/spark.py --model $(or $(MODEL),models:/korean-sentiment@champion) --nsmc-dir $(or $(NSMC_DIR),../shared/data/nsmc) --out benchmarks/spark.json

ui: setup
	$(BIN)/mlflow ui
