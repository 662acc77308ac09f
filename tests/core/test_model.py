"""The gradient operator on plain arrays: exactness, equivariance, degenerate inputs, noise calibration."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import flat_plane

from genegrad import GradientModel


@pytest.fixture(scope="module")
def plane_model():
    Z, Y, Q = flat_plane()
    return Z, Y, Q, GradientModel(n_neighbors=20, n_dims=2).fit(Y)


def test_linear_function_recovered_exactly_at_every_scale(plane_model):
    # f linear in Y => P^t f is linear in P^t Y with the same coefficients: the fit is exact at every scale,
    # up to the 1e-6 relative ridge and float32 storage.
    Z, Y, Q, model = plane_model
    c = np.array([1.5, -0.7])
    f = Z @ c + 3.0
    grads = model.gradients(f[:, None], with_se=False).gradients
    true = Q[:, :2] @ c
    for j in range(grads.shape[3]):
        amb = model.to_ambient(grads[:, 0, :, j])
        np.testing.assert_allclose(amb, np.broadcast_to(true, amb.shape), atol=1e-4 * np.linalg.norm(true))


def test_dimension_estimated_on_plane(plane_model):
    _, Y, _, _ = plane_model
    assert GradientModel(n_neighbors=20).fit(Y).n_dims_ == 2


def test_dimension_estimate_does_not_drift_with_the_number_of_cells():
    # A closed curve in 6-D thickened by a small nuisance direction (sd 0.05, like library size in counts) and
    # isotropic noise. With k fixed, neighbourhoods along the curve shrink as N grows while the nuisance does
    # not: on all 25,000 cells the median local spectrum calls it 2-D; the estimate on a 10,000-cell sample
    # (with its own graph) sees what 5,000 cells see, a curve.
    def thick_curve(n):
        rng = np.random.default_rng(0)
        s = rng.uniform(0, 1, n)[:, None]
        f = np.pi * np.arange(1, 4)
        return np.c_[np.cos(f * s), np.sin(f * s), 0.05 * rng.normal(size=(n, 1)), 0.01 * rng.normal(size=(n, 4))]

    small = GradientModel(scales=(0,)).fit(thick_curve(5000)).n_dims_
    large = GradientModel(scales=(0,)).fit(thick_curve(25000)).n_dims_
    assert small == large == 1


def test_rotation_of_representation_rotates_gradients(plane_model):
    Z, Y, Q, model = plane_model
    rng = np.random.default_rng(1)
    R, _ = np.linalg.qr(rng.standard_normal((Y.shape[1], Y.shape[1])))
    f = np.sin(2 * Z[:, 0]) + Z[:, 1] ** 2
    rotated = GradientModel(n_neighbors=20, n_dims=2).fit(Y @ R.T + 5.0)  # rotation and translation
    g0 = model.to_ambient(model.gradients(f[:, None], with_se=False).gradients[:, 0, :, 2])
    g1 = rotated.to_ambient(rotated.gradients(f[:, None], with_se=False).gradients[:, 0, :, 2])
    np.testing.assert_allclose(g1, g0 @ R.T, atol=1e-4 * np.abs(g0).max())


def test_duplicated_cells_and_tiny_neighbourhoods_give_no_nan():
    _, Y, _ = flat_plane(n=60, seed=2)
    Y = np.vstack([Y, np.repeat(Y[:1], 12, axis=0)])  # 13 identical cells, more than... a neighbourhood's worth
    f = np.r_[np.arange(60.0), np.full(12, 0.0)]
    model = GradientModel(n_neighbors=5, n_dims=2).fit(Y)
    res = model.gradients(np.c_[f, f**2])
    assert np.isfinite(res.gradients).all()
    assert np.isfinite(res.se).all()
    # a cell whose neighbours are all its duplicates sees no variation: gradient exactly zero
    assert np.abs(res.gradients[60]).max() < 1e-6


def test_standard_errors_calibrated_on_pure_noise(plane_model):
    # For independent noise, |beta|^2 / SE^2 averages to 1 when SE is right (mean over many cells and genes;
    # the 0.8-1.3 band allows for the estimated noise variance: E[1/chi2_nu * nu] = nu / (nu - 2) with nu ~ 25
    # neighbours pooled, and for the probe estimate at t > 0).
    _, _, _, model = plane_model
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((model.frames_.shape[0], 100)) * 0.3
    res = model.gradients(noise)
    ratio = (res.gradients**2).sum(axis=2) / res.se**2
    means = ratio.mean(axis=(0, 1))
    assert np.all(means > 0.8), means
    assert np.all(means < 1.3), means


def test_constant_signal_has_zero_gradient(plane_model):
    _, _, _, model = plane_model
    res = model.gradients(np.full((model.frames_.shape[0], 1), 2.5))
    # rows of D sum to zero exactly; float32 rounding leaves at most ~eps * |f| * sum_j |D_ij| per row
    n, d = model.frames_.shape[0], model.n_dims_
    for j, t in enumerate(model.scales_):
        l1 = np.asarray(abs(model.operators_[t]).sum(axis=1)).reshape(n, d)
        assert np.all(np.abs(res.gradients[:, 0, :, j]) <= 4 * np.finfo(np.float32).eps * 2.5 * l1 + 1e-12)


def test_chunking_does_not_change_results(plane_model):
    Z, _, _, model = plane_model
    F = np.c_[np.sin(3 * Z[:, 0]), Z[:, 1], Z[:, 0] * Z[:, 1], np.cos(Z[:, 1])]
    whole = model.gradients(F).gradients
    parts = np.concatenate([c.gradients for c in model.iter_gradients(F, chunk_size=3)], axis=1)
    np.testing.assert_array_equal(whole, parts)


def test_quadratic_design_reduces_bias_on_a_curved_function():
    # On a noise-free plane the quadratic design fits f = z0^2 exactly (up to ridge), the linear one does not.
    Z, Y, Q = flat_plane(n=800, seed=4)
    f = Z[:, 0] ** 2
    true = np.outer(2 * Z[:, 0], Q[:, 0])
    inner = (np.abs(Z) < 0.8).all(axis=1)
    errs = {}
    for quad in (False, True):
        m = GradientModel(n_neighbors=20, n_dims=2, quadratic=quad, scales=(0,)).fit(Y)
        g = m.to_ambient(m.gradients(f[:, None], with_se=False).gradients[:, 0, :, 0])
        errs[quad] = np.abs(g - true)[inner].max()
    assert errs[True] < 1e-3
    assert errs[True] < errs[False] / 10


def test_a_subset_of_scales_is_the_same_computation(plane_model):
    # the same diffusion steps and products in the same order, the larger scales' skipped: equal to the bit
    Z, Y, Q, model = plane_model
    rng = np.random.default_rng(0)
    F = np.column_stack([np.sin(3 * Z[:, 0]), Z[:, 1] ** 2, rng.normal(size=len(Z))])
    full = model.gradients_chunk(F, with_signals=True)
    for subset in ([0], [2], [1, 4], [8]):
        part = model.gradients_chunk(F, with_signals=True, scales=subset)
        cols = [model.scales_.index(t) for t in subset]
        np.testing.assert_array_equal(part.gradients, full.gradients[..., cols])
        np.testing.assert_array_equal(part.se, full.se[..., cols])  # the noise is always estimated at t = 0
        np.testing.assert_array_equal(part.signals, full.signals[..., cols])
    for bad in ([3], [4, 1], [], [0, 0]):
        with pytest.raises(ValueError, match="subset of the model's"):
            model.gradients_chunk(F, scales=bad)


@pytest.mark.parametrize("q", [1, 2, 3, 5])
def test_residual_variance_kernel_is_its_formula(q):
    """max(s2 - f (2 s1 - f) - theta^T form theta, 0) / dof, written with einsum, for the compiled pass (both of
    its branches: explicit sums up to q = 3, the quadratic form above)."""
    from genegrad._core._operator import residual_variance

    rng = np.random.default_rng(q)
    n, g = 40, 3
    X = rng.normal(size=(n, g)).astype(np.float32)
    S = np.concatenate([rng.normal(size=(n, g)), rng.uniform(2, 6, size=(n, g))], axis=1).astype(np.float32)
    theta = rng.normal(size=(n, q, g)).astype(np.float32)
    A = rng.normal(size=(n, q, q))
    form = A @ A.transpose(0, 2, 1) / q  # symmetric positive semi-definite, as B^T W B + 2 ridge is
    inv_dof = rng.uniform(0.1, 1.0, size=n)
    x, s1, s2, th = (np.asarray(v, dtype=np.float64) for v in (X, S[:, :g], S[:, g:], theta))
    want = (s2 - x * (2 * s1 - x) - np.einsum("iaj,iab,ibj->ij", th, form, th)) * inv_dof[:, None]
    want = np.maximum(want, 0.0)
    assert (want == 0).any()  # both sides of the clip are exercised
    assert (want > 0).any()
    out = np.empty((n, g), dtype=np.float32)
    residual_variance(S, X, theta, form, inv_dof, out)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)  # float32 output of float64 arithmetic
