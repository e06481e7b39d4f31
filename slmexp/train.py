"""Training stage: LoRA / DoRA / QLoRA supervised fine-tuning with TRL's SFTTrainer and PEFT.

Examples are conversational prompt/completion pairs built by `slmexp.tasks.chat_messages`, the same rendering
the evaluation uses, so the model is trained on exactly the context lm-eval later gives it. The loss covers only
the answer tokens (`completion_only_loss`), which works with any chat template (SmolLM2's has no
`{% generation %}` markers for `assistant_only_loss`). Models without a chat template get the plain prompt plus
`task.answer_prefix`, as in evaluation.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp import distributed
from slmexp.errors import DataError
from slmexp.origin import fail
from slmexp.tasks import Task, chat_messages, render_prompt, render_target
from slmexp.train_speed import cast_frozen_linears, choose_precision, make_trainer_class
from slmexp.train_stop import make_callback


@dataclass
class TrainResult:
    adapter_dir: Path
    merged_dir: Path | None
    block: dict[str, Any]


def sft_examples(task: Task, split: str, use_chat_template: bool, limit: int | None = None) -> list[dict]:
    """Rows as TRL prompt/completion examples (conversational when the model has a chat template)."""
    rows = task.splits.get(split) or []
    if limit:
        rows = rows[: int(limit)]
    out = []
    many = task.task_kind.sft_rows  # a kind whose row is several examples (agent: one per assistant turn)
    if many:
        if not use_chat_template:
            raise fail("task.kind", f"a {task.kind} task trains on conversations: the model needs a chat template")
        from slmexp.registry import load_ref

        return [ex for row in rows for ex in load_ref(many)(task.cfg, row)]
    for row in rows:
        if use_chat_template:
            prompt, answer = chat_messages(task.cfg, row, with_answer=True)
            out.append({"prompt": [prompt], "completion": [answer]})
        else:
            prefix = task.cfg.get("answer_prefix") or ""
            out.append({"prompt": f"{render_prompt(task.cfg, row)}\n{prefix}",
                        "completion": f" {render_target(task.cfg, row)}"})
    return out


def _check_lengths(rows: list[dict], tokenizer: Any, max_length: int, task: Task) -> None:
    """Refuse examples longer than train.max_length: TRL would cut them from the right, i.e. train on answers with
    their end (the closing brace of a JSON answer) missing."""
    lengths = []
    for ex in rows:
        if isinstance(ex["prompt"], list):
            ids = tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=True)
            ids = ids if isinstance(ids, list) else ids["input_ids"]
        else:
            ids = tokenizer(ex["prompt"] + ex["completion"])["input_ids"]
        lengths.append(len(ids))
    too_long = [n for n in lengths if n > max_length]
    if too_long:
        raise fail("train.max_length", f"{len(too_long)} of {len(rows)} train examples of {task.name} are longer than "
                   f"{max_length} tokens (longest {max(lengths)}); raise train.max_length (or task.train_max_length)")


def _check_target_modules(model: Any, target_modules: Any) -> None:
    if target_modules in (None, "all-linear"):
        return
    import torch

    wanted = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    missing = [t for t in wanted if t not in linear]
    if missing:
        raise fail("adapter.peft.target_modules",
                   f"{missing} not found in the model; its linear modules are {linear} (or use all-linear)")


def _losses(history: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    return train, evals


def train(cfg: DictConfig, task: Task, base_path: Path, out_dir: Path) -> TrainResult:
    """Fine-tune `base_path` on the task's train split; save the adapter and (if `train.merge`) a merged model."""
    import torch
    from hydra.utils import instantiate

    tcfg, acfg = cfg.train, cfg.adapter
    out_dir = Path(out_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trust = bool(cfg.model.get("trust_remote_code", False))
    tokenizer = _tokenizer(base_path, trust)
    use_chat = bool(tokenizer.chat_template)

    train_rows = sft_examples(task, "train", use_chat, tcfg.get("train_limit"))
    if not train_rows:
        raise DataError(f"task.data.train: {task.files.get('train')}: the train split is empty")
    eval_rows = sft_examples(task, "validation", use_chat, tcfg.get("eval_limit")) if tcfg.eval_steps else []
    _check_lengths(train_rows, tokenizer, int(tcfg.max_length), task)

    model, quant, dtype = _load_base(cfg, base_path, device, trust)
    peft_cfg = OmegaConf.to_container(acfg.peft, resolve=True)
    _check_target_modules(model, peft_cfg.get("target_modules"))
    peft_config = instantiate(peft_cfg)

    max_steps = int(tcfg.max_steps or -1)
    precision, precision_reason = choose_precision(str(tcfg.get("precision") or "auto"), device)
    stopper, trainer = _trainer(tcfg, model, tokenizer, peft_config, train_rows, eval_rows,
                                _sft_config(tcfg, out_dir, max_steps, precision, device, bool(eval_rows)))
    if precision == "bf16" and quant is None:  # autocast would cast these on every matmul (slmexp.train_speed)
        cast_frozen_linears(trainer.model, torch.bfloat16)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    t0 = time.perf_counter()
    output = trainer.train()
    wall_s = time.perf_counter() - t0
    if distributed.is_worker():  # rank > 0 under accelerate launch: rank 0 saves, merges and records
        return TrainResult(out_dir, None, {})
    history = trainer.state.log_history
    train_losses, eval_losses = _losses(history)
    stop_reason = stopper.reason(trainer.state, max_steps, float(tcfg.num_train_epochs))
    epochs = round(float(trainer.state.epoch or 0.0), 3)
    tokens = _tokens_seen(history)
    restored = stopper.restore_best(trainer.model) if eval_losses else False
    prefix_stats, score_only = _speed_ups(trainer)

    adapter_dir, merged_dir = _save(trainer, tokenizer, history, out_dir, base_path, bool(tcfg.merge), dtype, trust)
    del trainer, model

    losses = [v for _, v in train_losses]
    block = {
        "adapter": str(acfg.name),
        "steps": int(output.global_step),
        "epochs": epochs,
        "train_examples": len(train_rows),
        **_loss_figures(losses, eval_losses, stopper, restored, float(output.training_loss)),
        "stop_reason": stop_reason,
        "best_step": stopper.best_step if restored else None,  # the kept adapter is this step's (best eval_loss)
        "examples_seen": round(epochs * len(train_rows)) if epochs is not None else None,
        "tokens_seen": tokens,
        "wall_s": round(wall_s, 2),
        "samples_per_s": round(float(output.metrics.get("train_samples_per_second", 0.0)), 3),
        "tokens_per_s": round(tokens / wall_s, 1) if tokens and wall_s else None,  # incl. evaluations
        "precision": precision,
        "precision_reason": precision_reason,
        "sampling": str(tcfg.get("sampling") or "random"),
        "batch_size": int(tcfg.per_device_train_batch_size) * int(tcfg.gradient_accumulation_steps),
        "shared_prefix": prefix_stats,  # what the shared-prompt forward saved (slmexp.train_speed)
        "score_only_answers": score_only,  # the LM head on the answer tokens only (CPU; slmexp.train_speed)
        "trainable_params": int(trainable),
        "total_params": int(total),
        "trainable_pct": round(100.0 * trainable / total, 4) if total else None,
        "device": device,
        "base_quantization": base_quant_type(quant),
        "chat_template": use_chat,
        "adapter_dir": str(adapter_dir),
        "merged_dir": str(merged_dir) if merged_dir else None,
    }
    _refuse_divergence(history, losses, tcfg.learning_rate)
    return TrainResult(adapter_dir, merged_dir, block)


def _tokenizer(base_path: Path, trust: bool) -> Any:
    """The base's tokenizer; padding with EOS where it has no pad token (SmolLM2 has one, many bases do not)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path, trust_remote_code=trust)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _speed_ups(trainer: Any) -> tuple[dict[str, Any], bool]:
    """What the shared-prompt forward saved, and whether the LM head scored only the answers (slmexp.train_speed)."""
    return ({"enabled": trainer.shared_prefix, "batches": trainer.shared_prefix_batches,
             "other_batches": trainer.full_batches, "tokens_in_batches": trainer.tokens_in_batches,
             "tokens_computed": trainer.tokens_computed}, trainer.score_only_answers)


def _trainer(tcfg: DictConfig, model: Any, tokenizer: Any, peft_config: Any, train_rows: list[dict[str, Any]],
             eval_rows: list[dict[str, Any]], args: Any) -> tuple[Any, Any]:
    """(early-stopping callback, slmexp's SFTTrainer): shared-prompt forwards and answer-only LM head as set."""
    from datasets import Dataset

    stop_cfg = tcfg.get("early_stopping") or {}
    stopper = make_callback(int(stop_cfg.get("patience") or 0), float(stop_cfg.get("min_delta") or 0.0),
                            float(stop_cfg.get("min_epochs") or 0.0))
    trainer = make_trainer_class()(
        model=model, args=args, processing_class=tokenizer, peft_config=peft_config,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        callbacks=[stopper],
    )
    trainer.shared_prefix = bool(tcfg.get("shared_prefix", True))
    trainer.score_only_answers = bool(tcfg.get("score_only_answers", True))
    return stopper, trainer


def _save(trainer: Any, tokenizer: Any, history: list[dict[str, Any]], out_dir: Path, base_path: Path, merge: bool,
          dtype: Any, trust: bool) -> tuple[Path, Path | None]:
    """Save the adapter, its tokenizer and the log; merge it into a full-precision base when `train.merge`."""
    adapter_dir = out_dir / "adapter"
    trainer.model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    (out_dir / "log_history.json").write_text(json.dumps(history, indent=1))
    merged_dir = None
    if merge:
        merged_dir = out_dir / "merged"
        merge_adapter(base_path, adapter_dir, merged_dir, dtype=dtype, trust_remote_code=trust)
    return adapter_dir, merged_dir


def _refuse_divergence(history: list[dict[str, Any]], losses: list[float], learning_rate: Any) -> None:
    """A ConfigError: the user's fix is the learning rate, not a bug. The gradient norm is checked too: once the
    weights are NaN, transformers 5 logs the step's loss as 0 while grad_norm reads nan."""
    grad_norms = [float(h["grad_norm"]) for h in history if isinstance(h.get("grad_norm"), int | float)]
    if any(not math.isfinite(v) for v in [*losses, *grad_norms]):
        raise fail("train.learning_rate", f"training diverged (NaN or infinite loss or gradient norm at "
                   f"{learning_rate}); lower it")


def _load_base(cfg: DictConfig, base_path: Path, device: str, trust: bool) -> tuple[Any, Any, Any]:
    """(model, bitsandbytes config or None, dtype): the base to train, 4-bit under QLoRA (prepared for k-bit
    training), else in `model.dtype`."""
    import torch
    from transformers import AutoModelForCausalLM

    quant = None
    if cfg.adapter.get("base_quantization"):
        from slmexp.errors import ConfigError
        from slmexp.runtimes.transformers import bnb_config

        try:
            quant = bnb_config(OmegaConf.to_container(cfg.adapter.base_quantization, resolve=True), device)
        except ConfigError as e:  # same check, named for the key that asked for it
            raise fail("adapter.name", f"qlora cannot run here: {e}; use adapter=lora or adapter=dora") from e
    dtype = getattr(torch, str(cfg.model.dtype)) if cfg.model.dtype != "auto" else "auto"
    model = AutoModelForCausalLM.from_pretrained(
        base_path, dtype=dtype, quantization_config=quant, trust_remote_code=trust, use_safetensors=True,
        device_map={"": distributed.device_map_device(device)} if quant is not None else None,
    )
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(cfg.train.gradient_checkpointing))
    return model, quant, dtype


def _sft_config(tcfg: DictConfig, out_dir: Path, max_steps: int, precision: str, device: str,
                has_eval: bool) -> Any:
    """TRL's SFTConfig from the `train` node: what the trainer does, step by step."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        max_steps=max_steps,
        num_train_epochs=float(tcfg.num_train_epochs),
        per_device_train_batch_size=int(tcfg.per_device_train_batch_size),
        per_device_eval_batch_size=int(tcfg.per_device_train_batch_size),
        gradient_accumulation_steps=int(tcfg.gradient_accumulation_steps),
        learning_rate=float(tcfg.learning_rate),
        lr_scheduler_type=str(tcfg.lr_scheduler_type),
        warmup_steps=float(tcfg.warmup_ratio),  # a float < 1 is a ratio of the total steps
        weight_decay=float(tcfg.weight_decay),
        max_length=int(tcfg.max_length),
        completion_only_loss=True,
        gradient_checkpointing=bool(tcfg.gradient_checkpointing),
        bf16=precision == "bf16",  # autocast: the base's matmuls in bf16, LoRA weights and optimizer state fp32
        fp16=False,
        use_cpu=device == "cpu",
        # Rows of similar length in a batch: less padding (the sampler shuffles groups, not a sort of the data)
        train_sampling_strategy=str(tcfg.get("sampling") or "random"),
        eval_strategy="steps" if has_eval else "no",
        eval_steps=int(tcfg.eval_steps) if has_eval else None,
        save_strategy="no",  # the best adapter weights are kept in memory (slmexp.train_stop)
        logging_steps=int(tcfg.logging_steps),
        logging_first_step=True,
        report_to=[],
        seed=int(tcfg.seed),
        data_seed=int(tcfg.seed),
        dataloader_num_workers=0,
        include_num_input_tokens_seen=True,
    )


def _loss_figures(losses: list[float], eval_losses: list[tuple[int, float]], stopper: Any, restored: bool,
                  mean: float) -> dict[str, Any]:
    """The train block's loss fields; with the best weights restored, eval_loss is the best step's."""
    return {
        "first_train_loss": losses[0] if losses else None,
        "last_train_loss": losses[-1] if losses else None,
        "best_train_loss": min(losses) if losses else None,
        "train_loss_mean": mean,
        "eval_loss": stopper.best_loss if restored else (eval_losses[-1][1] if eval_losses else None),
        "eval_losses": [{"step": st, "loss": v} for st, v in eval_losses],
    }


def _tokens_seen(history: list[dict[str, Any]]) -> int | None:
    seen = [h["num_input_tokens_seen"] for h in history if "num_input_tokens_seen" in h]
    return int(seen[-1]) if seen else None


def merge_adapter(base_path: Path, adapter_dir: Path, out: Path, *, dtype: Any = None,
                  trust_remote_code: bool = False) -> Path:
    """Fold the adapter into a full-precision copy of the base (a 4-bit base cannot be merged exactly)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype, trust_remote_code=trust_remote_code,
                                                use_safetensors=True)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out)
    return out


