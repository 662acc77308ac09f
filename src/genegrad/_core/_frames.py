"""Tangent frames by weighted local PCA, and intrinsic-dimension estimation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._threads import for_blocks

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from scipy import sparse


def smooth_coordinates(Y: NDArray, P: sparse.csr_matrix, n_steps: int) -> NDArray[np.float64]:
    """``P^n Y``: the representation denoised by ``n_steps`` diffusion steps."""
    Ys = np.asarray(Y, dtype=np.float64)
    P64 = P.astype(np.float64)
    for _ in range(n_steps):
        Ys = P64 @ Ys
    return Ys


def local_spectra(
    Ys: NDArray, idx: NDArray, weights: NDArray, *, chunk_size: int = 4096, values_only: bool = False,
    cells: NDArray | None = None, n_vecs: int | None = None, n_jobs: int | None = -1,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Weighted local PCA of neighbour displacements at every cell (of ``idx``'s rows).

    Returns ``(eigvals, eigvecs)`` with shapes ``(N, r)`` and ``(N, p, n_vecs)``, ``r = min(k, p)``, in
    decreasing order of variance; ``n_vecs`` (default ``r``) leading eigenvectors are kept, ``eigvecs`` is
    ``None`` with ``values_only``. With ``cells``, ``idx`` and ``weights`` are the neighbours of those cells only
    (a subsample). Blocks of ``chunk_size`` cells run on ``n_jobs`` threads (results do not depend on it).
    """
    n = idx.shape[0]
    p = Ys.shape[1]
    k = idx.shape[1]
    r = min(k, p)
    m = r if n_vecs is None else min(int(n_vecs), r)
    vals = np.empty((n, r))
    vecs = None if values_only else np.empty((n, p, m))
    rows = np.arange(n) if cells is None else np.asarray(cells)

    def block(s: int, e: int) -> None:
        w = weights[s:e] / np.maximum(weights[s:e].sum(axis=1, keepdims=True), 1e-300)
        X = (Ys[idx[s:e]] - Ys[rows[s:e], None, :]) * np.sqrt(w)[:, :, None]  # (c, k, p)
        if p <= k:  # eigen-decomposition of the p x p weighted covariance: cheaper than the SVD of X
            C = np.matmul(np.swapaxes(X, 1, 2), X)
            if values_only:
                vals[s:e] = np.maximum(np.linalg.eigvalsh(C)[:, ::-1][:, :r], 0.0)
                return
            ev, V = np.linalg.eigh(C)
            vals[s:e] = np.maximum(ev[:, ::-1][:, :r], 0.0)
            vecs[s:e] = V[:, :, ::-1][:, :, :m]
        else:
            _, sv, vt = np.linalg.svd(X, full_matrices=False)
            vals[s:e] = sv[:, :r] ** 2
            if not values_only:
                vecs[s:e] = np.swapaxes(vt[:, :m, :], 1, 2)

    for_blocks(block, n, chunk_size, n_jobs=n_jobs)
    return vals, vecs


def average_frames(
    frames: NDArray, idx: NDArray, weights: NDArray, *, n_iter: int = 5, chunk_size: int = 4096,
    n_jobs: int | None = -1,
) -> NDArray[np.float64]:
    """Consensus tangent frames: the leading eigenvectors of each neighbourhood's mean projector.

    At every cell, the ``d`` leading eigenvectors of ``M_i``, the weighted mean of the projectors ``U_j U_j^T``
    over the cell and its neighbours, by ``n_iter`` steps of subspace iteration from the cell's own frame
    (``V <- orth(M_i V)``, never forming ``M_i``: ``(k + 1) p d^2`` operations per step and cell instead of a
    ``p x p`` eigenproblem). ``frames`` ``(N, p, d)`` orthonormal; ``idx`` and ``weights`` ``(N, k)`` the
    neighbours and their affinities (the cell itself counts with its largest neighbour weight).

    Tangent spaces vary slowly along the manifold while the errors of single local PCAs do not, so the mean
    projector keeps the former and averages out the latter; it helps most where a neighbourhood is one-sided
    (the manifold's boundary), where the local PCA of smoothed coordinates is least reliable. The own frame is
    a close start: each step shrinks the distance to the leading eigenspace by the eigenvalue ratio
    ``lambda_{d+1} / lambda_d`` of ``M_i``, small wherever the neighbours' frames roughly agree. Blocks of
    ``chunk_size`` cells run on ``n_jobs`` threads.
    """
    n = frames.shape[0]
    cols = np.concatenate([np.arange(n)[:, None], idx], axis=1)  # (N, k + 1)
    w = np.concatenate([weights.max(axis=1, keepdims=True), weights], axis=1)
    w[w.sum(axis=1) <= 0, 0] = 1.0  # a cell without weighted neighbours keeps its own frame
    w = w / w.sum(axis=1, keepdims=True)
    d = frames.shape[2]
    out = np.empty(frames.shape)

    def block(s: int, e: int) -> None:
        Z = np.asarray(frames[cols[s:e]], dtype=np.float64)  # (c, k+1, p, d)
        Z = np.swapaxes(Z, 1, 2).reshape(e - s, frames.shape[1], -1)  # (c, p, (k+1) d): M_i = Z W Z^T
        wz = np.repeat(w[s:e], d, axis=1)[:, :, None]  # each neighbour's weight on its d columns
        V = Z[:, :, :d]  # the cell's own frame
        for _ in range(n_iter):
            V = np.linalg.qr(np.matmul(Z, wz * np.matmul(np.swapaxes(Z, 1, 2), V)))[0]
        out[s:e] = V

    for_blocks(block, n, chunk_size, n_jobs=n_jobs)
    return out


def estimate_dimension(eigvals: NDArray, *, max_dim: int = 10, floor: float = 0.01) -> tuple[int, NDArray]:
    """Intrinsic dimension from the local PCA spectra: the largest gap in the median spectrum.

    ``eigvals`` ``(N, r)`` are local variances in decreasing order, best from coordinates smoothed by a few
    diffusion steps so that noise directions have shrunk. Each cell's spectrum is normalised to sum one, the
    median over cells taken, and ``d`` is where consecutive median eigenvalues drop the most (largest ratio),
    with eigenvalues floored at ``floor`` times the first. Returns ``(d, median spectrum)``.

    Notes
    -----
    Measured on the synthetic manifolds: with 16 smoothing steps this criterion returned the true dimension of
    the plane, swiss roll, curved sheet, cube (3-D), cycle and tree at 3,000 cells and 250-1,000 UMIs/cell, and
    of the plane and tree at 10,000 cells; with 4 steps it overestimated d in 5 of 21 benchmark settings (noise
    directions not yet shrunk), and the Levina-Bickel maximum-likelihood estimate on smoothed coordinates gave
    1.1-1.9 for every manifold.
    """
    ev = np.asarray(eigvals, dtype=np.float64)
    ev = ev / np.maximum(ev.sum(axis=1, keepdims=True), 1e-300)
    spectrum = np.median(ev, axis=0)
    top = spectrum[: max_dim + 1]
    if top.size < 2 or top[0] <= 0:
        return 1, spectrum
    top = np.maximum(top, floor * top[0])  # a drop to (numerically) nothing is the largest gap
    ratios = top[:-1] / np.maximum(top[1:], 1e-300)
    return int(np.argmax(ratios) + 1), spectrum
