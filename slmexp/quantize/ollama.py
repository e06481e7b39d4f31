"""An Ollama Modelfile next to an exported GGUF, so `ollama create NAME -f Modelfile` serves the exact file a run
measured (then `slmexp runtime=ollama runtime.model=NAME` evaluates it through Ollama's server).

Why it is written here and not left to the user: the GGUF slmexp writes carries no `tokenizer.chat_template`, so
Ollama cannot detect a template by itself, and a wrong template silently changes every answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Ollama's Go template for ChatML (SmolLM2, Qwen2.5): the system turn, then user/assistant turns, then the assistant's
# turn opened. Ollama fills .System from the Modelfile's SYSTEM when a request brings no system message, as the HF
# templates insert their default one.
_CHATML_TEMPLATE = """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ range .Messages }}{{ if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
<|im_start|>assistant
{{ else if eq .Role "assistant" }}{{ .Content }}<|im_end|>
{{ end }}{{ end }}"""


def _chatml_default_system(tokenizer: Any) -> tuple[bool, str | None]:
    """Whether the HF chat template renders a single user turn exactly as `_CHATML_TEMPLATE` does, and the system
    prompt it inserts by itself (SmolLM2: "You are a helpful AI assistant named SmolLM..."), if any."""
    probe = "PROBE-7f3a"
    try:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": probe}], tokenize=False,
                                                 add_generation_prompt=True)
    except Exception:
        return False, None
    tail = f"<|im_start|>user\n{probe}<|im_end|>\n<|im_start|>assistant\n"
    if not rendered.endswith(tail):
        return False, None
    head = rendered[: -len(tail)]
    if not head:
        return True, None
    if head.startswith("<|im_start|>system\n") and head.endswith("<|im_end|>\n") and head.count("<|im_start|>") == 1:
        return True, head[len("<|im_start|>system\n"): -len("<|im_end|>\n")]
    return False, None


def write_ollama_modelfile(gguf_path: Path, hf_dir: Path) -> Path:
    """Write `Modelfile` next to `gguf_path`, so `ollama create NAME -f Modelfile` serves this exact file.

    The GGUF slmexp writes carries no `tokenizer.chat_template`, so Ollama cannot detect a template by itself:
    for ChatML models (checked by rendering the HF template) the Modelfile states TEMPLATE, the template's own
    default SYSTEM prompt and the end-of-turn stop; other templates are left to the user, and the file says so.
    Temperature 0: slmexp evaluates with greedy decoding.
    """
    from transformers import AutoTokenizer

    gguf_path = Path(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    chatml, system = _chatml_default_system(tokenizer)
    stops = [t for t in dict.fromkeys(["<|im_end|>" if chatml else None, tokenizer.eos_token]) if t]
    lines = [f"# Ollama Modelfile for {gguf_path.name}, written by slmexp from {hf_dir}.",
             "# Serve it (with `ollama serve` running):  ollama create NAME -f Modelfile   "
             "then: slmexp runtime=ollama runtime.model=NAME",
             f"FROM ./{gguf_path.name}"]
    if chatml:
        lines.append(f'TEMPLATE """{_CHATML_TEMPLATE}"""')
        if system:
            lines.append(f'SYSTEM """{system}"""')
    else:
        lines.append("# No TEMPLATE: this chat template is not ChatML; write its Go template here "
                     "(https://github.com/ollama/ollama/blob/main/docs/template.md), or prompts go in raw.")
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    lines += ["PARAMETER temperature 0", "PARAMETER num_ctx 2048"]
    out = gguf_path.parent / "Modelfile"
    out.write_text("\n".join(lines) + "\n")
    return out
