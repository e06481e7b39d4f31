"""Attestation: two sha256 fingerprints in run.json that tie a run's results to the answers they were scored from.

Why: a comparison table travels (a thesis, a review, an export) far from the run dirs that made it. Two short hashes
let anyone holding the run dirs check that the numbers and the answers are the ones the table shows, and
`slmexp verify` names the first example whose stored answer no longer matches, instead of a bare "changed".

- `results_sha256`: sha256 of the canonical JSON of the attested fields of the `metrics` block (`COVERS`: task,
  split, n_examples, primary and every metric value with its stderr).
- `outputs_sha256`: sha256 over the per-example hashes, one hex digest and a newline per example, in id order. An
  example's hash is the sha256 of the canonical JSON of `{"id", "raw", "extracted"}` from `generations.jsonl`; the
  per-example hashes (and the hashes of the raw and of the extracted answer alone, to say which of the two
  differs) are kept in `attest.jsonl` next to run.json.

Canonical JSON is RFC 8785 (JSON Canonicalization Scheme) through the `rfc8785` package (Trail of Bits; pure
Python, no dependencies): keys sorted by UTF-16 code units, no whitespace, numbers in ECMAScript's shortest
round-trip form, so another language's JCS library gives the same bytes for the same values. Sorted keys with a
fixed float format of our own would be a format only slmexp speaks. JCS has no NaN, infinity or integers beyond
±2^53; such a value (a stderr of n=1 is NaN) is hashed as its Python string (`"nan"`), which this module and
`slmexp verify` both apply.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from slmexp import generations
from slmexp.record_types import AttestationBlock, MetricsBlock

ATTEST_NAME = "attest.jsonl"
COVERS = ("task", "split", "n_examples", "primary", "values")  # the metrics fields results_sha256 covers
_JCS_INT = 2**53 - 1  # the largest integer an IEEE double (JSON's number in RFC 8785) holds exactly


def _jcs_safe(obj: Any) -> Any:
    """`obj` with what RFC 8785 cannot encode (NaN, ±inf, integers beyond ±2^53, tuples, other types) made encodable:
    the numbers as their Python string, tuples as lists, other objects as `str()` (as generations.jsonl stores them)."""
    if isinstance(obj, dict):
        return {str(k): _jcs_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jcs_safe(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, int):
        return obj if abs(obj) <= _JCS_INT else str(obj)
    return str(obj)


def canonical(obj: Any) -> bytes:
    """The RFC 8785 canonical JSON of `obj` (UTF-8 bytes)."""
    import rfc8785

    return rfc8785.dumps(_jcs_safe(obj))


def sha256_of(obj: Any) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def canonical_name() -> str:
    """What made the JSON canonical, with the library's version (recorded so a verifier knows what to use)."""
    try:
        return f"RFC 8785 JCS (rfc8785 {metadata.version('rfc8785')})"
    except metadata.PackageNotFoundError:
        return "RFC 8785 JCS"


def results_sha256(metrics: MetricsBlock) -> str:
    """sha256 of the canonical JSON of the attested metrics fields (a field the block lacks is null)."""
    return sha256_of({key: metrics.get(key) for key in COVERS})


def example_hashes(rows: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Per example, in id order: id, sha256 of {id, raw, extracted}, and of the raw and the extracted answer alone."""
    out = []
    for row in rows:
        ident = str(row.get("id"))
        raw, extracted = row.get("raw"), row.get("extracted")
        out.append({"id": ident, "sha256": sha256_of({"id": ident, "raw": raw, "extracted": extracted}),
                    "raw_sha256": sha256_of(raw), "extracted_sha256": sha256_of(extracted)})
    out.sort(key=lambda h: h["id"])  # a stable sort: rows sharing an id keep the store's order
    return out


def outputs_sha256(hashes: Iterable[dict[str, str]]) -> str:
    """sha256 of each example's hash and a newline, in the order given (id order)."""
    digest = hashlib.sha256()
    for h in hashes:
        digest.update(f"{h['sha256']}\n".encode())
    return digest.hexdigest()


def read_hashes(path: Path) -> list[dict[str, str]]:
    """The per-example hashes a run kept (`attest.jsonl`)."""
    return generations.read(path)


def attest(run_dir: Path, metrics: MetricsBlock) -> AttestationBlock | None:
    """Hash the run's metrics and its stored answers; writes attest.jsonl and returns the record's `attestation`
    block (None when the run has no generations.jsonl: lm-eval wrote no samples, or a routed run)."""
    run_dir = Path(run_dir)
    store = generations.find(run_dir, {"metrics": metrics})
    if store is None:
        return None
    hashes = example_hashes(generations.read(store))
    generations.write(run_dir / ATTEST_NAME, hashes)
    return {"results_sha256": results_sha256(metrics), "outputs_sha256": outputs_sha256(hashes),
            "canonical": canonical_name(), "covers": list(COVERS), "n_examples": len(hashes),
            "examples": ATTEST_NAME}


def short(digest: str | None, n: int = 12) -> str:
    """The first `n` hex digits, as a table shows a hash."""
    return digest[:n] if isinstance(digest, str) else ""
