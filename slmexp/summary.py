"""The one-screen summary printed at the end of a run: what was measured, with units, and where the files are."""

from __future__ import annotations

from slmexp.record_types import CostBlock, MetricsBlock, ModelBlock, QuantizationBlock, RunJson, SpeedBlock, TrainBlock
from slmexp.record_types.measure import OverPasses, Passes, PassFigures


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmt_rate(value: float | None) -> str:
    return "n/a (outputs of < 2 tokens)" if value is None else f"{value:.1f} tok/s"


def _model_rows(record: RunJson) -> list[tuple[str, str]]:
    """The model served, its weights' provenance and its quantization."""
    rows: list[tuple[str, str]] = []
    model: ModelBlock = record.get("model") or {}
    if model.get("endpoint"):
        ep = model["endpoint"]
        rows.append(("model", f"{model['name']} ({model['role']}, {model.get('params_b')}B params) served by "
                               f"{ep['base_url']} as {ep['model']!r}"))
    elif model:
        size_mb = (model.get("bytes_on_disk") or 0) / 1e6
        rows.append(("model", f"{model['name']} ({model['role']}, {model.get('params_b')}B params, "
                               f"{model.get('dtype')}, {size_mb:.0f} MB on disk, from {model.get('source')})"))
    if model.get("weights_provenance"):  # not the real checkpoint: its "full precision" carries a GGUF's error
        rows.append(("weights", f"{model['weights_provenance']} (not the original checkpoint)"))
    q: QuantizationBlock = record.get("quantization") or {}
    if q.get("kind") == "gguf":
        red = f", {100 * q['reduction_vs_f16']:.0f}% smaller than F16" if q.get("reduction_vs_f16") is not None else ""
        rows.append(("quantization", f"GGUF {q.get('gguf_type', q.get('name'))}: {q['bytes'] / 1e6:.0f} MB{red}"))
    elif q.get("kind") == "bnb":
        rows.append(("quantization", f"{q['name']}: {q['memory_footprint_bytes'] / 1e6:.0f} MB in memory "
                                      f"(full precision {q['full_precision_bytes'] / 1e6:.0f} MB)"))
    return rows


def _train_rows(record: RunJson) -> list[tuple[str, str]]:
    """What training did and why it stopped."""
    rows: list[tuple[str, str]] = []
    tr: TrainBlock = record.get("train") or {}
    if tr:
        cached = " (reused from the training cache)" if tr.get("cached") else ""
        epochs = f", {tr['epochs']:g} epochs ({tr['examples_seen']} examples seen)" if tr.get("examples_seen") else ""
        best = f" (kept: step {tr['best_step']})" if tr.get("best_step") is not None else ""
        how = ", ".join(x for x in (tr.get("precision"), f"{tr['tokens_per_s']:.0f} tok/s" if tr.get("tokens_per_s")
                                    else None) if x)
        rows.append(("training", f"{tr['adapter']}{cached}: {tr['steps']} steps on {tr['train_examples']} examples"
                                  f"{epochs}, loss {tr['first_train_loss']:.3f} -> {tr['last_train_loss']:.3f} "
                                  f"(first/last logged), eval loss {_fmt(tr.get('eval_loss'))}{best}, "
                                  f"{tr['wall_s']:.0f} s{f' ({how})' if how else ''}, "
                                  f"{tr['trainable_pct']:.2f}% params trainable"))
        if tr.get("stop_reason"):
            rows.append(("stopped", str(tr["stop_reason"])))
    return rows


def _metric_rows(record: RunJson) -> list[tuple[str, str]]:
    """Each metric with its stderr, n and formulation; the chance level."""
    rows: list[tuple[str, str]] = []
    metrics: MetricsBlock = record.get("metrics") or {}
    for name, value in (metrics.get("values") or {}).items():
        if name.endswith("_stderr"):
            continue
        err = metrics["values"].get(f"{name}_stderr")
        err_s = f" ± {err:.3f} (stderr)" if isinstance(err, float) else ""
        rows.append((f"{metrics['task']} {name}", f"{value:.3f}{err_s}  n={metrics['n_examples']}, "
                                                   f"{metrics['formulation']}"))
    if metrics.get("chance"):
        rows.append(("chance level", f"{metrics['chance']:.3f} (1/K)"))
    return rows


