"""Tangent frames: local PCA spectra, frame averaging (the mean neighbourhood projector), the dimension estimate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

from genegrad._core import _frames


def _projectors(U):
    return np.einsum("npd,nqd->npq", U, U)


def _neighbours(n=400, k=15, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0, 1, (n, 2))
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)
    return rng, idx[:, 1:], np.exp(-(dist[:, 1:] / dist[:, -1:]) ** 2)


def _noisy_plane_frames(rng, n, p=10, noise=0.3):
    truth = np.zeros((p, 2))
    truth[0, 0] = truth[1, 1] = 1.0
    return truth, np.linalg.qr(truth[None] + noise * rng.normal(size=(n, p, 2)))[0]


def test_average_frames_converges_to_the_leading_eigenspace_of_the_mean_projector():
    """Subspace iteration from the own frame against the brute-force eigenvectors of the mean projector: each
    step shrinks the error by the eigenvalue ratio lambda_3 / lambda_2 (median 0.26 for p = 6, 0.11 for p = 40
    here), so five steps leave about ratio^5 of the initial error (at most ~1)."""
    for p in (6, 40):
        rng, idx, w = _neighbours()
        _, U = _noisy_plane_frames(rng, idx.shape[0], p=p, noise=0.3 * np.sqrt(6 / p))
        got = _frames.average_frames(U, idx, w)
        cols = np.concatenate([np.arange(idx.shape[0])[:, None], idx], axis=1)
        ww = np.concatenate([w.max(axis=1, keepdims=True), w], axis=1)
        M = np.einsum("nk,nkpq->npq", ww / ww.sum(axis=1, keepdims=True), _projectors(U)[cols])
        ev, vecs = np.linalg.eigh(M)
        want, ratio = vecs[:, :, -2:], np.median(ev[:, -3] / ev[:, -2])
        np.testing.assert_allclose(np.einsum("npd,npe->nde", got, got), np.broadcast_to(np.eye(2), (len(U), 2, 2)),
                                   atol=1e-8)  # orthonormal
        err = np.linalg.norm(_projectors(got) - _projectors(want), axis=(1, 2))
        assert np.median(err) < 3 * ratio**5
        assert np.quantile(err, 0.99) < 0.05


def test_averaging_shrinks_independent_frame_errors():
    """Frames of a plane in R^10 with independent errors: the mean over 16 projectors has about a quarter of the
    error (1/sqrt(16)); the bar, half, leaves room for the neighbours' unequal weights."""
    rng, idx, w = _neighbours()
    truth, noisy = _noisy_plane_frames(rng, idx.shape[0])
    before = np.linalg.norm(_projectors(noisy) - truth @ truth.T, axis=(1, 2))
    after = np.linalg.norm(_projectors(_frames.average_frames(noisy, idx, w)) - truth @ truth.T, axis=(1, 2))
    assert np.median(after) < 0.5 * np.median(before)


def test_a_cell_without_weighted_neighbours_keeps_its_own_frame():
    rng, idx, w = _neighbours(n=50, k=5)
    _, U = _noisy_plane_frames(rng, 50)
    w[7] = 0.0
    out = _frames.average_frames(U, idx, w)
    np.testing.assert_allclose(_projectors(out[7:8]), _projectors(U[7:8]), atol=1e-10)
    assert np.isfinite(out).all()


def _weighted_pca(Ys, i, nbrs, w):
    """Eigenvalues (decreasing) and eigenvectors of sum_j w_j (y_j - y_i)(y_j - y_i)^T, weights normalised."""
    X = Ys[nbrs] - Ys[i]
    C = (X * (w / w.sum())[:, None]).T @ X
    ev, V = np.linalg.eigh(C)
    return ev[::-1], V[:, ::-1]


@pytest.mark.parametrize("p", [3, 12])  # p <= k: eigen-decomposition of the covariance; p > k: SVD of the data
def test_local_spectra_is_weighted_local_pca(p):
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(60, p)) * np.linspace(3, 0.5, p)
    k = 8
    idx = np.argsort(((Y[:, None] - Y[None]) ** 2).sum(-1), axis=1)[:, 1:k + 1]
    w = rng.uniform(0.2, 1.0, size=(60, k))
    vals, vecs = _frames.local_spectra(Y, idx, w, chunk_size=25, n_vecs=2)  # 3 chunks
    r = min(k, p)
    assert vals.shape == (60, r)
    assert vecs.shape == (60, p, 2)
    for i in (0, 31, 59):
        ev, V = _weighted_pca(Y, i, idx[i], w[i])
        np.testing.assert_allclose(vals[i], np.maximum(ev[:r], 0), rtol=1e-8, atol=1e-12)
        # the leading directions, up to sign
        np.testing.assert_allclose(np.abs((vecs[i] * V[:, :2]).sum(axis=0)), 1.0, atol=1e-8)
    only, none = _frames.local_spectra(Y, idx, w, values_only=True)
    assert none is None
    np.testing.assert_allclose(only, vals, rtol=1e-10, atol=1e-14)
    # a subsample of cells: rows of idx and weights are those cells' neighbours
    cells = np.array([5, 17])
    sub, _ = _frames.local_spectra(Y, idx[cells], w[cells], cells=cells)
    np.testing.assert_allclose(sub, vals[cells], rtol=1e-10, atol=1e-14)


def test_smooth_coordinates_is_repeated_diffusion():
    rng = np.random.default_rng(1)
    P = rng.uniform(size=(6, 6))
    P /= P.sum(axis=1, keepdims=True)
    Y = rng.normal(size=(6, 2))
    np.testing.assert_allclose(_frames.smooth_coordinates(Y, sparse.csr_matrix(P), 3),
                               np.linalg.matrix_power(P, 3) @ Y, rtol=1e-6)
    np.testing.assert_allclose(_frames.smooth_coordinates(Y, sparse.csr_matrix(P), 0), Y)


def test_estimate_dimension_largest_drop_of_the_median_spectrum():
    """Spectra normalised per cell, the median over cells, d where consecutive values drop the most (values
    floored at floor x the first, so a drop to zero is the largest but not infinite); capped at max_dim."""
    ev = np.array([[8.0, 4.0, 0.4, 0.2], [4.0, 2.0, 0.2, 0.1], [16.0, 8.0, 0.8, 0.4]])
    d, spectrum = _frames.estimate_dimension(ev)
    np.testing.assert_allclose(spectrum, np.array([8, 4, 0.4, 0.2]) / 12.6)
    assert d == 2  # ratios 2, 10, 2
    d1, _ = _frames.estimate_dimension(np.array([[5.0, 1.0, 0.5, 0.0]]))
    assert d1 == 3  # ratios 5, 2 and 0.5 / (0.01 x 5) = 10: the drop to zero, floored, is the largest
    # floored at 0.2 x 5 = 1, the last two values are 1: ratios 5, 1, 1
    assert _frames.estimate_dimension(np.array([[5.0, 1.0, 0.5, 0.0]]), floor=0.2)[0] == 1
    assert _frames.estimate_dimension(ev, max_dim=1)[0] == 1
    assert _frames.estimate_dimension(np.array([[1.0]]))[0] == 1
    assert _frames.estimate_dimension(np.zeros((3, 4)))[0] == 1
