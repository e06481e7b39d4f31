"""Shared fixtures: a tiny random llama + tokenizer built here, so unit tests need no download and run in seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from slmexp.config import CONF_DIR, DATA_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(out: Path, *, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    """A 2-layer llama (hidden 64) with a byte-level BPE tokenizer trained on the shipped task text.

    initializer_range=0.2 (not 0.02): with near-zero activations LoRA barely moves a random model in 30 steps.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = []
    for split in ("train", "test"):
        with open(DATA_DIR / "support_intent" / f"{split}.jsonl") as f:
            texts += [json.loads(line)["text"] for line in f]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([*texts, "Intent: order_status cancel_order return_item"], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                   pad_token="<pad>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, initializer_range=0.2, bos_token_id=fast.bos_token_id,
                      eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = fast.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


def compose(overrides: list[str]):
    """The config `slmexp` would build for these overrides, without running anything."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="slmexp"):
        return hydra_compose(config_name="config", overrides=overrides)


@pytest.fixture
def tiny_overrides(tiny_model_dir, tmp_path) -> list[str]:
    """Overrides that point the default config at the tiny model and a temp cache/output dir."""
    return tiny_overrides_for(tiny_model_dir, tmp_path)


def tiny_overrides_for(model_dir: Path, tmp: Path) -> list[str]:
    """`tiny_overrides` for any temp dir: module-scoped fixtures that run one job for many tests use it."""
    return [
        f"model.source.path={model_dir}",
        "model.name=tiny-llama",
        f"paths.cache_dir={tmp / 'cache'}",
        f"paths.output_dir={tmp / 'outputs'}",
        "eval.limit=6",
        "runtime.batch_size=3",
        "task.generation.max_new_tokens=4",
        "eval.bench.n=3",
        "eval.bench.warmup=1",
        "train.max_length=1024",  # the tiny tokenizer (600 tokens) spells the support-intent prompt out long
    ]


def job_prepare(cfg, needs: str, source, run_dir: Path, calib=None):
    """`slmexp.quantize.prepare` called as the quantize stage calls it for the composed job `cfg`."""
    from slmexp.quantize import prepare

    threads = cfg.runtime.get("threads")
    return prepare(cfg.quantization, needs, source, run_dir, calib, cache_dir=Path(str(cfg.paths.cache_dir)),
                   threads=int(threads) if threads else None, runtime_name=str(cfg.runtime.name))
