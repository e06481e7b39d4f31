"""The readers of run.json are bound to its declarations: every string key the report, summary, tracking, rescore,
claims and callbacks modules read from a record or one of its blocks is a field that slmexp.record_types declares.

Why an AST scan and not mypy: `pip install mypy` (2.4.1) upgrades the pinned mypy_extensions (1.1.0 -> 1.2.0) and
adds four packages (mypy, librt, ast_serialize, pathspec) to the dev install; records arrive as parsed JSON (`Any` to
a type checker until each name is annotated anyway), and nothing else in the project runs mypy: a scan of these few
modules for this one check needs no new tool and runs in under a second.

The scan ties a name or expression to a block the way a reader does: a parameter or local annotated with a record
type (`rec: RunJson`, `speed: SpeedBlock`), what a name is bound to (`rec["speed"]`, `rec.get("speed") or {}`,
`_get(rec, "speed", "latency_ms")`, a loop over a `list[RunJson]`, a function's declared return), then walks nested
TypedDicts, `dict[str, X]` values, lists, Optional and NotRequired. It fails listing `module:line key (Block)` for
each key a block does not declare. A name it cannot tie to a block is not checked: that is why the readers annotate
theirs, and why the count of checked reads has a floor.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
import types
import typing
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import typing_extensions

from slmexp import record_types

ROOT = Path(__file__).resolve().parent.parent
READERS = sorted([*(p for p in (ROOT / "slmexp" / "report").glob("*.py") if p.name != "__main__.py"),
                  *(ROOT / "slmexp" / name for name in ("summary.py", "tracking.py", "rescore.py", "callbacks.py",
                                                        "attest.py", "verify.py")),
                  *(ROOT / "slmexp" / "export").glob("*.py")])
CHAIN_HELPERS = {"_get"}  # slmexp.report.collect._get(d, *keys): d[k1][k2]... with None for a missing level
KEY_METHODS = {"get", "pop", "setdefault"}
PASS_THROUGH = {"sorted", "list", "reversed"}
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
# What the readers check today (keys read from a declared block), less a margin: a reader whose names lose their
# annotations drops below it.
MIN_CHECKED = 380
RECORD_READERS = ("slmexp.report.collect", "slmexp.report.router", "slmexp.report.ladder", "slmexp.report.examples",
                  "slmexp.report.claims", "slmexp.summary", "slmexp.tracking", "slmexp.rescore", "slmexp.callbacks")


@dataclass
class Reads:
    """What a scan found: key reads checked against a TypedDict, keys it does not declare, reads in dict[str, X]."""

    checked: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    mapped: int = 0


def _norm(tp: Any) -> Any:
    """`tp` without Optional, NotRequired or Annotated; None for Any and for a union of several non-null types."""
    while True:
        origin = typing.get_origin(tp)
        if origin in (typing_extensions.NotRequired, typing_extensions.Required, typing.Annotated):
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return None
            tp = args[0]
        else:
            return None if tp is Any else tp


@cache
def _fields(td: type) -> dict[str, Any]:
    return typing_extensions.get_type_hints(td)


def _lookup(base: Any, key: str | None) -> tuple[Any, str | None]:
    """The type of `base[key]` (key None: not a literal) and what the read was: declared, undeclared, mapped or
    None (base is not a block)."""
    if typing_extensions.is_typeddict(base):
        if key is None:
            return None, None
        hints = _fields(base)
        return (_norm(hints[key]), "declared") if key in hints else (None, "undeclared")
    if typing.get_origin(base) is dict and len(typing.get_args(base)) == 2:
        value = _norm(typing.get_args(base)[1])  # dict[str, Any] (the config): not a block
        return value, "mapped" if key is not None and value is not None else None
    return None, None


def _elem(tp: Any) -> Any:
    """What iterating a value of type `tp` yields."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, set, frozenset, dict) and args:
        return _norm(args[0])
    if origin is tuple and args and ((len(args) == 2 and args[1] is Ellipsis) or len(set(args)) == 1):
        return _norm(args[0])
    return None


def _same(types_: list[Any]) -> Any:
    """The one type all of `types_` share, None when they differ or one is unknown."""
    return types_[0] if types_ and types_[0] is not None and all(t == types_[0] for t in types_) else None