def _speed_rows(record: RunJson) -> list[tuple[str, str]]:
    """Load, memory, accuracy-pass and timed-request figures (and over passes), contention and pass-spread warnings."""
    rows: list[tuple[str, str]] = []
    speed: SpeedBlock = record.get("speed") or {}
    if speed.get("load_s") is not None:
        rows.append(("model load", f"{speed.get('load_s', 0):.1f} s; serving peak RSS "
                                    f"{speed.get('peak_rss_mb', 0):.0f} MiB (load + evaluate + benchmark)"))
        if by_stage := speed.get("peak_rss_by_stage_mb"):
            rows.append(("peak RSS by stage", ", ".join(f"{k} {v:.0f}" for k, v in by_stage.items()) + " MiB"))
        ran = ", ".join(str(x) for x in (f"batch {speed['eval_batch_size']}" if speed.get("eval_batch_size") else None,
                                         speed.get("eval_dtype")) if x)
        ran = f", {ran}" if ran else ""
        rows.append(("evaluation", f"{speed.get('eval_wall_s', 0):.1f} s wall "
                                    f"({speed.get('eval_examples_per_s') or 0:.2f} examples/s{ran})"))
    if speed.get("n_requests") and speed.get("ttft_ms"):
        # task.formulation=choice scores labels and generates nothing: no decode rate in the record
        decode = (f"decode {_fmt_rate(speed['decode_tokens_per_s']['p50'])} (p50)" if speed.get("decode_tokens_per_s")
                  else "no decode (labels scored, nothing generated)")
        rows.append(("speed", f"TTFT p50 {speed['ttft_ms']['p50']:.0f} ms, latency p50/p95 "
                               f"{speed['latency_ms']['p50']:.0f}/{speed['latency_ms']['p95']:.0f} ms, {decode}, "
                               + (f"{speed['requests_per_s']:.2f} req/s; " if speed.get("requests_per_s") else "")
                               + f"n={speed['n_requests']} after "
                               f"{speed['warmup_requests']} warm-up, concurrency 1"))
        if (speed.get("passes") or {}).get("n", 1) > 1:
            rows.append(_passes_row(speed["passes"]))
        if conc := speed.get("concurrent"):
            rows.append(("speed, concurrent", f"{conc['requests_per_s']:.2f} req/s, {conc['output_tokens_per_s']:.1f} "
                                               f"output tok/s with {conc['concurrency']} requests in flight "
                                               f"(n={conc['n_requests']})"))
    if (load := speed.get("contention")) and load.get("contended"):
        rows.append(("[bold red]CONTENDED[/]", f"[red]other processes used {load['other_cpu_share']:.0%} of the "
                                                f"{load.get('cores', '?')} cores ({load.get('other_cores', 0):.2f} "
                                                f"cores > threshold {load.get('threshold_cores', 0):g}), load avg "
                                                f"{load.get('load_avg_1m')}: timings of this run are not "
                                                f"comparable; re-run on an idle machine[/]"))
    passes: Passes = speed.get("passes") or {}
    if passes.get("unstable"):
        rows.append(("[bold red]UNSTABLE[/]", f"[red]latency p50 per pass {_pass_p50s(passes)} ms: spread "
                                               f"{passes['spread']:.2f} > "
                                               f"eval.bench.max_pass_spread {passes['max_spread']:g} (pass "
                                               f"{passes['flagged_pass']} farthest from the median): timings of this "
                                               f"run are not comparable; re-run on an idle machine[/]"))
    return rows


def _pass_p50s(passes: Passes) -> str:
    per_pass: list[PassFigures] = passes.get("per_pass") or []
    return "/".join(f"{p['latency_ms']['p50'] or 0:.0f}" for p in per_pass)


def _passes_row(passes: Passes) -> tuple[str, str]:
    """The timed passes: each pass's latency p50, the t-interval over passes (n = passes: few), the spread."""
    ci: OverPasses = passes.get("latency_p50_ms") or {}
    interval = (f"geometric mean {ci['geomean']:.0f} ms [95% CI {ci['ci95_low']:.0f}, {ci['ci95_high']:.0f}] "
                f"({ci['method']})" if ci.get("ci95_low") is not None else "no CI")
    rel = passes.get("spread")
    return ("speed over passes", f"latency p50 per pass {_pass_p50s(passes)} ms ({passes['n']} passes, "
                                 f"{passes.get('order')}); {interval}; spread "
                                 f"{'n/a' if rel is None else f'{rel:.2f}'} (max {passes.get('max_spread')})")


