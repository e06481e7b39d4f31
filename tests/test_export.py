"""`slmexp export` (issue 34): a real two-run sweep exported in every format and read back by each format's own tools.

The sweep is built once per module with the tiny llama through the real pipeline (lm-eval, generations.jsonl, the
run records, the report): a baseline and an SLM arm on 6 support-intent examples, with one claim. Each format is
then checked by what its consumers use: the vendored Every Eval Ever schemas (jsonschema), lm-eval's own file-name
helpers and hash function, huggingface_hub's model-card parser, and a TeX engine when one is installed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import build_tiny_model, compose, tiny_overrides_for

CLAIM = "[{id: b-above-zero, arm: 'tiny-b@transformers', metric: accuracy, op: '>=', value: 0}]"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two finished runs (baseline tiny-llama, SLM tiny-b) in one sweep dir, and its report."""
    from slmexp.pipeline import run_job
    from slmexp.report import write_report

    root = tmp_path_factory.mktemp("export")
    model = build_tiny_model(root / "tiny")
    for job, (name, role) in enumerate([("tiny-llama", "baseline"), ("tiny-b", "slm")]):
        overrides = [o for o in tiny_overrides_for(model, root) if not o.startswith("model.name=")]
        run_job(compose([*overrides, f"model.name={name}", f"model.role={role}", "eval.bench.n=0",
                         f"+claims={CLAIM}"]), run_dir=root / "sweep" / str(job))
    write_report(root / "sweep")
    return root / "sweep"


@pytest.fixture(scope="module")
def exported(sweep, tmp_path_factory) -> Path:
    from slmexp.export.cli import main

    out = tmp_path_factory.mktemp("out")
    assert main([str(sweep), "--format", "all", "--out", str(out)]) == 0
    return out


def _record(sweep: Path, job: str) -> dict:
    return json.loads((sweep / job / "run.json").read_text())


@pytest.mark.slow  # the sweep fixture: two tiny-model runs through lm-eval (~15 s on 2 shared cores)
def test_eee_files_validate_and_carry_uncertainty_generation_settings_and_checksums(sweep, exported) -> None:
    from jsonschema import Draft7Validator

    from slmexp.export.eee import AGGREGATE, INSTANCE, SCHEMAS, validate
    from slmexp.report import build_table, collect

    aggregate = Draft7Validator(json.loads((SCHEMAS / AGGREGATE).read_text()))
    instance = Draft7Validator(json.loads((SCHEMAS / INSTANCE).read_text()))
    files = sorted((exported / "eee").rglob("*.json"))
    assert len(files) == 2  # one per run
    table = build_table(collect(sweep)).set_index("model")
    for path in files:
        doc = json.loads(path.read_text())
        assert list(aggregate.iter_errors(doc)) == []
        assert doc["eval_library"]["name"] == "slmexp" and doc["eval_library"]["version"]
        assert doc["source_metadata"]["source_type"] == "evaluation_run"
        model = doc["model_info"]["additional_details"]["slmexp_model"]
        first = doc["evaluation_results"][0]
        assert first["evaluation_result_id"] == "exact_match"
        assert first["source_data"]["dataset_name"] == "support-intent"
        ci = first["score_details"]["uncertainty"]["confidence_interval"]
        want = (table.loc[model, "ci95_low"], table.loc[model, "ci95_high"])  # the report's interval
        assert (ci["lower"], ci["upper"]) == pytest.approx(want) and ci["upper"] > ci["lower"]
        assert ci["method"] == "Wilson score interval" and ci["confidence_level"] == 0.95
        gen = first["generation_config"]
        assert gen["generation_args"]["max_tokens"] == 4 and gen["generation_args"]["temperature"] == 0.0
        assert json.loads(gen["additional_details"]["stop"]) == ["\n"]
        assert gen["additional_details"]["decoding"] == "free" and gen["additional_details"]["do_sample"] == "false"
        detail = doc["detailed_evaluation_results"]
        samples = exported / "eee" / detail["file_path"]
        assert samples.is_file() and hashlib.sha256(samples.read_bytes()).hexdigest() == detail["checksum"]
        rows = [json.loads(line) for line in samples.read_text().splitlines()]
        assert len(rows) == detail["total_rows"] == 6 * 3  # examples x metrics, one instance record each
        for row in rows:
            assert list(instance.iter_errors(row)) == []
            expect = json.dumps({"raw": row["input"]["raw"], "reference": row["input"]["reference"][0]}, sort_keys=True)
            assert row["sample_hash"] == hashlib.sha256(expect.encode()).hexdigest()
    broken = json.loads(files[0].read_text())
    del broken["model_info"]["additional_details"]["deployment_type"]
    with pytest.raises(ValueError, match="deployment_type"):
        validate(broken, AGGREGATE)


