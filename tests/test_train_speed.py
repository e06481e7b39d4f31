"""Training speed without changing the computation: the shared-prefix loss equals the full forward's (loss and
LoRA gradients), the prefix stops before the first scored token, precision follows the CPU's flags, and early
stopping keeps the best evaluation's weights and says why it stopped."""

from __future__ import annotations

import pytest

from slmexp.shared_prefix import repeated_prefix_cache
from slmexp.train_speed import MIN_SHARED_PREFIX, choose_precision, cpu_bf16_flags, shared_prefix_len

AMD = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SPR = "flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
OLD = "flags\t\t: fpu sse2 avx2 fma\n"


def test_bf16_flags_and_precision_choice() -> None:
    assert cpu_bf16_flags(AMD) == ["avx512_bf16"]
    assert cpu_bf16_flags(SPR) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16_flags(OLD) == []
    assert choose_precision("auto", "cpu", SPR)[0] == "bf16"
    assert choose_precision("auto", "cpu", AMD)[0] == "bf16"
    prec, why = choose_precision("auto", "cpu", OLD)
    assert prec == "fp32" and "no amx_bf16/avx512_bf16" in why
    assert choose_precision("fp32", "cpu", SPR) == ("fp32", "train.precision=fp32")
    prec, why = choose_precision("bf16", "cpu", OLD)
    assert prec == "bf16" and "emulated" in why


def _batch(rows: list[list[int]], answer_from: list[int]):
    import torch

    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (r, a) in enumerate(zip(rows, answer_from, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
        labels[i, a: len(r)] = ids[i, a: len(r)]
    return ids, mask, labels


def test_shared_prefix_len_stops_at_difference_padding_and_answers() -> None:
    common = list(range(10, 10 + 30))
    ids, mask, labels = _batch([[*common, 1, 2, 3, 4], [*common, 5, 6, 7]], [32, 32])
    assert shared_prefix_len(ids, labels, mask) == 30  # the rows differ from token 30 on
    ids, mask, labels = _batch([[*common, 1, 2], [*common, 1, 2, 3]], [25, 25])
    assert shared_prefix_len(ids, labels, mask) == 24  # one before the first scored token
    ids, mask, labels = _batch([common[:20], common], [18, 18])
    assert shared_prefix_len(ids, labels, mask) == 17  # padding of the short row would end it at 20 anyway
    ids, mask, labels = _batch([[*common[:MIN_SHARED_PREFIX - 1], 1, 2], [*common[:MIN_SHARED_PREFIX - 1], 3, 4]],
                               [MIN_SHARED_PREFIX, MIN_SHARED_PREFIX])
    assert shared_prefix_len(ids, labels, mask) == 0  # too short to be worth a separate forward
    ids, mask, labels = _batch([[*common, 1]], [30])
    assert shared_prefix_len(ids, labels, mask) == 0  # one row: nothing to share


def _lora_model(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                             init_lora_weights=False))  # non-zero B: gradients reach the prefix
    return model


def test_shared_prefix_loss_and_gradients_equal_full_forward(tiny_model_dir) -> None:
    """The trick is exact: same loss and same LoRA gradients as the full right-padded batch (fp32 rounding)."""
    import torch

    model = _lora_model(tiny_model_dir)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    common = torch.randint(5, vocab, (40,), generator=g).tolist()
    rows = [common + torch.randint(5, vocab, (n,), generator=g).tolist() for n in (9, 14, 6)]
    ids, mask, labels = _batch(rows, [len(common) + 3] * 3)
    n = shared_prefix_len(ids, labels, mask)
    assert n == 40

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}

    full_loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    full = grads(full_loss)
    cache = repeated_prefix_cache(model, ids[:1, :n], mask[:1, :n], ids.shape[0])
    shared_loss = model(input_ids=ids[:, n:], attention_mask=mask, labels=labels[:, n:], past_key_values=cache,
                        use_cache=False).loss
    shared = grads(shared_loss)
    assert torch.allclose(full_loss, shared_loss, atol=1e-5), (float(full_loss), float(shared_loss))
    worst = max(float((full[k] - shared[k]).abs().max() / (full[k].abs().max() + 1e-12)) for k in full)
    assert worst < 1e-3, worst
    # and the prefix's own LoRA weights did receive gradient through the repeated cache
    q0 = [k for k in full if "layers.0." in k and "lora_A" in k]
    assert q0 and all(float(shared[k].abs().sum()) > 0 for k in q0)


def test_frozen_weights_cast_once_give_the_autocast_step_exactly(tiny_model_dir) -> None:
    """`cast_frozen_linears` stores the frozen base Linear weights in bf16: under bf16 autocast the loss and every
    LoRA gradient are bit-identical to the step that casts the fp32 weights on each matmul; the LoRA weights,
    embeddings and norms stay fp32."""
    import torch

    from slmexp.train_speed import cast_frozen_linears

    ids = torch.randint(5, 100, (3, 24), generator=torch.Generator().manual_seed(2))
    mask, labels = torch.ones_like(ids), ids.clone()

    def step(cast: bool):
        model = _lora_model(tiny_model_dir)
        n = cast_frozen_linears(model, torch.bfloat16) if cast else 0
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return model, n, loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}

    _, _, loss_ref, grads_ref = step(cast=False)
    model, n, loss, grads = step(cast=True)
    assert n > 0 and torch.equal(loss, loss_ref)
    assert grads.keys() == grads_ref.keys() and all(torch.equal(grads[k], grads_ref[k]) for k in grads)
    dtypes = {k: p.dtype for k, p in model.named_parameters()}
    assert all(d == torch.float32 for k, d in dtypes.items() if "lora_" in k or "norm" in k or "embed" in k)
    assert any(d == torch.bfloat16 for k, d in dtypes.items() if "base_layer" in k)


