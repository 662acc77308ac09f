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


def test_average_frames_is_the_leading_eigenspace_of_the_mean_projector():
    """Both code paths (p x p eigenproblem, and the smaller Gram matrix when p > d (k + 1)) give the brute force."""
    for p, k in ((6, 15), (40, 5)):
        rng, idx, w = _neighbours(k=k)
        U = np.linalg.qr(rng.normal(size=(idx.shape[0], p, 2)))[0]
        got = _frames.average_frames(U, idx, w)
        cols = np.concatenate([np.arange(idx.shape[0])[:, None], idx], axis=1)
        ww = np.concatenate([w.max(axis=1, keepdims=True), w], axis=1)
        M = np.einsum("nk,nkpq->npq", ww / ww.sum(axis=1, keepdims=True), _projectors(U)[cols])
        want = np.linalg.eigh(M)[1][:, :, -2:]
        np.testing.assert_allclose(np.einsum("npd,npe->nde", got, got), np.broadcast_to(np.eye(2), (len(U), 2, 2)),
                                   atol=1e-8)  # orthonormal
        np.testing.assert_allclose(_projectors(got), _projectors(want), atol=1e-6)


def test_averaging_shrinks_independent_frame_errors():
    """Frames of a plane in R^10 with independent errors: the mean over 16 projectors has about a quarter of the
    error (1/sqrt(16)); the bar, half, leaves room for the neighbours' unequal weights."""
    rng, idx, w = _neighbours()
    n, p = idx.shape[0], 10
    truth = np.zeros((p, 2))
    truth[0, 0] = truth[1, 1] = 1.0
    noisy = np.linalg.qr(truth[None] + 0.3 * rng.normal(size=(n, p, 2)))[0]
    before = np.linalg.norm(_projectors(noisy) - truth @ truth.T, axis=(1, 2))
    after = np.linalg.norm(_projectors(_frames.average_frames(noisy, idx, w)) - truth @ truth.T, axis=(1, 2))
    assert np.median(after) < 0.5 * np.median(before)
