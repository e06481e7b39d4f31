"""Flips: which examples an arm gets wrong that its reference gets right, and the reverse, with their ids.

Why: McNemar's b/c in the comparison table are counts; a reviewer asks *which* examples. Every arm is set against
the sweep's baseline (the same pairs McNemar counts: wrong->right = b, right->wrong = c), and every quantized rung
against its own full-precision parent (same model, adapter and task, quantization none), which separates what the
quantization cost from what the model size costs. The parent is named, and labelled when its weights were
themselves dequantized (e.g. SmolLM2 rebuilt from a GGUF Q4_1): then the rung is compared with a dequantized
copy, not with the real checkpoint.

"Right" is a full score on the task's primary metric (1.0: exact match, or F1 = 1 for graded metrics). Only the
example ids both runs scored are paired. Reads the per-run dicts of `collect._run_info` and the table's baseline
flag; knows nothing else about the record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slmexp.report.table import short_label

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SHOWN_IDS = 5  # ids per direction in comparison.md (flips.json and report.html list them all)


def _right(score: float) -> bool:
    return score >= 1.0 - 1e-9


def _label(info: dict[str, Any]) -> str:
    label = short_label(info["model"], info["adapter"], info["quantization"], info["runtime"])
    return f"{label} ({info['weights_provenance']})" if info.get("weights_provenance") else label


def flip(arm: dict[str, float], ref: dict[str, float]) -> dict[str, Any]:
    """Paired flips of `arm` against `ref` (per-example primary scores by id): {"n_paired", "right_to_wrong",
    "wrong_to_right"} with sorted id lists. right_to_wrong: ref right, arm wrong."""
    ids = sorted(set(arm) & set(ref))
    return {
        "n_paired": len(ids),
        "right_to_wrong": [i for i in ids if _right(ref[i]) and not _right(arm[i])],
        "wrong_to_right": [i for i in ids if not _right(ref[i]) and _right(arm[i])],
    }


def _parent(info: dict[str, Any], infos: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The full-precision run of the same model, adapter, task and split (the same runtime preferred)."""
    cands = [p for p in infos if p is not info and p["status"] == "finished" and p["samples"]
             and p["quantization"] == "none"
             and all(p[k] == info[k] for k in ("task", "split", "model", "adapter"))]
    cands.sort(key=lambda p: (p["runtime"] != info["runtime"], p["dir"]))
    return cands[0] if cands else None


def compute_flips(infos: list[dict[str, Any]], df: pd.DataFrame) -> list[dict[str, Any]]:
    """Every finished arm against the baseline of its task, and every quantized rung against its parent.

    Args:
        infos: per-run dicts (`collect._run_info`), each with `samples` (per-example primary score by id).
        df: the comparison table (its `is_baseline` and `run_dirs` say which run is the baseline).

    Returns:
        One dict per pair: {"task", "arm", "arm_dir", "against", "against_dir", "reference": "baseline" | "parent",
        "parent_dequantized": bool, "n_paired", "right_to_wrong", "wrong_to_right"}, in table order.
    """
    by_dir = {i["dir"]: i for i in infos}
    bases: dict[str, dict[str, Any]] = {}
    for row in df[df["is_baseline"]].to_dict("records"):
        first = by_dir.get(str(row["run_dirs"]).split(";")[0])
        if first is not None and first["samples"]:
            bases[row["task"]] = first
    order = {d: k for k, row in enumerate(df.to_dict("records")) for d in str(row["run_dirs"]).split(";")}
    out = []
    for info in sorted(infos, key=lambda i: (order.get(i["dir"], 1 << 30), i["dir"])):
        if info["status"] != "finished" or not info["samples"]:
            continue
        refs = []
        base = bases.get(info["task"])
        if base is not None and base is not info and base["split"] == info["split"]:
            refs.append(("baseline", base))
        if info["quantization"] != "none" and (parent := _parent(info, infos)) is not None:
            refs.append(("parent", parent))
        for kind, ref in refs:
            pair = flip(info["samples"], ref["samples"])
            if not pair["n_paired"]:
                continue
            out.append({"task": info["task"], "arm": _label(info), "arm_dir": info["dir"], "against": _label(ref),
                        "against_dir": ref["dir"], "reference": kind,
                        "parent_dequantized": kind == "parent" and bool(ref.get("weights_provenance")), **pair})
    return out


def _ids(ids: list[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:SHOWN_IDS])
    return shown + (f" (+{len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else "")


def to_markdown(flips: list[dict[str, Any]]) -> str:
    """The flips section of comparison.md (empty string when no pair was scored on shared examples)."""
    if not flips:
        return ""
    lines = ["", "**Flips.** Per arm against the baseline, and per quantized rung against its full-precision parent "
             "(same model, adapter and task; quantization none): right→wrong = the reference got the example right "
             "and the arm wrong (McNemar's c against the baseline), wrong→right = the reverse (b). Right = full "
             "score on the primary metric; only example ids both runs scored are paired. Every id is in "
             "flips.json and report.html.", "",
             "| arm | against | n paired | right→wrong | wrong→right | right→wrong ids | wrong→right ids |",
             "|---|---|---:|---:|---:|---|---|"]
    for f in flips:
        against = f"{f['reference']}: {f['against']}"
        lines.append(" | ".join(["", f["arm"], against, str(f["n_paired"]), str(len(f["right_to_wrong"])),
                                 str(len(f["wrong_to_right"])), _ids(f["right_to_wrong"]),
                                 _ids(f["wrong_to_right"]), ""]).strip())
    return "\n".join(lines) + "\n"
