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
