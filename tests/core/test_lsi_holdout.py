"""TF-IDF / LSI of accessibility counts and the structure test's held-out graphs, against dense computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from genegrad._core import _holdout, _lsi


def test_tfidf_hand_formula():
    """log1p(scale x c / depth x N / peak total), idf 0 for a peak never seen, a cell without counts all 0; a
    peak seen once and a cell of depth 1 are ordinary; the input is not modified."""
    C = np.array([[1, 0, 3, 0, 0, 0], [2, 2, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]], dtype=np.float32)
    Cs = sparse.csr_matrix(C)
    X, idf = _lsi.tfidf(Cs, scale_factor=10.0)
    np.testing.assert_array_equal(Cs.toarray(), C)
    np.testing.assert_allclose(idf, [4 / 3, 4 / 2, 4 / 3, 0.0, 4 / 1, 0.0])  # the last peak never seen either
    depth = C.sum(1)
    expected = np.zeros(C.shape)
    for i in (0, 1, 3):
        for g in range(6):
            expected[i, g] = np.log1p(10.0 * C[i, g] / depth[i] * idf[g])
    np.testing.assert_allclose(X.toarray(), expected, rtol=1e-6)
    assert X.dtype == np.float32
    assert X.nnz == 5  # zeros stay out
    # duplicated entries are summed first: one cell, counts 1 + 2 on one peak of two: depth 3, idf 1 / 3
    dup = sparse.csr_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(1, 2))
    Xd, _ = _lsi.tfidf(dup, scale_factor=1.0)
    np.testing.assert_allclose(Xd.toarray(), [[0.0, np.log1p(3 / 3 * 1 / 3)]], rtol=1e-6)


def test_pearson_small_and_constant_vectors():
    assert _lsi._pearson(np.array([0.0, 0.1]), np.array([0.0, 0.1])) == pytest.approx(1.0)
    assert _lsi._pearson(np.array([0.0, 0.1]), np.array([0.1, 0.0])) == pytest.approx(-1.0)
    assert _lsi._pearson(np.ones(3), np.arange(3.0)) == pytest.approx(0.0)


def test_svd_matches_the_dense_decomposition_with_fixed_signs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 12)) @ np.diag(np.linspace(5, 0.5, 12))
    scores, V, ratio = _lsi.svd(sparse.csr_matrix(X), 4)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    for j in range(4):
        sign = np.sign(Vt[j, np.abs(Vt[j]).argmax()])
        np.testing.assert_allclose(V[:, j], sign * Vt[j], atol=1e-4)
        np.testing.assert_allclose(scores[:, j], sign * U[:, j] * S[j], rtol=1e-3, atol=1e-3)
        assert V[np.abs(V[:, j]).argmax(), j] > 0
    np.testing.assert_allclose(ratio, (X @ Vt[:4].T).var(axis=0) / X.var(axis=0).sum(), rtol=1e-3)


def test_lsi_drops_depth_components_and_scales_rows():
    """A component whose scores follow log depth (|r| > max_depth_corr) is dropped; the kept scores are those
    of the SVD, each row scaled to unit length; too few kept components is an error that says what to raise."""
    rng = np.random.default_rng(1)
    n = 300
    depth = np.exp(rng.normal(8, 0.7, n))
    a, b = rng.normal(size=n), rng.normal(size=n)
    X = np.column_stack([np.log(depth) * 3, a * 2, b, 0.1 * rng.normal(size=(n, 5))])
    X = X @ np.linalg.qr(rng.normal(size=(X.shape[1], X.shape[1])))[0]
    out = _lsi.lsi(X, depth, 3, max_depth_corr=0.5)
    scores, V, _ = _lsi.svd(X, 3)
    corr = [np.corrcoef(scores[:, j], np.log(depth))[0, 1] for j in range(3)]
    np.testing.assert_allclose(out.depth_corr, corr, atol=1e-10)
    assert out.dropped.tolist() == [int(np.argmax(np.abs(corr)))]
    kept = [j for j in range(3) if j not in out.dropped]
    assert out.kept.tolist() == kept
    Y = scores[:, kept]
    np.testing.assert_allclose(out.scores, Y / np.linalg.norm(Y, axis=1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(out.loadings, V[:, kept])
    np.testing.assert_allclose(out.variance_ratio, _lsi.svd(X, 3)[2])
    assert out.kept.dtype == out.dropped.dtype == np.int64
    raw = _lsi.lsi_scores(X, 3, depth=depth, normalize_rows=False)
    np.testing.assert_allclose(raw, Y)
    with pytest.raises(ValueError, match=r"Only 1 LSI components .* raise it or `n_comps`"):
        _lsi.lsi(X, depth, 2, max_depth_corr=0.5)
    flat = _lsi.lsi(X, np.full(n, 1000.0), 3)  # depth constant: no correlation, nothing dropped
    np.testing.assert_allclose(flat.depth_corr, 0.0)
    assert flat.dropped.size == 0


def test_split_genes_balanced_random_folds():
    rng = np.random.default_rng(0)
    fold = _holdout.split_genes(101, rng)
    assert fold.dtype == np.int64
    assert sorted(np.bincount(fold)) == [50, 51]
    assert not np.array_equal(fold, np.arange(101) % 2)  # shuffled
    three = _holdout.split_genes(9, np.random.default_rng(1), n_folds=3)
    assert np.bincount(three).tolist() == [3, 3, 3]


def test_holdout_pca_is_the_exact_principal_component_scores():
    """Block-wise covariance (blocks of 7 cells) gives the scores of the centred data on its leading
    eigenvectors, as a dense SVD does (up to sign), for dense and sparse input."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 6)) @ np.diag([4, 3, 2, 1, 0.5, 0.1]) + 10.0
    Z = _holdout.pca(X, 3, block=7)
    U, S, _ = np.linalg.svd(X - X.mean(0), full_matrices=False)
    ref = U[:, :3] * S[:3]
    np.testing.assert_allclose(np.abs(Z), np.abs(ref), rtol=1e-3, atol=1e-3)
    # float32 blocks: the same scores to float32 round-off of the centred values (~1e-6 x 10)
    np.testing.assert_allclose(np.abs(_holdout.pca(sparse.csr_matrix(X), 3, block=7)), np.abs(Z), atol=1e-4)


def test_fold_graph_is_the_diffusion_operator_of_the_folds_representation():
    """Built as the manifold's: the density-normalised (alpha 1) diffusion operator of the kNN graph on the
    fold's PCA, with at most genes - 1 components (or on a given embedding)."""
    from genegrad._core import _graph

    rng = np.random.default_rng(3)
    X = np.column_stack([np.linspace(0, 1, 120), rng.normal(size=(120, 4)) * 0.01])
    P = _holdout.fold_graph(X, n_comps=10, n_neighbors=5)
    idx, dist = _graph.knn(_holdout.pca(X, 4), 5, method="exact")
    np.testing.assert_allclose(P.toarray(), _graph.diffusion_graph(idx, dist, alpha=1.0)[2].toarray(), rtol=1e-6)
    assert P.shape == (120, 120)
    np.testing.assert_allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0, rtol=1e-5)
    # on a line (with a little noise across it), each cell's neighbours are near it along the line
    far = [abs(i - j) for i, j in zip(*P.nonzero(), strict=True)]
    assert max(far) <= 10
    seen = []
    P2 = _holdout.fold_graph(X, n_comps=2, n_neighbors=5, embed=lambda A, k: seen.append(k) or A[:, :1])
    assert seen == [2]
    assert P2.shape == (120, 120)
