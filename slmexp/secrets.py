"""The one redactor: everything slmexp writes about a config or a command line goes through `redact`.

Why two rules: a key's NAME says it holds a secret (`api_key`, `hf_token`, the header `x-api-key`, `Authorization`),
but a secret also travels under innocent names (in a command line, an error message, a log line, a header value the
endpoint echoed). So values found under secret-named keys, and the values of the environment variables that hold
keys (any variable named by an `*_env` key, and variables whose own name says key/token/secret/password), are
remembered for the process and replaced wherever they appear in a string.

Users pass keys as a variable (`runtime.api_key_env=OPENAI_API_KEY`), an override (`+runtime.api_key=...`), a header
(`+runtime.headers.x-api-key=...`) or a whole command line: each of those is covered here, and
tests/test_secrets.py greps every file a job and a sweep leave for the planted key.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

REDACTED = "***redacted***"
# A key is secret when its LAST word (split on _ - . and spaces) is one of these, or it spells api-key anywhere:
# `api_key`, `x-api-key`, `hf_token`, `Authorization`, `client_secret`, `password`, `api_key_id`. Not secret:
# `max_new_tokens` (plural), `auth_header` (a header NAME), `token_source`, and the label `password_reset`.
_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "authorization", "credential",
                 "credentials", "cookie", "bearer"}
_WORD_SPLIT = re.compile(r"[_\-.\s]+")
_MIN_SECRET_LEN = 6  # shorter values are not replaced inside strings (they would mangle ordinary text)
_known: set[str] = set()  # secret values seen in this process (longest replaced first)


def secret_name(name: Any) -> bool:
    """True when a key or variable name says it holds a secret; `*_env` keys name a variable and are not secret."""
    if not isinstance(name, str):
        return False
    low = name.lower()
    if low.endswith("_env"):
        return False
    words = [w for w in _WORD_SPLIT.split(low) if w]
    return (bool(words) and words[-1] in _SECRET_WORDS) or "apikey" in low.replace("-", "").replace("_", "")


def remember(value: Any) -> None:
    """Treat `value` as a secret from now on, wherever it appears in a string."""
    if isinstance(value, str) and len(value) >= _MIN_SECRET_LEN:
        _known.add(value)
        if value.lower().startswith("bearer "):
            _known.add(value[7:])


def _from_environment(obj: Any) -> None:
    """Remember the values of variables that hold secrets: named by an `*_env` key in `obj`, or secret by name."""
    for name, value in os.environ.items():
        if secret_name(name):
            remember(value)
    for var in _env_names(obj):
        remember(os.environ.get(var))


def _env_names(obj: Any) -> list[str]:
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and k.endswith("_env") and isinstance(v, str) and v:
                out.append(v)
            else:
                out += _env_names(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            out += _env_names(v)
    return out


def _collect(obj: Any) -> None:
    """Remember every scalar under a secret-named key (and `key=value` argv items with a secret key)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if secret_name(k) and not isinstance(v, dict | list):
                remember(str(v) if v is not None else None)
            else:
                _collect(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _collect(v)
    elif isinstance(obj, str) and "=" in obj:
        key, _, value = obj.partition("=")
        if secret_name(key.lstrip("+~").rsplit(".", 1)[-1]):
            remember(value)


def redact_text(text: str) -> str:
    """`text` with every known secret value replaced."""
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact(obj: Any) -> Any:
    """A copy of `obj` (dicts, lists, strings) with secrets replaced: values under secret-named keys, `key=value`
    strings whose key is secret, and every known secret value inside any string. Other scalars pass unchanged."""
    _from_environment(obj)
    _collect(obj)
    return _redact(obj)


def _redact(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (REDACTED if secret_name(k) and v is not None and not isinstance(v, dict | list) else _redact(v))
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_redact(v) for v in obj]
    if isinstance(obj, str):
        if "=" in obj:
            key, _, value = obj.partition("=")
            if value and secret_name(key.lstrip("+~").rsplit(".", 1)[-1]):
                return f"{key}={REDACTED}"
        return redact_text(obj)
    return obj


def redact_values(obj: Any) -> Any:
    """A copy of `obj` with known secret values replaced inside strings only; keys are not judged by name. For
    records whose keys are measurements and labels (a label `password_reset` is not a secret)."""
    _from_environment(None)
    return _values(obj) if _known else obj


def _values(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _values(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_values(v) for v in obj]
    return redact_text(obj) if isinstance(obj, str) else obj


def argv() -> list[str]:
    """This process's command line, redacted."""
    return redact(list(sys.argv))


# --- files Hydra writes, and log lines ------------------------------------------------------------------------------


def rewrite_yaml(path: Path) -> bool:
    """Rewrite a YAML file Hydra saved (`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`, `multirun.yaml`)
    redacted, atomically; returns True when something was replaced."""
    import yaml

    path = Path(path)
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    clean = redact(data)
    if clean == data and redact_text(text) == text:
        return False
    tmp = path.with_name(f".{path.name}.redacting")
    tmp.write_text(yaml.safe_dump(clean, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, path)
    return True


class RedactingFilter(logging.Filter):
    """A handler filter that replaces known secret values in every record it passes (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            msg = record.getMessage()
            clean = redact_text(msg)
            if clean != msg:
                record.msg, record.args = clean, ()
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


_factory_installed = False


def install_record_factory(argv: list[str] | None = None) -> None:
    """Redact every log record as it is made, whoever logs it: learn the secrets in `argv` (overrides with a secret
    key) and the environment first. Why a record factory and not only handler filters: Hydra's launcher logs each
    job's overrides (`#0 : +runtime.api_key=...`) through handlers it builds itself, before any job starts."""
    global _factory_installed
    if argv is not None:
        redact(list(argv))  # learn, discard the copy
    if _factory_installed:
        return
    _factory_installed = True
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if _known:
            try:
                msg = record.getMessage()
            except Exception:  # a malformed call: logging reports it at emit time, as it would without us
                return record
            clean = redact_text(msg)
            if clean != msg:
                record.msg, record.args = clean, ()
        return record

    logging.setLogRecordFactory(factory)


def install_log_filter() -> None:
    """Put a RedactingFilter on every handler of the root and `slmexp` loggers (console and the job's log file)."""
    for logger in (logging.getLogger(), logging.getLogger("slmexp")):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
