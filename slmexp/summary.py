"""The one-screen summary printed at the end of a run: what was measured, with units, and where the files are."""

from __future__ import annotations

from typing import Any


def print_summary(record: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    run = record["run"]
    table = Table(title=f"slmexp run: {run['name']} [{run['status']}]", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    model = record.get("model") or {}
    if model:
        size_mb = (model.get("bytes_on_disk") or 0) / 1e6
        table.add_row("model", f"{model['name']} ({model['role']}, {model.get('params_b')}B params, "
                               f"{model.get('dtype')}, {size_mb:.0f} MB on disk, from {model.get('source')})")
    metrics = record.get("metrics") or {}
    for name, value in (metrics.get("values") or {}).items():
        if name.endswith("_stderr"):
            continue
        err = metrics["values"].get(f"{name}_stderr")
        err_s = f" ± {err:.3f} (stderr)" if isinstance(err, float) else ""
        table.add_row(f"{metrics['task']} {name}", f"{value:.3f}{err_s}  n={metrics['n_examples']}, "
                                                   f"{metrics['formulation']}")
    if metrics.get("chance"):
        table.add_row("chance level", f"{metrics['chance']:.3f} (1/K)")
    speed = record.get("speed") or {}
    if speed:
        table.add_row("model load", f"{speed.get('load_s', 0):.1f} s")
        table.add_row("evaluation", f"{speed.get('eval_wall_s', 0):.1f} s wall "
                                    f"({speed.get('eval_examples_per_s') or 0:.2f} examples/s)")
    table.add_row("stages (s)", ", ".join(f"{k} {v:.1f}" for k, v in run.get("stages_s", {}).items()))
    table.add_row("wall", f"{run.get('wall_s') or 0:.1f} s")
    if run.get("error"):
        table.add_row("error", f"[red]{run['error']['type']}: {run['error']['message']}[/]")
    table.add_row("run dir", run["run_dir"])
    console.print(table)
