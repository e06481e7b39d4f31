"""The report's plots: accuracy against latency and against cost, with CI bars and the Pareto front; PNG + SVG.

Why apart: matplotlib is slow to import and only plots need it (imported inside the functions). The style and
the save settings below are shared with the router report's curve, so every figure is reproducible: a fixed SVG
hash salt, text as paths, and no date or software stamp in the files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmexp.report.render import _isnum

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# matplotlib derives SVG element ids from this salt; a fixed value makes re-rendered SVGs byte-identical.
SVG_HASHSALT = "slmexp-report"


@contextmanager
def plot_style() -> Iterator[None]:
    """matplotlib settings every report figure is drawn under (fixed SVG ids, text as paths, 9 pt)."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path", "font.size": 9}):
        yield


def save_png_svg(fig: Any, out: Path) -> tuple[Path, Path]:
    """Save `fig` as `out`.png and `out`.svg without the date/software metadata that would change every run."""
    paths = (out.with_suffix(".png"), out.with_suffix(".svg"))
    fig.savefig(paths[0], format="png", metadata={"Software": None})
    fig.savefig(paths[1], format="svg", metadata={"Date": None})
    return paths


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of non-dominated points (lower x and higher y are better), in increasing x.

    A point is dominated when another has x <= its x and y >= its y, one of them strictly.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _plot(df: pd.DataFrame, xcol: str, xlabel: str, title: str, missing: str, out: Path) -> list[Path]:
    """Accuracy (with CI bars) against `xcol`, Pareto front dashed, baseline a red star; PNG + SVG.

    Fixed margins rather than constrained layout: point labels may run past the axes and must not squeeze them.
    """
    from matplotlib.figure import Figure

    records = df.to_dict("records")
    rows = [r for r in records if _isnum(r[xcol]) and _isnum(r["accuracy"])]
    skipped = sorted({r["label"] for r in records if not (_isnum(r[xcol]) and _isnum(r["accuracy"]))})
    with plot_style():
        fig = Figure(figsize=(8.0, 5.5), dpi=120)
        fig.subplots_adjust(left=0.09, right=0.97, top=0.93, bottom=0.17)
        ax = fig.add_subplot()
        ax.set_ylim(-0.02, 1.02)
        if rows:
            xs = [r[xcol] for r in rows]
            ys = [r["accuracy"] for r in rows]
            lo = [max(0.0, y - r["ci95_low"]) if _isnum(r["ci95_low"]) else 0.0 for y, r in zip(ys, rows, strict=True)]
            hi = [max(0.0, r["ci95_high"] - y) if _isnum(r["ci95_high"]) else 0.0
                  for y, r in zip(ys, rows, strict=True)]
            is_base = [bool(r["is_baseline"]) for r in rows]
            for flag, marker, color, size, name in ((False, "o", "tab:blue", 40, "run (bars: 95% CI)"),
                                                    (True, "*", "tab:red", 200, "baseline")):
                idx = [i for i, b in enumerate(is_base) if b == flag]
                if not idx:
                    continue
                ax.errorbar([xs[i] for i in idx], [ys[i] for i in idx],
                            yerr=[[lo[i] for i in idx], [hi[i] for i in idx]], fmt="none", ecolor=color,
                            alpha=0.6, capsize=3, lw=1)
                ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], marker=marker, s=size, color=color,
                           zorder=3, label=name)
            front = pareto_front(list(zip(xs, ys, strict=True)))
            ax.plot([xs[i] for i in front], [ys[i] for i in front], ls="--", color="tab:green", lw=1.2,
                    marker="o", markersize=12, markerfacecolor="none", zorder=2,
                    label="Pareto front (higher accuracy, lower x)")
            positive = [x for x in xs if x > 0]
            if positive and len(positive) == len(xs) and max(positive) / min(positive) > 20:
                ax.set_xscale("log")
            ax.margins(x=0.15)
            labels = [r["label"] for r in rows]
            to_axes = ax.transData + ax.transAxes.inverted()
            for i, r in enumerate(rows):
                text = r["label"]
                if labels.count(text) > 1 and r["variant"]:
                    text += f" [{r['variant'].split(', ')[0]}]"
                if r["n_seeds"] > 1:
                    text += f" ({r['n_seeds']} seeds)"
                right = to_axes.transform((xs[i], ys[i]))[0] > 0.6
                ann = ax.annotate(text, (xs[i], ys[i]), xytext=(-6 if right else 6, 6 + 9 * (i % 3)),
                                  textcoords="offset points", fontsize=7, ha="right" if right else "left")
                ann.set_in_layout(False)
            ax.legend(loc="upper right", fontsize=7)
        else:
            ax.text(0.5, 0.5, missing, ha="center", va="center", transform=ax.transAxes)
            title = f"{title}: {missing}"
        if skipped and rows:
            fig.text(0.01, 0.01, "not plotted (no value): " + ", ".join(skipped), fontsize=6, ha="left",
                     va="bottom", wrap=True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (primary metric, 0-1)")
        ax.grid(True, alpha=0.3)
        ax.set_title(title)
        paths = list(save_png_svg(fig, out))
    return paths
