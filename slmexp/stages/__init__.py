"""The job's stages, each a module with a typed result: validate -> resolve -> [distill] -> train -> quantize ->
serve | route -> price. slmexp.pipeline orders them, times them and keeps run.json current; a stage receives the
composed config (read only: no stage writes into it; each stage taking only its own node is still to do) and the
results of the stages before it.

    validate.run(cfg) -> Plan               every config and data error at once; task, constraints, budget
    resolve.run(cfg, plan) -> Resolution     the model's files (or an endpoint), its record block, provenance
    adapt.run(...) -> (eval path, adapter)   train (or reuse a cached training), the `train` block
    artifact.run(...) -> Served              the artifact the runtime serves (the quantizer's prepare)
    serve.run(...) / route.run(...)          load, evaluate, time, fidelity, memory (write metrics/speed as known)
    price.run(cfg, speed, values) -> cost    $ per 1k requests and per correct answer

The work itself stays in its own modules (slmexp.train, .distill, .quantize, .router, .evaluate, .bench); a stage
module is what the job hands each of them and what it keeps from them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

Timer = Callable[[str], AbstractContextManager[None]]  # pipeline's `stage(name)`: times it into run.json
