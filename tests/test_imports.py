"""Imports go one way (DESIGN.md), function-level imports included, and no module cycles.

Layers, low to high; a module may import its own package or any lower layer:
io/config/registry/rundir < data < sid < llm, corpus < decode, baselines < eval < train < bundle
< serve < pipeline, demo < commands, cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "llmrec"
LAYERS = {"io": 0, "config": 0, "registry": 0, "rundir": 0, "data": 1, "sid": 2, "llm": 3, "corpus": 3,
          "decode": 4, "baselines": 4, "eval": 5, "train": 6, "bundle": 7, "serve": 8, "pipeline": 9, "demo": 9,
          "commands": 10, "cli": 10, "__main__": 10, "__init__": 10}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = ["llmrec", *f.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(mod: str, path: Path, known: set[str]) -> set[str]:
    """llmrec modules imported anywhere in the file (function bodies and TYPE_CHECKING blocks too)."""
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != mod}


def _layer(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, f, set(mods)) for m, f in mods.items()}


def test_every_package_has_a_layer():
    assert sorted({_layer(m) for m in _modules()} - set(LAYERS)) == []


def test_no_import_runs_against_the_layers():
    bad = [f"{m} -> {d}" for m, deps in _graph().items() for d in deps
           if _layer(d) != _layer(m) and LAYERS[_layer(d)] > LAYERS[_layer(m)]]
    assert bad == []


def test_no_cycles_between_modules():
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # a package __init__ re-exporting its submodules is not a cycle of the design
    cycles = [c for c in cycles if not any(x == c[0].rsplit(".", 1)[0] for x in c)]
    assert cycles == []


def test_the_checker_catches_a_violation(tmp_path):
    """The walk sees function-level imports (so the tests above can fail for the right reason)."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from llmrec.serve import chat\n")
    assert _imports("llmrec.data.x", f, {"llmrec.serve", "llmrec.serve.chat"}) == {"llmrec.serve", "llmrec.serve.chat"}
