"""Training throughput: slmexp's LoRA training now, slmexp's fp32 path before issue 16, and a bare TRL SFTTrainer,
on the same SmolLM2-135M, the same support-intent examples, one epoch each, in one run.

    python benchmarks/train_throughput.py [--examples 96] [--val 48]

Arms (LoRA r16 on all linear layers, lr 1e-3, cosine, warm-up 5%, seed 1234, one epoch over the first N rows):
  slmexp-fp32-before  slmexp.train.train with the pre-issue-16 defaults: fp32, batch 4, random order, no shared prefix,
                      TRL's LM head over every position, LoRA dropout 0.05
  slmexp              slmexp.train.train with today's defaults (train/default.yaml): precision auto, batch 16,
                      group_by_length, shared prompt prefix, LM head on the answer tokens only
  bare-trl            `trl.SFTTrainer` with its own defaults (bf16 autocast on CPU) at batch 16, same data and LoRA
                      (dropout 0.05, as slmexp had before)
Throughput = tokens trained (padding excluded) / wall time of `trainer.train()` (no evaluation inside). Quality = the
mean completion-token loss of each trained adapter on the first --val validation rows, computed by one fp32 function
for all arms (so the precision and the prefix trick cannot flatter their own number).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import compose, machine, resolved_default_model

COMMON = ["adapter=lora", "train.num_train_epochs=1", "train.max_steps=0", "train.eval_steps=0", "train.merge=false",
          "train.logging_steps=1", "train.warmup_ratio=0.05", "train.learning_rate=1e-3"]
BEFORE = ["train.precision=fp32", "train.per_device_train_batch_size=4", "train.sampling=random",
          "train.shared_prefix=false", "train.score_only_answers=false", "adapter.peft.lora_dropout=0.05"]


def slmexp_arm(extra: list[str], n: int, base: Path, out: Path) -> tuple[dict[str, Any], Path]:
    from slmexp.tasks import load_task
    from slmexp.train import train

    cfg = compose([*COMMON, f"train.train_limit={n}", *extra, f"paths.output_dir={out}"])
    task = load_task(cfg.task, ["train", "validation"])
    res = train(cfg, task, base, out)
    b = res.block
    return {"tokens": b["tokens_seen"], "wall_s": b["wall_s"], "steps": b["steps"], "batch": b["batch_size"],
            "precision": b["precision"], "shared": b["shared_prefix"]}, res.adapter_dir


def bare_trl_arm(n: int, base: Path, out: Path) -> tuple[dict[str, Any], Path]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from slmexp.tasks import load_task
    from slmexp.train import sft_examples

    cfg = compose([*COMMON, f"paths.output_dir={out}"])
    task = load_task(cfg.task, ["train"])
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype="float32")
    args = SFTConfig(output_dir=str(out / "ckpt"), num_train_epochs=1, per_device_train_batch_size=16,
                     learning_rate=1e-3, lr_scheduler_type="cosine", warmup_steps=0.05, max_length=512,
                     use_cpu=True, report_to=[], save_strategy="no", seed=1234, logging_steps=1,
                     include_num_input_tokens_seen=True)
    trainer = SFTTrainer(model=model, args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(sft_examples(task, "train", True, n)),
                         peft_config=LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.05,
                                                target_modules="all-linear"))
    t0 = time.perf_counter()
    out_ = trainer.train()
    wall = time.perf_counter() - t0
    seen = [h["num_input_tokens_seen"] for h in trainer.state.log_history if "num_input_tokens_seen" in h]
    trainer.model.save_pretrained(out / "adapter")
    return {"tokens": int(seen[-1]), "wall_s": round(wall, 2), "steps": out_.global_step, "batch": 16,
            "precision": "bf16" if args.bf16 else "fp32", "shared": None}, out / "adapter"


def val_loss(base: Path, adapter: Path, rows: list[dict]) -> float:
    """Mean NLL of the completion tokens (the answer), fp32, full forward, one row at a time."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype="float32"), adapter).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for r in rows:
            prompt = tok.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True)
            full = tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=True)
            prompt = prompt if isinstance(prompt, list) else prompt["input_ids"]
            full = full if isinstance(full, list) else full["input_ids"]
            ids = torch.tensor([full])
            labels = ids.clone()
            labels[0, : len(prompt)] = -100
            n = int((labels[0, 1:] != -100).sum())
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=96)
    ap.add_argument("--val", type=int, default=48)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from slmexp.tasks import load_task
    from slmexp.train import sft_examples

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose([f"paths.output_dir={tmp}"])
        base = resolved_default_model(cfg).path
        val = sft_examples(load_task(cfg.task, ["validation"]), "validation", True, args.val)
        results: dict[str, dict[str, Any]] = {}
        for name in ("slmexp", "bare-trl", "slmexp-fp32-before"):
            out = Path(tmp) / name
            if name == "bare-trl":
                res, adapter = bare_trl_arm(args.examples, base, out)
            else:
                res, adapter = slmexp_arm([] if name == "slmexp" else BEFORE, args.examples, base, out)
            res["val_loss"] = val_loss(base, adapter, val)
            res["tok_s"] = res["tokens"] / res["wall_s"]
            results[name] = res
            print(f"  {name:19s} {res['tok_s']:7.1f} tok/s  ({res['tokens']} tokens in {res['wall_s']:.1f} s, "
                  f"{res['steps']} steps of {res['batch']}, {res['precision']})  val loss {res['val_loss']:.4f}"
                  + (f"  shared prefix: {res['shared']}" if res["shared"] else ""), flush=True)
    print(f"machine: {machine()}; SmolLM2-135M + LoRA r16, support-intent, {args.examples} train rows, 1 epoch; "
          f"val loss on {args.val} validation rows (fp32)")
    new, before, bare = results["slmexp"], results["slmexp-fp32-before"], results["bare-trl"]
    print(f"ratio slmexp / slmexp-fp32-before = {new['tok_s'] / before['tok_s']:.2f}x  (goal >= 3x)")
    print(f"ratio slmexp / bare-trl           = {new['tok_s'] / bare['tok_s']:.2f}x")


if __name__ == "__main__":
    main()
