"""Descriptors of each gene's gradient field, computed from one gene chunk at a time.

Every descriptor is a sum over cells (or a per-gene statistic of one ``(N,)`` vector), so a chunk of genes is
reduced to ``(g, n_descriptors, T)`` numbers and the ``N x G x d x T`` tensor is never held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._model import GradientChunk, GradientModel

#: Names of the descriptors, in the order of the second axis of :func:`chunk_descriptors`'s output.
DESCRIPTORS = (
    "magnitude",  # mean |grad P^t f| x length scale / sd(f): dimensionless size of the gradients
    "snr",  # mean |grad|^2 / SE^2: 1 for pure noise
    "coherence",  # |mean direction| (intrinsic coordinates, magnitude-weighted): 1 for a ramp, ~0 for a bump
    "axiality",  # top eigenvalue share of the mean direction outer product: 1 when all gradients are parallel
    "localisation",  # Gini coefficient of |grad| over cells: 0 everywhere alike, 1 in one cell
    "peakedness",  # Laplacian at the top and bottom deciles of P^t f: +1 peak, -1 trough, 0 ramp or saddle
    "extrema",  # share of cells that are strict local maxima or minima of P^t f among their neighbours
    "decay",  # mean |grad P^t f| / mean |grad f|: structure persists across scales, noise dies
    "alignment",  # magnitude-weighted share of the gradient along the first two coordinates (main axes)
    "smoothness",  # Var(P^t f) / Var(f): share of the variance that survives t diffusion steps
)


#: Share of cells with the highest values over which ``peakedness`` averages the Laplacian.
TOP_SHARE = 0.1


def chunk_descriptors(
    model: GradientModel,
    chunk: GradientChunk,
    *,
    length_scale: float,
    sd: NDArray,
    to_intrinsic: NDArray,
    block_bytes: int = 2**26,
) -> NDArray[np.float64]:
    """``(g, len(DESCRIPTORS), T)`` descriptors of one chunk (computed with ``with_signals=True``).

    ``sd`` ``(g,)`` is each gene's standard deviation over cells at scale 0; ``length_scale`` the RMS spread
    of the representation, which makes ``magnitude`` dimensionless; ``to_intrinsic`` ``(N, T, m, d)`` maps a
    tangent gradient to the derivatives along intrinsic coordinates (:func:`intrinsic_map`), in which the
    directions of different cells can be compared (ambient directions turn with the manifold's curvature).
    """
    grads, signals = chunk.gradients, chunk.signals
    if signals is None:
        msg = "chunk_descriptors needs the smoothed signals: compute the chunk with `with_signals=True`."
        raise ValueError(msg)
    n, g, _, T = grads.shape
    frames, idx = model.frames_, model.knn_indices_
    p = frames.shape[1]
    n_align, m = min(2, p), to_intrinsic.shape[2]
    cell_block = max(64, block_bytes // (g * T * p * 8))
    out = np.zeros((g, len(DESCRIPTORS), T))
    sum_mag = np.zeros((g, T))
    sum_vec = np.zeros((g, T, m))
    outer = np.zeros((g, T, m, m))
    sum_align = np.zeros((g, T))
    n_extrema = np.zeros((g, T))
    for s in range(0, n, cell_block):
        e = min(s + cell_block, n)
        # ambient gradients U_i beta_i of the block: (c, g, T, p)
        amb = np.einsum("cpd,cgdt->cgtp", frames[s:e], grads[s:e], optimize=True).astype(np.float64)
        mag = np.linalg.norm(amb, axis=3)
        sum_mag += mag.sum(axis=0)
        # unit directions in intrinsic coordinates, weighted by the tangent length
        c = np.einsum("ctmd,cgdt->cgtm", to_intrinsic[s:e], grads[s:e], optimize=True).astype(np.float64)
        u = c * (mag / np.maximum(np.linalg.norm(c, axis=3), 1e-300))[..., None]
        sum_vec += u.sum(axis=0)
        outer += _weighted_outer(u, mag).reshape(g, T, m, m)
        sum_align += np.linalg.norm(amb[..., :n_align], axis=3).sum(axis=0)
        nb = signals[idx[s:e]]  # (c, k, g, T)
        own = signals[s:e][:, None]
        is_max = (own > nb).all(axis=1)
        is_min = (own < nb).all(axis=1)
        n_extrema += (is_max | is_min).sum(axis=0)
    mean_mag = sum_mag / n
    out[:, 0] = mean_mag * length_scale / np.maximum(sd, 1e-12)[:, None]
    if chunk.se is not None:
        beta2 = (grads.astype(np.float64) ** 2).sum(axis=2)
        out[:, 1] = (beta2 / np.maximum(chunk.se.astype(np.float64) ** 2, 1e-24)).mean(axis=0)
    else:
        out[:, 1] = np.nan
    out[:, 2] = np.linalg.norm(sum_vec, axis=2) / np.maximum(sum_mag, 1e-300)
    eig = np.linalg.eigvalsh(outer)
    out[:, 3] = eig[..., -1] / np.maximum(eig.sum(axis=-1), 1e-300)
    mags = np.linalg.norm(grads, axis=2)  # (N, g, T): frames are orthonormal
    out[:, 4] = gini(mags)
    out[:, 5] = peakedness(model, signals)
    out[:, 6] = n_extrema / n
    out[:, 7] = mean_mag / np.maximum(mean_mag[:, :1], 1e-300)
    out[:, 8] = sum_align / np.maximum(sum_mag, 1e-300)
    out[:, 9] = signals.astype(np.float64).var(axis=0) / np.maximum(sd, 1e-12)[:, None] ** 2
    # a gene with no gradient anywhere (constant) has no geometry
    flat_gene = sum_mag.max(axis=1) <= 1e-12 * n
    out[flat_gene, 1:] = np.nan
    return out


def _weighted_outer(u: NDArray, mag: NDArray) -> NDArray:
    """``sum_i |b_i| e_i e_i^T`` from ``u_i = |b_i| e_i`` ``(c, g, T, m)``: ``u u^T / |b|``."""
    c, g, T, m = u.shape
    e = u / np.sqrt(np.maximum(mag, 1e-300))[..., None]
    flat = np.ascontiguousarray(e.reshape(c, g * T, m).transpose(1, 2, 0))  # (gT, m, c)
    return np.matmul(flat, flat.transpose(0, 2, 1))


def intrinsic_coordinates(K, n_coords: int, *, random_state: int = 0) -> NDArray[np.float64]:
    """The first ``n_coords`` non-trivial diffusion-map coordinates of the symmetric affinities ``K``.

    Eigenvectors of ``D^-1/2 K D^-1/2`` (largest eigenvalues, the constant one dropped), mapped back by
    ``D^-1/2``: smooth global coordinates along the manifold, in which gradient directions at different cells
    can be compared.
    """
    from scipy import sparse
    from scipy.sparse.linalg import eigsh

    K = sparse.csr_matrix(K, dtype=np.float64)
    deg = np.asarray(K.sum(axis=1)).ravel()
    inv = sparse.diags(1.0 / np.sqrt(np.maximum(deg, 1e-300)))
    S = inv @ K @ inv
    v0 = np.random.default_rng(random_state).uniform(0.5, 1.5, K.shape[0])
    vals, vecs = eigsh(S, k=n_coords + 1, which="LA", v0=v0)
    order = np.argsort(-vals)
    psi = inv @ vecs[:, order[1:]]
    psi *= np.sign(psi[np.argmax(np.abs(psi), axis=0), np.arange(n_coords)])  # fixed signs
    return psi


def intrinsic_map(model: GradientModel, psi: NDArray) -> NDArray[np.float64]:
    """``(N, T, m, d)``: pseudo-inverse of the gradients of the intrinsic coordinates ``psi`` at every scale.

    A tangent gradient ``beta_i = sum_m c_m grad psi_m(i)`` gives ``c = pinv([grad psi_1 ... grad psi_m]) beta``:
    the derivatives of the signal along the intrinsic coordinates.
    """
    G = model.gradients(np.asarray(psi, dtype=np.float32), with_se=False).gradients  # (N, m, d, T)
    J = np.transpose(G, (0, 3, 2, 1)).astype(np.float64)  # (N, T, d, m)
    return np.linalg.pinv(J, rcond=1e-3)


def gini(x: NDArray) -> NDArray[np.float64]:
    """Gini coefficient along axis 0 of non-negative ``x``: 0 all equal, ``1 - 1/N`` all in one entry."""
    n = x.shape[0]
    xs = np.sort(np.asarray(x, dtype=np.float64), axis=0)
    total = xs.sum(axis=0)
    ranks = np.arange(1, n + 1, dtype=np.float64).reshape(-1, *([1] * (x.ndim - 1)))
    weighted = (ranks * xs).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = (2 * weighted) / (n * total) - (n + 1) / n
    return np.where(total > 0, g, np.nan)


def peakedness(model: GradientModel, signals: NDArray) -> NDArray[np.float64]:
    """``(g, T)``: where the highest and lowest cells sit, from the graph Laplacian ``L s = (P - I) s``.

    ``-(mean L s over the top decile + mean L s over the bottom decile) / (mean |L s| over both)``, in
    ``[-1, 1]``. ``L s`` is negative on a peak and positive in a trough: +1 when the highest cells sit on a peak
    and the lowest on a plateau (bump, transient), -1 for a trough, about 0 when both ends are alike (ramp,
    periodic, saddle: the boundary and the extrema cancel).
    """
    n, g, T = signals.shape
    flat = signals.reshape(n, g * T)
    lap = (model.diffusion_ @ flat - flat).astype(np.float64)
    m = max(1, round(TOP_SHARE * n))
    order = np.argpartition(flat, (m, n - m), axis=0)
    top = np.take_along_axis(lap, order[n - m:], axis=0)
    bottom = np.take_along_axis(lap, order[:m], axis=0)
    num = -(top.mean(axis=0) + bottom.mean(axis=0))
    den = np.abs(top).mean(axis=0) + np.abs(bottom).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / den, np.nan)
    return out.reshape(g, T)
