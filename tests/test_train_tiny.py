"""Training stage on the tiny model: loss falls, merge is exact, and training sees what evaluation sees."""

from __future__ import annotations

import pytest

from slmexp.errors import ConfigError, DataError
from slmexp.pipeline import run_job
from slmexp.record import load
from tests.conftest import compose

TRAIN = ["adapter=lora", "train.max_steps=30", "train.learning_rate=5e-3", "train.train_limit=96",
         "train.eval_steps=15", "train.eval_limit=16", "train.logging_steps=3", "train.warmup_ratio=0.0",
         "train.lr_scheduler_type=constant", "train.max_length=1024"]


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    cfg = compose([f"model.source.path={tiny_model_dir}", "model.name=tiny-llama", f"paths.cache_dir={tmp}/c",
                   "eval.limit=4", "runtime.batch_size=4", "task.generation.max_new_tokens=4", *TRAIN])
    record = run_job(cfg, run_dir=tmp / "run")
    return record, tmp / "run", cfg


def test_lora_lowers_loss_and_records_train_block(lora_run) -> None:
    record, run_dir, _ = lora_run
    tr = record["train"]
    assert record["run"]["status"] == "finished" and load(run_dir)["train"] == tr
    assert tr["steps"] == 30 and tr["adapter"] == "lora"
    assert tr["last_train_loss"] < 0.6 * tr["first_train_loss"], tr
    assert tr["eval_losses"][-1]["loss"] < tr["eval_losses"][0]["loss"]
    assert 0 < tr["trainable_pct"] < 100 and tr["tokens_seen"] > 0
    assert (run_dir / "train" / "adapter" / "adapter_config.json").exists()
    assert record["model"]["evaluated_path"].endswith("train/merged")


def test_merged_logits_equal_adapter_logits(lora_run, tiny_model_dir) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, run_dir, _ = lora_run
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with_adapter = PeftModel.from_pretrained(base, run_dir / "train" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "train" / "merged").eval()
    ids = torch.randint(0, base.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = with_adapter(ids).logits, merged(ids).logits
    # Tolerance: fp32 reassociation of (W + BA)x vs Wx + B(Ax).
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (a - b).abs().max()
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits, b, atol=1e-3), "the adapter changed nothing"


def test_training_prompt_equals_evaluation_context(tiny_model_dir, tiny_overrides) -> None:
    """TRL's tokenised prompt must be the exact context lm-eval's HFLM builds for the same example."""
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmexp.tasks import load_task, render_prompt
    from slmexp.train import sft_examples

    cfg = compose(tiny_overrides)
    task = load_task(cfg.task, ["train"])
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lm = HFLM(pretrained=AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer=tok, batch_size=1)
    for row, ex in zip(task.splits["train"][:5], sft_examples(task, "train", True, 5), strict=True):
        eval_context = lm.apply_chat_template([{"role": "user", "content": render_prompt(cfg.task, row)}])
        train_prompt = tok.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True)
        assert train_prompt == eval_context
        full = tok.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)
        assert full.startswith(eval_context) and row["label"] in full[len(eval_context):]


def test_absent_target_module_names_the_key(tiny_overrides, tmp_path) -> None:
    cfg = compose([*tiny_overrides, *TRAIN, "adapter.peft.target_modules=[qkv_proj]"])
    with pytest.raises(ConfigError, match=r"adapter.peft.target_modules: \['qkv_proj'\] not found"):
        run_job(cfg, run_dir=tmp_path / "run")
    rec = load(tmp_path / "run")
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["stage"] == "train"
    assert rec["model"] is not None  # what was computed before the failure is kept


def test_missing_or_empty_train_split(tiny_overrides, tmp_path) -> None:
    cfg = compose([*tiny_overrides, *TRAIN, "task.data.train=null"])
    with pytest.raises(ConfigError, match=r"task\.data\.train"):
        run_job(cfg, run_dir=tmp_path / "a")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    cfg = compose([*tiny_overrides, *TRAIN, f"task.data.train={empty}"])
    with pytest.raises(DataError, match=rf"{empty}: no rows \[task.data.train\]"):
        run_job(cfg, run_dir=tmp_path / "b")


