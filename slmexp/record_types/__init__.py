"""Every block of the run record (`run.json`) declared once, as TypedDicts: the one place its field names, types and
meanings live (this package: `job`, `measure`, `extras`; the record itself, `RunJson`, here).

Why TypedDicts and not models: the record stays a plain dict that stages fill as they run and that readers take as
parsed JSON, so nothing at run time changes; the declarations are what `slmexp.record_schema` turns into the JSON
Schema (slmexp/run.schema.json, docs/run.schema.json) and into the field tables of docs/run-record.md, so the
three cannot drift. A field's trailing comment (or the comment lines right above it) is its description there, a
class docstring its block's.

Readers read through these types: the report, summary, tracking, rescore, claims and callbacks modules annotate the
records and blocks they take (`rec: RunJson`, `speed: SpeedBlock`), and tests/test_record_reads.py scans their source
and fails on any key they read from a block that is not declared here. So a new field a reader needs is declared here
first, with its description.

Blocks are open: a key not declared here is allowed (the JSON Schema leaves `additionalProperties` true), so a
reader or a later stage may add one; what is declared keeps its name, type and meaning. `total=False` classes list
fields a record may lack; `X | None` means the field may be null. No `from __future__ import annotations` here:
pydantic reads these annotations at run time, on Python 3.10 too (hence typing_extensions' TypedDict).
"""

from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

from slmexp.record_types.extras import (
    AttestationBlock,
    DistillBlock,
    FidelityBlock,
    FidelityParent,
    RoutedSystem,
    RouterBlock,
)
from slmexp.record_types.job import ModelBlock, ProvenanceBlock, QuantizationBlock, RunBlock, RunError, TrainBlock
from slmexp.record_types.measure import (
    ConcurrentCost,
    CostBlock,
    EnergyBlock,
    MetricsBlock,
    Percentiles,
    Selection,
    SpeedBlock,
    TimedRequest,
)

__all__ = [
    "SCHEMA",
    "AttestationBlock",
    "ConcurrentCost",
    "CostBlock",
    "DistillBlock",
    "EnergyBlock",
    "FidelityBlock",
    "FidelityParent",
    "MetricsBlock",
    "ModelBlock",
    "Percentiles",
    "ProvenanceBlock",
    "QuantizationBlock",
    "RoutedSystem",
    "RouterBlock",
    "RunBlock",
    "RunError",
    "RunJson",
    "Selection",
    "SpeedBlock",
    "TimedRequest",
    "TrainBlock",
]


# 2: every block declared here, with a JSON Schema (run.schema.json). The fields are those of 1, same names and
# meaning, so readers take both; a reader that needs a field checks for it, not the version.
SCHEMA = 2


class RunJson(TypedDict):
    """A job's run record (`run.json`). A block the job did not reach, or does not have, is null; `fidelity`,
    `distill` and `router` appear only in runs that have them."""

    schema: Literal[SCHEMA]  # the record's schema version (slmexp.record_types.SCHEMA)
    run: RunBlock  # identity, status, timing, and the error of a failed job
    config: dict[str, Any]  # the resolved config, secrets redacted
    model: ModelBlock | None  # the weights evaluated
    train: TrainBlock | None  # the fine-tuning (adapter != none)
    quantization: QuantizationBlock | None  # what was served when not the plain checkpoint
    metrics: MetricsBlock | None  # the accuracy pass
    speed: SpeedBlock | None  # how fast: the timed requests, memory, contention, energy
    cost: CostBlock | None  # $ per request and per correct answer; null for cost=none
    provenance: ProvenanceBlock | None  # code, packages, machine, seed, input hashes
    fidelity: NotRequired[FidelityBlock | None]  # quantized runs: against the full-precision parent
    distill: NotRequired[DistillBlock | None]  # distill runs: the teacher's labels
    router: NotRequired[RouterBlock | None]  # router runs: the routed system and each model alone
    attestation: NotRequired[AttestationBlock | None]  # runs with generations.jsonl: results and outputs sha256
