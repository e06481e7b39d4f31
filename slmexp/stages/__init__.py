"""The job's stages, each a module with a typed result: validate -> resolve -> [distill] -> train -> quantize ->
serve | route -> price. slmexp.pipeline orders them, times them and keeps run.json current; a stage receives the
config nodes it reads and the results of the stages before it, and never writes into the config.

    validate.run(cfg) -> Plan            every config and data error at once; the task, constraints, budget
    resolve.run(cfg, plan) -> Resolution  the model's files (or an endpoint), its record block and provenance
    serve.run(...) -> None               load, evaluate, timed requests, fidelity, memory (writes metrics/speed)
    price.run(cfg, record) -> cost block

Training (slmexp.train), distillation (slmexp.distill), quantization (slmexp.quantize) and routing (slmexp.router)
are stage functions of their own modules.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

Timer = Callable[[str], AbstractContextManager[None]]  # pipeline's `stage(name)`: times it into run.json
