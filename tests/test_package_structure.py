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
