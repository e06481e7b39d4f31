"""Dollar cost and energy per request, from what the speed stage measured.

Two bases, and the record says which one was used:
- `hardware` (local runtimes, self-hosted servers): the profile's price per hour divided by the measured request
  rate and output-token rate. This assumes the instance is kept busy by this workload; an idle instance costs the
  same per hour and serves nothing. Two figures, both kept, because they answer different questions: one request
  at a time (`usd_per_1k_requests`, the latency-bound interactive case) and, when the speed stage ran a concurrent
  pass, with that many requests in flight (`concurrent`, the throughput-bound batch case; a server that batches
  is several times cheaper there, and dropping either figure would misstate one of the cases).
- `api` (a priced cloud endpoint, `runtime.provider_id` set): measured input/output tokens per request times the
  price per 1M tokens. Prices come from `genai-prices`' bundled, dated snapshot (no network); an entry in
  `cost.api_prices` overrides it. A model the snapshot knows but does not price per token is an error naming
  `runtime.price_model`, not $0: a free-looking API row would win every cost comparison.

$ per correct answer divides $ per request by the accuracy: a cheap model that is always wrong is not cheap. At
accuracy 0 it is null with `usd_per_correct_note` = "no correct answer", so a reader does not take it for "not
measured". Energy comes from codecarbon's offline tracker around the timed requests; the record says per component
whether codecarbon read a power sensor (RAPL, NVML, powermetrics) or estimated (CPU TDP x load, RAM size), and
`estimated` is true unless a sensor was read.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig

from slmexp.origin import fail
from slmexp.record import CostBlock

NO_CORRECT_NOTE = "no correct answer"  # cost.usd_per_correct_note at accuracy 0: $/correct is undefined, not unmeasured
# codecarbon power modes that read a sensor rather than estimate (CPU modes; GPUs are read through NVML)
_SENSOR_MODES = {"intel_rapl": "RAPL", "intel_power_gadget": "Intel Power Gadget", "windows_emi": "Windows EMI"}

log = logging.getLogger(__name__)


def basis(cost_cfg: DictConfig, runtime_cfg: DictConfig) -> str | None:
    """`api` for a priced endpoint, `hardware` when the profile has an hourly price, else None (no cost)."""
    if cost_cfg is None or cost_cfg.get("name") == "none":
        return None
    if runtime_cfg.get("provider_id"):
        return "api"
    return "hardware" if cost_cfg.get("hardware") else None


def api_prices(cost_cfg: DictConfig, runtime_cfg: DictConfig) -> dict[str, Any]:
    """Per-1M-token input/output prices for the runtime's model: a config override, else genai-prices."""
    model_ref = str(runtime_cfg.get("price_model") or runtime_cfg.model)
    provider = str(runtime_cfg.provider_id)
    override = (cost_cfg.get("api_prices") or {}).get(model_ref)
    if override:
        for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
            if override.get(key) is None:
                raise fail(f"cost.api_prices.{model_ref}.{key}", "missing: an override needs both prices")
        return {"model_ref": model_ref, "provider_id": provider,
                "input_usd_per_mtok": float(override.input_usd_per_mtok),
                "output_usd_per_mtok": float(override.output_usd_per_mtok),
                "source": str(override.get("source") or "cost.api_prices"), "as_of": override.get("as_of")}
    from importlib.metadata import version

    from genai_prices import Usage, calc_price

    try:
        price = calc_price(Usage(input_tokens=0, output_tokens=0), model_ref=model_ref, provider_id=provider)
    except LookupError as e:
        key = "runtime.price_model" if runtime_cfg.get("price_model") else "runtime.model"
        raise fail("runtime.provider_id" if "provider" in str(e) else key,
                   f"no price in genai-prices for provider {provider!r}, model {model_ref!r} ({e}); set "
                   f"runtime.price_model to the provider's model id or add cost.api_prices.{model_ref}") from None
    mp = price.model_price
    per_mtok = {"input_usd_per_mtok": _mtok(mp.input_mtok), "output_usd_per_mtok": _mtok(mp.output_mtok)}
    missing = [k.split("_")[0] for k, v in per_mtok.items() if v is None]
    if missing:  # e.g. a free-tier entry, an embedding or audio model: pricing it at $0 would fake a cheap row
        raise fail("runtime.price_model",
                   f"genai-prices knows {price.provider.id}/{price.model.id} but has no per-token "
                   f"{' and '.join(missing)} price for it (priced as: {mp or 'nothing'}); set runtime.price_model "
                   f"to the provider's id of a chat model it prices, or give both prices in "
                   f"cost.api_prices.{model_ref} (0 is allowed there, when the model really is free)")
    return {"model_ref": price.model.id, "provider_id": price.provider.id, **per_mtok,
            "source": f"genai-prices {version('genai-prices')} bundled snapshot", "as_of": None}


