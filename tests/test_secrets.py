"""Secrets never reach a file: the redactor's rules, then a key planted every way a user could pass one (a variable
named by runtime.api_key_env, `+runtime.api_key=`, an `x-api-key` header, an `Authorization` header) through the
real CLI against a scripted OpenAI-compatible server, as a sweep with wandb on, and every file the sweep left
(run dirs, .hydra/*.yaml, multirun.yaml, logs, wandb dirs, report files) and the console grepped for each key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from slmexp.secrets import REDACTED, redact, redact_text, remember, secret_name


def test_secret_names_by_last_word_and_header_spelling() -> None:
    for name in ("api_key", "x-api-key", "api-key", "Authorization", "hf_token", "client_secret", "password",
                 "OPENAI_API_KEY", "apikey", "X-Api-Key"):
        assert secret_name(name), name
    for name in ("api_key_env", "max_new_tokens", "auth_header", "password_reset", "token_source", "key_origin",
                 "num_key_value_heads", "tokenizer"):
        assert not secret_name(name), name


def test_redact_by_name_by_value_and_in_argv(monkeypatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_CRED", "sk-by-variable-123")  # a name that says nothing: found via *_env
    cfg = {"runtime": {"api_key_env": "MY_PROVIDER_CRED", "headers": {"x-api-key": "sk-header-456"},
                       "api_key": "sk-direct-789", "note": "called with sk-by-variable-123"},
           "task": {"labels": {"password_reset": "reset a password"}}, "eval": {"max_new_tokens": 16}}
    out = redact(cfg)
    assert out["runtime"]["headers"]["x-api-key"] == REDACTED and out["runtime"]["api_key"] == REDACTED
    assert out["runtime"]["api_key_env"] == "MY_PROVIDER_CRED"
    assert out["runtime"]["note"] == f"called with {REDACTED}"
    assert out["task"]["labels"] == {"password_reset": "reset a password"} and out["eval"]["max_new_tokens"] == 16
    argv = redact(["slmexp", "+runtime.headers.Authorization=Bearer tok-abcdef", "eval.limit=5"])
    assert argv == ["slmexp", f"+runtime.headers.Authorization={REDACTED}", "eval.limit=5"]
    assert redact_text("header was tok-abcdef") == f"header was {REDACTED}"  # the bare token after "Bearer "
    remember("sk-seen-elsewhere")
    assert "sk-seen-elsewhere" not in redact_text("error: 401 for key sk-seen-elsewhere")


@pytest.mark.slow
def test_planted_keys_appear_in_no_file_the_sweep_leaves(tmp_path) -> None:
    from slmexp.config import DATA_DIR
    from tests.test_scripted_server import _free_port, _golds, _Server

    keys = {"env": "sk-ENVKEY-7f3a9c21", "override": "sk-OVERRIDE-5b8e2d44", "header": "sk-HEADER-19c7ae03",
            "bearer": "sk-BEARER-a0d4f6e8"}
    srv = _Server(_free_port(), _golds([DATA_DIR / "support_intent" / "test.jsonl"]))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "SLMEXP_TEST_KEY": keys["env"]}
    cmd = [sys.executable, "-m", "slmexp", "-m", "runtime=openai", f"runtime.base_url={base}",
           "runtime.model=plain,bullet", "runtime.api_key_env=SLMEXP_TEST_KEY", f"+runtime.api_key={keys['override']}",
           f"+runtime.headers.x-api-key={keys['header']}", f"+runtime.headers.Authorization=Bearer {keys['bearer']}",
           "model.name=scripted", "model.source.hub=null", "model.source.wheel=null", "eval.limit=4",
           "eval.bench.n=2", "eval.bench.warmup=0", "logger=wandb", f"paths.output_dir={tmp_path}/o",
           f"paths.cache_dir={tmp_path}/c", f"hydra.sweep.dir={tmp_path}/o/sweep"]
    try:
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    finally:
        srv.shutdown()
        srv.server_close()
    assert out.returncode == 0, out.stderr[-4000:]
    sweep = tmp_path / "o" / "sweep"
    runs = sorted(p.parent for p in sweep.rglob("run.json"))
    assert len(runs) == 2 and all('"status": "finished"' in (r / "run.json").read_text() for r in runs)
    assert list(sweep.rglob("wandb/offline-run-*")) and (sweep / "multirun.yaml").is_file()
    assert (sweep / "comparison.md").is_file() and list(sweep.rglob("*.log"))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 30
    leaks = {name: [str(p.relative_to(tmp_path)) for p in files if key.encode() in p.read_bytes()]
             for name, key in keys.items()}
    assert leaks == {name: [] for name in keys}, leaks
    console = out.stdout + out.stderr
    assert not [k for k in keys.values() if k in console]
    assert REDACTED in (runs[0] / ".hydra" / "overrides.yaml").read_text()
