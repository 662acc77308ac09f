"""Gradients recomputed when read (``tl.gradients(store='recompute')``, the default) are the stored ones, and refused
when what they would be recomputed from changed."""

from __future__ import annotations

import numpy as np
import pytest

import genegrad as gg


@pytest.fixture
def pair(plane_adata):
    """The same manifold, gradients of 6 genes recomputed when read (``a``) or stored in obsm (``b``)."""
    genes = list(plane_adata.var_names[:6])
    a = plane_adata.copy()
    a.obsm["X_umap"] = a.obsm["X_pca"][:, [0, 1]] * [1.0, -2.0]
    gg.tl.gradients(a, genes)
    b = a.copy()
    gg.tl.gradients(b, genes, store="obsm")
    return a, b, genes


def test_recomputed_gradients_are_the_stored_ones(pair):
    a, b, genes = pair
    assert "genegrad_gradients" not in a.obsm
    assert "genegrad_gradients_se" not in a.obsm
    assert a.uns["genegrad"]["gradients"]["store"] == "recompute"
    np.testing.assert_array_equal(a.var["genegrad_scale"].to_numpy(), b.var["genegrad_scale"].to_numpy())
    for scale in (0, 2, 8, "auto"):
        for basis in ("tangent", "X_pca", "X_umap"):
            np.testing.assert_array_equal(gg.get.gradients(a, genes[1:4], scale=scale, basis=basis),
                                          gg.get.gradients(b, genes[1:4], scale=scale, basis=basis))
        np.testing.assert_array_equal(gg.get.gradients_se(a, genes, scale=scale),
                                      gg.get.gradients_se(b, genes, scale=scale))


def test_recomputed_gradients_follow_reordered_cells(pair):
    a, b, genes = pair
    order = np.random.default_rng(0).permutation(a.n_obs)
    # the same sums in another order: float32 round-off (eps 6e-8 over sums of ~25 terms of size <= 1) only
    np.testing.assert_allclose(gg.get.gradients(a[order].copy(), genes[:2], scale=1),
                               gg.get.gradients(b, genes[:2], scale=1)[order], rtol=1e-5, atol=1e-6)


def test_a_changed_signal_is_refused(pair):
    a, _, genes = pair
    X = a.X.toarray() if hasattr(a.X, "toarray") else np.array(a.X)
    X[:10, 2] += 0.5  # one gene's expression edited after the gradients
    a.X = X
    with pytest.raises(ValueError, match=rf"1 genes \(e\.g\. \['{genes[2]}'\]\) in `adata.X` changed since"):
        gg.get.gradients(a, genes[:3])
    with pytest.raises(ValueError, match="changed since"):
        gg.get.gradients_se(a, [genes[2]], scale="auto")
    gg.get.gradients(a, genes[3:])  # the genes left as they were still read


def test_a_small_edit_of_one_cell_is_refused(pair):
    # 1e-4 added to one cell's value: far above float64 round-off of the sums (~1e-13 of them here), far below what
    # a relative bar of 1e-6 on a column of 600 cells would notice (sums of order 100 to 1,000)
    a, _, genes = pair
    X = a.X.toarray() if hasattr(a.X, "toarray") else np.array(a.X)
    X[5, 2] += 1e-4
    a.X = X
    with pytest.raises(ValueError, match=rf"\['{genes[2]}'\]\) in `adata.X` changed since"):
        gg.get.gradients(a, genes[:3])


def test_a_subset_of_cells_is_refused_with_the_way_out(pair):
    a, b, genes = pair
    keep = a.obsm["X_pca"][:, 0] > np.median(a.obsm["X_pca"][:, 0])
    with pytest.raises(ValueError, match=r"built on other cells.*recomputed when read.*store='obsm'"):
        gg.get.gradients(a[keep].copy(), genes[:1])
    # a stored tensor is per cell: a subset reads its own rows
    np.testing.assert_array_equal(gg.get.gradients(b[keep].copy(), genes[:1]), gg.get.gradients(b, genes[:1])[keep])


def test_without_standard_errors_nothing_is_computed_and_se_is_refused(plane_adata):
    a = plane_adata.copy()
    genes = list(a.var_names[:3])
    gg.tl.gradients(a, genes, with_se=False)
    assert "genegrad_scale" not in a.var
    ref = gg.tl.gradients(a, genes, with_se=False, store="obsm", copy=True)
    np.testing.assert_array_equal(gg.get.gradients(a, genes, scale=4), gg.get.gradients(ref, genes, scale=4))
    with pytest.raises(KeyError, match="without standard errors"):
        gg.get.gradients_se(a, genes)


def test_the_written_file_holds_no_gradient_tensor(plane_adata, tmp_path):
    a = plane_adata.copy()
    for k in ("genegrad_gradients", "genegrad_gradients_se"):
        del a.obsm[k]
    del a.uns["genegrad"]["gradients"]
    a.write_h5ad(tmp_path / "none.h5ad")
    genes = list(a.var_names)
    gg.tl.gradients(a, genes)
    a.write_h5ad(tmp_path / "recompute.h5ad")
    gg.tl.gradients(a, genes, store="obsm")
    tensor = a.obsm["genegrad_gradients"].nbytes + a.obsm["genegrad_gradients_se"].nbytes
    extra = (tmp_path / "recompute.h5ad").stat().st_size - (tmp_path / "none.h5ad").stat().st_size
    # what recomputing needs: the gene names, each gene's sums (16 bytes) and its recommended scale (8 bytes)
    assert 0 < extra < 40 * len(genes) + 20_000 < tensor / 10


def test_values_moved_to_other_cells_are_refused(pair):
    # the same values in another order of the cells, the cells not reordered: sums and sums of squares are the same,
    # the cell-weighted sum is not
    a, _, genes = pair
    X = a.X.toarray() if hasattr(a.X, "toarray") else np.array(a.X)
    X[:, 1] = X[np.random.default_rng(1).permutation(a.n_obs), 1]
    a.X = X
    with pytest.raises(ValueError, match=rf"\['{genes[1]}'\]\) in `adata.X` changed since"):
        gg.get.gradients(a, genes[:2])