def train_key(cfg: DictConfig, task: Task, model_sha: str | None, model_path: Path) -> str:
    """What determines a trained adapter: base weights, adapter and train config, train/validation data."""
    from slmexp.cache import content_key

    return content_key({
        "model": model_sha or str(model_path),
        "adapter": OmegaConf.to_container(cfg.adapter, resolve=True),
        "train": OmegaConf.to_container(cfg.train, resolve=True),
        # The task's rendering settings, not where its files live (the data's sha256 below stands for the data) nor
        # how answers are generated at evaluation (`generation`: decoding.budget=fit raises its max_new_tokens).
        "task_render": {k: v for k, v in OmegaConf.to_container(cfg.task, resolve=True).items()
                        if k not in ("data", "generation")},
        "data": {k: v for k, v in task.sha256.items() if k in ("train", "validation")},
    })


def cached_or_train(cfg: DictConfig, task: Task, resolved: Any, out_dir: Path) -> TrainResult:
    """Reuse an identical earlier training run from `paths.cache_dir/trained/<key>` (a sweep's arms that share
    training, or a re-run) or train and publish it there (cache.publish_dir: under a lock, so two parallel jobs
    with the same training train once). The record says which (`cached: true`)."""
    import shutil

    from slmexp.cache import publish_dir

    key = train_key(cfg, task, resolved.sha256, resolved.path)
    cache = Path(str(cfg.paths.cache_dir)).expanduser() / "trained" / key
    merge = bool(cfg.train.merge)

    def done(entry: Path) -> bool:
        return (entry / "train.json").exists() and (entry / "merged").exists() == merge

    trained: list[TrainResult] = []

    def build(tmp: Path) -> None:
        result = train(cfg, task, resolved.path, out_dir)
        result.block["cached"] = False
        shutil.copytree(result.adapter_dir, tmp / "adapter")
        if result.merged_dir is not None:
            shutil.copytree(result.merged_dir, tmp / "merged")
        (tmp / "train.json").write_text(json.dumps(result.block, indent=1))
        trained.append(result)

    publish_dir(cache, build, done)
    if trained:
        return trained[0]
    block = json.loads((cache / "train.json").read_text())
    block.update(cached=True, cache_dir=str(cache), adapter_dir=str(cache / "adapter"),
                 merged_dir=str(cache / "merged") if merge else None)
    return TrainResult(cache / "adapter", cache / "merged" if merge else None, block)


def base_quant_type(quant: Any) -> str | None:
    """What the record says the base was loaded as under QLoRA: the configured 4-bit type (`bnb_4bit_quant_type`,
    nf4 or fp4), or int8; None without a quantized base."""
    if quant is None:
        return None
    return str(quant.bnb_4bit_quant_type) if getattr(quant, "load_in_4bit", False) else "int8"
