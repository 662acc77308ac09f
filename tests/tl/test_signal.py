"""Reading the signal: the messages that name what was read, the column selection, and the progress bars."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

from genegrad.tl._signal import progress_bar, read_signal, signal_nbytes


def small(rng=0):
    r = np.random.default_rng(rng)
    X = np.log1p(r.poisson(2.0, size=(30, 6)).astype(np.float32))
    a = ad.AnnData(X=sparse.csr_matrix(X))
    a.layers["dense"] = X.copy()
    return a, X


def test_columns_are_selected_and_the_format_kept():
    a, X = small()
    cols = np.array([4, 1])
    got = read_signal(a, None, cols)
    assert sparse.isspmatrix_csc(got)
    np.testing.assert_array_equal(got.toarray(), X[:, cols])
    dense = read_signal(a, "dense", cols)
    assert isinstance(dense, np.ndarray)
    np.testing.assert_array_equal(dense, X[:, cols])
    np.testing.assert_array_equal(read_signal(a, "dense"), X)
    assert signal_nbytes(got) == got.data.nbytes + got.indices.nbytes + got.indptr.nbytes
    assert signal_nbytes(dense) == dense.nbytes


def test_without_by_column_a_sparse_signal_keeps_its_compressed_format():
    a, X = small()
    cols = np.array([4, 1])
    got = read_signal(a, None, cols, by_column=False)
    assert got.format == "csr"
    np.testing.assert_array_equal(got.toarray(), X[:, cols])
    a.X = sparse.csc_matrix(X)
    assert read_signal(a, None, cols, by_column=False).format == "csc"
    assert read_signal(a, None, by_column=True).format == "csc"  # by column, the default
    a.X = sparse.csr_matrix(X)
    assert read_signal(a, None).format == "csc"


def test_messages_name_the_matrix_read():
    a, X = small()
    with pytest.raises(KeyError, match=r"`adata\.layers\['nope'\]` not found \(available: \['dense'\]\)"):
        read_signal(a, "nope")
    bad = X.copy()
    bad[0, 0] = np.nan
    a.layers["bad"] = bad
    with pytest.raises(ValueError, match=r"adata\.layers\['bad'\]"):
        read_signal(a, "bad")
    a.layers["counts"] = np.random.default_rng(1).poisson(3.0, size=X.shape).astype(np.float32)
    with pytest.warns(UserWarning, match=r"`adata\.layers\['counts'\]` looks like raw counts"):
        read_signal(a, "counts")
    a.X = None
    with pytest.raises(ValueError, match=r"`adata\.X` is empty; put the log-normalised expression there"):
        read_signal(a, None)


def test_progress_bars_count_genes_and_follow_the_log_level():
    bar = progress_bar(True, total=7, desc="descriptors")
    assert (bar.total, bar.desc, bar.unit, bar.disable) == (7, "descriptors", "gene", False)
    bar.close()
    assert progress_bar(False, total=7, desc="x").disable
    log = logging.getLogger("genegrad")
    level = log.level
    try:
        log.setLevel(logging.INFO)
        assert not progress_bar(None, total=1, desc="x").disable
        log.setLevel(logging.WARNING)
        assert progress_bar(None, total=1, desc="x").disable
    finally:
        log.setLevel(level)


def test_one_cell_is_not_taken_for_normalised_data():
    # a single cell always has "equal totals": that says nothing about normalisation
    import warnings

    a = ad.AnnData(X=np.log1p(np.array([[1.0, 3.0, 0.0]], dtype=np.float32)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_signal(a, None)
    b = ad.AnnData(X=np.log1p(np.array([[1.0, 3.0, 0.0], [3.0, 1.0, 0.0]], dtype=np.float32)))
    with pytest.warns(UserWarning, match="every cell has the same total"):
        read_signal(b, None)
    # totals of 10,000 up to round-off (normalised, not logged): within 1e-3 of their mean, the same total
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, size=(50, 20))
    X = X / X.sum(axis=1, keepdims=True) * (1e4 + rng.uniform(-0.5, 0.5, size=(50, 1)))
    with pytest.warns(UserWarning, match="every cell has the same total"):
        read_signal(ad.AnnData(X=X.astype(np.float32)), None)


def test_binarised_data_are_not_taken_for_counts():
    """0/1 values (binarised peaks) are a signal as they are; integers above 1 are counts, and are warned about."""
    import warnings

    X = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=np.float32)  # unequal totals
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_signal(ad.AnnData(X=sparse.csr_matrix(X)), None)
    X[0, 0] = 2.0
    with pytest.warns(UserWarning, match=r"looks like raw counts \(integers up to 2\)"):
        read_signal(ad.AnnData(X=sparse.csr_matrix(X)), None)


def test_the_fingerprint_weights_cells_uniformly_on_0_1_and_sees_values_move_between_cells():
    """signal_sums: the sum, the sum of squares, and a sum weighted by 53 bits of a hash of each cell's name.

    On the identity matrix the weighted sums are the cells' weights themselves: uniform on [0, 1), so their mean
    is 1/2 within 5 standard errors (sd 1/sqrt(12) over 4,000 cells) and a quarter of them lie below 1/4 (within
    5 binomial standard errors). Two cells swapping their values keep the sums and change the weighted sum by
    more than the tolerance the recompute check allows (rtol 1e-6)."""
    from genegrad.tl._signal import signal_sums

    n = 4000
    cells = [f"cell{i}" for i in range(n)]
    w = signal_sums(sparse.identity(n, format="csr"), cells)[:, 2]
    np.testing.assert_array_equal(signal_sums(np.eye(n), cells)[:, 2], w)  # dense: the same weights
    assert ((w >= 0) & (w < 1)).all()
    assert abs(w.mean() - 0.5) < 5 / np.sqrt(12 * n)
    assert abs((w < 0.25).mean() - 0.25) < 5 * np.sqrt(0.25 * 0.75 / n)
    x = np.random.default_rng(0).uniform(0.0, 3.0, size=(n, 1))  # a log-normalised gene's range
    x[:2, 0] = [0.0, 1.0]
    swapped = x.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    a, b = signal_sums(x, cells)[0], signal_sums(swapped, cells)[0]
    np.testing.assert_allclose(a[:2], [x.sum(), (x * x).sum()], rtol=1e-12)
    np.testing.assert_allclose(b[:2], a[:2], rtol=1e-12)
    assert abs(a[2] - b[2]) == pytest.approx(abs(w[1] - w[0]), rel=1e-9)  # (1 - 0) x (w1 - w0)
    assert abs(a[2] - b[2]) > 1e-6 * abs(a[2]) + 1e-9  # np.isclose(now, stored, rtol=1e-6, atol=1e-9) fails
    assert signal_sums(x, cells[::-1])[0][2] != a[2]  # the weights follow the names, not the rows
