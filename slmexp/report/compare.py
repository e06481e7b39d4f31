"""One row against its baseline: accuracy CI, relative columns with paired CIs, pooled McNemar, and the refusals.

Why apart from table.py: table.py decides what a row is; this module decides what may be said about a row next to
the baseline, and with what uncertainty. Rules it keeps:
- a row evaluated on a different example set than the baseline (other ids, other split) is not compared: its
  relative cells stay empty and `compare_note` says why. A ratio of accuracies on different questions is not a
  retained accuracy.
- intervals of differences are paired bootstraps over the example ids both rows scored (same resampled ids for
  both), seeded, so the report is byte-identical when rebuilt.
- McNemar pools the discordant pairs of every seed of the row (each seed paired with the baseline run of the same
  seed, else the baseline's first run); Holm then adjusts the p-values of one task's table (`apply_holm`).
"""

from __future__ import annotations

from typing import Any

from slmexp.report.stats import (
    ACCURACY_DELTA,
    MEAN_RATIO,
    RETAINED_PCT,
    SPEEDUP,
    bootstrap_ci,
    holm,
    is_binary,
    mcnemar_exact,
    mean_std,
    paired_bootstrap_ci,
    paired_counts,
    wilson_ci,
)

# Relative columns emptied when a row is not comparable with its baseline.
RELATIVE = ("retained_pct", "accuracy_delta", "speedup", "cost_ratio", "cost_per_correct_ratio")


def _per_id(runs: list[dict[str, Any]], key: str, field: str | None = None) -> dict[str, float] | None:
    """Per example id, the mean over the runs of `run[key][id]` (or of its `field`); ids every run has; None if a
    run lacks the data."""
    maps = [r.get(key) for r in runs]
    if not maps or any(not m for m in maps):
        return None
    ids = set.intersection(*(set(m) for m in maps))
    if field is not None:
        ids = {i for i in ids if all(field in m[i] for m in maps)}
    if not ids:
        return None
    pick = (lambda m, i: m[i]) if field is None else (lambda m, i: m[i][field])
    return {i: sum(pick(m, i) for m in maps) / len(maps) for i in sorted(ids)}


def accuracy_ci(row: dict[str, Any]) -> tuple[float | None, float | None, str]:
    """95% CI of the row's accuracy and the method used: Wilson for 0/1 scores, bootstrap otherwise.

    With several seeds, the per-example score is the mean over seeds (ids every seed scored); a proportion then
    gets Wilson at p = that mean and n = examples, which is conservative (see stats.wilson_ci).

    Returns:
        (low, high, "wilson" | "bootstrap" | "").
    """
    runs = row["_runs"]
    if row["status"] != "finished":
        return None, None, ""
    scores = _per_id(runs, "samples")
    if scores:
        binary = all(is_binary(r["samples"].values()) for r in runs)
        vals = list(scores.values())
        ci = wilson_ci(sum(vals), len(vals)) if binary else bootstrap_ci(vals)
        return (*ci, "wilson" if binary else "bootstrap") if ci else (None, None, "")
    from slmexp.tasks.kinds import binary_metrics  # the metrics the task kinds declare a 0/1 score per example

    n = row.get("n")
    if row["metric"] in binary_metrics() and row["accuracy"] is not None and n:
        ci = wilson_ci(row["accuracy"] * n, int(n))
        if ci:
            return (*ci, "wilson")
    return None, None, ""


def _id_sets(runs: list[dict[str, Any]], key: str) -> set[frozenset[str]] | None:
    if any(not r.get(key) for r in runs):
        return None
    return {frozenset(r[key]) for r in runs}


