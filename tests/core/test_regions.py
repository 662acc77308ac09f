"""Counting separate high and low regions of signals on a coarse graph (superlevel-set components)."""

from __future__ import annotations

import numpy as np
import pytest

from genegrad._core import _regions
from genegrad._core._regions import Coarsening


def chain(m: int, *, closed: bool = False) -> Coarsening:
    """Groups of one cell each along a path (or a ring) of ``m`` nodes."""
    rows = np.arange(m - 1)
    cols = rows + 1
    if closed:
        rows, cols = np.append(rows, 0), np.append(cols, m - 1)
    return Coarsening(assign=np.arange(m), rows=rows, cols=cols, sizes=np.ones(m))


def test_two_bumps_on_a_path():
    # bumps of height 1 at 25 and 75 on a baseline 0: every level between 20% and 90% of the range cuts two
    # separate high intervals and three low ones (left of, between and right of the bumps)
    x = np.arange(100.0)
    two = np.exp(-((x - 25) ** 2) / 50) + np.exp(-((x - 75) ** 2) / 50)
    ramp = x
    counts = _regions.count_regions(np.column_stack([two, ramp]), chain(100))
    np.testing.assert_array_equal(counts, [[2, 3], [1, 1]])


def test_harmonics_on_a_ring():
    # on a closed curve cos(k theta) has k maxima and k minima; a plateau (a switch) has one of each
    th = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    V = np.column_stack([np.cos(th), np.cos(2 * th), np.cos(3 * th), (np.cos(th) > 0.2).astype(float)])
    counts = _regions.count_regions(V, chain(240, closed=True))
    np.testing.assert_array_equal(counts, [[1, 1], [2, 2], [3, 3], [1, 1]])


def test_small_regions_and_constants():
    # a one-node spike holds 1% of 100 nodes: counted at min_share 0.01, not at 0.05; the two spikes cut the low
    # side in three either way; a constant signal has no high region and one low region (all of it)
    v = np.zeros(100)
    v[[20, 60]] = 1.0
    V = np.column_stack([v, np.zeros(100)])
    np.testing.assert_array_equal(_regions.count_regions(V, chain(100), min_share=0.01), [[2, 3], [0, 1]])
    np.testing.assert_array_equal(_regions.count_regions(V, chain(100), min_share=0.05), [[0, 3], [0, 1]])


def _two_clusters(n: int = 400, k: int = 8):
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (n // 2, 2)), rng.normal(100, 1, (n // 2, 2))]
    d = ((X[:, None] - X[None]) ** 2).sum(-1)
    return X, np.argsort(d, axis=1)[:, 1:k + 1]


def test_coarsen_groups_stay_within_components():
    X, idx = _two_clusters()
    c = _regions.coarsen(idx, n_landmarks=20, random_state=0)
    assert c.sizes.sum() == X.shape[0]
    side = X[:, 0] > 50
    for g in range(c.n_groups):  # a group never mixes the two clusters
        assert np.unique(side[c.assign == g]).size == 1
    group_side = np.array([side[c.assign == g][0] for g in range(c.n_groups)])
    assert (group_side[c.rows] == group_side[c.cols]).all()  # no coarse edge across
    assert (c.rows < c.cols).all()


def test_coarsen_gives_a_landmark_to_every_component():
    # with one landmark, the other cluster still gets its own group
    X, idx = _two_clusters()
    c = _regions.coarsen(idx, n_landmarks=1, random_state=0)
    assert c.n_groups == 2
    assert sorted(c.sizes) == [200, 200]


def test_means_over_groups():
    c = Coarsening(assign=np.array([0, 1, 0, 1, 1]), rows=np.array([0]), cols=np.array([1]), sizes=np.array([2.0, 3]))
    X = np.arange(10.0).reshape(5, 2)
    np.testing.assert_allclose(c.means(X), [[2, 3], [(2 + 6 + 8) / 3, (3 + 7 + 9) / 3]])
    # any trailing shape; float32 summed in float64: 2^24 + 1 is no float32, so a float32 sum of group 1's
    # 2^24, 1, 1 would stay 2^24
    big = np.ones((5, 1, 2), dtype=np.float32)
    big[1] = 2.0**24
    got = c.means(big)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got[:, 0], [[1.0, 1.0], [(2.0**24 + 2) / 3, (2.0**24 + 2) / 3]])
    np.testing.assert_allclose(c.means(np.arange(10).reshape(5, 2)), c.means(X))


def test_plane_descriptors_count_ridges_and_troughs():
    # cos(3 pi x) on [-1, 1]^2: ridges at x = -2/3, 0, 2/3, troughs at x = -1, -1/3, 1/3, 1 (all levels)
    from conftest import flat_plane

    from genegrad import GradientModel
    from genegrad._core import _descriptors

    D = _descriptors.DESCRIPTORS
    Z, Y, _ = flat_plane(n=2000, seed=3)
    model = GradientModel(n_neighbors=20, n_dims=2, scales=(0, 1)).fit(Y)
    x, y = Z[:, 0], Z[:, 1]
    F = np.column_stack([np.cos(3 * np.pi * x), x + 0.5 * y, np.exp(-(x**2 + y**2) / 0.18)]).astype(np.float32)
    chunk = model.gradients_chunk(F, with_signals=True)
    desc = _descriptors.chunk_descriptors(model, chunk, length_scale=1.0, sd=F.std(0),
                                         to_intrinsic=_descriptors.synchronized_frames(model))
    peaks, troughs = desc[:, D.index("peaks"), 1], desc[:, D.index("troughs"), 1]
    assert peaks[0] == pytest.approx(3, abs=0.25)
    assert troughs[0] == pytest.approx(4, abs=0.5)
    np.testing.assert_allclose([peaks[1], troughs[1], peaks[2], troughs[2]], 1.0)  # a ramp; a bump


def test_components_match_scipy_on_random_graphs():
    # the compiled union-find against scipy's connected components of each column's induced subgraph (an
    # independent implementation): random graphs, random members, unequal group sizes, several size thresholds
    from scipy import sparse
    from scipy.sparse import csgraph

    rng = np.random.default_rng(7)
    for m, n_edges in ((30, 40), (80, 200), (200, 260)):
        pairs = np.unique(np.sort(rng.integers(0, m, size=(n_edges, 2)), axis=1), axis=0)
        pairs = pairs[pairs[:, 0] < pairs[:, 1]]
        sizes = rng.integers(1, 6, size=m).astype(float)
        coarse = Coarsening(assign=np.arange(m), rows=pairs[:, 0], cols=pairs[:, 1], sizes=sizes)
        inside = rng.random((m, 25)) < rng.uniform(0.2, 0.9, size=25)
        for min_cells in (1.0, 4.0, 9.0):
            got = _regions._components(inside, coarse, min_cells)
            want = []
            for c in range(inside.shape[1]):
                keep = np.flatnonzero(inside[:, c])
                on = inside[pairs[:, 0], c] & inside[pairs[:, 1], c]
                A = sparse.coo_matrix((np.ones(on.sum()), (pairs[on, 0], pairs[on, 1])), shape=(m, m))
                _, label = csgraph.connected_components(A, directed=False)
                weight = np.bincount(label[keep], weights=sizes[keep])
                want.append(int((weight[np.unique(label[keep])] >= min_cells).sum()))
            np.testing.assert_array_equal(got, want)
