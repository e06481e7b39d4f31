"""`report.html`: the whole sweep report in one file a reviewer opens from disk, with nothing installed.

Why one self-contained file: the W&B runs are offline and the Markdown needs a checkout; a reviewer should get one
attachment. So everything is inline: CSS, a few lines of JavaScript (the per-example filter), the plots as SVG, the
data as JSON in a `<script type="application/json">` block. No network request of any kind (no CDN, fonts or
images by URL), so it opens the same offline. Sections: the comparison table with its caption, the claims'
verdicts (when the sweep stated claims: `claims.json` next to the report), the plots, the quantization fidelity
table (when a rung measured it), the flips, and the per-example browser (prompt, gold, every arm's answer,
right/wrong; filter "SLM wrong, LLM right" and the reverse).

Deterministic like the rest of the report: no timestamps, sorted JSON.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmexp.report.render import (
    _MD_COLUMNS,
    ATTESTATION_NOTE,
    _caption,
    _cells,
    _columns,
    attestation_lines,
    write_text,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from slmexp.report.collect import CollectedRun

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 6px;vertical-align:top}th{background:#f3f3f3;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.baseline td{background:#eef5ff}
.caption{font-size:12px;color:#444;max-width:1200px}.plots svg{max-width:48%;height:auto}
.right{background:#e6f4e6}.wrong{background:#fbe5e5}.missing{color:#999}
.holds{color:#1a7f37;font-weight:bold}.fails{color:#c62828;font-weight:bold}.inconclusive{color:#8a6d00}
.scroll{overflow-x:auto}#browser td{max-width:28em;white-space:pre-wrap;word-break:break-word}
code{font-size:11px}.controls{margin:.5em 0}.controls label{margin-right:1em}
"""

