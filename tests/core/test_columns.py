"""Columns of a CSR matrix read in place (``_core/_columns.py``), against scipy's own slicing."""

import numpy as np
import pytest
from scipy import sparse

from genegrad._core import _columns


@pytest.fixture
def csr():
    rng = np.random.default_rng(0)
    F = sparse.random(300, 40, density=0.3, format="lil", random_state=rng, dtype=np.float32)
    F[5] = 0  # an empty row
    return sparse.csr_matrix(F)


@pytest.fixture(scope="module")
def plane():
    """A fitted 2-D model and its signal (CSR, sorted indices)."""
    import genegrad as gg
    from genegrad.pp._manifold import load_model

    adata = gg.datasets.synthetic("plane", n_cells=300, n_genes=40, rng=0)
    gg.pp.preprocess(adata, n_top_genes=40, n_comps=10)
    gg.pp.manifold(adata, n_dims=2)
    return load_model(adata), sparse.csr_matrix(adata.X)


@pytest.mark.parametrize(("start", "stop"), [(0, 40), (0, 1), (7, 19), (39, 40), (12, 12)])
def test_dense_columns_equal_scipy_slices(csr, start, stop):
    block = _columns.dense_columns(csr, start, stop)
    assert block.dtype == csr.dtype
    np.testing.assert_array_equal(block, csr[:, start:stop].toarray())


def test_dense_columns_hand_case():
    F = sparse.csr_matrix(np.array([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(_columns.dense_columns(F, 1, 3), [[1.0, 0.0], [0.0, 4.0], [0.0, 0.0]])


def test_dense_columns_refuse_what_they_cannot_read(csr):
    unsorted = csr[:, np.arange(40)[::-1]]
    unsorted.has_sorted_indices = False
    assert not _columns.readable_by_rows(unsorted)
    assert not _columns.readable_by_rows(csr.tocsc())
    assert not _columns.readable_by_rows(csr.toarray())
    assert _columns.readable_by_rows(csr)
    with pytest.raises(ValueError, match="sorted indices"):
        _columns.dense_columns(csr.tocsc(), 0, 2)


def test_column_moments_hand_case():
    F = sparse.csr_matrix(np.array([[1.0, 0.0, 2.0], [3.0, 0.0, -1.0]], dtype=np.float32))
    total, squares = _columns.column_moments(F)
    np.testing.assert_array_equal(total, [4.0, 0.0, 1.0])
    np.testing.assert_array_equal(squares, [10.0, 0.0, 5.0])
    with pytest.raises(ValueError, match="CSR"):
        _columns.column_moments(F.tocsc())


def test_iter_gradients_same_from_rows_as_from_columns(plane):
    """A CSR signal read in place gives the gradients a CSC copy gives (the chunks hold the same numbers)."""
    model, F = plane
    assert _columns.readable_by_rows(F)
    by_rows = [c.gradients for c in model.iter_gradients(F, chunk_size=7)]
    by_cols = [c.gradients for c in model.iter_gradients(F.tocsc(), chunk_size=7)]
    for a, b in zip(by_rows, by_cols, strict=True):
        np.testing.assert_array_equal(a, b)


def test_weighted_column_moments_hand_case():
    F = sparse.csr_matrix(np.array([[1.0, 0.0, 2.0], [3.0, 0.0, -1.0]], dtype=np.float32))
    total, squares, weighted = _columns.column_moments(F, np.array([0.5, 2.0]))
    np.testing.assert_array_equal(total, [4.0, 0.0, 1.0])
    np.testing.assert_array_equal(squares, [10.0, 0.0, 5.0])
    np.testing.assert_array_equal(weighted, [6.5, 0.0, -1.0])  # 0.5 x row 0 + 2 x row 1
    with pytest.raises(ValueError, match="one value per row"):
        _columns.column_moments(F, np.ones(3))


def test_signal_fingerprint_does_not_depend_on_the_format(csr):
    """tl.gradients fingerprints a CSR signal, get.gradients a CSC or dense one: the same numbers (float64 sums)."""
    from genegrad.tl._signal import signal_sums

    cells = [f"c{i}" for i in range(csr.shape[0])]
    dense = signal_sums(csr.toarray(), cells)
    np.testing.assert_allclose(signal_sums(csr, cells), dense, rtol=1e-12)
    np.testing.assert_allclose(signal_sums(csr.tocsc(), cells), dense, rtol=1e-12)


def test_dense_columns_at_equal_scipy_fancy_indexing(csr):
    for cols in ([0, 39], [3, 4, 5, 17, 30], [12], list(range(40))):
        np.testing.assert_array_equal(_columns.dense_columns_at(csr, np.array(cols)), csr[:, cols].toarray())
    assert _columns.dense_columns_at(csr, np.array([], dtype=int)).shape == (300, 0)
    with pytest.raises(ValueError, match="increasing"):
        _columns.dense_columns_at(csr, np.array([5, 3]))
    with pytest.raises(ValueError, match="increasing"):
        _columns.dense_columns_at(csr, np.array([3, 40]))


def test_row_products_are_scipys_float64_products(csr):
    rng = np.random.default_rng(1)
    W = rng.normal(size=(40, 3))
    np.testing.assert_array_equal(_columns.row_products(csr, W), csr.astype(np.float64) @ W)
    F = sparse.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    np.testing.assert_array_equal(_columns.row_products(F, np.array([[1.0], [10.0], [100.0]])), [[201.0], [30.0]])


def test_iter_gradients_of_chosen_columns_read_in_place(plane):
    model, F = plane
    cols = np.array([1, 4, 5, 9, 20, 33, 39])
    got = np.concatenate([c.gradients for c in model.iter_gradients(F, chunk_size=3, columns=cols)], axis=1)
    want = model.gradients(F[:, cols].toarray()).gradients
    np.testing.assert_array_equal(got, want)
    dense = np.concatenate([c.gradients for c in model.iter_gradients(F.toarray(), chunk_size=3, columns=cols)],
                           axis=1)  # a matrix not read in place takes the columns first: the same numbers
    np.testing.assert_array_equal(dense, want)


@pytest.mark.parametrize("as_csr", [True, False])
@pytest.mark.parametrize(("columns", "match"), [
    ([4, 1, 9], "increasing positions"), ([1, 1, 9], "without repeats"), ([-1, 3], r"in \[0, 40\)"),
    ([3, 40], r"in \[0, 40\)"), ([1.0, 2.0], "integers"), ([[1, 2]], "1-D"),
])
def test_iter_gradients_refuse_columns_they_cannot_stream(plane, as_csr, columns, match):
    model, F = plane
    with pytest.raises(ValueError, match=match):  # on every input, not only a CSR signal read in place
        next(model.iter_gradients(F if as_csr else F.toarray(), chunk_size=3, columns=columns))


@pytest.mark.parametrize("chunk_size", [0, -3, 2.5, True, None])
def test_iter_gradients_refuse_a_chunk_size_that_is_not_a_positive_integer(plane, chunk_size):
    model, F = plane
    with pytest.raises(ValueError, match="`chunk_size` must be a positive integer"):
        next(model.iter_gradients(F, chunk_size=chunk_size))


def test_iter_gradients_take_an_empty_list_of_columns_and_numpy_integers(plane):
    model, F = plane
    assert list(model.iter_gradients(F, columns=np.array([], dtype=np.int64))) == []
    got = [c.gradients for c in model.iter_gradients(F, chunk_size=np.int64(2), columns=np.array([3, 5]))]
    np.testing.assert_array_equal(got[0], model.gradients(F[:, [3, 5]].toarray()).gradients)
