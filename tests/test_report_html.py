"""report.html without a browser (fast): self-contained, one comparison row per table row, the claims' verdicts
when the sweep stated claims (claims.json), the fidelity table when a rung measured it. The browser test is in
tests/test_reviewers.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

from slmexp.report import write_report
from slmexp.report.html import external_references
from tests.test_report import sweep  # noqa: F401  (fixture: a sweep dir of hand-made run.json files)


def test_page_is_self_contained_with_claims_and_fidelity(sweep: Path) -> None:  # noqa: F811
    # the sweep's claims, as Hydra puts them into every job's config; rows named by label (records without run.arm)
    claims = [{"arm": "smollm2-135m+lora/q4_k_m@llamacpp", "metric": "retained_pct", "op": ">=", "value": 50,
               "text": "q4 retains >= 50% of the baseline"},
              {"arm": "smollm2-135m+lora/q4_k_m@llamacpp", "metric": "retained_pct", "op": ">=", "value": 110}]
    for path in sorted(sweep.rglob("run.json")):
        rec = json.loads(path.read_text())
        rec["config"]["claims"] = claims
        path.write_text(json.dumps(rec))
    rung = next(p for p in sorted(sweep.rglob("run.json")) if "q4" in p.read_text().lower())
    rec = json.loads(rung.read_text())
    rec["fidelity"] = {"kld_mean": 0.0421, "top1_agreement_pct": 91.5, "ppl_ratio": 1.032, "n_tokens": 900,
                       "parent": {"name": "smollm2-135m+lora", "dequantized": True,
                                  "dequantized_note": "dequantized from GGUF Q4_1"}}
    rung.write_text(json.dumps(rec))
    paths = write_report(sweep)
    page = paths["html"].read_text(encoding="utf-8")
    assert external_references(page) == [] and page.count("<svg") == 2
    table = re.search(r'<table id="comparison">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    md_rows = [line for line in paths["md"].read_text().split("\n\n")[1].splitlines() if line.startswith("| ")][1:]
    assert table.count("<tr") == len(md_rows) == 5
    assert '<td class="holds">holds</td>' in page and '<td class="inconclusive">inconclusive</td>' in page
    assert "q4 retains &gt;= 50% of the baseline" in page and json.loads((sweep / "claims.json").read_text())
    md = paths["md"].read_text()
    assert "**Quantization fidelity.**" in md and "0.0421" in md and "91.5" in md
    assert "smollm2-135m+lora (dequantized from GGUF Q4_1)" in md and 'id="fidelity-table"' in page
    # byte-identical rebuilds: tests/test_report.py::test_outputs_deterministic_and_well_formed (html included)


def test_external_references_are_found() -> None:
    assert external_references('<img src="https://cdn.example/x.png"><a href="#flips">') == ['src="https:']
    assert external_references("<style>a{background:url( 'http://x/y.png')}</style>") == ["url( 'http:"]
    assert external_references('<img src="data:image/png;base64,AAAA"><use xlink:href="#p1"/>') == []
