"""The local fits behind the gradient operator, against least squares and expectations written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from genegrad._core import _operator


def star(k: int = 7, seed: int = 0):
    """40 cells near a plane in 3-D, the tangent plane the first two coordinates (frames e1, e2), k neighbours."""
    rng = np.random.default_rng(seed)
    Y = np.column_stack([rng.normal(size=(40, 2)), 0.01 * rng.normal(size=40)])
    d2 = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    idx = np.argsort(d2, axis=1)[:, 1:k + 1]
    frames = np.broadcast_to(np.eye(3)[:, :2], (40, 3, 2)).copy()
    w = rng.uniform(0.01, 0.05, size=(40, k))  # affinities summing below 1: the fits normalise them
    return Y, frames, idx, w


def test_fit_local_is_weighted_least_squares_of_neighbour_differences():
    """Each cell's coefficients applied to any signal give the weighted least-squares fit of its neighbours'
    differences on their displacements in the tangent frame (ridge 0: only the 1e-10 floor remains), the
    Gram matrix is B^T W B with W the weights normalised to sum 1, and column 0 makes the fit blind to a
    constant."""
    Y, frames, idx, w = star()
    fits = _operator.fit_local(Y, frames, idx, w, ridge=0.0, chunk_size=16)  # blocks of cells: 16, 16, 8
    f = np.random.default_rng(1).normal(size=40)
    for i in (0, 5, 17, 39):
        A = (Y[idx[i]] - Y[i]) @ frames[i]
        Wn = w[i] / w[i].sum()
        sw = np.sqrt(Wn)
        beta = np.linalg.lstsq(A * sw[:, None], (f[idx[i]] - f[i]) * sw, rcond=None)[0]
        got = fits.coef[i, :, 0] * f[i] + fits.coef[i, :, 1:] @ f[idx[i]]
        np.testing.assert_allclose(got, beta, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fits.gram[i], A.T @ (A * Wn[:, None]), rtol=1e-10)
        np.testing.assert_allclose(fits.weights[i], Wn)
    np.testing.assert_allclose(fits.coef.sum(axis=2), 0.0, atol=1e-5)


def test_fit_local_ridge_shrinks_and_is_scaled_per_block():
    """The ridge is ``ridge`` x the mean diagonal of B^T W B (per block) plus a floor: recorded per coefficient,
    and the coefficients solve the ridged system."""
    Y, frames, idx, w = star()
    fits = _operator.fit_local(Y, frames, idx, w, ridge=0.5, quadratic=True)
    q = fits.coef.shape[1]
    assert q == 5  # 2 linear + 3 quadratic terms in d = 2
    for i in (0, 13, 39):
        g = fits.gram[i]
        lin, quad = np.diag(g)[:2].mean(), np.diag(g)[2:].mean()
        np.testing.assert_allclose(fits.ridge[i, :2], 0.5 * lin, rtol=1e-6)
        np.testing.assert_allclose(fits.ridge[i, 2:], 0.5 * quad, rtol=1e-6)
        A = (Y[idx[i]] - Y[i]) @ frames[i]
        B = np.column_stack([A, A[:, 0] ** 2, A[:, 0] * A[:, 1], A[:, 1] ** 2])
        Wn = w[i] / w[i].sum()
        C = np.linalg.solve(B.T @ (B * Wn[:, None]) + np.diag(fits.ridge[i]), (B * Wn[:, None]).T)
        np.testing.assert_allclose(fits.coef[i, :, 1:], C, rtol=1e-4, atol=1e-6)


def test_fit_local_quadratic_design_recovers_a_curved_gradient_exactly():
    """f = 3 x + 2 y + x^2 - x y: with the quadratic design the gradient at each cell is exact (up to the tiny
    ridge), with the linear design it is off by the curvature the neighbours see."""
    Y, frames, idx, w = star(k=12)
    f = 3 * Y[:, 0] + 2 * Y[:, 1] + Y[:, 0] ** 2 - Y[:, 0] * Y[:, 1]
    truth = np.column_stack([3 + 2 * Y[:, 0] - Y[:, 1], 2 - Y[:, 0]])
    for quadratic, close in ((True, True), (False, False)):
        fits = _operator.fit_local(Y, frames, idx, w, quadratic=quadratic, ridge=1e-9)
        g = (_operator.gradient_matrix(fits.coef, idx, 2) @ f).reshape(40, 2)
        assert np.allclose(g, truth, atol=1e-3) == close


def test_fit_local_dof_is_the_expected_weighted_residual_sum_of_squares():
    """dof_i = E[RSS_i] / sigma^2 for independent noise on every cell: tr(R^T W R (I + 1 1^T)) with R the
    residual maker of the weighted fit (the neighbour differences share the cell's own noise), computed here
    with explicit matrices; and checked by simulation."""
    Y, frames, idx, w = star(k=9)
    fits = _operator.fit_local(Y, frames, idx, w, ridge=1e-3)
    k = idx.shape[1]
    rng = np.random.default_rng(0)
    for i in (0, 21):
        C = fits.coef[i, :, 1:].astype(np.float64)
        A = (Y[idx[i]] - Y[i]) @ frames[i]
        R = np.eye(k) - A @ C
        Wn = np.diag(w[i] / w[i].sum())
        expected = np.trace(R.T @ Wn @ R @ (np.eye(k) + np.ones((k, k))))
        assert fits.dof[i] == pytest.approx(expected, rel=1e-4)
        eps = rng.normal(size=(20000, 40))
        e = eps[:, idx[i]] - eps[:, [i]]
        r = e @ R.T
        rss = (r**2 * np.diag(Wn)).sum(axis=1)
        # one draw's RSS has a relative SD of about sqrt(2 / k) = 0.5: the mean of 20,000 has SE ~0.35%; ~5 SE
        assert rss.mean() == pytest.approx(fits.dof[i], rel=0.02)


def test_stacked_operators_put_each_cell_and_component_on_its_row():
    """Row i d + l of D holds component l of cell i: its own coefficient on column i, the neighbours' on theirs,
    a neighbour listed twice summed; design_matrix keeps every fitted term; weight_matrix puts the normalised
    weights on the neighbours."""
    coef = np.arange(4 * 3 * 4, dtype=np.float32).reshape(4, 3, 4) + 1  # 4 cells, q = 3, k = 3
    idx = np.array([[1, 2, 2], [0, 3, 2], [3, 0, 1], [2, 1, 0]])
    full = np.zeros((8, 4))
    for i in range(4):
        for comp in range(2):
            full[i * 2 + comp, i] += coef[i, comp, 0]
            for j in range(3):
                full[i * 2 + comp, idx[i, j]] += coef[i, comp, j + 1]
    np.testing.assert_allclose(_operator.gradient_matrix(coef, idx, 2).toarray(), full)
    Q = _operator.design_matrix(coef, idx)
    assert Q.shape == (12, 4)
    assert Q[5, 1] == coef[1, 2, 0]  # row 1 x 3 + 2: cell 1's third term, own coefficient
    assert Q[2, 2] == coef[0, 2, 2] + coef[0, 2, 3]  # cell 0 lists cell 2 twice
    wts = np.array([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    W = _operator.weight_matrix(wts, np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]))
    np.testing.assert_allclose(W.toarray(), [[0, 0.5, 0.25, 0.25], [0.2, 0, 0.3, 0.5], [0.1, 0.1, 0, 0.8],
                                             [0.6, 0.3, 0.1, 0]])
