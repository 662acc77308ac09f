"""Tangent-frame averaging: the mean neighbourhood projector."""

from __future__ import annotations

import numpy as np
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