# The browser: reads the embedded JSON, renders rows, filters by (SLM arm, baseline) agreement and a text search.
_JS = """
(function(){
  var data = JSON.parse(document.getElementById('examples-data').textContent);
  var arms = data.arms, base = arms.findIndex(function(a){return a.baseline;});
  var armSel = document.getElementById('arm'), filt = document.getElementById('filter');
  var search = document.getElementById('search'), body = document.querySelector('#browser tbody');
  var count = document.getElementById('shown');
  arms.forEach(function(a, i){ if (i !== base) { var o = document.createElement('option');
    o.value = String(i); o.textContent = a.label; armSel.appendChild(o); } });
  function cell(tr, text, cls){ var td = document.createElement('td'); td.textContent = text;
    if (cls) td.className = cls; tr.appendChild(td); return td; }
  function keep(ex){
    var f = filt.value, q = search.value.toLowerCase();
    if (q && (ex.id + ' ' + ex.prompt + ' ' + ex.gold).toLowerCase().indexOf(q) < 0) return false;
    if (f === 'all') return true;
    var b = base >= 0 ? ex.answers[base] : null;
    if (!b) return false;
    var picks = armSel.value === 'any' ? arms.map(function(a, i){return i;}).filter(function(i){
      return i !== base && arms[i].role !== 'baseline';}) : [Number(armSel.value)];
    return picks.some(function(i){ var a = ex.answers[i]; if (!a) return false;
      return f === 'slm-wrong-llm-right' ? (!a.right && b.right) : (a.right && !b.right); });
  }
  function render(){
    body.textContent = ''; var n = 0;
    data.examples.forEach(function(ex){
      if (!keep(ex)) return; n += 1;
      var tr = document.createElement('tr'); tr.dataset.id = ex.id;
      cell(tr, ex.id); cell(tr, ex.prompt); cell(tr, ex.gold);
      ex.answers.forEach(function(a){
        if (!a) { cell(tr, 'not scored', 'missing'); return; }
        var td = cell(tr, (a.right ? '\\u2713 ' : '\\u2717 ') + a.answer, a.right ? 'right' : 'wrong');
        td.title = 'raw output: ' + a.raw;
      });
      body.appendChild(tr);
    });
    count.textContent = String(n);
  }
  // a link can preset the view: report.html#filter=slm-wrong-llm-right&arm=0
  location.hash.replace(/^#/, '').split('&').forEach(function(kv){ var p = kv.split('=');
    if (p[0] === 'filter') filt.value = decodeURIComponent(p[1] || 'all');
    if (p[0] === 'arm') armSel.value = decodeURIComponent(p[1] || 'any'); });
  [armSel, filt].forEach(function(el){ el.addEventListener('change', render); });
  search.addEventListener('input', render);
  render();
})();
"""


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _svg(path: Path | None) -> str:
    """An SVG file's <svg> element, to inline (its XML prolog and DOCTYPE dropped; no external references)."""
    if path is None or not Path(path).is_file():
        return ""
    text = Path(path).read_text(encoding="utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""


def _table(headers: list[str], rows: list[list[str]], numeric: list[bool], row_classes: list[str] | None = None,
           table_id: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for k, cells in enumerate(rows):
        cls = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        tds = "".join(f'<td class="num">{_e(c)}</td>' if num else f"<td>{_e(c)}</td>"
                      for c, num in zip(cells, numeric, strict=True))
        body.append(f"<tr{cls}>{tds}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return (f'<div class="scroll"><table{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            f"</table></div>")


def comparison_html(df: pd.DataFrame, caption: str | None) -> str:
    """The comparison table (the Markdown's columns, one row per table row) with its caption."""
    cols = _columns(df, _MD_COLUMNS)
    records = df.to_dict("records")
    rows = [_cells(r, cols, " ± ") for r in records]
    classes = ["baseline" if r["is_baseline"] else "" for r in records]
    attested = attestation_lines(df)
    footnote = (f'<p class="caption" id="attestation"><b>Attestation.</b> {_e(ATTESTATION_NOTE)}</p><ul>'
                + "".join(f"<li><code>{_e(line)}</code></li>" for line in attested) + "</ul>") if attested else ""
    return (f'<p class="caption">{_e(_caption(df, caption))}</p>'
            + _table([h for _c, h, _s in cols], rows, [s != "s" for _c, _h, s in cols], classes, "comparison")
            + footnote)


def claims_html(claims: list[dict[str, Any]]) -> str:
    """The claims' verdicts (claims.json as slmexp.report.claims writes it: claim, row, verdict, estimate, ci,
    threshold, equivalent, reason)."""
    if not claims:
        return ""
    rows = []
    for c in claims:
        ci = c.get("ci")
        ci_text = f"[{ci[0]:.3g}, {ci[1]:.3g}]" if isinstance(ci, list | tuple) and len(ci) == 2 and all(
            isinstance(x, int | float) for x in ci) else _e(ci or "")
        est = c.get("estimate")
        est_text = f"{est:.3g}" if isinstance(est, int | float) else _e(est or "")
        verdict = str(c.get("verdict") or "")
        threshold = str(c.get("threshold") or "") + (f' ({c["equivalent"]})' if c.get("equivalent") else "")
        row = " vs ".join(str(x) for x in (c.get("row") or c.get("arm"), c.get("against")) if x)
        rows.append(f'<tr><td>{_e(c.get("claim"))}</td><td>{_e(row)}</td><td class="{_e(verdict)}">{_e(verdict)}'
                    f'</td><td class="num">{est_text}</td><td class="num">{ci_text}</td>'
                    f'<td>{_e(threshold)}</td><td>{_e(c.get("reason"))}</td></tr>')
    return ('<h2 id="claims">Claims</h2><table id="claims-table"><thead><tr><th>claim</th><th>row</th>'
            '<th>verdict</th><th>estimate</th><th>95% CI</th><th>threshold</th><th>note</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def flips_html(flips: list[dict[str, Any]]) -> str:
    if not flips:
        return ""
    rows = []
    for f in flips:
        against = f"{f['reference']}: {f['against']}"
        rows.append([f["arm"], against, str(f["n_paired"]), str(len(f["right_to_wrong"])),
                     str(len(f["wrong_to_right"])), " ".join(f["right_to_wrong"]), " ".join(f["wrong_to_right"])])
    return ('<h2 id="flips">Flips</h2><p class="caption">right→wrong: the reference (the baseline, or the quantized '
            "rung's full-precision parent) got the example right and the arm wrong (McNemar's c against the "
            "baseline); wrong→right: the reverse (b). Right = full score on the primary metric.</p>"
            + _table(["arm", "against", "n paired", "right→wrong", "wrong→right", "right→wrong ids",
                      "wrong→right ids"], rows, [False, False, True, True, True, False, False], table_id="flips"))


def browser_html(data: dict[str, Any]) -> str:
    """The per-example browser: the data as JSON, the controls, an empty table the script fills."""
    if not data["examples"]:
        return ""
    heads = "".join(f"<th>{_e(a['label'])}{' (baseline)' if a['baseline'] else ''}</th>" for a in data["arms"])
    # `</` inside the JSON would end the script element early: escape it (JSON allows `\\/`).
    payload = json.dumps(data, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
    return (
        '<h2 id="examples">Per-example browser</h2><p class="caption">Each arm\'s extracted answer (✓ right, ✗ wrong '
        "on the primary metric); hover a cell for the raw output. \"SLM wrong, LLM right\": examples the chosen "
        "small-model arm (or any, by default) gets wrong and the baseline gets right.</p>"
        '<div class="controls"><label>filter <select id="filter"><option value="all">all examples</option>'
        '<option value="slm-wrong-llm-right">SLM wrong, LLM right</option>'
        '<option value="slm-right-llm-wrong">SLM right, LLM wrong</option></select></label>'
        '<label>arm <select id="arm"><option value="any">any non-baseline arm</option></select></label>'
        '<label>search <input id="search" type="search"></label> shown: <span id="shown">0</span></div>'
        f'<div class="scroll"><table id="browser"><thead><tr><th>id</th><th>prompt</th><th>gold</th>{heads}</tr>'
        '</thead><tbody></tbody></table></div>'
        f'<script type="application/json" id="examples-data">{payload}</script><script>{_JS}</script>')


def read_claims(out: Path) -> list[dict[str, Any]]:
    """The claims' verdicts the report wrote next to it (`claims.json`: a list, or {"claims": [...]})."""
    path = Path(out) / "claims.json"
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    data = data.get("claims") if isinstance(data, dict) else data
    return [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []


def to_html(df: pd.DataFrame, caption: str | None, *, flips: list[dict[str, Any]], examples: dict[str, Any],
            plots: list[Path], claims: list[dict[str, Any]], fidelity: str = "", title: str = "slmexp report") -> str:
    """The page. `fidelity` is a ready HTML fragment (slmexp.report.ladder.to_html)."""
    svgs = "".join(_svg(p) for p in plots)
    sections = [
        f"<h1>{_e(title)}</h1>",
        '<h2 id="comparison-table">Comparison</h2>' + comparison_html(df, caption),
        claims_html(claims),
        f'<h2 id="plots">Plots</h2><div class="plots">{svgs}</div>' if svgs else "",
        fidelity,
        flips_html(flips),
        browser_html(examples),
    ]
    body = "\n".join(s for s in sections if s)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
    return page


# Anything that would make a browser fetch: src/href/url() to a scheme other than data: or a fragment.
_FETCH = re.compile(r"""(?:\b(?:src|href)\s*=\s*["']?|url\(\s*["']?)(?!data:|#)[a-z][a-z0-9+.-]*:""", re.I)


def external_references(page: str) -> list[str]:
    """What in the page would reach the network (empty for a self-contained page; the tests assert it)."""
    return [m.group(0) for m in _FETCH.finditer(page)]


def write_html(path: Path, page: str) -> Path:
    return write_text(Path(path), page)


class ReviewerView:
    """What the report adds for reviewers, computed once per report: flips, the fidelity table, every arm's answers.

    `markdown` goes under the comparison table in comparison.md; `write` writes flips.json and report.html once
    the plots exist.
    """

    def __init__(self, records: list[CollectedRun], df: pd.DataFrame) -> None:
        from slmexp.report.collect import _run_info
        from slmexp.report.examples import side_by_side
        from slmexp.report.flips import compute_flips
        from slmexp.report.flips import to_markdown as flips_markdown
        from slmexp.report.ladder import ladder_rows
        from slmexp.report.ladder import to_markdown as ladder_markdown

        self.flips = compute_flips([_run_info(r) for r in records], df)
        self.ladder = ladder_rows(records, df)
        self.examples = side_by_side(records, df)
        self.markdown = ladder_markdown(self.ladder) + flips_markdown(self.flips)

    def write(self, out: Path, df: pd.DataFrame, caption: str | None, paths: dict[str, Path],
              name: str = "") -> dict[str, Path]:
        """flips.json and report.html into `out`; `name` (the sweep dir's) titles the page."""
        from slmexp.report.ladder import to_html as ladder_html

        out = Path(out)
        written = {"flips_json": write_text(out / "flips.json",
                                            json.dumps(self.flips, indent=1, ensure_ascii=False) + "\n")}
        plots = [p for k, p in sorted(paths.items()) if k.endswith("_svg")]
        page = to_html(df, caption, flips=self.flips, examples=self.examples, plots=plots,
                       claims=read_claims(out), fidelity=ladder_html(self.ladder),
                       title=f"slmexp report: {name}" if name else "slmexp report")
        written["html"] = write_html(out / "report.html", page)
        return written
