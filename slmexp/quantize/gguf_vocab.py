"""The tokenizer half of the HF -> GGUF writer: vocabulary, token types, special ids and the BOS/EOS policy.

Why its own module: llama.cpp re-implements each tokenizer by name, so getting the vocabulary wrong does not fail, it
tokenizes differently from HF and every comparison is off; these rules (pre-tokenizer signatures, SentencePiece-style
scores, which added tokens are CONTROL) are worth reading on their own, apart from the tensor rules in hf_to_gguf.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slmexp.errors import SlmexpError

# Byte-level BPE pre-tokenizers (tokenizer.json `pre_tokenizer`) -> llama.cpp's `tokenizer.ggml.pre`. llama.cpp
# re-implements each pre-tokenizer by name, so an unrecognised one is refused: a wrong guess would tokenize
# differently from HF and every comparison would be off.
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _pre_tokenizer_signature(pre: dict[str, Any] | None) -> tuple[str, ...]:
    steps = (pre or {}).get("pretokenizers", [pre]) if (pre or {}).get("type") == "Sequence" else [pre]
    sig = []
    for s in steps:
        if not s:
            continue
        kind = s["type"]
        if kind == "ByteLevel":
            sig.append("ByteLevel(regex)" if s.get("use_regex", True) else "ByteLevel")
        elif kind == "Digits":
            sig.append("Digits(individual)" if s.get("individual_digits") else "Digits")
        elif kind == "Split":
            pattern = s.get("pattern", {})
            regex = pattern.get("Regex")
            sig.append({_QWEN2_REGEX: "Split(qwen2)", _LLAMA3_REGEX: "Split(llama3)"}.get(regex, f"Split({pattern})"))
        else:
            sig.append(kind)
    return tuple(sig)


_BPE_PRE = {
    ("ByteLevel(regex)",): "gpt-2",
    ("Digits(individual)", "ByteLevel(regex)"): "smollm",
    ("Split(qwen2)", "ByteLevel"): "qwen2",
    ("Split(llama3)", "ByteLevel"): "llama-bpe",
}


def _bpe_pre(tokenizer_json: dict[str, Any], where: Path) -> str:
    sig = _pre_tokenizer_signature(tokenizer_json.get("pre_tokenizer"))
    if sig not in _BPE_PRE:
        raise SlmexpError(f"GGUF export: {where}: byte-level BPE pre-tokenizer {' + '.join(sig) or 'none'} has no "
                          f"known llama.cpp equivalent (known: {', '.join(' + '.join(k) for k in _BPE_PRE)})")
    return _BPE_PRE[sig]


def _is_spm_style(tokenizer_json: dict[str, Any]) -> bool:
    """SentencePiece-derived BPE (Gemma): byte fallback and '▁' for spaces, no byte-level alphabet."""
    return bool(tokenizer_json["model"].get("byte_fallback")) and "▁" in json.dumps(
        [tokenizer_json.get("normalizer"), tokenizer_json.get("pre_tokenizer")], ensure_ascii=False)


def _looks_special(text: str) -> bool:
    """llama.cpp's converter marks these added tokens CONTROL even when HF does not flag them special."""
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def write_vocab(writer: Any, hf_dir: Path, config: dict[str, Any]) -> None:
    """Tokens, types (and scores for SentencePiece-style vocabularies), special ids, BOS/EOS policy, chat template."""
    import gguf

    path = Path(hf_dir) / "tokenizer.json"
    if not path.is_file():
        raise SlmexpError(f"GGUF export needs {path} (a fast tokenizer) to write the vocabulary")
    tj = json.loads(path.read_text(encoding="utf-8"))
    kind = tj["model"]["type"]
    n_vocab = int(config["vocab_size"])
    if kind == "BPE" and _is_spm_style(tj):
        tokens, scores, types = _spm_vocab(tj, n_vocab)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_add_space_prefix(False)
        writer.add_token_scores(scores)
    elif kind == "BPE":
        tokens, types = _bpe_vocab(tj, n_vocab)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(_bpe_pre(tj, path))
    else:
        raise SlmexpError(f"GGUF export: {path}: tokenizer model {kind!r} is not supported (BPE only)")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(hf_dir, load_merges=kind == "BPE" and not _is_spm_style(tj), n_vocab=len(tokens))
    add_bos, add_eos = _adds_bos_eos(hf_dir)
    special.add_special_token.update({"bos": add_bos, "eos": add_eos})
    special.add_to_gguf(writer, quiet=True)


def _bpe_vocab(tj: dict[str, Any], n_vocab: int) -> tuple[list[str], list[int]]:
    """Byte-level BPE: vocab keys as they are (byte-level alphabet); added tokens in plain text."""
    import gguf

    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, i in _checked_ids(tj["model"]["vocab"].items(), n_vocab):
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for added in tj.get("added_tokens", []):
        text, i = added["content"], added["id"]
        if i < n_vocab:
            special = added.get("special") or _looks_special(text)
            tokens[i] = text
            types[i] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    return tokens, types


def _spm_vocab(tj: dict[str, Any], n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """SentencePiece-style vocab for llama.cpp's SPM tokenizer, which merges by highest token *score*.

    HF's tokenizer.json keeps merges but no scores; a token's score is minus the rank of the first merge that
    builds it, so llama.cpp applies merges in the order HF's BPE does.
    """
    import gguf

    merges = tj["model"].get("merges") or []
    rank: dict[str, int] = {}
    for r, m in enumerate(merges):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        rank.setdefault(a + b, r)
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    scores = [-1000.0] * n_vocab
    types = [gguf.TokenType.UNUSED] * n_vocab
    byte_token = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
    for text, i in _checked_ids(tj["model"]["vocab"].items(), n_vocab):
        tokens[i] = text
        if byte_token.match(text):
            scores[i], types[i] = 0.0, gguf.TokenType.BYTE
        else:
            scores[i], types[i] = -float(rank.get(text, len(merges) + i)), gguf.TokenType.NORMAL
    for added in tj.get("added_tokens", []):
        text, i = added["content"], added["id"]
        if i < n_vocab:
            special = added.get("special") or _looks_special(text)
            tokens[i] = text if special else text.replace("▁", " ")  # llama.cpp matches user tokens on raw text
            scores[i] = -1000.0
            types[i] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    return tokens, scores, types


def _checked_ids(items: Any, n_vocab: int) -> Iterator[tuple[str, int]]:
    for text, i in items:
        if i >= n_vocab:
            raise SlmexpError(f"GGUF export: token {text!r} has id {i} >= config vocab_size {n_vocab}")
        yield text, i


def _adds_bos_eos(hf_dir: Path) -> tuple[bool, bool]:
    """Whether HF's tokenizer adds BOS / EOS on its own: measured, because llama.cpp's defaults differ per vocab."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    with_special = tok("Hello world")["input_ids"]
    plain = tok("Hello world", add_special_tokens=False)["input_ids"]
    add_bos = tok.bos_token_id is not None and with_special[:1] == [tok.bos_token_id] and plain[:1] != with_special[:1]
    add_eos = tok.eos_token_id is not None and with_special[-1:] == [tok.eos_token_id] and plain[-1:] != [
        tok.eos_token_id]
    return bool(add_bos), bool(add_eos)
