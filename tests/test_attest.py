"""Attestation (issue 34): results_sha256 and outputs_sha256 in run.json, the comparison and report.html, and
`slmexp verify` naming the first example whose stored answer differs.

The runs are real (prompt rendering, lm-eval's chat-completions client, the serving stage writing run.json and
generations.jsonl) against the scripted OpenAI-compatible server of tests/test_reviewers.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slmexp import attest, rescore, verify
from tests.test_reviewers import server, sweep, sweep_copy  # noqa: F401  (fixtures: 3 real runs and a report)

pytest.importorskip("rfc8785")


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]


def _write_rows(run_dir: Path, rows: list[dict]) -> None:
    (run_dir / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_canonical_json_is_rfc8785() -> None:
    # JCS: keys sorted, no whitespace, 1.0 written as 1, 1e21 in ECMAScript form; json.dumps gives none of these
    assert attest.canonical({"b": 1.0, "a": [1e21, "é"], "c": None}) == '{"a":[1e+21,"é"],"b":1,"c":null}'.encode()
    assert attest.canonical({"x": float("nan"), "y": 2**60}) == b'{"x":"nan","y":"1152921504606846976"}'


def test_every_run_is_attested_and_the_hashes_are_stable(sweep_copy) -> None:  # noqa: F811
    for run_dir in sorted(p.parent for p in sweep_copy.glob("*/run.json")):
        rec = _record(run_dir)
        block = rec["attestation"]
        assert block["results_sha256"] == attest.results_sha256(rec["metrics"])
        assert block["n_examples"] == rec["metrics"]["n_examples"] == len(_rows(run_dir))
        kept = (run_dir / "attest.jsonl").read_bytes()
        assert attest.attest(run_dir, rec["metrics"]) == block  # recomputed from the stored files: the same
        assert (run_dir / "attest.jsonl").read_bytes() == kept
        ids = [json.loads(line)["id"] for line in kept.decode().splitlines()]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    hashes = {_record(d)["attestation"]["outputs_sha256"] for d in sweep_copy.glob("*/") if (d / "run.json").exists()}
    assert len(hashes) == 3  # three arms answering differently: three different fingerprints


def test_verify_passes_then_names_the_edited_example(sweep_copy, capsys) -> None:  # noqa: F811
    assert verify.main([str(sweep_copy)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(": ok (results " in line and "metrics re-scored" in line for line in out)
    run_dir = sweep_copy / "0"
    rows = _rows(run_dir)
    victim = sorted(rows, key=lambda r: r["id"])[4]
    labels = json.loads(victim["doc"]["choices"]) if isinstance(victim["doc"].get("choices"), str) else None
    other = next(x for x in (labels or ["order_status", "cancel_order"]) if x != victim["extracted"])
    victim["raw"], victim["extracted"] = other, other
    _write_rows(run_dir, rows)
    assert verify.main([str(sweep_copy)]) == 1
    lines = {Path(line.split(": ", 1)[0]).name: line for line in capsys.readouterr().out.splitlines()}
    assert ": ok (" in lines["1"] and ": ok (" in lines["2"]
    bad = lines["0"]
    assert f"example {victim['id']}: raw answer and extracted answer differs" in bad, bad
    assert "metrics re-scored from the stored answers differ: exact_match" in bad
    assert f"first example scored differently: {victim['id']}" in bad


def test_verify_catches_an_edited_metric_and_an_edited_hash_file(sweep_copy, capsys) -> None:  # noqa: F811
    rec = _record(sweep_copy / "1")
    rec["metrics"]["values"]["exact_match"] = 1.0
    (sweep_copy / "1" / "run.json").write_text(json.dumps(rec))
    status, line = verify.verify_run(sweep_copy / "1")
    assert status == "differs" and "results_sha256 differs" in line and "exact_match 1.0 ->" in line
    kept = (sweep_copy / "2" / "attest.jsonl").read_text().splitlines()
    (sweep_copy / "2" / "attest.jsonl").write_text("\n".join(kept[:-1]) + "\n")  # the last example dropped
    status, line = verify.verify_run(sweep_copy / "2")
    assert status == "ok"  # the stored answers still give run.json's outputs_sha256: the hash file is only an index
    rows = _rows(sweep_copy / "2")
    last = max(rows, key=lambda r: r["id"])
    _write_rows(sweep_copy / "2", [r for r in rows if r is not last])
    status, line = verify.verify_run(sweep_copy / "2")
    assert status == "differs" and "outputs_sha256 differs" in line


def test_records_before_attestation_pass_unless_strict(sweep_copy, capsys) -> None:  # noqa: F811
    for run_dir in (sweep_copy / "0", sweep_copy / "1", sweep_copy / "2"):
        rec = _record(run_dir)
        del rec["attestation"]
        (run_dir / "run.json").write_text(json.dumps(rec))
    assert verify.main([str(sweep_copy / "0")]) == 0
    assert capsys.readouterr().out.strip().endswith(": no attestation recorded")
    assert verify.main([str(sweep_copy), "--strict"]) == 1
    assert capsys.readouterr().out.count("no attestation recorded (--strict)") == 3


def test_rescore_re_attests_what_it_rewrites(sweep_copy, monkeypatch, capsys) -> None:  # noqa: F811
    from slmexp.tasks import metrics

    original = metrics.classification_results

    def stricter(doc, results):  # a "fixed" metric: only the bare label counts
        out = original(doc, results)
        out["exact_match"] = out["strict_match"]
        return out

    monkeypatch.setattr(metrics, "classification_results", stricter)
    before = _record(sweep_copy / "1")["attestation"]
    assert rescore.main([str(sweep_copy), "--no-report"]) == 0
    after = _record(sweep_copy / "1")["attestation"]
    assert after["results_sha256"] != before["results_sha256"]  # slm-b's wordy answers lost their points
    assert verify.main([str(sweep_copy)]) == 0, capsys.readouterr().out


def test_report_shows_the_short_hashes(sweep) -> None:  # noqa: F811
    md = (sweep / "comparison.md").read_text()
    page = (sweep / "report.html").read_text()
    csv = (sweep / "comparison.csv").read_text()
    for run_dir in ("0", "1", "2"):
        block = _record(sweep / run_dir)["attestation"]
        short = f"results {block['results_sha256'][:12]}, outputs {block['outputs_sha256'][:12]}"
        assert short in md and short in page
        assert block["results_sha256"] in csv and block["outputs_sha256"] in csv
    assert "**Attestation.**" in md and 'id="attestation"' in page


def test_verify_cli_refuses_bad_input_in_one_line(tmp_path) -> None:
    for args, said in (([str(tmp_path / "nope")], "is not a directory"), ([str(tmp_path)], "no run.json"),
                       ([str(tmp_path), "--bogus"], "unrecognized arguments: --bogus")):
        out = subprocess.run([sys.executable, "-m", "slmexp", "verify", *args], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1 and said in out.stderr and "Traceback" not in out.stderr
        assert out.stderr.startswith("slmexp: error: ")