@pytest.mark.parametrize("losses, patience, min_epochs, stop_at", [
    ([3.0, 2.0, 2.5, 2.6, 1.0], 2, 0.0, 3),   # two evaluations without improvement: stop after the 4th
    ([3.0, 2.0, 2.5, 2.6, 1.0], 2, 10.0, None),  # but never before min_epochs
    ([3.0, 2.0, 1.9, 1.8], 2, 0.0, None),       # improving: never
    ([3.0, 2.0, 2.5, 2.6], 0, 0.0, None),       # patience 0: never stop early
])
def test_early_stopping_rule(losses, patience, min_epochs, stop_at) -> None:
    from types import SimpleNamespace

    from slmexp.train_stop import make_callback

    cb = make_callback(patience, 0.0, min_epochs)
    stopped = None
    for i, loss in enumerate(losses):
        control = SimpleNamespace(should_training_stop=False)
        cb.on_evaluate(None, SimpleNamespace(global_step=10 * (i + 1), epoch=0.5 * (i + 1)), control,
                       metrics={"eval_loss": loss})
        if control.should_training_stop:
            stopped = i
            break
    assert stopped == stop_at
    if stop_at is not None:
        assert cb.best_loss == 2.0 and cb.best_step == 20
        assert "did not improve" in cb.reason(SimpleNamespace(global_step=40), 0, 2.0)


def test_best_weights_are_restored(tiny_model_dir) -> None:
    from types import SimpleNamespace

    import torch

    from slmexp.train_stop import make_callback

    model = _lora_model(tiny_model_dir)
    cb = make_callback(1, 0.0, 0.0)
    cb.on_train_begin(None, None, None, model=model)
    cb.on_evaluate(None, SimpleNamespace(global_step=5, epoch=1.0), SimpleNamespace(should_training_stop=False),
                   metrics={"eval_loss": 1.0})
    best = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    cb.on_evaluate(None, SimpleNamespace(global_step=10, epoch=2.0), SimpleNamespace(should_training_stop=False),
                   metrics={"eval_loss": 2.0})
    assert cb.restore_best(model)
    assert all(torch.equal(p, best[k]) for k, p in model.named_parameters() if p.requires_grad)


def test_eval_shared_prefix_generates_the_same_tokens(tiny_model_dir) -> None:
    """Batched greedy generation from a shared-prefix cache (rows re-laid out as prefix | padding | own tokens)
    gives exactly the tokens of the plain left-padded batch."""
    import torch
    from transformers import AutoModelForCausalLM

    from slmexp.runtimes import _hf_prefix

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(3)
    common = torch.randint(5, vocab, (30,), generator=g)
    rows = [torch.cat([common, torch.randint(5, vocab, (n,), generator=g)]) for n in (3, 11, 7, 1)]
    width = max(map(len, rows))
    ctx = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ctx)
    for i, r in enumerate(rows):  # left padding, as HFLM does
        ctx[i, width - len(r):], mask[i, width - len(r):] = r, 1
    _, n = _hf_prefix.common_prefix(ctx, mask)
    assert n == 30
    kw = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    plain = model.generate(input_ids=ctx, attention_mask=mask, **kw)
    model._slmexp_prefix_stats = stats = {"batches": 0, "prefix_tokens_saved": 0}
    shared = _hf_prefix.generate(model, ctx, mask, **kw)
    assert stats == {"batches": 1, "prefix_tokens_saved": 30 * 3}
    assert shared.shape == plain.shape
    assert torch.equal(shared[:, width:], plain[:, width:])


def test_answers_only_lm_head_same_loss_and_active_on_cpu(tiny_model_dir) -> None:
    """TRL's fused head scores every position on CPU; under answers_only_lm_head it scores the labelled ones only,
    with the same loss and gradients."""
    import torch
    import trl.trainer.utils as tu
    from transformers import AutoModelForCausalLM

    from slmexp.train_speed import answers_only_lm_head

    cpu = torch.device("cpu")
    assert not tu._use_triton(cpu)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tu.add_fused_lm_head(model)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(5, model.config.vocab_size, (3, 40), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, 34:] = ids[:, 34:]

    def run():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return float(out.loss), model.lm_head.weight.grad.clone()

    plain_loss, plain_grad = run()
    with answers_only_lm_head():
        assert tu._use_triton(cpu)
        compact_loss, compact_grad = run()
    assert not tu._use_triton(cpu)
    assert abs(plain_loss - compact_loss) < 1e-5
    assert torch.allclose(plain_grad, compact_grad, atol=1e-6)


def test_a_long_prompt_task_trains_the_same_batch_in_smaller_forwards() -> None:
    """tool-call rows share no prompt prefix and run to ~900 tokens: 16 of them in one forward held 23 GB (it
    nearly filled a 24 GB machine). The task asks for 4 rows x 4 accumulated forwards, the same batch of 16; a task
    that says nothing keeps 16 x 1, and a user override still wins."""
    from tests.conftest import compose

    def batch(overrides: list[str]) -> tuple[int, int]:
        train = compose(["adapter=lora", *overrides]).train
        return int(train.per_device_train_batch_size), int(train.gradient_accumulation_steps)

    assert batch(["task=tool-call"]) == (4, 4)
    assert batch(["task=support-intent"]) == (16, 1)
    assert batch(["task=tool-call", "train.per_device_train_batch_size=8",
                  "train.gradient_accumulation_steps=2"]) == (8, 2)
