# One command each: setup, repro, test, lint (and benchmark). Each sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The team's tracking server: state folder, and more options (e.g. SERVER_ARGS="--port 5002").
SERVER_DIR  ?= .mlflow-server
SERVER_ARGS ?=

.PHONY: setup repro test test-unit lint format benchmark benchmark-spark ui server server-stop

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,serve,server,spark]"
	$(BIN)/python -m pipeline plots-template
	touch $(STAMP)

repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

test-unit: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n 2 -m "not e2e and not spark and not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python tools/stage_deps.py

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The long jobs reuse an installed environment (setup runs only when there is none): a reinstall
# would rebuild the package, which needs the network. Without NSMC_DIR, `benchmark` downloads NSMC
# and checks its sha256 (params.yaml data.nsmc_dir: null).
INSTALLED := $(if $(wildcard $(STAMP)),,setup)

benchmark: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pipeline benchmark $(if $(NSMC_DIR),--nsmc-dir $(NSMC_DIR)) --out-dir benchmarks

benchmark-spark: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/spark.py --model $(or $(MODEL),models:/korean-sentiment@champion) --nsmc-dir $(or $(NSMC_DIR),../shared/data/nsmc) --out benchmarks/spark.json

ui: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pipeline ui

server: setup
	$(BIN)/python -m pipeline tracking-server start --dir $(SERVER_DIR) $(SERVER_ARGS)

server-stop: setup
	$(BIN)/python -m pipeline tracking-server stop --dir $(SERVER_DIR)
