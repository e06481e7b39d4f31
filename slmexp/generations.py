"""The per-example store: `generations.jsonl` in every run dir, one row per scored example.

Why a file of its own next to `lm_eval/samples.jsonl`: the samples file holds what the report's statistics need
(id, target, response, per-example metrics); this store holds what a reviewer and `slmexp rescore` need to judge
and re-score an answer without the model: the lm-eval doc the metric reads (prompt, gold, labels, tools), the hash
of the exact prompt the model was sent, the raw generation and the answer our extractor found in it.

Row (one JSON object per line, in lm-eval's order):
  id             example id (the task's `id` field; `doc_id` for lm-eval's own tasks)
  doc_id         lm-eval's index of the example (`<task>/<index>` when a run scored several lm-eval tasks)
  task           the lm-eval task that scored it
  prompt_sha256  sha256 of the rendered prompt as sent (chat template applied, few-shot included); null when
                 lm-eval did not record it
  raw            the model's output (for log-likelihood tasks: the index of the likeliest choice)
  extracted      the answer the task kind's parser found in `raw` (label, JSON object, call, first line), or null
  metrics        {metric: value} as lm-eval's `process_results` scored it
  doc            the lm-eval doc (our kinds: id, prompt, target, choices/answer_prefix, gold/tools as JSON strings)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

GENERATIONS_NAME = "generations.jsonl"


def _context(sample: dict[str, Any]) -> str | None:
    """The prompt lm-eval sent for this example (its first request's context string), or None."""
    args = sample.get("arguments")
    if isinstance(args, dict) and args:  # {"gen_args_0": {"arg_0": context, "arg_1": gen_kwargs}}
        first = next(iter(args.values()))
        ctx = first.get("arg_0") if isinstance(first, dict) else None
    elif isinstance(args, list | tuple) and args:
        ctx = args[0][0] if isinstance(args[0], list | tuple) else args[0]
    else:
        ctx = None
    while isinstance(ctx, list | tuple) and ctx:  # chat requests: lm-eval's JsonChatStr(prompt=<messages JSON>)
        ctx = ctx[0]
    return ctx if isinstance(ctx, str) else None


def prompt_sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _raw(sample: dict[str, Any], response: Any) -> Any:
    """The unfiltered generation (a string) when lm-eval generated, else the scored response (a choice index)."""
    resps = sample.get("resps")
    while isinstance(resps, list | tuple) and resps:
        resps = resps[0]
    return resps if isinstance(resps, str) else response


def extract_answer(kind: str, doc: dict[str, Any], raw: Any) -> Any:
    """The answer the task kind's own parser finds in a raw output (what the metric compares with the gold).

    The kind declares it (`TaskKind.extract`, built from the parsers in slmexp.tasks, the only answer parsers); a
    kind without one (lm-eval's own tasks, scored by lm-eval) and a non-text response (a choice index) give the raw
    response back.
    """
    from slmexp.tasks.kinds import kind as kind_record

    extract = kind_record(kind).extract
    return extract(doc, raw) if extract is not None and isinstance(raw, str) else raw


def rows_from_samples(samples: dict[str, list[dict[str, Any]]], kind: str, metric_names: dict[str, set[str]],
                      response: Callable[[dict[str, Any]], Any]) -> Iterator[dict[str, Any]]:
    """Store rows from lm-eval's `results["samples"]` ({task: [sample]}).

    Args:
        samples: lm-eval's logged samples per task.
        kind: the task kind (`task.kind`), which picks the answer parser.
        metric_names: per lm-eval task, the metric names it reported.
        response: sample -> the response the samples file records (slmexp.evaluate._response).
    """
    from slmexp.tasks.kinds import kind as kind_record

    own_ids = not kind_record(kind).lm_eval_native  # our docs carry the task's example id
    several = len(samples) > 1
    for name, rows in samples.items():
        for s in rows:
            doc = s.get("doc") or {}
            doc_id = f"{name}/{s['doc_id']}" if several else s["doc_id"]
            raw = _raw(s, response(s))
            yield {
                "id": str(doc.get("id")) if own_ids and doc.get("id") is not None else str(doc_id),
                "doc_id": doc_id,
                "task": name,
                "prompt_sha256": prompt_sha256(_context(s)) or s.get("prompt_hash"),
                "raw": raw,
                "extracted": extract_answer(kind, doc, raw),
                "metrics": {m: s[m] for m in sorted(metric_names.get(name, ())) if m in s},
                "doc": doc,
            }


def write(path: Path, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Path:
    """Write the store (UTF-8 JSON lines) by rename, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)
    return path


def read(path: Path) -> list[dict[str, Any]]:
    """The store's rows; a malformed line raises ValueError naming file:line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
    return out


def find(run_dir: Path, record: dict[str, Any] | None = None) -> Path | None:
    """The run's store: `metrics.generations` (relative to the run dir) or `generations.jsonl`; None if absent."""
    rel = ((record or {}).get("metrics") or {}).get("generations") or GENERATIONS_NAME
    path = Path(rel) if Path(rel).is_absolute() else Path(run_dir) / rel
    return path if path.is_file() else None
