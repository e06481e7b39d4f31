"""Generate docs/config-reference.md from the config tree (slmexp/conf), so the reference cannot drift.

    python -m slmexp.configref                 # print the reference
    python -m slmexp.configref --write         # rewrite docs/config-reference.md
    python -m slmexp.configref --check         # exit 1 with a diff when the committed file differs (CI)

For each group (a folder of slmexp/conf) a section; for each option (a YAML file) its header comment (what it is
and the command that uses it), its defaults list, and every key it sets as the dotted path you override on the
command line, with its value as written, what the declared schema (slmexp.schema) accepts there, and the comment
next to it. Needs PyYAML and pydantic only: no Hydra, no torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parent / "conf"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "config-reference.md"
SKIP_GROUPS = {"local"}  # git-ignored, one machine's settings: never part of the reference
MAX_VALUE = 72  # characters of a composite or multi-line value shown in a table cell


def _comment_start(line: str) -> int:
    """Index of the `#` that starts a comment on this YAML line (outside quotes), or -1."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
    return -1


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def header(lines: list[str]) -> list[str]:
    """The leading comment block, without Hydra's `# @package` directive."""
    out = []
    for line in lines:
        if not _is_comment(line):
            break
        text = line.strip()[1:]
        if text.strip().startswith("@package"):
            continue
        out.append(text[1:] if text.startswith(" ") else text)
    return out


def _header_end(lines: list[str]) -> int:
    i = 0
    while i < len(lines) and _is_comment(lines[i]):
        i += 1
    return i


def _note(lines: list[str], row: int, col: int, first_body: int) -> str:
    """The comment of the key at (row, col): comment lines right above it, its inline comment and continuations."""
    above: list[str] = []
    r = row - 1
    while r >= first_body and _is_comment(lines[r]) and len(lines[r]) - len(lines[r].lstrip()) == col:
        above.insert(0, lines[r].strip()[1:].strip())
        r -= 1
    parts = above
    c = _comment_start(lines[row])
    if c > col:
        parts = [*parts, lines[row][c + 1:].strip()]
        r = row + 1
        while r < len(lines) and _is_comment(lines[r]) and len(lines[r]) - len(lines[r].lstrip()) > col:
            parts.append(lines[r].strip()[1:].strip())
            r += 1
    return " ".join(p for p in parts if p)


def _source(node: yaml.Node, text: str) -> str:
    return text[node.start_mark.index:node.end_mark.index].strip()


def _render(node: yaml.Node, text: str) -> str:
    """A value as written: scalars verbatim (block scalars: first line), collections compactly."""
    if isinstance(node, yaml.ScalarNode):
        lines = node.value.splitlines() if node.style in ("|", ">") else _source(node, text).splitlines()
        out = (lines[0] if lines else "") + (" …" if len(lines) > 1 else "")
        return out if len(lines) < 2 and len(out) <= 2 * MAX_VALUE else _cut(out)
    if node.flow_style:
        out = " ".join(_source(node, text).split())
    elif isinstance(node, yaml.SequenceNode):
        out = "[" + ", ".join(_render(n, text) for n in node.value) + "]"
    else:
        out = "{" + ", ".join(f"{_render(k, text)}: {_render(v, text)}" for k, v in node.value) + "}"
    return _cut(out)


def _cut(value: str) -> str:
    return value if len(value) <= MAX_VALUE else value[:MAX_VALUE - 1].rstrip() + " …"