def _const(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_empty(node: ast.AST) -> bool:
    """`{}`, `[]`, `None`: the defaults of `x or {}`, which do not change x's type."""
    return (isinstance(node, ast.Dict | ast.List) and not getattr(node, "keys", getattr(node, "elts", None))) or (
        isinstance(node, ast.Constant) and node.value is None)


class Scanner:
    """One module's key reads, typed by the names' annotations and bindings (flow-insensitive per function: a name
    bound to two different types is not tied to either)."""

    def __init__(self, module: str, ns: dict[str, Any]) -> None:
        self.module, self.ns, self.reads = module, ns, Reads()

    # --- types ---------------------------------------------------------------------------------------------------
    def resolve(self, node: ast.AST | str | None) -> Any:
        if node is None:
            return None
        src = node if isinstance(node, str) else _const(node) or ast.unparse(node)
        try:
            return _norm(eval(src, dict(self.ns)))
        except Exception:
            return None

    def typeof(self, node: ast.AST, env: dict[str, Any]) -> Any:
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.NamedExpr):
            return self.typeof(node.value, env)
        if isinstance(node, ast.Subscript):
            return self._subscript(node, env)
        if isinstance(node, ast.Call):
            return self._call(node, env)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, env)
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            return _same([self.typeof(v, env) for v in node.values if not _is_empty(v)])
        if isinstance(node, ast.IfExp):
            return _same([self.typeof(v, env) for v in (node.body, node.orelse) if not _is_empty(v)])
        if isinstance(node, ast.Tuple) and node.elts and not any(isinstance(e, ast.Starred) for e in node.elts):
            return tuple[tuple(Any if (t := self.typeof(e, env)) is None else t for e in node.elts)]
        if isinstance(node, COMPREHENSIONS):
            inner = self.comprehension_env(node, env)
            if isinstance(node, ast.DictComp):
                value = self.typeof(node.value, inner)
                return None if value is None else dict[str, value]
            elt = self.typeof(node.elt, inner)
            return None if elt is None else list[elt]
        return None

    def _subscript(self, node: ast.Subscript, env: dict[str, Any]) -> Any:
        base = self.typeof(node.value, env)
        key = _const(node.slice)
        if key is not None or typing_extensions.is_typeddict(base):
            return _lookup(base, key)[0]
        if typing.get_origin(base) is dict:
            return _lookup(base, None)[0]
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
            args = typing.get_args(base)
            if typing.get_origin(base) is tuple and node.slice.value < len(args) and args[-1] is not Ellipsis:
                return _norm(args[node.slice.value])
            return _elem(base)
        return None

    def _call(self, node: ast.Call, env: dict[str, Any]) -> Any:
        func = node.func
        if isinstance(func, ast.Attribute):
            base = self.typeof(func.value, env)
            if func.attr in KEY_METHODS and node.args:
                return _lookup(base, _const(node.args[0]))[0]
            args = typing.get_args(base) if typing.get_origin(base) is dict else ()
            methods = {"items": lambda: list[tuple[args[0], args[1]]], "values": lambda: list[args[1]],
                       "keys": lambda: list[args[0]]}
            return _norm(methods[func.attr]()) if args and func.attr in methods else None
        if not isinstance(func, ast.Name):
            return None
        if func.id in CHAIN_HELPERS and node.args:
            tp = self.typeof(node.args[0], env)
            for arg in node.args[1:]:
                tp = _lookup(tp, _const(arg))[0]
            return tp
        if func.id in PASS_THROUGH and node.args:
            elem = _elem(self.typeof(node.args[0], env))
            return None if elem is None else list[elem]
        if func.id in ("min", "max", "next") and len(node.args) == 1:
            return _elem(self.typeof(node.args[0], env))
        return self._returns(func.id)

    def _returns(self, name: str) -> Any:
        """The declared return type of the function `name` names in this module's namespace."""
        fn = self.ns.get(name)
        ann = getattr(fn, "__annotations__", {}).get("return") if isinstance(fn, types.FunctionType) else None
        return self.resolve(ann) if isinstance(ann, str) else _norm(ann)

    def _attribute(self, node: ast.Attribute, env: dict[str, Any]) -> Any:
        """`obj.field` of a class (a dataclass holding a record) whose field is annotated."""
        base = self.typeof(node.value, env)
        if not isinstance(base, type) or typing_extensions.is_typeddict(base):
            return None
        ann = {k: v for klass in reversed(base.__mro__) for k, v in getattr(klass, "__annotations__", {}).items()}
        return self.resolve(ann[node.attr]) if isinstance(ann.get(node.attr), str) else None

    # --- bindings ------------------------------------------------------------------------------------------------
    def bind(self, target: ast.AST, tp: Any, out: dict[str, list[Any]]) -> None:
        """Each name in `target` with the type it gets from a value of type `tp` (tuples unpacked)."""
        if isinstance(target, ast.Name):
            out[target.id].append(tp)
        elif isinstance(target, ast.Tuple | ast.List):
            args = typing.get_args(tp) if typing.get_origin(tp) is tuple else ()
            fixed = len(args) == len(target.elts) and Ellipsis not in args
            for i, elt in enumerate(target.elts):
                self.bind(elt, _norm(args[i]) if fixed else None, out)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, None, out)

    def comprehension_env(self, node: ast.AST, env: dict[str, Any]) -> dict[str, Any]:
        inner = dict(env)
        for gen in node.generators:
            found: dict[str, list[Any]] = defaultdict(list)
            self.bind(gen.target, _elem(self.typeof(gen.iter, inner)), found)
            for name, tps in found.items():
                inner[name] = tps[0]
        return inner

    def function_env(self, fn: ast.AST, outer: dict[str, Any]) -> dict[str, Any]:
        """The names a function binds, each with its type: annotated ones as declared, the others as inferred from
        every binding (iterated until stable, since one local's type may come from another's)."""
        declared = {a.arg: self.resolve(a.annotation) for a in _params(fn.args)}
        binds: list[tuple[ast.AST, str, ast.AST | None]] = []
        for node in _own_nodes(fn):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                declared[node.target.id] = self.resolve(node.annotation)
            elif isinstance(node, ast.Assign):
                binds += [(t, "value", node.value) for t in node.targets]
            elif isinstance(node, ast.NamedExpr):
                binds.append((node.target, "value", node.value))
            elif isinstance(node, ast.For | ast.AsyncFor):
                binds.append((node.target, "iter", node.iter))
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                binds.append((node.optional_vars, "unknown", None))
            elif isinstance(node, ast.ExceptHandler) and node.name:
                binds.append((ast.Name(node.name), "unknown", None))
        local = set(declared) | {n.id for t, _, _ in binds for n in ast.walk(t) if isinstance(n, ast.Name)}
        base = {k: v for k, v in outer.items() if k not in local}
        env = {**base, **{k: v for k, v in declared.items() if v is not None}}
        for _ in range(5):
            found: dict[str, list[Any]] = defaultdict(list)
            for target, how, value in binds:
                tp = None if value is None else self.typeof(value, env)
                self.bind(target, _elem(tp) if how == "iter" else tp, found)
            inferred = {k: _same(v) for k, v in found.items() if k not in declared}
            new = {**base, **{k: v for k, v in inferred.items() if v is not None},
                   **{k: v for k, v in declared.items() if v is not None}}
            if new == env:
                break
            env = new
        return env

    # --- the walk ------------------------------------------------------------------------------------------------
    def visit(self, node: ast.AST, env: dict[str, Any]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inner = self.function_env(node, env)
            for child in node.body if isinstance(node.body, list) else [node.body]:
                self.visit(child, inner)
            return
        if isinstance(node, ast.ClassDef):  # methods do not see the class body's names
            for child in node.body:
                self.visit(child, {})
            return
        if isinstance(node, COMPREHENSIONS):
            env = self.comprehension_env(node, env)
        self.check(node, env)
        for child in ast.iter_child_nodes(node):
            self.visit(child, env)

    def check(self, node: ast.AST, env: dict[str, Any]) -> None:
        """Record the key reads `node` makes of a typed value."""
        if isinstance(node, ast.Subscript) and _const(node.slice) is not None:
            self.record(node, self.typeof(node.value, env), _const(node.slice))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in KEY_METHODS:
            if node.args and _const(node.args[0]) is not None:
                self.record(node, self.typeof(node.func.value, env), _const(node.args[0]))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CHAIN_HELPERS:
            tp = self.typeof(node.args[0], env) if node.args else None
            for arg in node.args[1:]:
                key = _const(arg)
                if key is not None:
                    self.record(node, tp, key)
                tp = _lookup(tp, key)[0]
        elif (isinstance(node, ast.Compare) and _const(node.left) is not None and len(node.ops) == 1
              and isinstance(node.ops[0], ast.In | ast.NotIn)):
            self.record(node, self.typeof(node.comparators[0], env), _const(node.left))

    def record(self, node: ast.AST, base: Any, key: str) -> None:
        status = _lookup(base, key)[1]
        site = f"{self.module}:{node.lineno} {key}"
        if status == "declared":
            self.reads.checked.append(f"{site} ({base.__name__})")
        elif status == "undeclared":
            self.reads.undeclared.append(f"{site} ({base.__name__})")
        elif status == "mapped":
            self.reads.mapped += 1


def _params(args: ast.arguments) -> list[ast.arg]:
    return [*args.posonlyargs, *args.args, *([args.vararg] if args.vararg else []), *args.kwonlyargs,
            *([args.kwarg] if args.kwarg else [])]


def _own_nodes(fn: ast.AST) -> list[ast.AST]:
    """The nodes of a function's own scope: not those of the functions, lambdas and classes it defines."""
    out: list[ast.AST] = []
    todo = list(fn.body) if isinstance(fn.body, list) else [fn.body]
    while todo:
        node = todo.pop()
        out.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            todo.extend(ast.iter_child_nodes(node))
    return out


def scan_source(source: str, module: str, ns: dict[str, Any]) -> Reads:
    """The key reads of one module's source, typed in the namespace `ns` (the module's globals)."""
    scanner = Scanner(module, {**vars(typing), **vars(record_types), **ns})
    scanner.visit(ast.parse(source), {})
    return scanner.reads


def scan_readers() -> dict[str, Reads]:
    """Each reader module's key reads, by module name."""
    out = {}
    for path in READERS:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = scan_source(path.read_text(), name, vars(importlib.import_module(name)))
    return out


def test_every_key_a_reader_reads_is_declared() -> None:
    by_module = scan_readers()
    checked = [r for reads in by_module.values() for r in reads.checked]
    undeclared = [r for reads in by_module.values() for r in reads.undeclared]
    print(f"\n{len(checked)} key reads checked against record_types, "
          f"{sum(r.mapped for r in by_module.values())} in dict[str, X] maps, {len(READERS)} modules")
    assert not undeclared, "keys read from run.json blocks that slmexp.record_types does not declare:\n" + (
        "\n".join(undeclared))
    assert len(checked) >= MIN_CHECKED, f"only {len(checked)} key reads tied to a block"
    # every module that takes records reads them through the types (none silently drops out of the check)
    assert not [m for m in RECORD_READERS if not by_module[m].checked]


SNIPPET = textwrap.dedent('''
    def f(rec: RunJson, speed: SpeedBlock | None, records: list[RunJson]):
        p50 = rec["speed"]["latency_ms"]["p50"]
        lat = (speed or {}).get("latency_ms") or {}
        bad = lat["p99"]
        metrics = rec.get("metrics") or {}
        values = metrics.get("valuez")
        chained = _get(rec, "cost", "usd_per_1k_requestz")
        for r in records:
            r["model"].get("nmae")
        by_dir = {r["run"]["run_dir"]: r for r in records}
        again = by_dir.get("x") or {}
        again["provenance"]["sede"]
        ok = metrics["values"]["anything"]
        for name, tp in (rec.get("train") or {}).items():
            pass
        return "quantization" in rec, rec["config"]["anything"]["at_all"]
''')


def test_the_scan_flags_undeclared_keys_and_ties_names_to_blocks() -> None:
    reads = scan_source(SNIPPET, "snippet", {})
    assert reads.undeclared == ["snippet:5 p99 (Percentiles)", "snippet:7 valuez (MetricsBlock)",
                                "snippet:8 usd_per_1k_requestz (CostBlock)", "snippet:10 nmae (ModelBlock)",
                                "snippet:13 sede (ProvenanceBlock)"]
    assert sorted(reads.checked, key=lambda r: int(r.split(":")[1].split(" ")[0])) == [
        "snippet:3 p50 (Percentiles)", "snippet:3 latency_ms (SpeedBlock)", "snippet:3 speed (RunJson)",
        "snippet:4 latency_ms (SpeedBlock)", "snippet:6 metrics (RunJson)", "snippet:8 cost (RunJson)",
        "snippet:10 model (RunJson)", "snippet:11 run_dir (RunBlock)", "snippet:11 run (RunJson)",
        "snippet:13 provenance (RunJson)", "snippet:14 values (MetricsBlock)", "snippet:15 train (RunJson)",
        "snippet:17 quantization (RunJson)", "snippet:17 config (RunJson)"]
    assert reads.mapped == 2  # values["anything"], by_dir.get("x"); config is dict[str, Any]: not a block