@pytest.mark.slow
def test_lm_eval_finds_and_reads_its_files(sweep, exported) -> None:
    from lm_eval.utils import (
        get_file_datetime,
        get_file_task_name,
        get_latest_filename,
        get_results_filenames,
        get_sample_results_filenames,
        handle_non_serializable,
        hash_string,
    )

    names = sorted(str(p) for p in (exported / "lm-eval").rglob("*") if p.is_file())
    results, samples = get_results_filenames(names), get_sample_results_filenames(names)
    assert len(results) == 2 and len(samples) == 2 and set(results) | set(samples) == set(names)
    for path in map(Path, samples):
        assert get_file_task_name(path.name) == "slmexp_support_intent"
        (res,) = [Path(r) for r in results if Path(r).parent == path.parent]
        # lm-eval strips only ".jsonl" (its own results files keep ".json" in this helper's answer too)
        assert get_file_datetime(res.name) == get_file_datetime(path.name) + ".json"
        assert get_latest_filename([str(res)]) == str(res)
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        gens = [json.loads(x) for x in (sweep / path.parent.parent.name / "generations.jsonl").read_text().splitlines()]
        assert len(lines) == len(gens) == 6
        for line, gen in zip(lines, gens, strict=True):
            assert {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "metrics", "doc_hash",
                    "prompt_hash", "target_hash"} <= set(line)
            dumped = json.dumps(line["doc"], indent=2, default=handle_non_serializable, ensure_ascii=False)
            assert line["doc_hash"] == hash_string(dumped) and line["target_hash"] == hash_string(line["target"])
            assert line["prompt_hash"] == gen["prompt_sha256"] and line["resps"] == [[gen["raw"]]]
            assert {m: line[m] for m in line["metrics"]} == gen["metrics"]
        summary = json.loads(res.read_text())
        record = _record(sweep, path.parent.parent.name)
        scored = summary["results"]["slmexp_support_intent"]["exact_match,none"]
        assert scored == record["metrics"]["values"]["exact_match"]
        joined = "".join(x["doc_hash"] + x["prompt_hash"] + x["target_hash"] for x in lines)
        assert summary["task_hashes"] == {"slmexp_support_intent": hash_string(joined)}


@pytest.mark.slow
def test_hf_eval_results_and_model_card_name_the_local_data(sweep, exported) -> None:
    from huggingface_hub import ModelCard

    record = _record(sweep, "1")
    folder = exported / "hf" / "tiny-b_transformers"
    (entry,) = yaml.safe_load((folder / ".eval_results" / "support-intent.yaml").read_text())
    sha = record["provenance"]["data_sha256"]["test"]
    assert entry["dataset"] == {"id": "support-intent", "task_id": "support-intent", "revision": sha}
    assert entry["value"] == pytest.approx(100 * record["metrics"]["values"]["exact_match"])
    assert "sha256" in entry["notes"] and "n=6" in entry["notes"]
    card = ModelCard.load(folder / "README.md")
    first = card.data.eval_results[0]
    assert (first.metric_type, first.dataset_revision, first.dataset_split) == ("exact_match", sha, "test")
    assert first.metric_value == pytest.approx(record["metrics"]["values"]["exact_match"])
    assert card.data.model_name == "tiny-b@transformers" and first.metric_args["n"] == 6


@pytest.mark.slow
def test_latex_macros_cover_every_cell_and_claim_and_match_the_report(sweep, exported) -> None:
    from slmexp.export.latex import name_part

    text = (exported / "latex" / "comparison.macros.tex").read_text()
    assert text == (sweep / "comparison.macros.tex").read_text()  # the report writes the same file
    names = re.findall(r"\\newcommand\{\\([^}]*)\}", text)
    assert names and all(re.fullmatch(r"[A-Za-z]+", n) for n in names) and len(names) == len(set(names))
    assert "\\newcommand{\\slmexpTinyBTransformersRole}{slm}" in text
    assert "\\newcommand{\\slmexpTinyLlamaTransformersN}{6}" in text
    assert "\\newcommand{\\slmexpClaimBAboveZeroVerdict}{holds}" in text
    # every shown cell of comparison.md has its macro: n, accuracy and its CI for each row
    for stem in ("slmexpTinyBTransformers", "slmexpTinyLlamaTransformers"):
        for col in ("n", "accuracy", "ci95", "status", "model_shown"):
            assert f"\\newcommand{{\\{stem}{name_part(col)}}}" in text, (stem, col)


@pytest.mark.slow
def test_latex_macros_compile(exported, tmp_path) -> None:
    engine = shutil.which("pdflatex") or shutil.which("lualatex")
    if engine is None:
        pytest.skip("no TeX engine (pdflatex/lualatex) on PATH: apt-get install texlive-latex-base to compile")
    shutil.copy(exported / "latex" / "comparison.macros.tex", tmp_path)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\input{comparison.macros.tex}\n\\begin{document}\n"
        "Accuracy \\slmexpTinyBTransformersAccuracy{} [\\slmexpTinyBTransformersAccuracyLow, "
        "\\slmexpTinyBTransformersAccuracyHigh]; claim \\slmexpClaimBAboveZeroVerdict.\n\\end{document}\n")
    done = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


def test_bad_format_and_a_dir_without_runs_are_one_line_exit_2(tmp_path, capsys) -> None:
    from slmexp.export.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--format", "eee,csv", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--format" in err[0] and "'csv'" in err[0]
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--format" in err[0] and "required" in err[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-m", "slmexp", "export", str(empty), "--format", "all", "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "no run.json below" in lines[0] and "DIR" in lines[0]
    assert not (tmp_path / "o").exists()


def test_macro_names_are_letters_only() -> None:
    from slmexp.export.latex import name_part

    assert name_part("q4_k_m") == "QFourKM" and name_part("smollm2-135m") == "SmollmTwoOneThreeFiveM"
    assert name_part("slm-lora-q4km") + name_part("retained_pct") == "SlmLoraQFourKmRetainedPct"
    assert name_part("qwen2.5-coder-1.5b@llamacpp") == "QwenTwoFiveCoderOneFiveBLlamacpp"
