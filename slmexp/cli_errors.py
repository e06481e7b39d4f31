"""Bad input the config composer (Hydra) refuses, said in one line that names the key and the override or file that
set it, like every other slmexp input error (`slmexp: error: <key>: <what> (<where>)`).

Why: Hydra prints these as several lines (a key error, `full_key:`, `object_type=dict`, a hint about
HYDRA_FULL_ERROR), and a user scanning a sweep's output wants the one line that says what to change. So `slmexp`
runs Hydra with HYDRA_FULL_ERROR=1 (the exception comes back here instead of being printed), turns the composer's
errors into one line, and lets anything else (a bug) raise with its full traceback.

A word on the command line that is neither a subcommand nor an override (`slmexp verfy DIR`, `slmexp model=x verfy`)
is refused before Hydra runs (`bad_word`), naming the word and the subcommands, with a close subcommand, config
group or key suggested.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

_OWNER = "SLMEXP_OWNS_HYDRA_ERRORS"  # set while slmexp asked Hydra for the exception (children inherit it)
# The first words slmexp.cli.main dispatches on (name -> its `main(argv) -> int`); anything else is a Hydra job.
SUBCOMMANDS = {"report": "slmexp.report:main", "rescore": "slmexp.rescore:main"}
SUBCOMMANDS["verify"] = "slmexp.verify:main"  # attestation check (slmexp.attest)
SUBCOMMANDS["export"] = "slmexp.export.cli:main"  # results in other tools' formats (docs/exporting.md)


def _overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """The overrides of a Hydra command line (the words that are not flags nor a flag's value), and the dirs of its
    --config-dir flags. Walks Hydra's own argument parser: `--cfg job`, `-cn NAME`, `--info defaults` take a value."""
    from hydra._internal.utils import get_args_parser

    takes = {o: a for a in get_args_parser()._actions if a.nargs != 0 for o in a.option_strings}  # not store_true
    words, dirs, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        name, eq, value = arg.partition("=")
        longs = [o for o in takes if o.startswith("--") and o.startswith(name)] if name.startswith("--") else []
        action = takes.get(name) or (takes[longs[0]] if len(longs) == 1 else None)  # argparse takes --config-n
        if action is None:
            continue
        if not eq and i < len(argv) and not argv[i].startswith("-"):  # argparse: the next word is its value
            value = argv[i]
            i += 1
        if "--config-dir" in action.option_strings and value:
            dirs.append(value)
    return words, dirs


def _meant(dirs: list[str]) -> dict[str, str]:
    """What a bare word may have meant: a config group of slmexp's tree or of a --config-dir (`model=<option>`,
    `hydra/launcher=<option>`) or a key of the primary config (`seed=<value>`)."""
    from slmexp.origin import CONF_DIR

    keys = re.findall(r"^(\w+):", (CONF_DIR / "config.yaml").read_text(), re.M)
    meant = {k: f"{k}=<value>" for k in keys if k not in ("defaults", "hydra")}
    for root in [CONF_DIR, *map(Path, dirs)]:
        for f in root.rglob("*.yaml") if root.is_dir() else []:
            if f.parent != root:
                group = f.parent.relative_to(root).as_posix()
                meant[group] = f"{group}=<option>"
    return meant


def bad_word(argv: list[str]) -> str | None:
    """`'<word>' is not a subcommand or a key=value override; subcommands: ... (did you mean ...?)` for the first
    word Hydra would refuse without saying which (no `=`, no leading + ~ -, not a flag's value); None if none.

    Hydra's grammar needs `key=value` (or `~key`): a bare word is always a mistake, a misspelt subcommand or a group
    named without its option. Composes no config and runs no Hydra app: it answers in milliseconds."""
    words, dirs = _overrides(argv)
    word = next((w for w in words if "=" not in w and not w.startswith(("+", "~"))), None)
    if word is None:
        return None
    subs = ", ".join(SUBCOMMANDS)
    if word in SUBCOMMANDS:  # `slmexp model=x report DIR`
        return f"'{word}' is a subcommand: it goes first (slmexp {word} ...), before any override; subcommands: {subs}"
    if "." in word:  # a dotted key without its value
        close = [f"{word}=<value>"]
    else:
        meant = _meant(dirs)
        close = difflib.get_close_matches(word, SUBCOMMANDS, n=1)
        close += [meant[k] for k in difflib.get_close_matches(word, list(meant), n=1)]
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"'{word}' is not a subcommand or a key=value override; subcommands: {subs}{hint}"


def _override_for(key: str, argv: list[str]) -> str | None:
    for ov in argv:
        name = ov.lstrip("+~").split("=", 1)[0]
        if "=" in ov and (name == key or key.startswith(name + ".") or name.startswith(key + ".")):
            return ov
    return None


def _where(key: str, argv: list[str], fallback: str | None = None) -> str:
    ov = _override_for(key, argv)
    if ov is not None:
        return f"command-line override '{ov}'"
    return fallback or "the defaults list of the primary config or the sweep file"


def _unparsable(argv: list[str]) -> str | None:
    """The first command-line override Hydra's grammar refuses (its exception does not say which)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for ov in _overrides(argv)[0]:
        try:
            parser.parse_overrides([ov])
        except Exception:
            return ov
    return None


def one_line(exc: BaseException, argv: list[str]) -> str | None:
    """`<key>: <what> (<where>)` for an error Hydra or OmegaConf raised while composing; None for anything else."""
    import yaml
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, yaml.YAMLError):  # a config file (a user's sweep or group option) that is not YAML
        mark = getattr(exc, "problem_mark", None)
        path = getattr(mark, "name", None) or "a config file"
        group = os.path.basename(os.path.dirname(path)) if mark else "config"
        where = f"{path}:{mark.line + 1}" if mark else path
        return f"{group}: not valid YAML ({getattr(exc, 'problem', None) or exc}) ({where})"
    if not isinstance(exc, HydraException | OmegaConfBaseException):
        return None
    text = str(exc)
    cause = str(exc.__cause__ or "")
    if isinstance(exc, OverrideParseException):
        ov = _unparsable(argv) or "?"
        reason = text.splitlines()[0].strip() if text.strip() else type(exc).__name__
        return f"{ov.lstrip('+~').split('=', 1)[0]}: cannot parse the value ({reason}) (command-line override '{ov}')"
    m = re.search(r"Could not find '([^']+)/([^'/]+)'", text) or re.search(r"Could not load '([^']+)/([^'/]+)'", text)
    if m:
        group, option = m.group(1), m.group(2)
        listed = text.split("Available options", 1)[-1].split("Config search path", 1)[0]
        opts = re.findall(r"^\t(\S+)", listed, re.M) if "Available" in text else []
        avail = f"; available: {', '.join(opts)}" if opts else ""
        return f"{group.replace('/', '.')}: no option '{option}'{avail} ({_where(group, argv)})"
    m = re.search(r"Could not override '([^']+)'", text)
    if m and "not in struct" in cause:
        key = m.group(1)
        return (f"{key}: no such key (a typo? prefix it with + to add a new key: +{key}=...) "
                f"({_where(key, argv)})")
    m = re.search(r"Could not append to config. An item is already at '([^']+)'", text)
    if m:
        key = m.group(1)
        return f"{key}: already set; override it without the leading + ({_where(key, argv)})"
    m = re.search(r"full_key: (\S+)", text + "\n" + cause)
    key = m.group(1) if m else "config"
    first = next((line.strip() for line in (text.splitlines() or [""]) if line.strip()), type(exc).__name__)
    detail = next((line.strip() for line in cause.splitlines() if line.strip()), "")
    msg = first + (f": {detail}" if detail and detail not in first else "")
    return f"{key}: {msg} ({_where(key, argv, 'a config file')})"


def refuse(lines: list[str], status: int = 2) -> NoReturn:
    """Print each line as `slmexp: error: <line>` on stderr and exit: the one way slmexp refuses bad input. The
    command line's secrets are learnt first (an override may echo one) and every line is redacted."""
    from slmexp.secrets import redact, redact_text

    redact(list(sys.argv))
    sys.stdout.flush()
    for line in lines:
        print(f"slmexp: error: {redact_text(line)}", file=sys.stderr)
    sys.stderr.flush()
    raise SystemExit(status)


def run_app(app: Callable[[], Any]) -> None:
    """Run the Hydra app; composer errors become one line on stderr and exit status 2. A sweep whose report
    failed exits 1 (slmexp.callbacks.ReportCallback recorded why)."""
    own = os.environ.get("HYDRA_FULL_ERROR") is None or os.environ.get(_OWNER) == "1"
    if own:
        os.environ["HYDRA_FULL_ERROR"] = "1"
        os.environ[_OWNER] = "1"
    try:
        app()
    except Exception as e:
        line = one_line(e, sys.argv[1:]) if own else None
        if line is None:
            raise
        refuse([line])
    from slmexp.callbacks import REPORT_FAILURES

    if REPORT_FAILURES:
        print(f"slmexp: error: {REPORT_FAILURES[-1]}", file=sys.stderr)
        sys.exit(1)
