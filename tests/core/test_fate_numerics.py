"""Fate numerics (`_core._fate`) on chains with exact answers: absorption (direct, multigrid), tilted and
oriented transitions, the fine step's agreement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from genegrad._core import _fate


def path_graph(n):
    off = np.ones(n - 1)
    return sparse.diags([off, off], [-1, 1], format="csr")


def test_absorption_on_a_path_is_gamblers_ruin():
    # symmetric walk on 0..n-1 absorbed at both ends: P(absorbed at n-1 | start i) = i / (n - 1), exactly
    n = 21
    T = sparse.diags(1 / np.asarray(path_graph(n).sum(1)).ravel()) @ path_graph(n)
    terminal = np.full(n, -1)
    terminal[0], terminal[-1] = 0, 1
    P = _fate.absorption_probabilities(T, terminal, 2)
    np.testing.assert_allclose(P[:, 1], np.arange(n) / (n - 1), atol=1e-12)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)


def test_multigrid_path_is_exact_on_a_long_path(monkeypatch):
    # the 1-D walk is the hardest case for an iterative solver (mixing time ~ n^2); the answer is linear
    n = 3000
    T = sparse.diags(1 / np.asarray(path_graph(n).sum(1)).ravel()) @ path_graph(n)
    terminal = np.full(n, -1)
    terminal[0], terminal[-1] = 0, 1
    monkeypatch.setattr(_fate, "DIRECT_MAX", 0)
    P = _fate.absorption_probabilities(T, terminal, 2)
    np.testing.assert_allclose(P[:, 1], np.arange(n) / (n - 1), atol=1e-7)  # GMRES rtol 1e-10 x cond ~ n^2


def test_multigrid_path_gives_the_same_numbers_every_run(monkeypatch):
    """Same input, same output: pyamg's default smoother starts a spectral-radius estimate from numpy's global
    random state, which moved the solution by ~1e-12 between runs; the global state is shuffled between runs."""
    rng = np.random.default_rng(2)
    K = sparse.random(600, 600, density=0.02, random_state=3, format="csr")
    K = K + K.T + path_graph(600)
    T = sparse.diags(1 / np.asarray(K.sum(1)).ravel()) @ K
    terminal = np.full(600, -1)
    terminal[rng.choice(600, 9, replace=False)] = np.arange(9) % 3
    monkeypatch.setattr(_fate, "DIRECT_MAX", 0)
    saved = np.random.get_state()
    runs = []
    try:
        for seed in (1, 2):
            np.random.seed(seed)  # the global state, which pyamg's default smoother read
            runs.append(_fate.absorption_probabilities(T, terminal, 3))
    finally:
        np.random.set_state(saved)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_gmres_path_agrees_with_direct(monkeypatch):
    rng = np.random.default_rng(0)
    K = sparse.random(400, 400, density=0.03, random_state=1, format="csr")
    K = K + K.T + path_graph(400)  # connected
    T = sparse.diags(1 / np.asarray(K.sum(1)).ravel()) @ K
    terminal = np.full(400, -1)
    terminal[rng.choice(400, 12, replace=False)] = np.arange(12) % 3
    direct = _fate.absorption_probabilities(T, terminal, 3)
    monkeypatch.setattr(_fate, "DIRECT_MAX", 0)
    iterative = _fate.absorption_probabilities(T, terminal, 3)
    np.testing.assert_allclose(iterative, direct, atol=1e-6)


def test_unreachable_cells_get_nan():
    K = sparse.block_diag([path_graph(5), path_graph(4)], format="csr")  # second component has no terminal
    T = sparse.diags(1 / np.asarray(K.sum(1)).ravel()) @ K
    terminal = np.full(9, -1)
    terminal[0], terminal[4] = 0, 1
    P = _fate.absorption_probabilities(T, terminal, 2)
    assert np.isnan(P[5:]).all()
    np.testing.assert_allclose(P[:5].sum(axis=1), 1.0)


def test_tilt_favours_the_flow_direction():
    Y = np.arange(10.0)[:, None]
    K = path_graph(10)
    v = np.ones((10, 1))
    plain = _fate.tilted_transitions(K, Y, v, beta=0.0)
    tilted = _fate.tilted_transitions(K, Y, v, beta=2.0)
    np.testing.assert_allclose(plain.toarray()[5, [4, 6]], [0.5, 0.5])
    # exp(2) / (exp(2) + exp(-2)) towards +x
    assert tilted[5, 6] == pytest.approx(np.exp(2) / (np.exp(2) + np.exp(-2)))
    np.testing.assert_allclose(np.asarray(tilted.sum(axis=1)).ravel(), 1.0)


@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_transitions_drop_explicit_zeros_on_a_copy(beta):
    """An edge stored with affinity 0 is no step of the chain; the affinities passed in (the AnnData's) are left
    as they were."""
    K = path_graph(5)
    K.data[0] = 0.0  # the edge 0 -> 1, stored as an explicit zero: cell 0 has no step left
    arrays = [K.data.copy(), K.indices.copy(), K.indptr.copy()]
    T = _fate.tilted_transitions(K, np.arange(5.0)[:, None], np.ones((5, 1)), beta=beta)
    assert T.nnz == K.nnz - 1 + 1  # the zero edge gone, a self-loop for the cell without edges
    np.testing.assert_array_equal(T[0].toarray(), [[1.0, 0, 0, 0, 0]])
    for a, b in zip([K.data, K.indices, K.indptr], arrays, strict=True):
        np.testing.assert_array_equal(a, b)


def test_forward_affinities_weigh_steps_back_by_the_soft_scheme():
    K = path_graph(5) * 2.0
    tau = np.array([0.0, 1.0, 2.0, 3.0, np.inf])  # the last cell is unreached from the root
    b = 4.0
    top = np.percentile(tau[:4], 99)  # pseudotime scaled by its 99th percentile
    W = _fate.forward_affinities(K, tau, strength=b).toarray()
    back = 2.0 * 2.0 / (1.0 + np.exp(b * 1.0 / top)) ** 2  # CellRank's soft scheme, nu = 1/2
    np.testing.assert_allclose([W[0, 1], W[1, 2], W[2, 3]], 2.0)  # forward steps keep their weight
    np.testing.assert_allclose([W[1, 0], W[2, 1], W[3, 2]], back)
    np.testing.assert_allclose([W[3, 4], W[4, 3]], 2.0)  # a cell without finite pseudotime: unchanged
    assert np.array_equal(K.toarray() > 0, W > 0)  # the same edges


def test_fine_agreement_is_the_rank_correlation_over_progenitors():
    rng = np.random.default_rng(0)
    chain = rng.dirichlet(np.ones(3), 200)
    labels = np.full(200, -1)
    labels[:20] = 0  # terminal cells take no part
    z = np.c_[chain[:, 0] ** 3, -chain[:, 1], np.ones(200)]
    z[:20] = rng.normal(size=(20, 3))
    agree = _fate.fine_agreement(z, chain, labels)
    np.testing.assert_allclose(agree[:2], [1.0, -1.0])  # monotone up / down: exactly +-1
    assert np.isnan(agree[2])  # a constant score has no rank correlation