def comparability(row: dict[str, Any], base: dict[str, Any]) -> tuple[bool, bool, int | None, str]:
    """May the row be compared with the baseline, for accuracy and for speed; n_paired; the reason if not.

    Accuracy: same split, and (when both sides have per-example samples) the same example ids in every seed;
    without samples the ids cannot be checked, so equal `n` is required. Speed: the same request ids when both
    sides recorded per-request figures (`speed.requests`), else the accuracy verdict (the speed stage times the
    first prompts of the same split).

    Returns:
        (accuracy comparable, speed comparable, n_paired (shared example ids) or None, reason or "").
    """
    if row["split"] and base["split"] and row["split"] != base["split"]:
        reason = f"not compared: evaluated on split {row['split']}, the baseline on {base['split']}"
        return False, False, None, reason
    rows_ids, base_ids = _id_sets(row["_runs"], "samples"), _id_sets(base["_runs"], "samples")
    n_paired, acc_ok, reason = None, True, ""
    if rows_ids is not None and base_ids is not None:
        mine, theirs = frozenset.intersection(*rows_ids), frozenset.intersection(*base_ids)
        n_paired = len(mine & theirs)
        if len(rows_ids) > 1:
            acc_ok, reason = False, "not compared: the row's seeds scored different example sets"
        elif rows_ids != base_ids:
            acc_ok = False
            reason = (f"not compared: {len(mine)} examples scored, the baseline {len(theirs)}, {n_paired} shared "
                      "(different example sets)")
    elif row.get("n") != base.get("n"):
        acc_ok = False
        reason = f"not compared: n = {row.get('n')}, the baseline n = {base.get('n')} (no per-example ids to match)"
    speed_ok = acc_ok
    req_row, req_base = _id_sets(row["_runs"], "requests"), _id_sets(base["_runs"], "requests")
    if req_row is not None and req_base is not None:
        speed_ok = len(req_row) == 1 and req_row == req_base
        if not speed_ok:
            reason = "; ".join(x for x in (reason, "speed not compared: different timed requests") if x)
    return acc_ok, speed_ok, n_paired, reason


def _pooled_mcnemar(row: dict[str, Any], base: dict[str, Any]) -> tuple[int, int, float] | None:
    """(b, c, p) with the discordant pairs of every seed of the row pooled; None without 0/1 samples."""
    b = c = 0
    used = False
    for run in row["_runs"]:
        partner = next((r for r in base["_runs"] if r["seed"] == run["seed"] and r["samples"]), None)
        partner = partner or next((r for r in base["_runs"] if r["samples"]), None)
        if not run["samples"] or partner is None:
            continue
        pair = paired_counts(run["samples"], partner["samples"])
        if pair is None:
            continue
        b, c, used = b + pair[1], c + pair[2], True
    return (b, c, mcnemar_exact(b, c)) if used else None


