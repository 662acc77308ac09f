"""Signature conventions (scanpy's idea): adata first, at most 3 positional parameters, copy keyword-only."""

from __future__ import annotations

import inspect

import pytest

import genegrad as gg

PUBLIC = [f for mod in (gg.pp, gg.tl, gg.get, gg.pl, gg.datasets) for f in (getattr(mod, n) for n in mod.__all__)]


@pytest.mark.parametrize("func", PUBLIC, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_signature_conventions(func):
    params = list(inspect.signature(func).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(positional) <= 3
    assert not any(p.kind == p.VAR_KEYWORD for p in params)
    for p in params:
        if p.default is True or p.default is False:
            assert p.kind == p.KEYWORD_ONLY, f"boolean {p.name} must be keyword-only"
    if "copy" in inspect.signature(func).parameters:
        assert params[0].name == "adata"
    assert func.__doc__, f"{func.__name__} has no docstring"


def _subpackage_imports() -> dict[str, set[str]]:
    """Which subpackages (and private top-level modules) each one imports, read from the source with ast."""
    import ast
    from pathlib import Path

    root = Path(gg.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).parts
        if len(rel) == 1:
            if rel[0] in ("__init__.py", "cli.py", "_demo.py"):
                continue  # the package's and the command line's entry points import everything
            unit = rel[0].removesuffix(".py")
        else:
            unit = rel[0]
        depth = len(rel) - 1  # how many levels below genegrad/ the module's package is
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                up = node.level - 1
                parts = [*rel[:-1][: depth - up], *(node.module.split(".") if node.module else [])]
                names = [parts[0]] if parts else [a.name for a in node.names]
                for name in names:
                    known = (root / name).is_dir() or (root / f"{name}.py").exists()
                    if name != unit and known:
                        graph.setdefault(unit, set()).add(name)
    return graph


def test_no_import_cycle_between_subpackages():
    graph = _subpackage_imports()
    assert "_store" in graph["get"]  # the store is storage, below get and tl
    assert "io" not in graph["get"]

    def visit(node, stack):
        assert node not in stack, f"import cycle: {' -> '.join([*stack, node])}"
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*stack, node])

    for unit in sorted(graph):
        visit(unit, [])