def test_identical_training_is_reused_from_the_cache(lora_run, tmp_path) -> None:
    record, _, cfg = lora_run
    again = run_job(cfg, run_dir=tmp_path / "again")
    assert record["train"]["cached"] is False and again["train"]["cached"] is True
    assert again["train"]["last_train_loss"] == record["train"]["last_train_loss"]
    assert again["metrics"]["values"] == record["metrics"]["values"]


def test_training_cache_key_follows_data_content_not_paths(tmp_path) -> None:
    import shutil

    from slmexp.config import DATA_DIR
    from slmexp.tasks import load_task
    from slmexp.train import train_key

    copy = tmp_path / "copy"
    shutil.copytree(DATA_DIR / "support_intent", copy)
    a = compose(["adapter=lora"])
    b = compose(["adapter=lora", f"task.data.train={copy}/train.jsonl",
                 f"task.data.validation={copy}/validation.jsonl"])
    ta, tb = (load_task(c.task, ["train", "validation"]) for c in (a, b))
    assert train_key(a, ta, "sha", tmp_path) == train_key(b, tb, "sha", tmp_path)
    (copy / "train.jsonl").write_text((copy / "train.jsonl").read_text().replace("order_status", "cancel_order", 1))
    tc = load_task(b.task, ["train", "validation"])
    assert train_key(b, tc, "sha", tmp_path) != train_key(b, tb, "sha", tmp_path)
    c = compose(["adapter=lora", "train.learning_rate=5e-4"])
    assert train_key(c, ta, "sha", tmp_path) != train_key(a, ta, "sha", tmp_path)


def test_the_recorded_4bit_base_type_is_the_configured_one() -> None:
    """QLoRA's record names the base's quantization as configured (fp4 stays fp4), not a constant nf4."""
    from transformers import BitsAndBytesConfig

    from slmexp.train import base_quant_type

    assert base_quant_type(None) is None
    assert base_quant_type(BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4")) == "fp4"
    assert base_quant_type(BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")) == "nf4"
    assert base_quant_type(BitsAndBytesConfig(load_in_8bit=True)) == "int8"


@pytest.mark.parametrize("adapter", ["dora", "qlora"])
def test_dora_and_qlora_train_end_to_end(adapter, tiny_model_dir, tmp_path) -> None:
    """DoRA (magnitude vectors on top of LoRA) and QLoRA (a 4-bit NF4 base from bitsandbytes' CPU backend) train,
    merge and evaluate on the tiny model: the paths `adapter=dora` / `adapter=qlora` take, a few steps each."""
    steps = ["train.max_steps=4", "train.learning_rate=5e-3", "train.train_limit=32", "train.eval_steps=0",
             "train.logging_steps=1", "train.max_length=1024", "train.precision=fp32"]
    cfg = compose([f"model.source.path={tiny_model_dir}", "model.name=tiny-llama", f"paths.cache_dir={tmp_path}/c",
                   "eval.limit=4", "eval.bench.n=0", "runtime.batch_size=4", "task.generation.max_new_tokens=4",
                   f"adapter={adapter}", *steps])
    record = run_job(cfg, run_dir=tmp_path / "run")
    tr = record["train"]
    assert record["run"]["status"] == "finished", record["run"].get("error")
    assert tr["adapter"] == adapter and tr["steps"] == 4
    assert all(isinstance(v, float) and v == v for v in (tr["first_train_loss"], tr["last_train_loss"]))
    assert tr["base_quantization"] == ("nf4" if adapter == "qlora" else None)
    config = (tmp_path / "run" / "train" / "adapter" / "adapter_config.json").read_text()
    assert ('"use_dora": true' in config) == (adapter == "dora")