def _mtok(value: Any) -> float | None:
    """A genai-prices per-1M-token price as a float: a tiered price's base tier (prompts below the first tier's
    threshold: every slmexp task is far below it); None when the price is absent."""
    if value is None:
        return None
    return float(getattr(value, "base", value))


def per_correct(out: dict[str, Any], per_1k: float | None, accuracy: float | None) -> None:
    """Set `usd_per_correct` (and a note at accuracy 0) in `out`: None alone means "not measured". The one rule for
    every $/correct figure (a job's cost block and the router's routed / SLM-only / LLM-only systems)."""
    out["usd_per_correct"] = per_1k / 1000 / accuracy if per_1k is not None and accuracy else None
    if per_1k is not None and accuracy is not None and accuracy == 0:
        out["usd_per_correct_note"] = NO_CORRECT_NOTE


def _hardware_rates(usd_per_s: float, rps: float | None, tps: float | None) -> dict[str, float | None]:
    """$ per 1k requests and per 1M output tokens from measured rates; None where a rate is missing or 0."""
    return {"usd_per_1k_requests": usd_per_s / rps * 1000 if rps else None,
            "usd_per_1m_output_tokens": usd_per_s / tps * 1e6 if tps else None}


def _round(value: Any) -> Any:
    """6 significant digits for floats, nested blocks included."""
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return float(f"{value:.6g}") if isinstance(value, float) else value


def compute(cost_cfg: DictConfig, runtime_cfg: DictConfig, speed: dict[str, Any],
            accuracy: float | None) -> CostBlock | None:
    """The record's cost block, or None when no price applies (cost=none).

    Hardware basis: `usd_per_1k_requests` at concurrency 1 and, when the speed stage measured a concurrent pass
    (`speed.concurrent`), `concurrent` = the same figures at that concurrency. The API basis prices tokens, which
    do not depend on concurrency, so it has no `concurrent` block.
    """
    kind = basis(cost_cfg, runtime_cfg)
    if kind is None:
        return None
    out: dict[str, Any] = {"basis": kind, "profile": str(cost_cfg.name)}
    if kind == "hardware":
        hw = cost_cfg.hardware
        usd_per_s = float(hw.usd_per_hour) / 3600.0
        out["hardware"] = {k: hw.get(k) for k in ("instance", "usd_per_hour", "source", "as_of")}
        out["concurrency"] = speed.get("concurrency", 1)
        out["assumption"] = "instance fully busy with this workload, one request at a time (concurrency 1)"
        out.update(_hardware_rates(usd_per_s, speed.get("requests_per_s"), speed.get("output_tokens_per_s")))
        conc = speed.get("concurrent")
        if conc and conc.get("concurrency"):
            block: dict[str, Any] = {
                "concurrency": int(conc["concurrency"]),
                **_hardware_rates(usd_per_s, conc.get("requests_per_s"), conc.get("output_tokens_per_s")),
                "requests_per_s": conc.get("requests_per_s"),
                "empty_responses": conc.get("empty_responses"),  # > 0: the server dropped requests; $ looks low
                "assumption": f"instance fully busy with this workload, {int(conc['concurrency'])} requests in "
                              "flight (the speed stage's concurrent pass)",
            }
            per_correct(block, block["usd_per_1k_requests"], accuracy)
            out["concurrent"] = block
    else:
        prices = api_prices(cost_cfg, runtime_cfg)
        usage = speed.get("usage") or {}
        n = usage.get("requests") or 0
        out["api"] = prices
        if n:
            in_tok, out_tok = usage["input_tokens"] / n, usage["output_tokens"] / n
            per_request = (in_tok * prices["input_usd_per_mtok"] + out_tok * prices["output_usd_per_mtok"]) / 1e6
            out["mean_input_tokens"], out["mean_output_tokens"] = round(in_tok, 2), round(out_tok, 2)
            out["token_count_source"] = usage.get("source")
            out["usd_per_1k_requests"] = per_request * 1000
            out["usd_per_1m_output_tokens"] = per_request / out_tok * 1e6 if out_tok else None
        else:
            out["usd_per_1k_requests"] = out["usd_per_1m_output_tokens"] = None
    per_correct(out, out.get("usd_per_1k_requests"), accuracy)
    energy = speed.get("energy")
    if energy and energy.get("kwh") and speed.get("n_requests"):  # 0 kWh = no power sample taken (< 1 s): unmeasured
        out["wh_per_1k_requests"] = energy["kwh"] * 1000 / speed["n_requests"] * 1000
        out["energy_estimated"] = energy.get("estimated", True)  # flat, for tables; unknown = estimated
        out["energy"] = energy
    return CostBlock(**_round(out))