def _cost_rows(record: RunJson) -> list[tuple[str, str]]:
    """$ per 1k requests, per 1M output tokens, per correct answer, Wh, and how they were priced."""
    rows: list[tuple[str, str]] = []
    cost: CostBlock = record.get("cost") or {}
    if cost:
        per_1k, per_m = cost.get("usd_per_1k_requests"), cost.get("usd_per_1m_output_tokens")
        if cost["basis"] == "routed":
            how = "SLM cost for every request + LLM cost for escalated ones, per measured request (router)"
        elif cost["basis"] == "hardware":
            hw = cost["hardware"]
            how = f"{hw['instance']} at ${hw['usd_per_hour']}/h ({hw['as_of']}), measured throughput"
        else:
            api = cost["api"]
            how = (f"{api['provider_id']}/{api['model_ref']} ${api['input_usd_per_mtok']}/"
                   f"${api['output_usd_per_mtok']} per 1M in/out tokens ({api['source']})")
        one = " (concurrency 1)" if cost.get("concurrent") else ""
        money = ", ".join(x for x in (
            f"${per_1k:.4f} per 1k requests{one}" if per_1k is not None else None,
            f"${per_m:.3f} per 1M output tokens" if per_m is not None else None,
            f"${cost['usd_per_correct']:.6f} per correct answer" if cost.get("usd_per_correct") else None,
            f"$ per correct answer: n/a ({cost['usd_per_correct_note']})" if cost.get("usd_per_correct_note") else None,
            f"{cost['wh_per_1k_requests']:.2f} Wh per 1k requests "
            f"({'estimated' if cost.get('energy_estimated', True) else 'measured'})"
            if cost.get("wh_per_1k_requests") else None,
        ) if x)
        rows.append(("cost", f"{money or 'n/a'}; basis {cost['basis']}: {how}"))
        if (cc := cost.get("concurrent")) and cc.get("usd_per_1k_requests") is not None:
            rows.append(("cost, concurrent", f"${cc['usd_per_1k_requests']:.4f} per 1k requests with "
                                              f"{cc['concurrency']} requests in flight (measured throughput)"))
    return rows


def _extra_rows(record: RunJson) -> list[tuple[str, str]]:
    """Distillation and routing, when the job had them."""
    rows: list[tuple[str, str]] = []
    if d := record.get("distill"):
        spent = f", ${d['cost_usd']:.4f} for the labels" if d.get("cost_usd") is not None else ""
        rows.append(("distillation", f"teacher {d['teacher']}: {d['n_kept']} answers kept, {d['n_rejected']} "
                                      f"rejected {d['rejected_reasons'] or ''} of {d['n_inputs']} inputs; "
                                      f"{d['n_queried']} asked now, {d['n_cached']} from the cache{spent}"))
    if r := record.get("router"):
        rows.append(("routing", f"threshold {r['threshold']:g} ({r['confidence']}): {r['n_escalated']}/{r['n']} "
                                 f"escalated to {r['llm']}; SLM-only acc {r['slm_only']['accuracy']:.3f}, LLM-only "
                                 f"acc {r['llm_only']['accuracy']:.3f}; latency p50/p95 "
                                 f"{r['routed']['latency_ms']['p50']:.0f}/{r['routed']['latency_ms']['p95']:.0f} ms "
                                 f"(composed per request)"))
    return rows


def print_summary(record: RunJson) -> None:
    """The one-screen summary a job ends with (stderr): what was measured, with units, and where it is."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(stderr=True)
    if not console.is_terminal:  # logs and CI: wide enough that paths are never cut
        console = Console(stderr=True, width=140)
    run = record["run"]
    status = run["status"] + (", skipped: finished earlier with the same config" if run.get("skipped") else "")
    table = Table(title=escape(f"slmexp run: {run['name']} [{status}]"), show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for section in (_model_rows, _train_rows, _metric_rows, _speed_rows, _cost_rows, _extra_rows):
        for what, value in section(record):
            table.add_row(what, value)
    table.add_row("stages (s)", ", ".join(f"{k} {v:.1f}" for k, v in run.get("stages_s", {}).items()))
    table.add_row("wall", f"{run.get('wall_s') or 0:.1f} s")
    if run.get("error"):
        table.add_row("error", f"[red]{run['error']['type']}: {run['error']['message']}[/]")
    table.add_row("run dir", run["run_dir"])
    console.print(table)
