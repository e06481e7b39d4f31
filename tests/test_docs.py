"""The manual stays true to the code: the generated config reference and run-record field tables are current,
README.md is a short hub, every relative link resolves, and every `slmexp ...` example in README.md composes into a
config (no model loads)."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest

from slmexp import configref
from slmexp.config import CONF_DIR, register_resolvers

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 200
MAX_JOBS = 16  # combinations of one multirun example that are composed


def test_config_reference_is_current() -> None:
    committed = configref.DOC_PATH.read_text() if configref.DOC_PATH.exists() else ""
    assert committed == configref.generate(), (
        "docs/config-reference.md differs from slmexp/conf: run `python -m slmexp.configref --write` "
        "(`python -m slmexp.configref --check` shows the diff)")


def test_run_record_fields_are_current() -> None:
    from slmexp import record_schema

    committed = (ROOT / record_schema.DOC_PATH).read_text()
    assert committed == record_schema.doc_text(committed), (
        "docs/run-record.md's field tables differ from slmexp/record_types: run `python -m slmexp.record_schema "
        "--write` (`python -m slmexp.record_schema --check` shows the diff)")


def test_configref_check_exit_status(tmp_path: Path) -> None:
    out = tmp_path / "ref.md"
    assert configref.main(["--write", "--out", str(out)]) == 0
    assert configref.main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text().replace("## adapter", "## adaptor"))
    assert configref.main(["--check", "--out", str(out)]) == 1


def test_readme_is_a_hub() -> None:
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail into docs/ (at most {MAX_README_LINES})"


# --- links ----------------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The Markdown without fenced blocks and code spans (links inside code are not links)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, code marks and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", _FENCE.sub("", path.read_text()), re.M)
    return {_slug(h) for h in headings}


def _links() -> list[tuple[Path, str]]:
    return [(page, target) for page in [README, *DOCS] for target in _LINK.findall(_prose(page.read_text()))]


@pytest.mark.parametrize(("page", "target"), _links(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_relative_link_resolves(page: Path, target: str) -> None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        return
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.relative_to(ROOT)}: link to {target}: {dest} does not exist"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), f"{page.relative_to(ROOT)}: link to {target}: no such heading in {dest.name}"


# --- README commands ------------------------------------------------------------------------------------------------


def _readme_commands() -> list[list[str]]:
    """Argument lists of the `slmexp ...` lines in README.md's bash blocks (comments dropped, `\\` lines joined)."""
    commands = []
    for block in re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", README.read_text(), re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            args = shlex.split(line, comments=True)
            if args and args[0] == "slmexp":
                commands.append(args[1:])
    return commands


def _skip_reason(args: list[str]) -> str | None:
    from slmexp.cli_errors import SUBCOMMANDS

    if args and args[0] in SUBCOMMANDS:  # report, rescore, verify, ...: not a Hydra job
        return f"`slmexp {args[0]}` reads a sweep dir"
    flags = [a for a in args if a.startswith("-") and a not in ("-m", "--multirun")]
    return f"flag {flags[0]} is not a composition" if flags else None


def _jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs a multirun's sweep overrides (a,b,c) expand to, as Hydra's basic sweeper would, first MAX_JOBS."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    axes = []
    for o in parsed:
        if o.is_sweep_override():
            axes.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            axes.append([o.input_line])
    return [list(job) for job in itertools.islice(itertools.product(*axes), MAX_JOBS)]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="slmexp"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def _sweep_jobs(cfg, overrides: list[str]) -> list[list[str]]:
    """A sweep file's own jobs: its `hydra.sweeper.params` choice lists (Optuna's ranges are not expanded)."""
    params = cfg.hydra.sweeper.get("params") or {}
    if not params or str(cfg.hydra.sweeper.get("_target_", "")).endswith("OptunaSweeper"):
        return []
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    extra = [f"{k}={v}" for k, v in params.items() if k not in given]  # the command line wins over the file
    return _jobs([*overrides, *extra])


README_COMMANDS = _readme_commands()


def test_readme_has_examples() -> None:
    assert len(README_COMMANDS) >= 10, "README.md should show a dozen example commands"


@pytest.mark.parametrize("args", README_COMMANDS, ids=lambda a: " ".join(a) or "(defaults)")
def test_readme_command_composes(args: list[str]) -> None:
    from omegaconf import OmegaConf

    reason = _skip_reason(args)
    if reason:
        pytest.skip(reason)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    jobs = _jobs(overrides) if len(overrides) != len(args) else [overrides]
    for job in jobs:
        cfg = _compose(job)
        for sub in _sweep_jobs(cfg, job) or [job]:
            sub_cfg = cfg if sub == job else _compose(sub)
            job_cfg = OmegaConf.masked_copy(sub_cfg, [k for k in sub_cfg if k != "hydra"])
            OmegaConf.to_container(job_cfg, resolve=True)  # every ${...} resolves