def request_pricer(cost_cfg: DictConfig | None, runtime_cfg: DictConfig) -> tuple[dict[str, Any], Any] | None:
    """(description, fn(latency_s, input_tokens, output_tokens) -> USD) for single measured requests, or None.

    The same two bases as `compute`, applied per request rather than to a benchmark's rates, for stages that
    measure requests one by one (a distillation teacher's labels, the two models of a router): hardware = the
    hourly price times the request's wall time (the instance busy with it alone, as in `compute` at concurrency
    1); api = the request's tokens times the per-1M-token prices.
    """
    kind = basis(cost_cfg, runtime_cfg) if cost_cfg is not None else None
    if kind is None:
        return None
    if kind == "hardware":
        hw = cost_cfg.hardware
        usd_per_s = float(hw.usd_per_hour) / 3600.0
        desc = {"basis": "hardware", "profile": str(cost_cfg.name),
                "hardware": {k: hw.get(k) for k in ("instance", "usd_per_hour", "source", "as_of")},
                "assumption": "USD/h x measured request wall time; one request at a time"}
        return desc, lambda latency_s, _in, _out: usd_per_s * float(latency_s)
    prices = api_prices(cost_cfg, runtime_cfg)
    p_in, p_out = prices["input_usd_per_mtok"], prices["output_usd_per_mtok"]
    desc = {"basis": "api", "profile": str(cost_cfg.name), "api": prices,
            "assumption": "measured input/output tokens x price per 1M tokens"}
    return desc, lambda _lat, n_in, n_out: ((n_in or 0) * p_in + (n_out or 0) * p_out) / 1e6


@contextmanager
def energy_tracker(cost_cfg: DictConfig | None, enabled: bool, sink: dict[str, Any]):
    """Measure energy of the block with codecarbon (offline); fill `sink` with kWh and how it was estimated.

    Disabled (sink stays empty) for cost=none, `cost.energy=false`, remote endpoints, or without codecarbon.
    """
    if not enabled or cost_cfg is None or not cost_cfg.get("energy", False):
        yield
        return
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        log.warning("codecarbon is not installed: no energy figure (pip install codecarbon)")
        yield
        return
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(country_iso_code=str(cost_cfg.get("country_iso_code", "USA")),
                                      save_to_file=False, log_level="error", measure_power_secs=1,
                                      tracking_mode="process")
    tracker.start()
    try:
        yield
    finally:
        tracker.stop()
        d = tracker.final_emissions_data
        sink.update({"kwh": d.energy_consumed, "cpu_kwh": d.cpu_energy, "ram_kwh": d.ram_energy,
                     "gpu_kwh": d.gpu_energy, "kg_co2eq": d.emissions, "duration_s": round(d.duration, 3),
                     "cpu_power_w": d.cpu_power, "country_iso_code": d.country_iso_code,
                     "tracking_mode": d.tracking_mode, "cpu_model": d.cpu_model,
                     **energy_method(getattr(tracker, "_hardware", None) or []),
                     "codecarbon_version": d.codecarbon_version})


def energy_method(hardware: list[Any]) -> dict[str, Any]:
    """How codecarbon got each component's power, from the hardware objects it actually sampled.

    Why not "a RAPL file exists": the files are root-only on most kernels (CVE-2020-8694), and codecarbon then
    falls back to TDP x CPU load while the file is still there. The mode codecarbon chose is what was read.
    Returns `power_sources` ({component: mode}), `estimated` (no component read by a power sensor) and `method`.
    """
    sources: dict[str, str] = {}
    measured: list[str] = []
    for h in hardware:
        kind = type(h).__name__
        if kind == "CPU":
            mode = str(getattr(h, "_mode", "unknown"))
            sources["cpu"] = mode
            if mode in _SENSOR_MODES:
                measured.append(f"CPU by {_SENSOR_MODES[mode]}")
        elif kind == "GPU":
            sources["gpu"] = "nvml"
            measured.append("GPU by NVML")
        elif kind == "AppleSiliconChip":
            sources[str(getattr(h, "chip_part", "chip")).lower()] = "powermetrics"
            measured.append("Apple silicon by powermetrics")
        elif kind == "RAM":
            sources["ram"] = "estimated from RAM size"
        else:
            sources[kind.lower()] = "unknown"
    estimated = not measured
    if estimated:
        how = {"cpu_load": "CPU TDP x CPU load", "constant": "a constant share of CPU TDP"}.get(
            sources.get("cpu", ""), f"CPU mode {sources.get('cpu', 'unknown')}")
        method = f"codecarbon offline; estimated (no power sensor read): {how}, RAM from its size"
    else:
        rest = [c for c, m in sources.items() if m.startswith("estimated") or m in ("cpu_load", "constant")]
        method = ("codecarbon offline; measured: " + ", ".join(measured)
                  + (f"; estimated: {', '.join(rest)}" if rest else ""))
    return {"power_sources": sources, "estimated": estimated, "method": method}
