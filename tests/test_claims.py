"""Claims as checks (slmexp/report/claims.py): a sweep's `claims:` list is evaluated against the comparison table with
the table's own 95% CIs, written to claims.json, comparison.md, report.html and the wandb sweep run, and rebuilt by
`slmexp report DIR` from the run.json files alone. Hand-made run records only (tests/test_report.py's factory)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
from omegaconf import OmegaConf

from slmexp.errors import ConfigError
from slmexp.fingerprint import fingerprint
from slmexp.report import build_table, collect, main, write_report
from slmexp.report import claims as cl
from tests.conftest import compose
from tests.test_report import BASE_CORRECT, IDS, LORA_S1, N, _write_run

HW = {"basis": "hardware"}


def _lat(values: list[float]) -> list[dict[str, Any]]:
    return [{"id": i, "latency_ms": v} for i, v in zip(IDS, values, strict=True)]


BASE_LAT = [1000.0 + 37 * i for i in range(N)]


def _sweep(root: Path, claims: list[dict[str, Any]] | None) -> Path:
    """A baseline, a LoRA SLM (8x faster on every request, 10x cheaper), a zero-shot SLM without per-request
    latencies, and two GGUF rungs (F16, Q4_K_M) with their sizes; every run records its arm and the claims."""
    def extra(arm: str, **more: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"run": {"arm": arm}, "config": {"claims": claims}}
        for k, v in more.items():
            out.setdefault(k, {}).update(v)
        return out

    _write_run(root, "0", model="qwen2.5-coder-1.5b", role="baseline", params_b=1.54, correct=BASE_CORRECT,
               latency=(1351.5, 1700.0), cost={"usd_per_1k_requests": 0.5, **HW},
               extra=extra("llm-baseline", speed={"requests": _lat(BASE_LAT)}))
    _write_run(root, "1", model="smollm2-135m", adapter="lora", correct=LORA_S1, latency=(1351.5 / 8, 212.5),
               cost={"usd_per_1k_requests": 0.05, **HW},
               extra=extra("slm-lora", speed={"requests": _lat([v / 8 for v in BASE_LAT])}))
    _write_run(root, "2", model="smollm2-135m", correct=[1] * 10 + [0] * 10, latency=(200.0, 300.0),
               extra=extra("slm-zeroshot"))
    for job, (arm, gguf, nbytes) in enumerate((("quant-gguf-f16", "f16", 400_000_000),
                                               ("quant-gguf-q4_k_m", "q4_k_m", 105_000_000)), start=3):
        _write_run(root, str(job), model="smollm2-135m", runtime="llamacpp", correct=LORA_S1,
                   quant={"kind": "gguf", "name": f"gguf-{gguf}", "gguf_type": gguf, "bytes": nbytes,
                          "f16_bytes": 270_000_000},
                   extra=extra(arm))
    return root


def _claim(arm: str, metric: str, op: str, value: float, **more: Any) -> dict[str, Any]:
    return {"id": f"{arm}-{metric}-{op}-{value}", "arm": arm, "metric": metric, "op": op, "value": value, **more}


def _evaluate(root: Path) -> dict[str, dict[str, Any]]:
    records = collect(root)
    return {c["id"]: c for c in cl.evaluate(records, build_table(records))}


def test_each_verdict_from_the_ci(tmp_path: Path) -> None:
    claims = [_claim("slm-lora", "retained_pct", ">=", 100), _claim("slm-lora", "retained_pct", "<=", 90),
              _claim("slm-lora", "retained_pct", ">=", 120), _claim("slm-missing", "retained_pct", ">=", 90),
              _claim("slm-zeroshot", "speedup", ">=", 2)]
    got = _evaluate(_sweep(tmp_path / "s", claims))
    holds, fails, straddles, missing, no_ci = (got[c["id"]] for c in claims)
    # LoRA is right on ids 1-12, the baseline on 1-10: retained 120%, and no resample can go below 100%
    assert holds["estimate"] == pytest.approx(120.0) and holds["ci"][0] >= 100 and holds["verdict"] == "holds"
    assert holds["row"] == "smollm2-135m+lora@transformers" and holds["against"] == "qwen2.5-coder-1.5b@transformers"
    assert fails["verdict"] == "fails" and fails["ci"] == holds["ci"]
    assert straddles["ci"][0] < 120 < straddles["ci"][1] and straddles["verdict"] == "inconclusive"
    assert missing["verdict"] == "not measured" and "no row for arm 'slm-missing'" in missing["reason"]
    assert missing["estimate"] is None and missing["ci"] is None
    # a speed-up without per-request latencies has no CI: the point (6.76x) alone does not decide
    assert no_ci["estimate"] == pytest.approx(1351.5 / 200) and no_ci["verdict"] == "inconclusive"
    assert "no 95% CI" in no_ci["reason"]


def test_conversions_latency_reduction_cheaper_x_and_size(tmp_path: Path) -> None:
    claims = [_claim("slm-lora", "latency_reduction_pct", ">=", 85),
              _claim("slm-lora", "latency_reduction_pct", ">", 90),
              _claim("slm-lora", "cheaper_x", ">=", 9), _claim("slm-lora", "cheaper_x", "<=", 5),
              _claim("quant-gguf-q4_k_m", "size_reduction_pct", ">=", 75, reference="quant-gguf-f16"),
              _claim("quant-gguf-q4_k_m", "size_reduction_pct", ">=", 70, reference="quant-gguf-f16"),
              _claim("slm-lora", "speedup", ">=", 6.67),
              _claim("quant-gguf-q4_k_m", "size_reduction_pct", ">=", 60, reference="f16"),
              _claim("slm-lora", "size_reduction_pct", ">=", 60, reference="f16")]
    got = _evaluate(_sweep(tmp_path / "s", claims))
    lat85, lat90, cheap9, cheap5, size75, size70, speed, own_f16, no_gguf = (got[c["id"]] for c in claims)
    # every request 8x faster: speed-up 8 [8, 8], i.e. 87.5% lower latency; ">= 85%" is "speed-up >= 6.67"
    assert lat85["estimate"] == pytest.approx(87.5) and lat85["ci"] == pytest.approx([87.5, 87.5])
    assert lat85["verdict"] == "holds" and lat85["equivalent"] == "speed-up >= 6.67"
    assert lat90["verdict"] == "fails" and speed["verdict"] == "holds" and speed["estimate"] == pytest.approx(8)
    # cost ratio 0.1 -> 10x cheaper; ">= 9x" is "cost ratio <= 0.111", the op flips with the conversion
    assert cheap9["estimate"] == pytest.approx(10) and cheap9["ci"] == pytest.approx([10, 10])
    assert cheap9["verdict"] == "holds" and cheap9["equivalent"] == "cost ratio <= 0.111"
    assert cheap5["verdict"] == "fails"
    # size on disk is exact: 1 - 105/400 = 73.75% smaller, no CI
    assert size75["estimate"] == pytest.approx(73.75) and size75["ci"] is None and size75["verdict"] == "fails"
    assert size70["verdict"] == "holds" and size70["against"] == "smollm2-135m/f16@llamacpp"
    assert "exact: 105 MB vs 400 MB" in size70["reason"]
    # reference f16: the F16 GGUF the row's own export was made from (the record's f16_bytes): 1 - 105/270
    assert own_f16["estimate"] == pytest.approx(100 * (1 - 105 / 270)) and own_f16["verdict"] == "holds"
    assert own_f16["against"] == "its own F16 GGUF" and "105 MB vs 270 MB" in own_f16["reason"]
    assert no_gguf["verdict"] == "not measured" and "no GGUF export" in no_gguf["reason"]


def test_contended_speed_and_the_baseline_itself_settle_nothing(tmp_path: Path) -> None:
    claims = [_claim("slm-lora", "speedup", ">=", 2), _claim("llm-baseline", "retained_pct", ">=", 90),
              _claim("slm-zeroshot", "size_reduction_pct", ">=", 50)]
    root = _sweep(tmp_path / "s", claims)
    rec = json.loads((root / "1" / "run.json").read_text())
    rec["speed"]["contended"] = True
    (root / "1" / "run.json").write_text(json.dumps(rec))
    speed, base, size = (_evaluate(root)[c["id"]] for c in claims)
    assert speed["verdict"] == "inconclusive" and "contention" in speed["reason"]
    assert base["verdict"] == "not measured" and "is the baseline itself" in base["reason"]
    assert size["verdict"] == "holds" and size["against"] == "qwen2.5-coder-1.5b@transformers"  # default reference


def test_claims_json_markdown_section_and_html(tmp_path: Path) -> None:
    claims = [_claim("slm-lora", "retained_pct", ">=", 100, text="LoRA keeps all of the baseline's accuracy"),
              _claim("slm-lora", "latency_reduction_pct", ">=", 85), _claim("nope", "cost_ratio", "<=", 0.1)]
    root = _sweep(tmp_path / "s", claims)
    (root / "claims.json").write_text("stale")
    paths = write_report(root)
    data = json.loads(paths["claims_json"].read_text())["claims"]
    assert [c["verdict"] for c in data] == ["holds", "holds", "not measured"]
    assert {"claim", "verdict", "estimate", "ci", "threshold", "row", "against", "reason"} <= set(data[0])
    md = paths["md"].read_text()
    table_end, section, flips = md.index("\n\n**Claims.**"), md.index("| id | claim |"), md.index("**Flips")
    assert md.index("| model |") < table_end < section < flips
    assert ("| slm-lora-latency_reduction_pct->=-85 | slm-lora latency_reduction_pct >= 85 | "
            "smollm2-135m+lora@transformers | qwen2.5-coder-1.5b@transformers | **holds** | 87.5 [87.5, 87.5] | "
            ">= 85 (speed-up >= 6.67) |") in md
    assert "| LoRA keeps all of the baseline's accuracy |" in md and "no row for arm 'nope'" in md
    page = paths["html"].read_text()  # claims.json is written before report.html reads it
    assert 'id="claims-table"' in page and '<td class="holds">holds</td>' in page
    assert '<td class="not measured">not measured</td>' in page
    # a sweep that states no claims: no section, and an older claims.json is not left to be shown
    _sweep(root, None)
    paths = write_report(root)
    assert "claims_json" not in paths and not (root / "claims.json").exists()
    assert "**Claims.**" not in paths["md"].read_text() and 'id="claims-table"' not in paths["html"].read_text()


def test_slmexp_report_rebuilds_the_claims_from_run_json_alone(tmp_path: Path, capsys) -> None:
    root = _sweep(tmp_path / "s", [_claim("slm-lora", "cheaper_x", ">=", 9)])
    first = write_report(root)
    saved = {k: first[k].read_bytes() for k in ("claims_json", "md", "html")}
    for k in saved:
        first[k].unlink()
    assert main([str(root)]) == 0
    assert {k: first[k].read_bytes() for k in saved} == saved  # byte for byte, from the records alone
    assert "| slm-lora-cheaper_x->=-9 |" in capsys.readouterr().out


def test_bad_claims_name_the_key(tmp_path: Path, capsys) -> None:
    ok = {"arm": "slm-lora", "metric": "retained_pct", "op": ">=", "value": 92}
    cases = [({**ok, "metric": "latency"}, "claims[1].metric: unknown metric 'latency'; one of accuracy,"),
             ({**ok, "op": "=>"}, "claims[1].op: unknown operator '=>'; one of >=, >, <=, <"),
             ({**ok, "valeu": 1}, "claims[1].valeu: unknown field; known: id, arm,"),
             ({k: v for k, v in ok.items() if k != "arm"}, "claims[1].arm: is required"),
             ({**ok, "value": "92%"}, "claims[1].value: must be a finite number, got '92%'"),
             ({**ok, "reference": "x"}, "claims[1].reference: only size_reduction_pct takes a reference")]
    for bad, message in cases:
        with pytest.raises(ConfigError) as e:
            cl.parse([ok, bad])
        assert str(e.value).startswith(message), str(e.value)
    with pytest.raises(ConfigError, match=r"^claims\[1\].id: duplicate id 'a'$"):
        cl.parse([{**ok, "id": "a"}, {**ok, "id": "a"}])
    # at report time: one line, exit 2, and REPORT_FAILED.md says the same
    root = _sweep(tmp_path / "s", [ok, cases[0][0]])
    assert main([str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("slmexp report: error: claims[1].metric: unknown metric") and "\n" not in err
    assert "claims[1].metric" in (root / "REPORT_FAILED.md").read_text()
    # records of two sweeps stating different claims
    rec = json.loads((root / "0" / "run.json").read_text())
    rec["config"]["claims"] = [ok]
    (root / "0" / "run.json").write_text(json.dumps(rec))
    with pytest.raises(ConfigError, match=r"^claims: the runs state 2 different claims blocks"):
        cl.stated(collect(root))


def test_config_time_check_schema_and_swept_arms(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose(["sweep=demo"])
    arms = [c["arm"] for c in cl.parse(OmegaConf.to_container(cfg.claims))]
    assert arms == ["slm-lora", "slm-lora", "slm-lora-q4km", "slm-lora-q4km", "slm-lora"]
    monkeypatch.setattr(cl, "_swept_arms", lambda _cfg: ["slm-zeroshot", "slm-lora", "slm-lora-q4km", "llm-baseline"])
    cl.check_config(cfg)  # the demo's claims name arms the demo runs
    bad = compose(["sweep=demo", "claims=[{arm: slm-lora-q8, metric: retained_pct, op: '>=', value: 90}]"])
    with pytest.raises(ConfigError, match=r"^claims\[0\].arm: arm 'slm-lora-q8' is not in the sweep"):
        cl.check_config(bad)
    ladder = compose(["sweep=quant-ladder"])
    (size,) = cl.parse(OmegaConf.to_container(ladder.claims))
    assert (size["metric"], size["reference"], size["value"]) == ("size_reduction_pct", "quant-gguf-f16", 75)


def test_claims_are_not_in_the_fingerprint_and_a_relaunch_refreshes_them() -> None:
    claims = [{"arm": "slm-lora", "metric": "retained_pct", "op": ">=", "value": 92}]
    assert fingerprint({"seed": 1, "claims": claims}) == fingerprint({"seed": 1})
    record = {"config": {"seed": 1, "claims": claims}}
    assert cl.refresh(record, {"seed": 1, "claims": claims}) is False
    new = [{**claims[0], "value": 95}]
    assert cl.refresh(record, {"seed": 1, "claims": new}) is True and record["config"]["claims"] == new
    with pytest.raises(ConfigError, match=r"claims\[0\].op"):
        cl.refresh(record, {"seed": 1, "claims": [{**claims[0], "op": "~"}]})
    assert record["config"]["claims"] == new


def test_the_job_records_its_arm(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.hydra_config import HydraConfig

    from slmexp.hydra_job import arm_choice as _arm_choice

    assert _arm_choice() is None  # outside Hydra
    fake = types.SimpleNamespace(runtime=types.SimpleNamespace(choices={"arm": "slm-lora", "model": "x"}))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: fake))
    assert _arm_choice() == "slm-lora"


def test_wandb_sweep_run_gets_a_claims_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _sweep(tmp_path / "s", [_claim("slm-lora", "retained_pct", ">=", 100)])
    paths = write_report(root)
    logged: dict[str, Any] = {}

    class Table:
        def __init__(self, columns: list[str] | None = None, data: list[list[Any]] | None = None,
                     dataframe: Any = None) -> None:
            self.columns, self.data = columns, data

    class Run:
        summary: ClassVar[dict[str, Any]] = {}
        dir = str(tmp_path / "wandb" / "run" / "files")

        def log(self, values: dict[str, Any]) -> None:
            logged.update(values)

        def finish(self, **_kw: Any) -> None:
            pass

    fake = types.SimpleNamespace(init=lambda **_kw: Run(), Settings=lambda **_kw: None, Table=Table,
                                 Image=lambda path: path)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    from slmexp.tracking import log_sweep

    assert log_sweep(compose(["logger=wandb"]).logger, root, paths) is not None
    table = logged["claims"]
    assert table.columns == cl.TABLE_COLUMNS
    (row,) = table.data
    assert dict(zip(table.columns, row, strict=True))["verdict"] == "holds"
    assert Run.summary["claims_verdicts"] == {"slm-lora-retained_pct->=-100": "holds"}


def test_a_relaunch_writes_the_edited_claims_into_the_finished_record(tmp_path: Path) -> None:
    from slmexp.pipeline import run_job
    from slmexp.record import load

    cfg = compose(["sweep=demo", f"paths.output_dir={tmp_path}"])
    container = OmegaConf.to_container(cfg, resolve=True)
    old = [{"arm": "slm-lora", "metric": "retained_pct", "op": ">=", "value": 50}]
    record = {"run": {"status": "finished", "arm": "slm-lora",
                      "fingerprint": fingerprint(OmegaConf.to_container(cfg, resolve=False), container)},
              "config": {**container, "claims": old}, "speed": None}
    (tmp_path / "run.json").write_text(json.dumps(record))
    out = run_job(cfg, tmp_path)  # same fingerprint (claims are not in it): nothing runs
    assert out["run"]["skipped"] is True
    assert load(tmp_path / "run.json")["config"]["claims"] == container["claims"] != old
