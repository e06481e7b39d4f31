"""Cost from measured speed: hardware basis (price per hour / measured rate) at concurrency 1 and at the concurrent
pass, API basis (genai-prices' snapshot or an override per model; an unpriced model is an error), $ per correct
answer (and why it is empty at accuracy 0), and codecarbon's energy with what it read (sensor or estimate)."""

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


def test_a_model_genai_prices_knows_but_does_not_price_is_an_error_naming_price_model() -> None:
    # google/gemma-3 and openai/tts-1 are in the snapshot with no per-token chat price: HEAD priced them at $0
    for overrides in (["runtime.provider_id=google", "runtime.model=gemma-3"],
                      ["runtime.provider_id=openai", "runtime.model=my-alias", "runtime.price_model=tts-1"]):
        cfg = compose(["runtime=openai", *overrides])
        with pytest.raises(ConfigError, match=r"runtime\.price_model") as err:
            compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5)
        assert err.value.key == "runtime.price_model" and "cost.api_prices" in str(err.value)


def test_a_tiered_price_is_read_at_its_base_tier() -> None:
    cfg = compose(["runtime=openai", "runtime.provider_id=google", "runtime.model=gemini-2.5-pro"])
    cost = compute(cfg.cost, cfg.runtime, SPEED, accuracy=1.0)  # HEAD: float(TieredPrices) raised TypeError
    assert cost["api"]["input_usd_per_mtok"] == pytest.approx(1.25)
    assert cost["usd_per_1k_requests"] > 0


def test_hardware_cost_keeps_concurrency_1_and_the_concurrent_pass() -> None:
    cfg = compose([])
    conc = {"concurrency": 4, "n_requests": 10, "requests_per_s": 6.0, "output_tokens_per_s": 60.0,
            "empty_responses": 0}
    cost = compute(cfg.cost, cfg.runtime, {**SPEED, "concurrent": conc}, accuracy=0.5)
    per_s = 0.08925 / 3600
    assert cost["concurrency"] == 1
    assert cost["usd_per_1k_requests"] == pytest.approx(per_s / 2.0 * 1000, rel=1e-5)  # concurrency 1 stays
    cc = cost["concurrent"]
    assert cc["concurrency"] == 4 and cc["empty_responses"] == 0
    assert cc["usd_per_1k_requests"] == pytest.approx(per_s / 6.0 * 1000, rel=1e-5)
    assert cc["usd_per_1m_output_tokens"] == pytest.approx(per_s / 60.0 * 1e6, rel=1e-5)
    assert cc["usd_per_correct"] == pytest.approx(per_s / 6.0 / 0.5, rel=1e-5)
    assert "concurrent" not in compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5)  # no concurrent pass: none


def test_dollars_per_correct_at_accuracy_zero_says_no_answer_was_correct() -> None:
    cfg = compose([])
    speed = {**SPEED, "concurrent": {"concurrency": 4, "requests_per_s": 6.0, "output_tokens_per_s": 60.0}}
    cost = compute(cfg.cost, cfg.runtime, speed, accuracy=0.0)
    assert cost["usd_per_correct"] is None and cost["usd_per_correct_note"] == "no correct answer"
    assert cost["concurrent"]["usd_per_correct_note"] == "no correct answer"
    unmeasured = compute(cfg.cost, cfg.runtime, SPEED, accuracy=None)  # no accuracy: not measured, no note
    assert unmeasured["usd_per_correct"] is None and "usd_per_correct_note" not in unmeasured


def test_summary_shows_both_concurrencies_and_no_correct_answer(capsys) -> None:
    from slmexp.summary import print_summary

    cfg = compose([])
    speed = {**SPEED, "concurrent": {"concurrency": 4, "requests_per_s": 6.0, "output_tokens_per_s": 60.0}}
    cost = compute(cfg.cost, cfg.runtime, speed, accuracy=0.0)
    print_summary({"run": {"name": "t", "status": "finished", "run_dir": "/tmp/x", "stages_s": {}}, "cost": cost})
    err = " ".join(capsys.readouterr().err.split())
    assert "per 1k requests (concurrency 1)" in err and "4 requests in flight" in err
    assert "no correct answer" in err


def test_unknown_api_model_names_the_key() -> None:
    cfg = compose(["runtime=openai", "runtime.provider_id=openai", "runtime.model=surely-not-a-model"])
    with pytest.raises(ConfigError, match=r"runtime.model.*surely-not-a-model.*runtime.price_model"):
        compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5)


def test_cost_none_and_self_hosted_endpoints() -> None:
    cfg = compose(["cost=none"])
    assert compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5) is None
    cfg = compose(["runtime=openai"])  # no provider: a self-hosted server, priced by the hardware it runs on
    assert compute(cfg.cost, cfg.runtime, SPEED, accuracy=0.5)["basis"] == "hardware"


def test_energy_is_estimated_offline_by_codecarbon(monkeypatch) -> None:
    import slmexp.cost

    # A RAPL file that exists proves nothing (root-only on most kernels): HEAD called that "measured" while
    # codecarbon itself estimated from TDP x load. What codecarbon sampled decides.
    monkeypatch.setattr(slmexp.cost, "_has_rapl", lambda: True, raising=False)
    sink: dict = {}
    with energy_tracker(OmegaConf.create({"energy": True, "country_iso_code": "USA"}), True, sink):
        import time

        t_end = time.perf_counter() + 2.5  # codecarbon samples power every second: give it a few samples
        while time.perf_counter() < t_end:
            sum(i * i for i in range(100_000))
    assert sink["kwh"] > 0 and sink["duration_s"] > 0 and sink["method"].startswith("codecarbon offline")
    if sink["power_sources"].get("cpu") not in ("intel_rapl", "intel_power_gadget", "windows_emi") \
            and "gpu" not in sink["power_sources"]:  # this machine: no sensor codecarbon could read
        assert sink["estimated"] is True and "estimated" in sink["method"] and "measured" not in sink["method"]
    cost = compute(compose([]).cost, compose([]).runtime, {**SPEED, "energy": sink}, accuracy=0.5)
    assert cost["wh_per_1k_requests"] == pytest.approx(sink["kwh"] * 1000 / 10 * 1000, abs=1e-5)  # rounded
    assert cost["energy_estimated"] is sink["estimated"]


def test_energy_method_follows_the_mode_codecarbon_sampled() -> None:
    from slmexp.cost import energy_method

    class CPU:  # codecarbon.external.hardware.CPU keeps its power mode in `_mode`
        def __init__(self, mode: str) -> None:
            self._mode = mode

    class RAM:
        pass

    est = energy_method([RAM(), CPU("cpu_load")])
    assert est["estimated"] is True and est["power_sources"] == {"ram": "estimated from RAM size", "cpu": "cpu_load"}
    assert "estimated" in est["method"] and "TDP x CPU load" in est["method"]
    rapl = energy_method([RAM(), CPU("intel_rapl")])
    assert rapl["estimated"] is False and "CPU by RAPL" in rapl["method"] and "estimated: ram" in rapl["method"]