def keys(text: str, prefix: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(defaults list entries, [(dotted key, value, note)]) of one YAML file, in file order."""
    lines = text.splitlines()
    body = _header_end(lines)
    root = yaml.compose(text)
    defaults: list[str] = []
    rows: list[tuple[str, str, str]] = []
    if root is None:
        return defaults, rows

    def walk(node: yaml.MappingNode, path: str, top: bool) -> None:
        for k, v in node.value:
            name = f"{path}{k.value}"
            if top and k.value == "defaults":
                defaults.extend(_render(e, text).strip("{}") for e in v.value)
                continue
            note = _note(lines, k.start_mark.line, k.start_mark.column, body)
            if isinstance(v, yaml.MappingNode) and v.value and not v.flow_style:
                if note:
                    rows.append((name, "", note))
                walk(v, name + ".", False)
            else:
                rows.append((name, _render(v, text), note))

    walk(root, prefix, True)
    return defaults, rows


def _md(text: str) -> str:
    """Escape a note for a table cell: pipes always, `<` outside code spans."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def _code(value: str) -> str:
    if not value:
        return ""
    value = value.replace("|", "\\|")
    return f"`` {value} ``" if "`" in value else f"`{value}`"


def _table(rows: list[tuple[str, str, str]], types: dict[str, str] | None = None) -> list[str]:
    types = types or {}
    out = ["| key | value | accepts (schema) | note |", "|---|---|---|---|"]
    out += [f"| `{k}` | {_code(v)} | {types.get(k, '')} | {_md(n)} |" for k, v, n in rows]
    return out


def _own_or_inherited(path: Path, key: str) -> object:
    """A top-level value of an option file, or of the same-group option its defaults list extends."""
    data = yaml.safe_load(path.read_text()) or {}
    if key in data:
        return data[key]
    for entry in data.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_" and (path.parent / f"{entry}.yaml").exists():
            found = _own_or_inherited(path.parent / f"{entry}.yaml", key)
            if found is not None:
                return found
    return None


def schema_types(path: Path, rows: list[tuple[str, str, str]]) -> dict[str, str]:
    """key -> what the declared schema (slmexp.schema) accepts there, for the rows of one option file. A runtime's
    keys are its class's (by `_target_`), a quantization's its kind's."""
    from slmexp.schema.describe import all_leaves

    leaves = all_leaves()
    tag = {"runtime": None, "quantization": None}
    if path.parent.name == "runtime":
        target = _own_or_inherited(path, "_target_")
        tag["runtime"] = str(target).rsplit(".", 1)[-1] if target else None
    if path.parent.name == "quantization":
        tag["quantization"] = _own_or_inherited(path, "kind")
    out = {}
    for key, _value, _note in rows:
        group, _, rest = key.partition(".")
        candidates = [key]
        if group in tag:
            candidates = [f"{group}[{tag[group]}].{rest}"] if tag[group] else \
                [k for k in leaves if k.startswith(f"{group}[") and k.endswith(f"].{rest}")]
        spec = next((leaves[c] for c in candidates if c in leaves), None)
        if spec is not None:
            out[key] = spec.text()
    return out


def _is_global(text: str) -> bool:
    return any(line.strip().replace(" ", "") == "#@package_global_" for line in text.splitlines()
               if _is_comment(line))


def _primary_defaults(text: str) -> dict[str, str]:
    """group -> default option, from config.yaml's defaults list."""
    out = {}
    for entry in yaml.safe_load(text).get("defaults", []):
        if isinstance(entry, dict):
            for k, v in entry.items():
                out[k.replace("optional ", "").strip()] = "null" if v is None else str(v)
    return out


def groups(conf: Path = CONF_DIR) -> dict[str, list[Path]]:
    """group (folder relative to conf, e.g. `hydra/launcher`) -> its option files, sorted."""
    out: dict[str, list[Path]] = {}
    for f in sorted(conf.rglob("*.yaml"), key=lambda p: (p.parent.as_posix(), p.stem)):
        rel = f.parent.relative_to(conf).as_posix()
        if rel != "." and rel.split("/")[0] not in SKIP_GROUPS:
            out.setdefault(rel, []).append(f)
    return dict(sorted(out.items()))


def generate(conf: Path = CONF_DIR) -> str:
    """The whole reference as Markdown."""
    primary = (conf / "config.yaml").read_text()
    chosen = _primary_defaults(primary)
    grouped = groups(conf)
    out = [
        "# Config reference",
        "",
        "<!-- GENERATED by `python -m slmexp.configref --write` from slmexp/conf: do not edit by hand. -->",
        "",
        "Every option of every config group, generated from the YAML files in `slmexp/conf/` (their header comment",
        "and keys) and the schema, so it cannot drift: `python -m slmexp.configref --check` (run by",
        "`tests/test_docs.py`) fails when this file differs. Keys are shown as the dotted path you override on the",
        "command line",
        "(`slmexp eval.limit=20`); values are as written in the file (`${...}` are interpolations, `???` is",
        "required); \"accepts\" is what the declared schema (slmexp/schema) allows, checked before any model",
        "loads ([errors.md](errors.md)). Options marked `@package _global_` set keys anywhere in the config. How the",
        "groups fit together: [configuration.md](configuration.md).",
        "",
        "Groups: " + " · ".join(f"[{g}](#{g.replace('/', '')})" for g in grouped),
        "",
        "## Primary config (`config.yaml`)",
        "",
        "```text",
        *header(primary.splitlines()),
        "```",
        "",
        "Defaults list (group: default option): "
        + ", ".join(f"`{g}: {o}`" for g, o in chosen.items()) + ".",
        "",
        *_table(keys(primary, "")[1], schema_types(conf / "config.yaml", keys(primary, "")[1])),
        "",
    ]
    for group, files in grouped.items():
        package = group.replace("/", ".")
        default = chosen.get(group)
        out += [f"## {group}", ""]
        out += [f"{len(files)} option(s); default: `{default}`." if default else f"{len(files)} option(s).", ""]
        for f in files:
            text = f.read_text()
            name = f.stem
            glob = _is_global(text)
            defaults, rows = keys(text, "" if glob else package + ".")
            out += [f"### `{group}={name}`", "", "```text", *header(text.splitlines()), "```", ""]
            facts = []
            if glob:
                facts.append("`@package _global_`")
            if defaults:
                facts.append("defaults: " + ", ".join(f"`{d}`" for d in defaults))
            if facts:
                out += ["; ".join(facts), ""]
            if rows:
                out += [*_table(rows, schema_types(f, rows)), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slmexp.configref", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help=f"exit 1 with a diff when {DOC_PATH.name} differs")
    ap.add_argument("--write", action="store_true", help=f"rewrite {DOC_PATH}")
    ap.add_argument("--out", type=Path, default=DOC_PATH, help="the file --check/--write compare or write")
    args = ap.parse_args(argv)
    text = generate()
    if not (args.check or args.write):
        sys.stdout.write(text)
        return 0
    from slmexp.generated import sync

    return sync({args.out: text}, write=args.write, source="generated from slmexp/conf",
                command="python -m slmexp.configref --write")

if __name__ == "__main__":
    sys.exit(main())
