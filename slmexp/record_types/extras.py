"""The blocks only some runs have: `fidelity` (quantized runs), `distill` (a teacher's labels), `router`.

Part of slmexp.record_types (the package docstring says why the record is declared as TypedDicts); a trailing
comment is the field's description in the generated schema and docs.
"""

from typing_extensions import TypedDict

from slmexp.record_types.measure import Percentiles, RequestPricing


class FidelityParent(TypedDict, total=False):
    """`fidelity.parent`: the full-precision model the served one is compared with."""

    name: str
    path: str
    sha256: str | None
    dequantized: bool  # the parent's weights were rebuilt from a GGUF
    dequantized_note: str | None


class FidelityBlock(TypedDict, total=False):
    """`fidelity` (quantized runs with eval.fidelity.n_prompts > 0): next-token distributions of the served model
    against its full-precision parent, teacher-forced on the same token ids."""

    kld_mean: float  # KL(parent ‖ served), nats, pooled over every position
    kld_p99: float
    top1_agreement_pct: float
    ppl: float  # the served model's perplexity
    ppl_parent: float
    ppl_ratio: float  # ppl / ppl_parent
    n_tokens: int
    n_texts: int
    max_tokens_per_text: int
    wall_s: float
    method: str
    parent: FidelityParent


class RequestSeconds(TypedDict, total=False):
    """`distill.teacher_request_s`: the teacher's request times."""

    total: float
    mean: float | None


class DistillBlock(TypedDict, total=False):
    """`distill` (distill runs): the teacher's labels the student trained on instead of the gold ones."""

    teacher: str
    teacher_runtime: str
    split: str  # the split the teacher labelled
    limit: int | None
    n_inputs: int
    n_queried: int  # asked in this run; the rest came from the cache
    n_cached: int
    cached: bool  # nothing was asked in this run
    teacher_loaded: bool
    teacher_load_s: float | None
    n_kept: int
    n_rejected: int
    rejected_reasons: dict[str, int]
    parse_rule: str  # how the teacher's answers were parsed, with its version
    teacher_agreement_with_gold: float | None  # a diagnostic of label noise only: gold never reaches the student
    gold_labels_used_for_training: bool
    teacher_request_s: RequestSeconds
    cost_usd: float | None  # of every label used (cached ones at their original figures)
    cost_usd_this_run: float | None
    cost: RequestPricing | None
    cost_note: str
    min_kept: int
    wall_s: float
    file: str  # the labels, relative to the run dir
    cache_file: str
    cache_key: str
    data_sha256: str  # of the student's train set (the kept labels)


class RoutedSystem(TypedDict, total=False):
    """The figures of one system of a router run: routed, SLM only or LLM only."""

    threshold: float | None  # routed: the SLM confidence below which a request escalates
    system: str  # routed | slm | llm
    n: int
    accuracy: float | None
    accuracy_stderr: float | None
    n_escalated: int
    escalated_share: float | None
    latency_ms: Percentiles | None
    usd_per_1k_requests: float | None
    usd_per_correct: float | None
    usd_per_correct_note: str


class SlmLlmCounts(TypedDict):
    """A count for each of the router's two models."""

    slm: int
    llm: int


class SlmLlmFiles(TypedDict):
    """A file for each of the router's two models."""

    slm: str
    llm: str


class SlmLlmPricing(TypedDict):
    """How each of the router's two models' requests were priced (null: cost=none)."""

    slm: RequestPricing | None
    llm: RequestPricing | None


class RouterBlock(TypedDict, total=False):
    """`router` (router runs): the SLM answers, a request escalates to the LLM below the threshold; the figures of
    the routed system next to each model alone."""

    threshold: float
    split: str
    confidence: str  # how the SLM's confidence is measured (label_prob, ...)
    slm: str | None
    llm: str
    llm_runtime: str
    n: int
    n_escalated: int
    escalated_share: float | None
    routed: RoutedSystem
    slm_only: RoutedSystem
    llm_only: RoutedSystem
    measured_now: SlmLlmCounts  # requests measured in this run; the rest were read from the caches
    cached: SlmLlmCounts
    composition: str  # how the routed figures were composed from the two models' measured requests
    slm_request: str  # what one SLM request is
    cost: SlmLlmPricing
    wall_s: float
    samples: str
    cache_files: SlmLlmFiles


class AttestationBlock(TypedDict, total=False):
    """`attestation` (runs with a per-example store): fingerprints of the results and of the answers behind them, so
    a table can be checked against the files it was made from (`slmexp verify`; slmexp.attest says how each is
    computed)."""

    results_sha256: str  # sha256 of the canonical JSON of the attested metrics fields (`covers`)
    outputs_sha256: str  # sha256 over every example's per-example hash (raw and extracted answer), in id order
    canonical: str  # how JSON was made canonical (RFC 8785 JCS, the rfc8785 package and its version)
    covers: list[str]  # the `metrics` fields results_sha256 covers
    n_examples: int  # examples in outputs_sha256
    examples: str  # the per-example hashes (attest.jsonl), relative to the run dir
