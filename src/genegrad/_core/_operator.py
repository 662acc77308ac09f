"""The gradient operator: a sparse linear map from a signal on cells to its tangent gradient."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
from scipy import sparse

from ._threads import for_blocks

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass
class LocalFits:
    """Per-cell weighted least-squares fits, everything needed to apply them and to judge their noise.

    Attributes
    ----------
    coef
        ``(N, q, k + 1)``: column 0 multiplies the cell's own value, columns ``1..k`` its neighbours'.
        Rows ``0..d-1`` are the gradient, the rest (local-quadratic design) are second-order terms.
    gram
        ``(N, q, q)``: ``B^T W B`` without the ridge.
    ridge
        ``(N, q)``: the ridge added to each coefficient.
    weights
        ``(N, k)``: regression weights, rows summing to one.
    dof
        ``(N,)``: ``E[RSS] / sigma^2`` under independent noise of variance ``sigma^2`` on every cell.
    """

    coef: NDArray[np.float32]
    gram: NDArray[np.float64]
    ridge: NDArray[np.float64]
    weights: NDArray[np.float64]
    dof: NDArray[np.float64]


def _design(A: NDArray, quadratic: bool) -> NDArray:
    if not quadratic:
        return A
    d = A.shape[-1]
    iu = np.triu_indices(d)
    quad = A[..., iu[0]] * A[..., iu[1]]
    return np.concatenate([A, quad], axis=-1)


def fit_local(
    Y: NDArray,
    frames: NDArray,
    idx: NDArray,
    weights: NDArray,
    *,
    quadratic: bool = False,
    ridge: float = 1e-6,
    chunk_size: int = 4096,
    n_jobs: int | None = -1,
) -> LocalFits:
    """Fit ``f_j - f_i ~ a_ij^T beta`` around every cell, ``a_ij = U_i^T (y_j - y_i)``.

    The solution ``beta_i = (B^T W B + L)^-1 B^T W (f_nbrs - f_i)`` is linear in ``f``; its coefficients are
    returned, not applied. ``L`` is a ridge of ``ridge`` times the mean diagonal of ``B^T W B`` per block
    (linear and quadratic terms separately) plus a tiny absolute floor, so collapsed neighbourhoods (duplicated
    cells) give a zero gradient rather than NaN. Blocks of ``chunk_size`` cells run on ``n_jobs`` threads.
    """
    n, k = idx.shape
    d = frames.shape[2]
    q = d + (d * (d + 1) // 2 if quadratic else 0)
    coef = np.empty((n, q, k + 1), dtype=np.float32)
    gram = np.empty((n, q, q))
    lam = np.empty((n, q))
    dof = np.empty(n)
    W = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)
    # absolute floor relative to the typical squared neighbour distance
    scale2 = float(np.median(np.sum((Y[idx[:, -1]] - Y) ** 2, axis=1))) or 1.0
    blocks = [slice(0, d)] + ([slice(d, q)] if quadratic else [])

    def fit_block(s: int, e: int) -> None:
        disp = Y[idx[s:e]] - Y[s:e, None, :]  # (c, k, p)
        A = np.matmul(disp, frames[s:e])  # (c, k, d)
        B = _design(A, quadratic)  # (c, k, q)
        w = W[s:e]
        BW = B * w[:, :, None]
        M0 = np.matmul(np.swapaxes(BW, 1, 2), B)
        L = np.zeros((e - s, q))
        for j, blk in enumerate(blocks):
            diag = np.einsum("cqq->cq", M0[:, blk, blk]).mean(axis=1)
            floor = 1e-10 * (scale2 ** (j + 1))
            L[:, blk] = (ridge * diag + floor)[:, None]
        M = M0 + L[:, :, None] * np.eye(q)
        C = np.linalg.solve(M, np.swapaxes(BW, 1, 2))  # (c, q, k)
        coef[s:e, :, 1:] = C
        coef[s:e, :, 0] = -C.sum(axis=2)
        gram[s:e] = M0
        lam[s:e] = L
        # E[RSS]/sigma^2 with residual r = (I - B C) e, e = eps_nbrs - eps_i 1, Cov(e) = sigma^2 (I + 11^T)
        R = np.eye(k) - np.matmul(B, C)  # residual maker I - hat matrix (c, k, k)
        WR = R * w[:, :, None]
        # trace(R^T W R) + 1^T R^T W R 1, without forming R^T W R
        dof[s:e] = (R * WR).sum(axis=(1, 2)) + (R.sum(axis=2) * WR.sum(axis=2)).sum(axis=1)

    for_blocks(fit_block, n, chunk_size, n_jobs=n_jobs)
    return LocalFits(coef=coef, gram=gram, ridge=lam, weights=W, dof=np.maximum(dof, 1e-6))


def gradient_matrix(coef: NDArray, idx: NDArray, n_dims: int) -> sparse.csr_matrix:
    """The operator ``D`` as one ``(N d) x N`` CSR matrix; row ``i d + l`` gives component ``l`` at cell ``i``."""
    return _stack(coef[:, :n_dims, :], idx)


def design_matrix(coef: NDArray, idx: NDArray) -> sparse.csr_matrix:
    """All ``q`` fitted coefficients (gradient and quadratic terms) as one ``(N q) x N`` CSR matrix."""
    return _stack(coef, idx)


def _stack(coef: NDArray, idx: NDArray) -> sparse.csr_matrix:
    n, q, k1 = coef.shape
    cols = np.concatenate([np.arange(n)[:, None], idx], axis=1)  # (n, k+1)
    cols = np.broadcast_to(cols[:, None, :], (n, q, k1)).reshape(-1)
    indptr = np.arange(0, n * q * k1 + 1, k1, dtype=np.int64)
    D = sparse.csr_matrix((coef.reshape(-1).copy(), cols, indptr), shape=(n * q, n))
    D.sum_duplicates()  # duplicated neighbours, self listed as a neighbour
    return D


def weight_matrix(weights: NDArray, idx: NDArray) -> sparse.csr_matrix:
    """Row-normalised regression weights as an ``N x N`` CSR matrix."""
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    return sparse.csr_matrix((weights.ravel(), (rows, idx.ravel())), shape=(n, n))


@numba.njit(cache=True, nogil=True)
def residual_variance(S, X, theta, form, inv_dof, out):  # pragma: no cover - compiled
    """``out[i, j] = max(RSS_ij, 0) / dof_i``, in float64 arithmetic.

    ``RSS = s2 - f_i (2 s1 - f_i) - theta^T form theta``, with ``S = [s1, s2]`` the weighted sums of ``f`` and
    ``f^2`` over each neighbourhood (see ``GradientModel._noise_variance``).
    """
    n, g = X.shape
    q = form.shape[1]
    for i in range(n):
        for j in range(g):
            x = np.float64(X[i, j])
            r = np.float64(S[i, g + j]) - x * (2 * np.float64(S[i, j]) - x)
            if q <= 3:
                for a in range(q):
                    ta = np.float64(theta[i, a, j])
                    r -= form[i, a, a] * ta**2
                    for b in range(a + 1, q):
                        r -= (2 * form[i, a, b]) * ta * np.float64(theta[i, b, j])
            else:
                quad = 0.0
                for a in range(q):
                    acc = 0.0
                    for b in range(q):
                        acc += form[i, a, b] * np.float64(theta[i, b, j])
                    quad += np.float64(theta[i, a, j]) * acc
                r -= quad
            out[i, j] = max(r, 0.0) * inv_dof[i]
