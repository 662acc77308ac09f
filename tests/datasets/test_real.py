"""Offline loaders of the real datasets: read in place from shared/data, a clear error otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

import genegrad as gg

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_paul15_and_lung_load(monkeypatch):  # CI runs with ../shared beside the clone: absent data fails here
    monkeypatch.setenv("GENEGRAD_DATA", str(SHARED))
    a = gg.datasets.paul15()
    assert a.shape == (2730, 3451)
    assert "paul15_clusters" in a.obs
    b = gg.datasets.treutlein_lung()
    assert b.shape == (185, 218)


def test_missing_dataset_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("GENEGRAD_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="GENEGRAD_DATA"):
        gg.datasets.paul15()
