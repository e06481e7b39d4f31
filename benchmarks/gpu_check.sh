#!/usr/bin/env bash
# GPU readiness: the paths no CPU test covers, each run once end to end on SmolLM2-135M, one line each:
#   vllm         runtime=vllm (the CUDA build in .venv-vllm; `make vllm-env` builds it on a GPU machine)
#   bnb-nf4      quantization=bnb-nf4 served by transformers (bitsandbytes 4-bit on CUDA)
#   bf16-lora    adapter=lora in bfloat16 on one GPU
#   qlora        adapter=qlora (4-bit base, bf16 compute)
#   ddp-N        adapter=lora through accelerate on every GPU (configs/accelerate/multi-gpu-ddp.yaml), if N > 1
# A few minutes on one GPU. Refuses (exit 2) on a machine without a CUDA GPU or with a CPU build of torch.
# Used by: bash benchmarks/gpu_check.sh [extra overrides...]     (env: PY, VLLM_PY, OUT)
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python3}
VLLM_PY=${VLLM_PY:-.venv-vllm/bin/python}
OUT=${OUT:-outputs/gpu_check/$(date +%Y%m%d-%H%M%S)}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false WANDB_MODE=offline

command -v nvidia-smi >/dev/null 2>&1 || { echo "gpu_check: no NVIDIA driver (nvidia-smi) on this machine: nothing to check" >&2; exit 2; }
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if [ "${NGPU:-0}" -lt 1 ]; then
  echo "gpu_check: torch sees no CUDA GPU ($("$PY" -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1));" \
       "a CPU build? install the CUDA one: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" >&2
  exit 2
fi
echo "gpu_check: $NGPU GPU(s): $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1); runs in $OUT"

COMMON=(eval.limit=100 eval.bench.n=20 eval.bench.warmup=2 train.max_steps=30 "$@")
FAILED=0

# line NAME RUN_DIR: one line from the run's record (status, accuracy, speed, training), or FAIL with the log's tail
line() {
  local name=$1 dir=$2 rc=$3
  if [ "$rc" != 0 ] || [ ! -f "$dir/run.json" ]; then
    echo "$name: FAIL (exit $rc): $(tail -n 3 "$dir.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300)"; FAILED=1; return
  fi
  "$PY" - "$name" "$dir/run.json" <<'EOF'
import json, sys
name, rec = sys.argv[1], json.load(open(sys.argv[2]))
m, s, t = rec.get("metrics") or {}, rec.get("speed") or {}, rec.get("train") or {}
acc = (m.get("values") or {}).get(m.get("primary"))
parts = [rec["run"]["status"], f"{m.get('primary')}={acc:.3f} (n={m.get('n_examples')})" if acc is not None else "no metric"]
if (s.get("decode_tokens_per_s") or {}).get("p50"):
    parts.append(f"decode {s['decode_tokens_per_s']['p50']:.0f} tok/s")
if (s.get("latency_ms") or {}).get("p50"):
    parts.append(f"latency p50 {s['latency_ms']['p50']:.0f} ms")
if s.get("gpu_max_memory_mb"):
    parts.append(f"GPU peak {s['gpu_max_memory_mb']:.0f} MiB")
if t:
    dp = t.get("data_parallel") or {}
    tps = t["tokens_seen"] / t["wall_s"] if t.get("tokens_seen") and t.get("wall_s") else None
    parts.append(f"train {t.get('steps')} steps loss {t.get('first_train_loss'):.3f}->{t.get('last_train_loss'):.3f}"
                 + (f", {tps:.0f} tok/s" if tps else "") + (f", {dp['processes']} procs {dp['backend']}" if dp else ""))
print(f"{name}: " + ", ".join(parts))
EOF
}

run() {  # run NAME PYTHON-OR-LAUNCHER... -- overrides
  local name=$1; shift
  local dir="$OUT/$name"
  mkdir -p "$OUT"
  "$@" "${COMMON[@]}" "hydra.run.dir=$dir" > "$dir.log" 2>&1
  line "$name" "$dir" $?
}

if [ -x "$VLLM_PY" ] && "$VLLM_PY" -c "import vllm" >/dev/null 2>&1; then
  run vllm "$VLLM_PY" -m slmexp runtime=vllm model.dtype=bfloat16
else
  echo "vllm: SKIP ($VLLM_PY has no vllm: run \`make vllm-env\` on this machine)"; FAILED=1
fi
run bnb-nf4 "$PY" -m slmexp arm=quant-bnb-nf4
run bf16-lora "$PY" -m slmexp adapter=lora model.dtype=bfloat16
run qlora "$PY" -m slmexp adapter=qlora adapter.base_quantization.bnb_4bit_compute_dtype=bfloat16
if [ "$NGPU" -gt 1 ]; then
  run "ddp-$NGPU" accelerate launch --config_file configs/accelerate/multi-gpu-ddp.yaml --num_processes "$NGPU" \
    -m slmexp adapter=lora model.dtype=bfloat16
else
  echo "ddp: SKIP (one GPU: multi-GPU accelerate needs two or more)"
fi
exit $FAILED
