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


def test_atac_and_multiome_load(monkeypatch):
    monkeypatch.setenv("GENEGRAD_DATA", str(SHARED))
    a = gg.datasets.granja_atac()
    assert a.shape == (600, 5000)
    assert {"seqnames", "start", "end"} <= set(a.var.columns)
    assert a.obs["BioClassification"].nunique() == 6
    rna, atac = gg.datasets.pbmc_multiome()
    assert rna.n_obs == atac.n_obs == 100
    assert list(rna.obs_names.str.removesuffix("_rna")) == list(atac.obs_names.str.removesuffix("_atac"))


def test_missing_dataset_says_where_it_looked(monkeypatch, tmp_path):
    # the search list is patched to one empty folder: a shared/data above the test's temporary folder (a
    # checkout under /tmp) must not make the file findable
    from genegrad.datasets import _real

    monkeypatch.setattr(_real, "data_dirs", lambda: [tmp_path])
    with pytest.raises(FileNotFoundError, match="GENEGRAD_DATA"):
        gg.datasets.paul15()


def test_data_dirs_order(monkeypatch, tmp_path):
    monkeypatch.setenv("GENEGRAD_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    dirs = gg.datasets._real.data_dirs()
    assert dirs[:3] == [tmp_path / "mine", tmp_path / "home" / ".cache" / "genegrad",
                        tmp_path.resolve() / "shared" / "data"]
    assert tmp_path.resolve().parent / "shared" / "data" in dirs  # beside the working directory
