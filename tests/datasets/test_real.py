"""Offline loaders of the real datasets: read in place from shared/data, a clear error otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
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
    assert rna.n_obs == atac.n_obs == 98  # 2 of the 100 distributed cells have no fragment in the 200 peaks
    assert list(rna.obs_names) == list(atac.obs_names)
    assert not rna.obs_names.str.endswith(("_rna", "_atac")).any()
    assert (np.asarray(atac.X.sum(axis=1)).ravel() > 0).all()
    assert (np.asarray(rna.X.sum(axis=1)).ravel() > 0).all()


def test_myoblast_time_course_loads_with_its_genes(monkeypatch):
    monkeypatch.setenv("GENEGRAD_DATA", str(SHARED))
    a = gg.datasets.myoblast_atac()
    assert a.shape == (200, 6146)
    assert a.obs["timepoint"].value_counts().to_dict() == {"T2": 55, "T0": 51, "T1": 47, "T3": 47}
    assert a.obs.groupby("timepoint", observed=True)["hours"].first().to_dict() == {"T0": 0, "T1": 24, "T2": 48,
                                                                                     "T3": 72}
    genes = a.uns["genes"].set_index("gene_name")
    assert len(genes) == 904
    # MYOM1 (chr18p11.31, minus strand): its span runs over all its exons in the GENCODE table
    exons = pd.read_csv(SHARED / "pliner2018_myoblast_sciatac" / "gencode_hg19_chr18_exons.tsv", sep="\t")
    myom1 = exons[exons["symbol"] == "MYOM1"]
    assert genes.loc["MYOM1", "start"] == myom1["start"].min()
    assert genes.loc["MYOM1", "end"] == myom1["end"].max()
    assert genes.loc["MYOM1", "strand"] == "-"
    activity = gg.pp.gene_activity(a, a.uns["genes"])
    assert "MYOM1" in activity.var_names


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
