"""How the training stage runs fast on a CPU without changing what it computes.

Two things dominate a LoRA step on a 2-core CPU, and both are fixed here, beside TRL rather than instead of it:

* **Precision.** The frozen base runs its matmuls under bf16 autocast where the CPU has bf16 instructions (AMX or
  AVX512-BF16: 2.4x the fp32 step on the AMD EPYC of 2026-12-03) or on a CUDA device that supports bf16; the LoRA
  weights, their gradients and the optimizer state stay fp32 (PEFT upcasts adapter weights, autocast only touches
  the matmuls). Without bf16 instructions autocast is slower than fp32, so the stage stays fp32 and the record says
  why (`precision_reason`).
* **The shared prompt.** A task's prompt is mostly the same text for every example (support-intent: 242 of ~286
  tokens are the instruction and the intent list). `SharedPrefixSFTTrainer` runs the batch's common prefix once,
  repeats its key/value cache over the batch and runs only the rows' own tokens on top of it. The loss, and the
  gradient through the prefix (autograd sums it over the repeated cache), are the same as the full forward's up to
  float rounding: the attention each token sees is unchanged. Rows whose prefixes differ (or a model whose attention
  cannot take a cache in training) fall back to TRL's own `compute_loss`. On support-intent at batch 16 the tokens
  a step computes drop from ~4,600 to ~950.

* **The LM head on the answer only.** TRL's fused LM head scores only the labelled positions on CUDA/XPU, but on
  every other device it scores every position (to keep tile shapes fixed for compilers like Neuron's). On a CPU
  that is the whole prompt through a 49,152-word vocabulary, forward and backward: a bare TRL step on
  support-intent spends most of its time there. `train.score_only_answers` makes TRL take its compact path on the
  CPU too (eager torch recompiles nothing); the loss is the same, as the ignored positions contribute zero.

* **The frozen weights cast once.** Under autocast every matmul casts its fp32 weight to bf16 on every call: the
  frozen base weights do not require grad, so autocast's cast cache (leaf tensors that require grad) never keeps
  them. In a profile of support-intent steps (2026-12-03) copies took 14% of the time; casting once cut them by a third.
  `cast_frozen_linears` stores the frozen Linear weights of the LoRA-wrapped layers in bf16 once: the values are
  the ones autocast would make, so the matmuls are the same; embeddings, norms, the LM head and the LoRA weights
  stay fp32, and the merge reloads the fp32 base from disk.

Why not TRL's `padding_free` or packing: both need FlashAttention (varlen kernels) to keep sequences apart, which
the CPU build of torch lacks; with SDPA or eager attention packed examples would attend to each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from slmexp.shared_prefix import MIN_SHARED_PREFIX, repeated_prefix_cache

_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The CPU's bf16 instruction sets (/proc/cpuinfo flags), [] where it has none or the file cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [f for f in _BF16_FLAGS if f in flags]


def choose_precision(asked: str, device: str, cpuinfo: str | None = None) -> tuple[str, str]:
    """(`bf16` or `fp32`, why) for `train.precision` = auto | bf16 | fp32 on `device` (cpu or cuda)."""
    if asked == "fp32":
        return "fp32", "train.precision=fp32"
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16", f"train.precision={asked}: the CUDA device supports bf16"
        if asked == "bf16":
            from slmexp.origin import fail

            raise fail("train.precision", "bf16 asked for, but this CUDA device does not support it; use auto or fp32")
        return "fp32", "train.precision=auto: this CUDA device lacks bf16"
    flags = cpu_bf16_flags(cpuinfo)
    if flags:
        return "bf16", f"train.precision={asked}: the CPU has {'+'.join(flags)} (bf16 autocast, fp32 LoRA weights)"
    if asked == "bf16":  # emulated bf16 works, slowly: the user asked for it, so it runs, and the record says so
        return "bf16", "train.precision=bf16 on a CPU without amx_bf16/avx512_bf16 (emulated: slower than fp32)"
    return "fp32", "train.precision=auto: the CPU has no amx_bf16/avx512_bf16, where bf16 autocast is slower than fp32"


def shared_prefix_len(input_ids: Any, labels: Any, attention_mask: Any | None = None) -> int:
    """Length of the prefix every row of the batch shares, stopping before the first scored position.

    The prefix ends at most one token before the earliest label (`labels != -100`), so every scored token is
    predicted from a position in the rows' own part (logit at t predicts token t+1), and at the first padding
    position of any row. 0 when the rows share less than `MIN_SHARED_PREFIX` tokens or the batch has one row.
    """

    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0)
    if attention_mask is not None:
        same &= attention_mask.bool().all(dim=0)
    differs = (~same).nonzero()
    n = int(differs[0]) if len(differs) else int(input_ids.shape[1])
    scored = (labels != -100).any(dim=0).nonzero()
    if len(scored):
        n = min(n, int(scored[0]) - 1)
    n = max(n, 0)
    return n if n >= MIN_SHARED_PREFIX else 0


def cast_frozen_linears(model: Any, dtype: Any) -> int:
    """Store the frozen `base_layer` Linear weights (and biases) of PEFT-wrapped layers in `dtype`; how many.

    Only for a model trained under autocast to that dtype, where it changes no matmul (see the module docstring).
    """
    import torch

    n = 0
    for module in model.modules():
        base = getattr(module, "base_layer", None)
        if not isinstance(base, torch.nn.Linear) or base.weight.requires_grad or base.weight.dtype == dtype:
            continue
        base.weight.data = base.weight.data.to(dtype)
        if base.bias is not None and not base.bias.requires_grad:
            base.bias.data = base.bias.data.to(dtype)
        n += 1
    return n


@contextmanager
def answers_only_lm_head() -> Iterator[None]:
    """While active, TRL's fused LM head scores only labelled positions on the CPU as it does on CUDA.

    TRL decides with `trl.trainer.utils._use_triton(device)` (a private name, read at each forward); the kernel
    itself keeps its own torch tiles on CPU. If TRL renames it, this does nothing (and the speed-up is lost, not the
    correctness): see docs/footguns.md.
    """
    import trl.trainer.utils as tu

    orig = getattr(tu, "_use_triton", None)
    if orig is None:
        yield
        return
    tu._use_triton = lambda device: device.type == "cpu" or orig(device)
    try:
        yield
    finally:
        tu._use_triton = orig


def make_trainer_class() -> type:
    """`SharedPrefixSFTTrainer`: TRL's SFTTrainer whose loss runs a batch's common prompt prefix once.

    Built on first use (TRL is imported lazily, as everywhere in slmexp). Counters on the instance feed the record:
    `shared_prefix_batches`, `full_batches`, and tokens computed vs tokens the batches hold.
    """
    from trl import SFTTrainer

    class SharedPrefixSFTTrainer(SFTTrainer):
        shared_prefix = True
        score_only_answers = True
        shared_prefix_batches = 0
        full_batches = 0
        tokens_in_batches = 0
        tokens_computed = 0

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            ids, mask, labels = inputs["input_ids"], inputs.get("attention_mask"), inputs.get("labels")
            held = int(mask.sum()) if mask is not None else int(ids.numel())
            n = 0
            if (self.shared_prefix and labels is not None and mask is not None and "position_ids" not in inputs
                    and not self.args.gradient_checkpointing):
                n = shared_prefix_len(ids, labels, mask)
            if self.model.training:
                self.tokens_in_batches += held
            if n == 0:
                if self.model.training:
                    self.full_batches += 1
                    self.tokens_computed += held
                with answers_only_lm_head() if self.score_only_answers else nullcontext():
                    return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            batch = int(ids.shape[0])
            cache = repeated_prefix_cache(model, ids[:1, :n], mask[:1, :n], batch)
            rest = {"input_ids": ids[:, n:], "attention_mask": mask, "labels": labels[:, n:],
                    "past_key_values": cache}
            if self.model.training:
                self.shared_prefix_batches += 1
                self.tokens_computed += n + int(mask[:, n:].sum())
            with answers_only_lm_head() if self.score_only_answers else nullcontext():
                return super().compute_loss(model, rest, return_outputs, num_items_in_batch)

    return SharedPrefixSFTTrainer
