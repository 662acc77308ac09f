"""Neighbour search: the partitioned (inverted-file) search against the exact one."""

from __future__ import annotations

import numpy as np
import pytest

from genegrad._core import _graph


def sheet(n, seed=0):
    # a 2-D sheet curved into 10-D with small isotropic noise: a manifold like the PCA of cells
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, (n, 2))
    Y = np.c_[z, np.sin(2 * z[:, :1]) * z[:, 1:], np.cos(z), z**2, np.zeros((n, 3))]
    return Y + 0.02 * rng.normal(size=Y.shape)


def recall(a, b):
    return np.mean([len(np.intersect1d(x, y)) / len(x) for x, y in zip(a, b, strict=True)])


def test_partition_search_finds_the_exact_neighbours():
    Y = sheet(8000)
    exact, d_exact = _graph.knn(Y, 30, method="exact")
    approx, d_approx = _graph.knn(Y, 30, method="partition")
    assert approx.shape == exact.shape == (8000, 30)
    assert not (approx == np.arange(8000)[:, None]).any()  # the cell itself is not its neighbour
    assert (np.diff(d_approx, axis=1) >= 0).all()
    # 8 partitions, 3 searched per query block: only neighbours across far partition borders can be missed
    assert recall(exact, approx) > 0.98
    # any missed neighbour is replaced by a farther cell: the k-th distance never shrinks
    assert (d_approx[:, -1] >= d_exact[:, -1] - 1e-5).all()


def test_partition_search_is_exact_when_every_partition_is_searched(monkeypatch):
    Y = sheet(3000, seed=1)
    monkeypatch.setattr(_graph, "PARTITION_PROBES", 10)  # 3 partitions of 1,000 cells: all searched
    exact, _ = _graph.knn(Y, 15, method="exact")
    approx, _ = _graph.knn(Y, 15, method="partition")
    np.testing.assert_array_equal(np.sort(exact, axis=1), np.sort(approx, axis=1))


def test_partition_search_is_deterministic():
    Y = sheet(4000, seed=2)
    a, _ = _graph.knn(Y, 20, method="partition", random_state=3)
    b, _ = _graph.knn(Y, 20, method="partition", random_state=3)
    np.testing.assert_array_equal(a, b)


def test_unknown_knn_method_is_rejected():
    with pytest.raises(ValueError, match="knn_method"):
        _graph.knn(sheet(100), 10, method="annoy")


def test_partition_search_probes_the_nearest_partitions(monkeypatch):
    """With many small partitions (60 of 100 cells) and small query blocks, only the partitions nearest each
    query are searched: the neighbours are still nearly all found, and far fewer cells are candidates than in an
    exhaustive search (a probe of far partitions would find few neighbours)."""
    monkeypatch.setattr(_graph, "PARTITION_SIZE", 100)
    Y = sheet(6000, seed=4)
    exact, d_exact = _graph.knn(Y, 15, method="exact")
    idx, dist = _graph._partition_knn(Y, 16, block=25)
    approx, d_approx = _graph._drop_self(idx, dist)
    assert recall(exact, approx) > 0.995  # 0.9997 measured: a few neighbours across far borders are missed
    assert (d_approx[:, -1] >= d_exact[:, -1] - 1e-5).all()
    np.testing.assert_allclose(d_approx[:, 0], d_exact[:, 0], rtol=1e-4, atol=1e-6)  # the nearest is never missed
    assert idx.dtype == np.int64
    assert dist.dtype == np.float32


def test_partition_search_fits_its_partitions_on_a_seeded_sample(monkeypatch):
    """Above PARTITION_FIT_SAMPLE cells the k-means is fitted on a seeded random sample: same seed, same
    neighbours; the neighbours are still found."""
    monkeypatch.setattr(_graph, "PARTITION_FIT_SAMPLE", 800)
    monkeypatch.setattr(_graph, "PARTITION_SIZE", 200)
    Y = sheet(4000, seed=5)
    a, _ = _graph.knn(Y, 10, method="partition", random_state=7)
    b, _ = _graph.knn(Y, 10, method="partition", random_state=7)
    np.testing.assert_array_equal(a, b)
    exact, _ = _graph.knn(Y, 10, method="exact")
    assert recall(exact, a) > 0.99


def test_partition_search_falls_back_on_every_cell_when_candidates_are_too_few(monkeypatch):
    """Six partitions of 10 cells: for 55 neighbours of 60 cells a block whose probes miss any partition has too
    few candidates and searches every cell, one whose probes cover all searches every cell anyway: exact."""
    monkeypatch.setattr(_graph, "PARTITION_SIZE", 10)
    Y = sheet(60, seed=6)
    approx, _ = _graph.knn(Y, 55, method="partition")
    exact, _ = _graph.knn(Y, 55, method="exact")
    np.testing.assert_array_equal(np.sort(approx, axis=1), np.sort(exact, axis=1))
