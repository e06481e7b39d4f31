"""The bad-input list (docs/errors.md), run through the real CLI: every kind of mistake a user makes in a command
line, a config file or a data file is answered with ONE line on stderr, `slmexp: error: <key>: <what> (<where>)`,
naming the key and the override or file:line that set it, exit status 2, no traceback, before any model is
resolved or loaded, in seconds.

All cases run in one interpreter (tests/cli_driver.py calls slmexp.cli.main per case), so the list costs one start-up
and ~1-5 s of Hydra composition per case (slow tier: about 2 minutes for the list on 2 busy cores).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "errors.md"
_SUPPORT = "slmexp/tasks/data/support_intent/test.jsonl"

# (id, argv, key the line must name, where: "override" | "file"). {tmp} is a folder with the files made below;
# {port} a port nothing listens on.
CASES: list[tuple[str, list[str], str, str]] = [
    ("unknown-group-option", ["model=smollm3-9b"], "model", "override"),
    ("unknown-key", ["eval.limitt=5"], "eval.limitt", "override"),
    ("endpoint-url-not-http", ["runtime=openai", "runtime.base_url=127.0.0.1:8080"], "runtime.base_url",
     "override"),
    ("override-syntax", ["eval.limit=[1,"], "eval.limit", "override"),
    ("wrong-type-int", ["adapter=lora", "train.max_steps=abc"], "train.max_steps", "override"),
    ("wrong-type-number", ["adapter=lora", "train.learning_rate=fast"], "train.learning_rate", "override"),
    ("wrong-type-seed", ["seed=1.5"], "seed", "override"),
    ("zero-limit", ["eval.limit=0"], "eval.limit", "override"),
    ("negative-limit", ["eval.limit=-3"], "eval.limit", "override"),
    ("negative-bench", ["eval.bench.n=-1"], "eval.bench.n", "override"),
    ("zero-concurrency", ["eval.bench.concurrency=0"], "eval.bench.concurrency", "override"),
    ("zero-batch-size", ["runtime.batch_size=0"], "runtime.batch_size", "override"),
    ("zero-max-new-tokens", ["task.generation.max_new_tokens=0"], "task.generation.max_new_tokens", "override"),
    ("zero-steps", ["adapter=lora", "train.max_steps=0", "train.num_train_epochs=0"], "train.max_steps",
     "override"),
    ("zero-learning-rate", ["adapter=lora", "train.learning_rate=0"], "train.learning_rate", "override"),
    ("nan-learning-rate", ["adapter=lora", "train.learning_rate=nan"], "train.learning_rate", "override"),
    ("warmup-ratio-above-1", ["adapter=lora", "train.warmup_ratio=5"], "train.warmup_ratio", "override"),
    ("bad-choice", ["model.role=judge"], "model.role", "override"),
    ("bad-dtype", ["model.dtype=float8"], "model.dtype", "override"),
    ("missing-model-path", ["model.source.path=/nonexistent/model"], "model.source.path", "override"),
    ("missing-data-file", ["task.data.test=/nonexistent/test.jsonl"], "task.data.test", "override"),
    ("empty-data-file", ["task.data.test={tmp}/empty.jsonl"], "task.data.test", "file"),
    ("malformed-jsonl-line", ["task.data.test={tmp}/malformed.jsonl"], "task.data.test", "file"),
    ("wrong-field-name", ["task.fields.text=body"], "task.fields.text", "file"),
    ("unknown-label-in-data", ["task.data.test={tmp}/unknown_label.jsonl"], "task.fields.label", "file"),
    ("duplicate-labels", ["task=jsonl", "task.kind=classification", "task.data.test=" + _SUPPORT,
                          "+task.fields.label=label", "task.labels=[refund,Refund,billing]",
                          "task.primary_metric=exact_match"], "task.labels", "override"),
    ("missing-split", ["eval.split=dev"], "eval.split", "override"),
    ("required-data-unset", ["task=jsonl"], "task.data.test", "file"),
    ("unknown-metric", ["task.primary_metric=bleu"], "task.primary_metric", "override"),
    ("quantization-runtime-mismatch", ["quantization=gguf-q4_k_m"], "quantization.kind", "override"),
    ("lm-eval-without-names", ["task=lm-eval", "task.names=[]"], "task.names", "override"),
    ("lm-eval-with-adapter", ["task=lm-eval", "task.names=[arc_easy]", "adapter=lora"], "adapter.name",
     "override"),
    ("missing-key-variable", ["runtime=openai", "runtime.api_key_env=SLMEXP_NO_SUCH_KEY_VAR"],
     "runtime.api_key_env", "override"),
    ("unreachable-endpoint", ["runtime=openai", "runtime.base_url=http://127.0.0.1:{port}/v1",
                              "runtime.connect_timeout_s=1"], "runtime.base_url", "override"),
    ("gguf-unsupported-architecture", ["model.source.path={tmp}/odd-model", "quantization=gguf-q8_0",
                                       "runtime=llamacpp"], "model.source.path", "override"),
    ("lora-rank-zero", ["adapter=lora", "adapter.peft.r=0"], "adapter.peft.r", "override"),
    ("unknown-api-price", ["runtime=openai", "runtime.provider_id=openai", "runtime.price_model=gpt-nonexistent-9",
                           "runtime.base_url=http://127.0.0.1:{port}/v1"], "runtime.price_model", "override"),
    ("not-utf8-data-file", ["task.data.test={tmp}/latin1.jsonl"], "task.data.test", "file"),
    ("bad-sweep-file-yaml", ["--config-dir", "{tmp}/conf", "sweep=broken"], "sweep", "file"),
    ("missing-config-dir-option", ["--config-dir", "{tmp}/conf", "sweep=nope"], "sweep", "override"),
    # A word that is neither a subcommand nor an override: refused before Hydra runs (slmexp.cli_errors.bad_word).
    ("not-a-subcommand", ["verfy", "outputs/sweeps/demo"], "'verfy' is not a subcommand", "argv"),
    ("misspelt-subcommand", ["reprot", "outputs/sweeps/demo"], "did you mean report?", "argv"),
    ("group-without-option", ["modle"], "did you mean model=<option>?", "argv"),
    ("bare-word-after-override", ["model=smollm2-135m", "verfy"], "'verfy'", "argv"),
]

WHERE = {"override": re.compile(r"command-line override '"), "file": re.compile(r"[\w./-]+\.(ya?ml|jsonl)(:\d+)?"),
         "argv": re.compile(r"; subcommands: report, rescore\b")}


def _setup(tmp: Path) -> None:
    (tmp / "empty.jsonl").write_text("")
    lines = (REPO / _SUPPORT).read_text().splitlines()[:3]
    (tmp / "malformed.jsonl").write_text("\n".join([lines[0], lines[1][:-5], lines[2]]) + "\n")
    row = json.loads(lines[0]) | {"label": "teleport_order"}
    (tmp / "unknown_label.jsonl").write_text(lines[0] + "\n" + json.dumps(row) + "\n")
    (tmp / "latin1.jsonl").write_bytes((lines[0] + "\n").encode() + '{"text": "caf\u00e9", "label": "order_status"}\n'
                                       .encode("latin-1"))
    odd = tmp / "odd-model"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"architectures": ["FluxCapacitorForCausalLM"],
                                                 "model_type": "flux"}))
    (odd / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    sweeps = tmp / "conf" / "sweep"
    sweeps.mkdir(parents=True)
    (sweeps / "broken.yaml").write_text("# @package _global_\neval:\n  limit: 5\n   bench: {n: 0\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    return run_cases(tmp_path_factory.mktemp("bad"))


def run_cases(tmp: Path) -> dict[str, dict]:
    """Every case through tests/cli_driver.py in one interpreter; results by case id."""
    _setup(tmp)
    port = _free_port()
    cases = []
    for cid, argv, _key, _where in CASES:
        args = [a.replace("{tmp}", str(tmp)).replace("{port}", str(port)) for a in argv]
        args = [str(REPO / a) if a == _SUPPORT else a.replace("=" + _SUPPORT, f"={REPO / _SUPPORT}") for a in args]
        cases.append({"id": cid, "argv": [*args, f"paths.output_dir={tmp}/out", f"hydra.run.dir={tmp}/runs/{cid}"],
                      "unset": ["SLMEXP_NO_SUCH_KEY_VAR"]})
    (tmp / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "cli_driver.py"), str(tmp / "cases.json"),
                           str(tmp / "out.json")], env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = {r["id"]: r for r in json.loads((tmp / "out.json").read_text())}
    for r in out.values():
        r["tmp"] = str(tmp)
    return out


def test_there_are_at_least_25_kinds() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 25


@pytest.mark.slow  # one interpreter for all cases, but Hydra composes each in ~1-5 s on 2 busy cores
@pytest.mark.parametrize(("cid", "argv", "key", "where"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_key_and_origin(results, cid, argv, key, where) -> None:
    r = results[cid]
    lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
    assert "Traceback" not in r["stderr"] + r["stdout"], r["stderr"][-3000:]
    assert r["rc"] == 2, (r["rc"], r["stderr"][-2000:])
    assert len(lines) == 1 and lines[0].startswith("slmexp: error: "), r["stderr"]
    line = lines[0]
    assert key in line, line
    assert WHERE[where].search(line), line
    assert r["wall_s"] < 15, f"{cid} took {r['wall_s']} s"
    run_json = Path(r["tmp"]) / "runs" / cid / "run.json"
    if run_json.exists():  # refused before any model was resolved or loaded
        rec = json.loads(run_json.read_text())
        assert rec["run"]["status"] == "failed" and rec["model"] is None, rec["run"]
        assert rec["run"]["error"]["stage"] == "validate", rec["run"]["error"]


@pytest.mark.slow
def test_every_case_is_listed_in_the_docs_with_its_message(results) -> None:
    doc = DOC.read_text()
    for cid, *_ in CASES:
        assert f"`{cid}`" in doc, f"{cid} is not listed in docs/errors.md"
        shown = _shown(results[cid]).replace("|", "&#124;")
        assert shown in doc, f"docs/errors.md does not show {cid}'s message:\n{shown}"


# slmexp.cli_errors.bad_word: (argv, None where Hydra's command line is fine, else the whole line after
# `slmexp: error: ` when it starts with a quote, or a part it must contain). {tmp} has a --config-dir with a group
# `mygroup`.
_SUBS = "subcommands: report, rescore, verify, export"
_VERIFY = " (did you mean verify?)"  # `verfy` is one letter from the verify subcommand
BARE_WORDS: list[tuple[list[str], str | None]] = [
    ([], None),
    (["model=smollm2-135m", "eval.limit=5"], None),
    (["+train.extra=1", "++seed=3", "~eval.bench"], None),
    (["--cfg", "job", "arm=slm-lora"], None),  # --cfg takes a value: `job` is not an override
    (["-c", "all", "--resolve", "--package", "_global_"], None),
    (["--cfg=job"], None),
    (["--info", "defaults"], None),
    (["-i", "-m", "sweep=demo"], None),  # --info's value is optional
    (["--info", "verfy"], None),  # --info's value: Hydra's argparse answers it (invalid choice)
    (["--config-dir", "{tmp}/conf", "sweep=x"], None),
    (["-cd", "{tmp}/conf", "-cn", "other", "-cp", "pkg://x"], None),
    (["--config-n", "other"], None),  # argparse takes an unambiguous prefix of a long option
    (["--experimental-rerun", "config.pickle"], None),
    (["--help"], None),
    (["--hydra-help"], None),
    (["-sc", "install=bash"], None),
    (["verfy", "outputs/sweeps/demo"], f"'verfy' is not a subcommand or a key=value override; {_SUBS}{_VERIFY}"),
    (["reprot", "DIR"], f"'reprot' is not a subcommand or a key=value override; {_SUBS} (did you mean report?)"),
    (["rescor"], "(did you mean rescore?)"),
    (["modle"], "(did you mean model=<option>?)"),
    (["model"], "(did you mean model=<option>?)"),
    (["lancher"], "(did you mean hydra/launcher=<option>?)"),
    (["sed"], "(did you mean seed=<value>?)"),  # a key of the primary config
    (["model.dtype"], "'model.dtype' is not a subcommand or a key=value override; "
                      f"{_SUBS} (did you mean model.dtype=<value>?)"),
    (["model=smollm2-135m", "verfy"], f"'verfy' is not a subcommand or a key=value override; {_SUBS}{_VERIFY}"),
    (["--cfg", "job", "-m", "verfy"],  # -m: no value
     f"'verfy' is not a subcommand or a key=value override; {_SUBS}{_VERIFY}"),
    (["--config-dir", "{tmp}/conf", "mygrop"], "(did you mean mygroup=<option>?)"),
    (["model=smollm2-135m", "report", "DIR"], f"'report' is a subcommand: it goes first (slmexp report ...), before "
                                              f"any override; {_SUBS}"),
]


@pytest.mark.parametrize(("argv", "want"), BARE_WORDS, ids=[" ".join(a) or "empty" for a, _ in BARE_WORDS])
def test_a_bare_word_is_named_with_the_subcommands(tmp_path, argv, want) -> None:
    from slmexp.cli_errors import bad_word

    (tmp_path / "conf" / "mygroup").mkdir(parents=True)
    (tmp_path / "conf" / "mygroup" / "a.yaml").write_text("x: 1\n")
    line = bad_word([a.replace("{tmp}", str(tmp_path)) for a in argv])
    if want is None:
        assert line is None, line
    elif want.startswith("'"):  # the whole line
        assert line == want
    else:
        assert line is not None and want in line, line


def test_a_bare_word_exits_2_in_one_line_without_hydra_or_torch(tmp_path) -> None:
    """The real entry point in a fresh interpreter: one line, exit status 2, Hydra's app never started (run_app,
    which runs it, is not called), torch not imported, nothing written to the working dir."""
    code = ("import sys; from slmexp.cli import main; import slmexp.cli_errors as ce\n"
            "ce.run_app = lambda app: print('hydra-app-ran')\n"
            "sys.argv = ['slmexp', 'model=smollm2-135m', 'verfy', 'outputs/sweeps/demo']\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["2", "False"], (proc.stdout, proc.stderr[-2000:])
    assert proc.stderr.splitlines() == [f"slmexp: error: 'verfy' is not a subcommand or a key=value override; "
                                        f"{_SUBS}{_VERIFY}"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("argv", "want"), [
    (["+verfy", "seed=1"], "+verfy"),  # no `=`: it used to be skipped, and the line said `?`
    (["--cfg", "job", "eval.limit=[1,"], "eval.limit=[1,"),  # `job` is --cfg's value, not an override
    (["--config-dir", "/x", "~eval.bench", "seed=1"], None),
])
def test_the_unparsable_override_is_found_among_the_words(argv, want) -> None:
    from slmexp.cli_errors import _unparsable

    assert _unparsable(argv) == want


def _shown(r: dict) -> str:
    """The message as docs/errors.md shows it: temp dir, repo path and port replaced by placeholders."""
    line = r["stderr"].strip().splitlines()[-1].removeprefix("slmexp: error: ")
    line = line.replace(r["tmp"], "<tmp>").replace(str(REPO) + "/", "")
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)


def write_docs(results: dict[str, dict]) -> None:
    """Regenerate the list in docs/errors.md from a run of the cases (python -m tests.test_bad_input)."""
    head, _, after = (DOC.read_text() if DOC.exists() else "").partition("<!-- cases -->")
    tail = after[after.find("\n\n"):] if "\n\n" in after else "\n"  # what follows the table (the schema cases)
    rows = []
    for cid, argv, _key, _where in CASES:
        cmd = " ".join(a.replace("{tmp}", "<tmp>").replace("{port}", "<port>") for a in argv)
        rows.append(f"| `{cid}` | `slmexp {cmd}` | {_shown(results[cid]).replace('|', '&#124;')} |")
    DOC.write_text(head + "<!-- cases -->\n| kind | command | the line printed after `slmexp: error:` |\n"
                   "|---|---|---|\n" + "\n".join(rows) + tail)


if __name__ == "__main__":  # python -m tests.test_bad_input: run the list once and rewrite docs/errors.md
    import tempfile

    write_docs(run_cases(Path(tempfile.mkdtemp(prefix="bad"))))
