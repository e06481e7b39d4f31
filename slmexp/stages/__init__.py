"""The job's stages, each a module with a typed result: validate -> resolve -> [distill] -> train -> quantize ->
serve | route -> price. slmexp.pipeline orders them, times them and keeps run.json current; a stage receives the
job's config and the results of the stages before it. The validate stage returns that config (`Plan.config`: the
composed one with the fitted decoding budget, a read-only copy), so no stage writes into a config; a stage hands the
components it calls their own nodes and explicit arguments (the quantizer its `quantization` node, the price
stage `cost` and `runtime`, evaluation `eval`), except where a component's job spans several groups (training
keys its cache on model, task, adapter and train; building a runtime reads model, runtime and quantization).

    validate.run(cfg) -> Plan               every config and data error at once; task, constraints, budget
    resolve.run(cfg, plan) -> Resolution     the model's files (or an endpoint), its record block, provenance
    adapt.run(...) -> (eval path, adapter)   train (or reuse a cached training), the `train` block
    artifact.run(...) -> Served              the artifact the runtime serves (the quantizer's prepare)
    serve.run(...) / route.run(...)          load, evaluate, time, fidelity, memory (write metrics/speed as known)
    price.run(cost, runtime, metric, ...)    $ per 1k requests and per correct answer

The work itself stays in its own modules (slmexp.train, .distill, .quantize, .router, .evaluate, .bench); a stage
module is what the job hands each of them and what it keeps from them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

Timer = Callable[[str], AbstractContextManager[None]]  # pipeline's `stage(name)`: times it into run.json
