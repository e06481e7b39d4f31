"""Cost from measured speed: hardware basis (price per hour / measured rate), API basis (genai-prices' snapshot or an
override per model), $ per correct answer, and codecarbon's offline energy estimate."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from slmexp.cost import compute, energy_tracker
from slmexp.errors import ConfigError
from tests.conftest import compose

SPEED = {"requests_per_s": 2.0, "output_tokens_per_s": 20.0, "n_requests": 10, "concurrency": 1,
         "usage": {"requests": 10, "input_tokens": 3000, "output_tokens": 100, "source": "server usage"}}


def test_hardware_basis_divides_the_hourly_price_by_measured_throughput() -> None:
    cfg = compose([])  # default profile: cpu-2core
    cost = compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5)
    per_s = 0.08925 / 3600
    assert cost["basis"] == "hardware" and cost["profile"] == "cpu-2core"
    assert cost["usd_per_1k_requests"] == pytest.approx(per_s / 2.0 * 1000, rel=1e-5)
    assert cost["usd_per_1m_output_tokens"] == pytest.approx(per_s / 20.0 * 1e6, rel=1e-5)
    assert cost["usd_per_correct"] == pytest.approx(per_s / 2.0 / 0.5, rel=1e-5)
    assert cost["hardware"]["as_of"] and cost["hardware"]["source"].startswith("https://")


def test_api_basis_prices_measured_tokens_from_genai_prices() -> None:
    cfg = compose(["runtime=openai", "runtime.provider_id=openai", "runtime.model=gpt-4o-mini"])
    cost = compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.0)
    assert cost["basis"] == "api" and cost["api"]["source"].startswith("genai-prices ")
    i, o = cost["api"]["input_usd_per_mtok"], cost["api"]["output_usd_per_mtok"]
    assert i > 0 and o > 0
    assert cost["usd_per_1k_requests"] == pytest.approx((300 * i + 10 * o) / 1e6 * 1000, rel=1e-5)
    assert cost["usd_per_correct"] is None  # never right: no $ per correct answer, not a division by zero


def test_a_config_price_overrides_the_snapshot() -> None:
    cfg = compose(["runtime=openai", "runtime.provider_id=openai", "runtime.model=my-deployment",
                   "+cost.api_prices.my-deployment={input_usd_per_mtok:1.0,output_usd_per_mtok:2.0,as_of:'2026-11'}"])
    cost = compute(cfg.cost, cfg.runtime, SPEED, accuracy=1.0)
    assert cost["api"]["source"] == "cost.api_prices" and cost["api"]["as_of"] == "2026-11"
    assert cost["usd_per_1k_requests"] == pytest.approx((300 * 1.0 + 10 * 2.0) / 1e6 * 1000)


def test_unknown_api_model_names_the_key() -> None:
    cfg = compose(["runtime=openai", "runtime.provider_id=openai", "runtime.model=surely-not-a-model"])
    with pytest.raises(ConfigError, match=r"runtime.model.*surely-not-a-model.*runtime.price_model"):
        compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5)


def test_cost_none_and_self_hosted_endpoints() -> None:
    cfg = compose(["cost=none"])
    assert compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5) is None
    cfg = compose(["runtime=openai"])  # no provider: a self-hosted server, priced by the hardware it runs on
    assert compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5)["basis"] == "hardware"


def test_energy_is_estimated_offline_by_codecarbon() -> None:
    sink: dict = {}
    with energy_tracker(OmegaConf.create({"energy": True, "country_iso_code": "USA"}), True, sink):
        import time

        t_end = time.perf_counter() + 2.5  # codecarbon samples power every second: give it a few samples
        while time.perf_counter() < t_end:
            sum(i * i for i in range(100_000))
    assert sink["kwh"] > 0 and sink["duration_s"] > 0 and sink["method"].startswith("codecarbon offline")
    cost = compute(compose([]).cost, compose([]).runtime, {**SPEED, "energy": sink}, accuracy=0.5)
    assert cost["wh_per_1k_requests"] == pytest.approx(sink["kwh"] * 1000 / 10 * 1000, abs=1e-5)  # rounded
