"""The layout's promises, checked on the source (no imports): core modules name no backend, runtimes never import
quantizers, and slmexp's modules import each other without cycles, function-level imports included.

Why: a cycle hidden behind a function-level import works until someone moves the import to the top; a backend
named in the pipeline means a new runtime touches the core again. Both are cheap to catch here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

PKG = Path(__file__).resolve().parent.parent / "slmexp"
CORE = ("slmexp.config", "slmexp.pipeline", "slmexp.evaluate", "slmexp.bench")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """slmexp modules `name` imports anywhere in its body (top level, inside functions, or named in a lazy map)."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    lazy = {id(v) for d in ast.walk(tree) if isinstance(d, ast.Dict) for v in d.values}  # registry values
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) in lazy:
            # A lazy registry entry ("slmexp.quantize.gguf", "slmexp.runtimes.x:Class") is an import made later.
            targets = [node.value.split(":", 1)[0]]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _backend_names() -> set[str]:
    """Runtime and quantization-kind names the configs define (the words core modules must not branch on)."""
    conf = PKG / "conf"
    names = {p.stem for p in (conf / "runtime").glob("*.yaml")}
    for p in (conf / "quantization").glob("*.yaml"):
        kind = (yaml.safe_load(p.read_text()) or {}).get("kind")
        if kind and kind != "none":
            names.add(str(kind))
    return names - {"none"}


def test_no_import_cycles_among_slmexp_modules() -> None:
    assert _cycles(GRAPH) == []


def test_runtimes_never_import_quantizers() -> None:
    bad = {m: sorted(d for d in deps if d.startswith("slmexp.quantize"))
           for m, deps in GRAPH.items() if m.startswith("slmexp.runtimes")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_core_modules_name_no_backend() -> None:
    backends = _backend_names()
    assert {"llamacpp", "openai", "gguf", "onnx", "bnb"} <= backends
    problems = []
    for mod in CORE:
        path = MODULES[mod]
        for dep in GRAPH[mod]:
            if dep.startswith(("slmexp.runtimes.", "slmexp.quantize.")):
                problems.append(f"{mod} imports {dep}")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in backends:
                problems.append(f"{mod}:{node.lineno} names {node.value!r}")
    assert problems == []


def test_no_library_module_over_400_lines() -> None:
    big = {str(p.relative_to(PKG.parent)): n for p in PKG.rglob("*.py")
           if "data" not in p.parts and (n := len(p.read_text().splitlines())) > 400}
    assert big == {}


def test_no_library_function_over_80_lines() -> None:
    """A function longer than a screen does several jobs: split it by job (DESIGN.md 0), not by trimming comments."""
    long = {}
    for p in PKG.rglob("*.py"):
        if "data" in p.parts:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80:
                long[f"{p.relative_to(PKG.parent)}:{node.lineno} {node.name}"] = node.end_lineno - node.lineno + 1
    assert long == {}
