"""Dollar cost and energy per request, from what the speed stage measured.

Two bases, and the record says which one was used:
- `hardware` (local runtimes, self-hosted servers): the profile's price per hour divided by the measured request
  rate and output-token rate. This assumes the instance is kept busy by this workload at the measured concurrency;
  an idle instance costs the same per hour and serves nothing.
- `api` (a priced cloud endpoint, `runtime.provider_id` set): measured input/output tokens per request times the
  price per 1M tokens. Prices come from `genai-prices`' bundled, dated snapshot (no network); an entry in
  `cost.api_prices` overrides it.

$ per correct answer divides $ per request by the accuracy: a cheap model that is always wrong is not cheap.
Energy comes from codecarbon's offline tracker around the timed requests; without power sensors (no RAPL, no GPU)
codecarbon estimates from CPU TDP/load and RAM size, and the record keeps its tracking mode.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig

from slmexp.origin import fail

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
        raise fail("runtime.provider_id" if "provider" in str(e) else "runtime.model",
                   f"no price in genai-prices for provider {provider!r}, model {model_ref!r} ({e}); set "
                   f"runtime.price_model to the provider's model id or add cost.api_prices.{model_ref}") from None
    mp = price.model_price
    return {"model_ref": price.model.id, "provider_id": price.provider.id,
            "input_usd_per_mtok": float(mp.input_mtok or 0), "output_usd_per_mtok": float(mp.output_mtok or 0),
            "source": f"genai-prices {version('genai-prices')} bundled snapshot", "as_of": None}


def compute(cost_cfg: DictConfig, runtime_cfg: DictConfig, speed: dict[str, Any],
            accuracy: float | None) -> dict[str, Any] | None:
    """The record's cost block, or None when no price applies (cost=none, or nothing measured to divide by)."""
    kind = basis(cost_cfg, runtime_cfg)
    if kind is None:
        return None
    out: dict[str, Any] = {"basis": kind, "profile": str(cost_cfg.name)}
    if kind == "hardware":
        hw = cost_cfg.hardware
        usd_per_s = float(hw.usd_per_hour) / 3600.0
        rps, tps = speed.get("requests_per_s"), speed.get("output_tokens_per_s")
        out["hardware"] = {k: hw.get(k) for k in ("instance", "usd_per_hour", "source", "as_of")}
        out["concurrency"] = speed.get("concurrency", 1)
        out["assumption"] = "instance fully busy with this workload at the measured concurrency"
        out["usd_per_1k_requests"] = usd_per_s / rps * 1000 if rps else None
        out["usd_per_1m_output_tokens"] = usd_per_s / tps * 1e6 if tps else None
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
    per_1k = out.get("usd_per_1k_requests")
    out["usd_per_correct"] = per_1k / 1000 / accuracy if per_1k is not None and accuracy else None
    energy = speed.get("energy")
    if energy and energy.get("kwh") and speed.get("n_requests"):  # 0 kWh = no power sample taken (< 1 s): unmeasured
        out["wh_per_1k_requests"] = energy["kwh"] * 1000 / speed["n_requests"] * 1000
        out["energy"] = energy
    return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in out.items()}  # 6 significant digits


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
                     "method": "codecarbon offline; " + ("measured" if d.cpu_model and _has_rapl()
                                                         else "estimated from CPU load/TDP and RAM size"),
                     "codecarbon_version": d.codecarbon_version})


def _has_rapl() -> bool:
    from pathlib import Path

    return any(Path("/sys/class/powercap").glob("intel-rapl*/energy_uj"))
