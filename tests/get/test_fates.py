"""gg.get.fates: the fate table reads back exactly what tl.fate_bias wrote."""

from __future__ import annotations

import numpy as np
import pytest

import genegrad as gg


@pytest.fixture(scope="module")
def fated():
    adata = gg.datasets.synthetic("tree", n_cells=600, n_genes=80, depth=2000, rng=2)
    gg.pp.preprocess(adata, n_comps=15)
    gg.pp.manifold(adata)
    adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
    return adata


def test_fate_table_kinds(fated):
    a = fated.copy()
    gg.tl.fate_bias(a, "terminal", root=int(a.obs["pseudotime"].argmin()))
    fates = ["A", "B", "C"]
    for kind, slot in (("probs", "fate_probs"), ("chain", "fate_probs_chain"), ("deviation", "fate_deviation")):
        df = gg.get.fates(a, kind=kind)
        assert list(df.columns) == ["terminal_state", "pseudotime", *fates]
        assert list(df.index) == list(a.obs_names)
        np.testing.assert_array_equal(df[fates].to_numpy(), np.asarray(a.obsm[f"genegrad_{slot}"], dtype=np.float64))
    df = gg.get.fates(a)
    given = a.obs["terminal"].astype(object).fillna("").to_numpy()
    assert (df["terminal_state"].astype(object).fillna("").to_numpy() == given).all()
    np.testing.assert_array_equal(df["pseudotime"].to_numpy(), a.obs["genegrad_pseudotime"].to_numpy())
    np.testing.assert_allclose(df.loc[df["terminal_state"].isna(), fates].sum(axis=1), 1.0, atol=1e-6)


def test_fate_table_without_root_has_no_pseudotime(fated):
    a = fated.copy()
    gg.tl.fate_bias(a, "terminal", root=int(a.obs["pseudotime"].argmin()))
    gg.tl.fate_bias(a, "terminal")  # the earlier run's pseudotime does not orient this chain: it goes
    assert "genegrad_pseudotime" not in a.obs
    assert list(gg.get.fates(a).columns) == ["terminal_state", "A", "B", "C"]


def test_fate_table_errors(fated):
    with pytest.raises(KeyError, match=r"run `genegrad.tl.fate_bias` first"):
        gg.get.fates(fated)
    with pytest.raises(ValueError, match="kind"):
        gg.get.fates(fated, kind="flow")
