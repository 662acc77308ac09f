"""The gradient of the log of the local mean (``log_mean``): closed forms on a flat plane."""

from __future__ import annotations

import numpy as np
from conftest import flat_plane

from genegrad import GradientModel


def test_log_of_the_local_mean_in_closed_form():
    # x = log1p(m) with m = 3 + 2 z0 linear on a flat plane: the gradient of m is exact at every scale (2 along z0),
    # and P^t m = 3 + 2 P^t z0 for the row-stochastic P. So the gradient of log1p(P^t m) is 2 e0 / (4 + 2 P^t z0)
    # (P z0 at t = 0); the gradient of the smoothed log (log_mean=False) is off by 0.03-0.05 somewhere (measured),
    # on gradients of length 0.33-1.
    Z, Y, Q = flat_plane()
    model = GradientModel(n_neighbors=20, n_dims=2).fit(Y)
    P = model.diffusion_.astype(np.float64)
    m = 3 + 2 * Z[:, 0]
    F = np.log1p(m)[:, None]
    res = model.gradients(F, log_mean=True)
    plain = model.gradients(F)
    frames = model.frames_.astype(np.float64)  # (N, p, d): tangent coordinates -> representation
    smoothed = {0: Z[:, 0]}  # P^t z0
    for t in range(1, max(model.scales_) + 1):
        smoothed[t] = P @ smoothed[t - 1]
    for j, t in enumerate(model.scales_):
        expected = 2 * Q[:, 0][None, :] / (4 + 2 * smoothed[max(t, 1)])[:, None]
        got = np.einsum("npd,nd->np", frames, res.gradients[:, 0, :, j].astype(np.float64))
        np.testing.assert_allclose(got, expected, atol=2e-4)
        assert np.abs(np.einsum("npd,nd->np", frames, plain.gradients[:, 0, :, j]) - expected).max() > 0.02
    # the smoothed signals are the log of the smoothed mean
    chunk = model.gradients_chunk(F, with_signals=True, with_se=False, log_mean=True)
    for j, t in enumerate(model.scales_):
        np.testing.assert_allclose(chunk.signals[:, 0, j], np.log(4 + 2 * smoothed[max(t, 1)]), rtol=1e-6)


def test_log_mean_standard_errors_are_the_means_divided():
    # the noise of log1p(P^t m) around its gradient: that of m's gradient over 1 + P^t m, at every scale
    Z, Y, _ = flat_plane()
    model = GradientModel(n_neighbors=20, n_dims=2).fit(Y)
    rng = np.random.default_rng(3)
    m = np.maximum(2 + Z[:, :1] + 0.3 * rng.standard_normal((len(Z), 3)), 0.0)
    res = model.gradients(np.log1p(m), log_mean=True)
    linear = model.gradients(m)
    P = model.diffusion_.astype(np.float64)
    means = {0: P @ m}
    for t in range(1, max(model.scales_) + 1):
        means[t] = means[t - 1] if t == 1 else P @ means[t - 1]
    for j, t in enumerate(model.scales_):
        np.testing.assert_allclose(res.se[:, :, j], linear.se[:, :, j] / (1 + means[t]), rtol=2e-5)
        # float32 round trip log1p -> expm1 of the signal: relative 1e-7 on each value, amplified by the local fits'
        # differences of neighbours
        np.testing.assert_allclose(res.gradients[..., j], linear.gradients[..., j] / (1 + means[t])[:, :, None],
                                   rtol=1e-3, atol=1e-5)