def _cost_weights(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    """Per-request quantity the row's $/1k requests is proportional to: the request's USD when recorded, else its
    latency on a hardware basis (USD/h x time at concurrency 1); None when neither applies."""
    usd = _per_id(runs, "requests", "usd")
    if usd:
        return usd
    if all(r["cost_basis"] == "hardware" for r in runs):
        return _per_id(runs, "requests", "latency_ms")
    return None


def _aligned(a: dict[str, float] | None, b: dict[str, float] | None) -> tuple[list[float], list[float]] | None:
    if not a or not b:
        return None
    ids = sorted(set(a) & set(b))
    return ([a[i] for i in ids], [b[i] for i in ids]) if ids else None


def fill_row(row: dict[str, Any], base: dict[str, Any] | None, base_lat: float | None,
             base_cost: float | None) -> None:
    """Per-run relative values against the baseline, mean ± std over seeds, their paired CIs, McNemar, the CI.

    Sets `_agg` (column -> (mean, std)) and the single-valued columns on `row` in place.
    """
    runs = row["_runs"]
    base_acc = base["accuracy"] if base else None
    acc_ok = speed_ok = base is not None
    n_paired, note = None, ""
    if base is not None and row is not base and row["status"] == "finished":
        acc_ok, speed_ok, n_paired, note = comparability(row, base)
    per_run: list[dict[str, float | None]] = []
    for run in runs:
        m = dict(run["measured"])
        acc, lat, cost = m["accuracy"], m["latency_p50_ms"], m["usd_per_1k_req"]
        m["retained_pct"] = 100 * acc / base_acc if acc_ok and acc is not None and base_acc else None
        m["accuracy_delta"] = acc - base_acc if acc_ok and acc is not None and base_acc is not None else None
        m["speedup"] = base_lat / lat if speed_ok and base_lat is not None and lat else None
        m["cost_ratio"] = cost / base_cost if speed_ok and cost is not None and base_cost else None
        cpc, base_cpc = m["usd_per_1k_correct"], _base_per_correct(base)
        m["cost_per_correct_ratio"] = cpc / base_cpc if acc_ok and speed_ok and cpc is not None and base_cpc else None
        per_run.append(m)
    row["_agg"] = {c: mean_std(m.get(c) for m in per_run) for c in per_run[0]}
    row["ci95_low"], row["ci95_high"], row["ci_method"] = accuracy_ci(row)
    row["n_paired"] = n_paired
    row["compare_note"] = note
    for col in ("mcnemar_b", "mcnemar_c", "mcnemar_p", "mcnemar_p_holm"):
        row[col] = None
    for col in RELATIVE:
        row[f"{col}_ci95_low"] = row[f"{col}_ci95_high"] = None
    if base is None or row is base:
        return
    if acc_ok:
        pooled = _pooled_mcnemar(row, base)
        if pooled is not None:
            row["mcnemar_b"], row["mcnemar_c"], row["mcnemar_p"] = pooled
        pair = _aligned(_per_id(runs, "samples"), _per_id(base["_runs"], "samples"))
        if pair is not None:
            _set_ci(row, "accuracy_delta", paired_bootstrap_ci(*pair, ACCURACY_DELTA))
            if base_acc:
                _set_ci(row, "retained_pct", paired_bootstrap_ci(*pair, RETAINED_PCT))
    if speed_ok:
        lat_pair = _aligned(_per_id(runs, "requests", "latency_ms"), _per_id(base["_runs"], "requests", "latency_ms"))
        if lat_pair is not None and row["_agg"]["speedup"][0] is not None:
            _set_ci(row, "speedup", paired_bootstrap_ci(*lat_pair, SPEEDUP))
        point = row["_agg"]["cost_ratio"][0]
        cost_pair = _aligned(_cost_weights(runs), _cost_weights(base["_runs"]))
        if cost_pair is not None and point is not None:
            full = MEAN_RATIO(*(_np_row(v) for v in cost_pair))[0]
            ci = paired_bootstrap_ci(*cost_pair, MEAN_RATIO)
            if ci is not None and full:  # the recorded ratio, rescaled by the resampled per-request ratio
                _set_ci(row, "cost_ratio", (ci[0] * point / full, ci[1] * point / full))
        _per_correct_ci(row, base, cost_pair)


def _base_per_correct(base: dict[str, Any] | None) -> float | None:
    values = [r["measured"]["usd_per_1k_correct"] for r in (base or {}).get("_runs") or []]
    return None if not values or None in values else sum(values) / len(values)


def _per_correct_ci(row: dict[str, Any], base: dict[str, Any], cost_pair: Any) -> None:
    """The CI of cost_per_correct_ratio ($ per correct answer vs the baseline's: agents' $ per solved episode): a
    paired bootstrap over the ids with both a timed request and a score (stats' resamples, seed and level), of
    (row cost / row successes) / (baseline cost / baseline successes), rescaled to the recorded ratio as
    cost_ratio's is. Resamples where either side solved nothing are dropped; too many dropped: no CI."""
    import numpy as np

    from slmexp.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CI_LEVEL

    point = row["_agg"]["cost_per_correct_ratio"][0]
    costs = (_cost_weights(row["_runs"]), _cost_weights(base["_runs"]))
    scores = (_per_id(row["_runs"], "samples"), _per_id(base["_runs"], "samples"))
    if point is None or cost_pair is None or not all(costs) or not all(scores):
        return
    ids = sorted(set(costs[0]) & set(costs[1]) & set(scores[0]) & set(scores[1]))
    if not ids:
        return
    c, s, bc, bs = (np.asarray([m[i] for i in ids], dtype=float) for m in (costs[0], scores[0], costs[1], scores[1]))
    idx = np.random.default_rng(BOOTSTRAP_SEED).integers(0, len(ids), size=(BOOTSTRAP_RESAMPLES, len(ids)))
    with np.errstate(divide="ignore", invalid="ignore"):
        full = (c.mean() / s.mean()) / (bc.mean() / bs.mean())
        values = (c[idx].mean(1) / s[idx].mean(1)) / (bc[idx].mean(1) / bs[idx].mean(1))
    values = values[np.isfinite(values)]
    alpha = (1.0 - CI_LEVEL) / 2
    if not np.isfinite(full) or not full or values.size < BOOTSTRAP_RESAMPLES * (1 - alpha):
        return
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    _set_ci(row, "cost_per_correct_ratio", (low * point / full, high * point / full))


def _np_row(values: list[float]) -> Any:
    import numpy as np

    return np.asarray(values, dtype=float)[None, :]


def _set_ci(row: dict[str, Any], col: str, ci: tuple[float, float] | None) -> None:
    if ci is not None:
        row[f"{col}_ci95_low"], row[f"{col}_ci95_high"] = ci


def apply_holm(rows: list[dict[str, Any]]) -> None:
    """Holm-adjust the McNemar p-values of the rows of one table (one task, one baseline), in place."""
    tested = [r for r in rows if r.get("mcnemar_p") is not None]
    for r, p in zip(tested, holm([r["mcnemar_p"] for r in tested]), strict=True):
        r["mcnemar_p_holm"] = p
