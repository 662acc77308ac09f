"""The kNN graph's pieces (weights, affinities, diffusion, neighbour lists) against dense hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from genegrad._core import _graph


def small_graph(seed: int = 0, n: int = 12, k: int = 4):
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(n, 2))
    d = np.sqrt(((Y[:, None] - Y[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1)[:, :k]
    return Y, idx, np.take_along_axis(d, idx, axis=1)


def test_exact_knn_matches_brute_force_and_drops_self():
    Y, idx, dist = small_graph()
    got_idx, got_dist = _graph.knn(Y, 4, method="exact")
    np.testing.assert_array_equal(got_idx, idx)
    np.testing.assert_allclose(got_dist, dist, rtol=1e-6)
    assert got_idx.dtype == np.int64
    assert got_dist.dtype == np.float32


def test_drop_self_removes_the_cell_or_else_the_farthest():
    """A row listing its own cell loses it (wherever it is); a row whose duplicate hid it loses its last entry."""
    idx = np.array([[0, 3, 2], [2, 1, 0], [0, 1, 3]])
    dist = np.array([[0.0, 1.0, 2.0], [0.5, 0.0, 3.0], [0.0, 0.0, 4.0]])
    i, d = _graph._drop_self(idx, dist)
    np.testing.assert_array_equal(i, [[3, 2], [2, 0], [0, 1]])
    np.testing.assert_allclose(d, [[1.0, 2.0], [0.5, 3.0], [0.0, 0.0]])


def test_gaussian_weights_hand_example():
    """exp(-d_ij^2 / (sigma_i sigma_j)), sigma the distance to the middle neighbour (k // 2), floored at 1e-3 x
    the median positive sigma; an explicit bandwidth neighbour is 1-based."""
    idx = np.array([[1, 2, 3], [0, 2, 3], [1, 3, 0], [2, 1, 0]])
    dist = np.array([[1.0, 2.0, 3.0], [1.0, 1.5, 2.5], [1.5, 4.0, 2.0], [0.0, 0.0, 0.0]])
    w = _graph.gaussian_weights(dist, idx)
    sigma = np.array([2.0, 1.5, 4.0, 1e-3 * 2.0])  # the middle neighbour; cell 3 collapsed: the floor
    expected = np.exp(-dist**2 / (sigma[:, None] * sigma[idx]))
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    w1 = _graph.gaussian_weights(dist[:3], idx[:3] % 3, bandwidth_neighbor=1)
    s1 = dist[:3, 0]
    np.testing.assert_allclose(w1, np.exp(-dist[:3] ** 2 / (s1[:, None] * s1[idx[:3] % 3])), rtol=1e-12)


def test_affinity_and_diffusion_operator_dense():
    """K = (W + W^T) / 2; P = D^-1 K_a with K_a = D^-a K D^-a (D the degrees of K), rows summing to 1."""
    _, idx, dist = small_graph()
    w = _graph.gaussian_weights(dist, idx)
    n = idx.shape[0]
    W = np.zeros((n, n))
    W[np.repeat(np.arange(n), 4), idx.ravel()] = w.ravel()
    K = _graph.affinity_matrix(idx, w)
    np.testing.assert_allclose(K.toarray(), (W + W.T) / 2, rtol=1e-12)
    Kd = (W + W.T) / 2 + 1e-12 * np.eye(n)
    for alpha in (0.0, 0.5, 1.0):
        deg = Kd.sum(axis=1)
        Ka = Kd / np.outer(deg**alpha, deg**alpha)
        expected = Ka / Ka.sum(axis=1, keepdims=True)
        P = _graph.diffusion_operator(K, alpha=alpha)
        np.testing.assert_allclose(P.toarray(), expected, rtol=1e-5)
        assert P.dtype == np.float32
        assert P.has_sorted_indices
    w2, K2, P2 = _graph.diffusion_graph(idx, dist, alpha=0.5)
    np.testing.assert_allclose(w2, w)
    np.testing.assert_allclose(P2.toarray(), _graph.diffusion_operator(K, alpha=0.5).toarray())


def test_knn_from_distances_sorts_rows_and_refuses_uneven_ones():
    D = sparse.csr_matrix(np.array([[0, 3.0, 1.0, 2.0], [1.0, 0, 1.0, 5.0], [2.0, 1.0, 0, 4.0], [1.0, 2.0, 3.0, 0]]))
    idx, dist = _graph.knn_from_distances(D)
    np.testing.assert_array_equal(idx, [[2, 3, 1], [0, 2, 3], [1, 0, 3], [0, 1, 2]])  # ties by index
    np.testing.assert_allclose(dist, [[1, 2, 3], [1, 1, 5], [1, 2, 4], [1, 2, 3]])
    uneven = D.tolil()
    uneven[0, 1] = 0
    assert idx.dtype == np.int64
    assert dist.dtype == np.float32
    with pytest.raises(ValueError, match=r"1 of 4 cells with fewer than 3 neighbours .* Recompute it on these cells"):
        _graph.knn_from_distances(sparse.csr_matrix(uneven))
    with pytest.raises(ValueError, match="4 of 4 cells with fewer than 4 neighbours"):
        _graph.knn_from_distances(D, n_neighbors=4)  # a k the graph does not hold
    with pytest.raises(ValueError, match=r"^The neighbour graph has cells without neighbours"):
        _graph.knn_from_distances(sparse.csr_matrix((2, 2)))
    one, _ = _graph.knn_from_distances(sparse.csr_matrix(np.array([[0, 2.0], [2.0, 0]])))  # k = 1 is a graph
    np.testing.assert_array_equal(one, [[1], [0]])


def test_rank_matrix_round_trip_follows_the_cells():
    """Ranks survive reordering the cells (what AnnData does to obsp); a removed cell, or a neighbour listed
    twice, is detected."""
    idx = np.array([[1, 2], [2, 0], [0, 1], [1, 0]])
    R = _graph.rank_matrix(idx)
    np.testing.assert_array_equal(R.toarray(), [[0, 1, 2, 0], [2, 0, 1, 0], [1, 2, 0, 0], [2, 1, 0, 0]])
    np.testing.assert_array_equal(_graph.knn_from_ranks(R, 2), idx)
    perm = np.array([3, 1, 0, 2])
    inv = np.argsort(perm)
    moved = _graph.knn_from_ranks(R[perm][:, perm], 2)
    np.testing.assert_array_equal(moved, inv[idx[perm]])
    # cell 3 removed: no other cell had it as a neighbour, the rest stays valid
    np.testing.assert_array_equal(_graph.knn_from_ranks(R[:3][:, :3], 2), idx[:3])
    sub = R[[0, 1, 3]][:, [0, 1, 3]]  # cell 2 removed: rows 0 and 1 lose a neighbour
    assert _graph.knn_from_ranks(sub, 2) is None
    bad = sparse.csr_matrix(np.array([[0, 2.0, 2.0], [1.0, 0, 2.0], [1.0, 2.0, 0]]))
    assert _graph.knn_from_ranks(bad, 2) is None  # ranks 2, 2: not 1..k
    with pytest.raises(ValueError, match="a cell twice"):
        _graph.rank_matrix(np.array([[1, 1], [0, 2], [0, 1]]))
