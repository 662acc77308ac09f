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
    "coherence",  # |mean direction| (synchronised frame, magnitude-weighted): 1 for a ramp, ~0 for a bump
    "axiality",  # top eigenvalue share of the mean direction outer product: 1 when all gradients are parallel
    "localisation",  # Gini coefficient of |grad| over cells: 0 everywhere alike, 1 in one cell
    "peakedness",  # Laplacian at the top and bottom deciles of P^t f: +1 peak, -1 trough, 0 ramp or saddle
    "extrema",  # share of cells (a fixed sample of 5,000) that are strict local maxima or minima of P^t f
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
    of the representation, which makes ``magnitude`` dimensionless; ``to_intrinsic`` ``(N, d, d)`` rotates a
    tangent gradient into a global frame (:func:`synchronized_frames`), in which the directions of different
    cells can be compared (ambient directions turn with the manifold's curvature).
    """
    grads, signals = chunk.gradients, chunk.signals
    if signals is None:
        msg = "chunk_descriptors needs the smoothed signals: compute the chunk with `with_signals=True`."
        raise ValueError(msg)
    n, g, d, T = grads.shape
    frames, idx = model.frames_, model.knn_indices_
    p = frames.shape[1]
    n_align, m = min(2, p), to_intrinsic.shape[1]
    cell_block = max(64, block_bytes // (g * T * max(d, m, 8) * 8))
    # extrema are counted on a fixed sample of cells: a share, estimated to within sqrt(0.25 / n) of the mean
    sample = _extrema_sample(n)
    out = np.zeros((g, len(DESCRIPTORS), T))
    sum_mag = np.zeros((g, T))
    sum_vec = np.zeros((g, T, m))
    outer = np.zeros((g, T, m, m))
    sum_align = np.zeros((g, T))
    n_extrema = np.zeros((g, T))
    for s in range(0, n, cell_block):
        e = min(s + cell_block, n)
        block = grads[s:e].astype(np.float64)
        mag = np.linalg.norm(block, axis=2)  # (c, g, T): frames are orthonormal, |U beta| = |beta|
        sum_mag += mag.sum(axis=0)
        # unit directions in intrinsic coordinates, weighted by the tangent length
        c = np.einsum("cmd,cgdt->cgtm", to_intrinsic[s:e], grads[s:e], optimize=True).astype(np.float64)
        u = c * (mag / np.maximum(np.linalg.norm(c, axis=3), 1e-300))[..., None]
        sum_vec += u.sum(axis=0)
        outer += _weighted_outer(u, mag).reshape(g, T, m, m)
        # the gradient along the first representation coordinates: (U beta)[:2] = U[:2] beta
        lead = np.einsum("cad,cgdt->cgta", frames[s:e, :n_align], block, optimize=True)
        sum_align += np.linalg.norm(lead, axis=3).sum(axis=0)
        cells = sample[(sample >= s) & (sample < e)]
        if cells.size:
            nb = signals[idx[cells]]  # (c', k, g, T)
            own = signals[cells][:, None]
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
    out[:, 6] = n_extrema / sample.size
    out[:, 7] = mean_mag / np.maximum(mean_mag[:, :1], 1e-300)
    out[:, 8] = sum_align / np.maximum(sum_mag, 1e-300)
    out[:, 9] = signals.astype(np.float64).var(axis=0) / np.maximum(sd, 1e-12)[:, None] ** 2
    # a gene with no gradient anywhere (constant) has no geometry
    flat_gene = sum_mag.max(axis=1) <= 1e-12 * n
    out[flat_gene, 1:] = np.nan
    return out


#: Cells on which the share of local extrema is counted (all cells below this).
EXTREMA_SAMPLE = 5000


def _extrema_sample(n: int) -> NDArray[np.int64]:
    if n <= EXTREMA_SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, EXTREMA_SAMPLE, replace=False))


def _weighted_outer(u: NDArray, mag: NDArray) -> NDArray:
    """``sum_i |b_i| e_i e_i^T`` from ``u_i = |b_i| e_i`` ``(c, g, T, m)``: ``u u^T / |b|``."""
    c, g, T, m = u.shape
    e = u / np.sqrt(np.maximum(mag, 1e-300))[..., None]
    flat = np.ascontiguousarray(e.reshape(c, g * T, m).transpose(1, 2, 0))  # (gT, m, c)
    return np.matmul(flat, flat.transpose(0, 2, 1))


def synchronized_frames(model: GradientModel, *, n_iter: int = 20, cell_block: int = 4096) -> NDArray:
    """``(N, d, d)`` rotations that bring every cell's tangent frame into one global frame.

    Neighbouring frames are aligned by the orthogonal Procrustes map ``O_ij = polar(U_i^T U_j)`` (coordinates
    in frame ``j`` to frame ``i``); the global frame solves ``R_j = R_i O_ij`` over the kNN graph
    (synchronisation, as in Singer & Wu's vector diffusion maps): first propagated along a breadth-first tree
    from one cell per connected component, then refined by ``n_iter`` averaging steps
    ``R_i <- polar(sum_j R_j O_ij^T)``, which spread the alignment errors over the neighbourhood instead of
    letting them pile up along the tree. For a flat or developable manifold (plane, swiss roll, strips, trees,
    cycles) the result is a parallel frame: a gradient's coordinates ``R_i beta_i`` can be compared between
    distant cells, which ambient directions cannot (they turn with the embedding's curvature).
    """
    from scipy import sparse
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    U = model.frames_.astype(np.float64)
    idx = model.knn_indices_
    n, k = idx.shape
    d = U.shape[2]
    O = np.empty((n, k, d, d))
    for s in range(0, n, cell_block):
        e = min(s + cell_block, n)
        M = np.einsum("npd,nkpe->nkde", U[s:e], U[idx[s:e]], optimize=True)
        A, _, Bt = np.linalg.svd(M)
        O[s:e] = A @ Bt
    G = sparse.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    R = np.tile(np.eye(d), (n, 1, 1))
    _, comp = connected_components(G, directed=False)
    for c in np.unique(comp):
        root = int(np.flatnonzero(comp == c)[0])
        order, pred = breadth_first_order(G, root, directed=False, return_predecessors=True)
        for j in order[1:]:
            i = pred[j]
            pos = np.flatnonzero(idx[i] == j)
            # O_ij from i's list of neighbours, or O_ji^T when only j lists i
            O_ij = O[i, pos[0]] if pos.size else O[j, np.flatnonzero(idx[j] == i)[0]].T
            R[j] = R[i] @ O_ij
    for _ in range(n_iter):
        M = np.einsum("nkab,nkcb->nac", R[idx], O)  # sum_j R_j O_ij^T
        A, _, Bt = np.linalg.svd(M + 1e-12 * R)
        R = A @ Bt
    return R


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
