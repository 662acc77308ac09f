"""Descriptors of each gene's gradient field, computed from one gene chunk at a time.

Every descriptor is a sum over cells (or a per-gene statistic of one ``(N,)`` vector), so a chunk of genes is
reduced to ``(g, n_descriptors, T)`` numbers and the ``N x G x d x T`` tensor is never held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np

from . import _regions
from ._threads import for_blocks

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from ._model import GradientChunk, GradientModel
    from ._regions import Coarsening

#: Each descriptor of a gene's gradient field at one scale, in plain words (``P^t f``: the gene smoothed by t
#: diffusion steps; ``|grad|``: the length of its gradient at a cell). The report prints these.
MEANINGS = {
    "magnitude": "mean |grad| x the representation's spread / the gene's SD: the gradients' size, unit-free",
    "snr": "mean |grad|^2 / SE^2: about 1 for pure noise, large for structure",
    "coherence": "length of the mean gradient direction (magnitude-weighted, one frame for all cells): 1 for a "
                 "ramp, about 0 for a bump",
    "axiality": "share of the directions along one axis (either way): 1 when all gradients are parallel",
    "localisation": "Gini coefficient of |grad| over the cells: 0 when it changes everywhere alike, 1 in one cell",
    "peakedness": "Laplacian at the highest and lowest tenth of P^t f: +1 peak, -1 trough, 0 ramp or saddle",
    "extrema": "share of cells (a sample of 5,000) that are strict local maxima or minima of P^t f",
    "decay": "mean |grad P^t f| / mean |grad f| (at the first scale): structure persists across scales, noise dies",
    "alignment": "magnitude-weighted share of the gradient along the first two coordinates (the main axes)",
    "smoothness": "Var(P^t f) / Var(f): the share of the variance that survives t diffusion steps",
    "peaks": "separate high regions of P^t f (superlevel-set components, a mean over levels, so fractional): "
             "1 for a ramp or a bump",
    "troughs": "separate low regions of P^t f (sublevel-set components, a mean over levels): 2 on either side of "
               "a ridge",
}
#: Names of the descriptors, in the order of the second axis of :func:`chunk_descriptors`'s output.
DESCRIPTORS = tuple(MEANINGS)


#: Share of cells with the highest values over which ``peakedness`` averages the Laplacian.
TOP_SHARE = 0.1
#: Cells on which the share of local extrema is counted (all cells below this).
EXTREMA_SAMPLE = 5000
#: Cells (a fixed random sample; all cells below this) on which ``localisation`` and ``peakedness`` are measured:
#: a Gini coefficient or a decile mean over 20,000 random cells is within about 0.01 of its value over all cells,
#: and both need a sort or a partition of every column, the only steps of the descriptors not linear in N.
SHAPE_SAMPLE = 20_000


def chunk_descriptors(
    model: GradientModel,
    chunk: GradientChunk,
    *,
    length_scale: float,
    sd: NDArray,
    to_intrinsic: NDArray,
    regions: Coarsening | None = None,
    block_bytes: int = 2**25,
) -> NDArray[np.float64]:
    """``(g, len(DESCRIPTORS), T)`` descriptors of one chunk (computed with ``with_signals=True``).

    ``sd`` is each signal's standard deviation over cells at scale 0, for all the signals being streamed (this
    chunk's are ``sd[chunk.start:chunk.stop]``, so that ``functools.partial(chunk_descriptors, ...)`` is the
    ``reduce`` of :meth:`~genegrad.GradientModel.iter_gradients`); ``length_scale`` the RMS spread
    of the representation, which makes ``magnitude`` dimensionless; ``to_intrinsic`` ``(N, d, d)``, orthogonal,
    rotates a tangent gradient into a global frame (:func:`synchronized_frames`), in which the directions of
    different cells can be compared (ambient directions turn with the manifold's curvature); ``regions`` groups
    the cells for ``peaks`` and ``troughs`` (:func:`~genegrad._core._regions.coarsen` of the model's graph when
    ``None``: pass it to compute it once for all chunks).

    One pass over blocks of cells accumulates every sum; ``localisation``, ``peakedness`` and ``extrema`` use
    fixed random samples of cells on large data (:data:`SHAPE_SAMPLE`, :data:`EXTREMA_SAMPLE`).
    """
    grads, signals = chunk.gradients, chunk.signals
    if signals is None:
        msg = "chunk_descriptors needs the smoothed signals: compute the chunk with `with_signals=True`."
        raise ValueError(msg)
    n, g, d, T = grads.shape
    sd = np.asarray(sd, dtype=np.float64)[chunk.start:chunk.stop]
    frames, idx = model.frames_, model.knn_indices_
    p = frames.shape[1]
    n_align, m = min(2, p), to_intrinsic.shape[1]
    cell_block = max(64, block_bytes // (g * T * max(d, m, 8) * 8))
    extrema_cells = sample_cells(n, EXTREMA_SAMPLE)
    shape_cells = sample_cells(n, SHAPE_SAMPLE)
    sample_pos = np.full(n, -1, dtype=np.int64)
    sample_pos[shape_cells] = np.arange(shape_cells.size)
    sum_mag = np.zeros((g, T))
    sum_snr = np.zeros((g, T))
    sum_vec = np.zeros((g, T, m))
    outer = np.zeros((g, T, m, m))
    sum_align = np.zeros((g, T))
    n_extrema = np.zeros((g, T))
    mags_sample = np.empty((g * T, shape_cells.size))  # lengths at the shape sample, one row per (gene, scale)
    mean_sig = signals.mean(axis=0, dtype=np.float64)
    sum_sq = np.zeros((g, T))
    se = chunk.se if chunk.se is not None else np.ones((1, 1, 1), dtype=np.float32)
    # every sum over the cells in one compiled pass (float64 accumulators; frames are orthonormal, |U beta| =
    # |beta|; directions in the synchronised frame c = R beta weighted by the length: sum_i |b_i| e_i e_i^T =
    # sum_i c_i c_i^T / |b_i|; the gradient along the first representation coordinates, (U beta)[:2] = U[:2] beta)
    _cell_sums(grads, se, chunk.se is not None, np.ascontiguousarray(to_intrinsic),
               np.ascontiguousarray(frames[:, :n_align]), signals, mean_sig, sample_pos, sum_mag, sum_snr, sum_vec,
               outer, sum_align, mags_sample, sum_sq)
    for s in range(0, extrema_cells.size, cell_block):
        cells = extrema_cells[s:s + cell_block]
        nb = signals[idx[cells]]  # (c', k, g, T)
        own = signals[cells][:, None]
        n_extrema += ((own > nb).all(axis=1) | (own < nb).all(axis=1)).sum(axis=0)
    iu = np.triu_indices(m, 1)
    outer[:, :, iu[1], iu[0]] = outer[:, :, iu[0], iu[1]]
    out = np.zeros((g, len(DESCRIPTORS), T))
    mean_mag = sum_mag / n
    out[:, 0] = mean_mag * length_scale / np.maximum(sd, 1e-12)[:, None]
    out[:, 1] = sum_snr / n if chunk.se is not None else np.nan
    out[:, 2] = np.linalg.norm(sum_vec, axis=2) / np.maximum(sum_mag, 1e-300)
    eig = np.linalg.eigvalsh(outer)
    out[:, 3] = eig[..., -1] / np.maximum(eig.sum(axis=-1), 1e-300)
    out[:, 4] = gini(mags_sample.T).reshape(g, T)
    out[:, 5] = peakedness(model, signals, cells=shape_cells)
    out[:, 6] = n_extrema / extrema_cells.size
    out[:, 7] = mean_mag / np.maximum(mean_mag[:, :1], 1e-300)
    out[:, 8] = sum_align / np.maximum(sum_mag, 1e-300)
    out[:, 9] = (sum_sq / n) / np.maximum(sd, 1e-12)[:, None] ** 2
    if regions is None:
        regions = _regions.coarsen(model.knn_indices_, random_state=model.random_state)
    counts = _regions.count_regions(regions.means(signals).reshape(regions.n_groups, g * T), regions)
    out[:, 10:12] = counts.reshape(g, T, 2).transpose(0, 2, 1)
    # a gene with no gradient anywhere (constant) has no geometry
    flat_gene = sum_mag.max(axis=1) <= 1e-12 * n
    out[flat_gene, 1:] = np.nan
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _cell_sums(grads, se, with_se, rot, lead, signals, mean_sig, sample_pos, sum_mag, sum_snr, sum_vec, outer,
               sum_align, mags_sample, sum_sq):  # pragma: no cover - compiled
    """The sums over cells of :func:`chunk_descriptors`, accumulated into the arrays given (see there)."""
    n, g, d, T = grads.shape
    m = rot.shape[1]
    n_align = lead.shape[1]
    beta = np.empty(d)
    c = np.empty(m)
    for i in range(n):
        pos = sample_pos[i]
        for j in range(g):
            for t in range(T):
                b2 = 0.0
                for a in range(d):
                    beta[a] = np.float64(grads[i, j, a, t])
                    b2 += beta[a] * beta[a]
                mag = np.sqrt(b2)
                sum_mag[j, t] += mag
                if with_se:
                    e = np.float64(se[i, j, t])
                    sum_snr[j, t] += b2 / max(e * e, 1e-24)
                inv = 1.0 / mag if mag > 0 else 0.0
                for r in range(m):
                    acc = 0.0
                    for a in range(d):
                        acc += rot[i, r, a] * beta[a]
                    c[r] = acc
                    sum_vec[j, t, r] += acc
                for r in range(m):
                    for q in range(r, m):
                        outer[j, t, r, q] += c[r] * c[q] * inv
                along = 0.0
                for r in range(n_align):
                    acc = 0.0
                    for a in range(d):
                        acc += np.float64(lead[i, r, a]) * beta[a]
                    along += acc * acc
                sum_align[j, t] += np.sqrt(along)
                if pos >= 0:
                    mags_sample[j * T + t, pos] = mag
                dev = np.float64(signals[i, j, t]) - mean_sig[j, t]
                sum_sq[j, t] += dev * dev


def smoothness(P, X: NDArray, scales: Sequence[int]) -> NDArray[np.float64]:
    """``(g, T)``: the ``smoothness`` descriptor alone, ``Var(P^t x) / Var(x)``, for each column of dense ``X``.

    ``P`` is a row-stochastic diffusion operator (sparse); needs only diffusion products, no gradient: what the
    structure test is made of.
    """
    X = np.asarray(X, dtype=np.float32)
    var0 = column_variance(X)
    out = np.empty((X.shape[1], len(scales)))
    t_cur = 0
    for j, t in enumerate(scales):
        while t_cur < t:
            X = np.asarray(P @ X, dtype=np.float32)
            t_cur += 1
        out[:, j] = column_variance(X) / np.maximum(var0, 1e-24)
    return out


def column_variance(X: NDArray[np.float32]) -> NDArray[np.float64]:
    """Population variance of each column of float32 ``X``, from float64 sums of ``x`` and ``x^2`` (one pass each).

    Float32 squares are exact in float64, so the cancellation ``E[x^2] - E[x]^2`` loses about ``(mean / SD)^2``
    float64 ulps: nothing for the centred signals it is used on.
    """
    n = X.shape[0]
    mean = X.sum(axis=0, dtype=np.float64) / n
    return np.maximum(np.einsum("ij,ij->j", X, X, dtype=np.float64) / n - mean**2, 0.0)


def sample_cells(n: int, size: int) -> NDArray[np.int64]:
    """All cells when ``n <= size``, else a fixed (seeded) random sample of ``size`` cells, sorted."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size, replace=False))


def synchronized_frames(model: GradientModel, *, n_iter: int = 20, cell_block: int = 4096,
                        n_jobs: int | None = -1) -> NDArray:
    """``(N, d, d)`` rotations that bring every cell's tangent frame into one global frame.

    Neighbouring frames are aligned by the orthogonal Procrustes map ``O_ij = polar(U_i^T U_j)`` (coordinates
    in frame ``j`` to frame ``i``); the global frame solves ``R_j = R_i O_ij`` over the kNN graph
    (synchronisation, as in Singer & Wu's vector diffusion maps): first propagated along a breadth-first tree
    from one cell per connected component, then refined by ``n_iter`` averaging steps
    ``R_i <- polar(sum_j R_j O_ij^T)``, which spread the alignment errors over the neighbourhood instead of
    letting them pile up along the tree. For a flat or developable manifold (plane, swiss roll, strips, trees,
    cycles) the result is a parallel frame: a gradient's coordinates ``R_i beta_i`` can be compared between
    distant cells, which ambient directions cannot (they turn with the embedding's curvature). Blocks of
    ``cell_block`` cells run on ``n_jobs`` threads.
    """
    from scipy import sparse
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    U = model.frames_.astype(np.float64)
    idx = model.knn_indices_
    n, k = idx.shape
    d = U.shape[2]
    O = np.empty((n, k, d, d))

    def procrustes(s: int, e: int) -> None:
        M = np.einsum("npd,nkpe->nkde", U[s:e], U[idx[s:e]], optimize=True)
        A, _, Bt = np.linalg.svd(M)
        O[s:e] = A @ Bt

    for_blocks(procrustes, n, cell_block, n_jobs=n_jobs)
    G = sparse.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    R = np.tile(np.eye(d), (n, 1, 1))
    _, comp = connected_components(G, directed=False)
    for c in np.unique(comp):
        root = int(np.flatnonzero(comp == c)[0])
        order, pred = breadth_first_order(G, root, directed=False, return_predecessors=True)
        children = order[1:]
        parents = pred[children]
        # O_ij (i the parent, j the child) from i's list of neighbours, or O_ji^T when only j lists i
        hit = idx[parents] == children[:, None]
        fwd = hit.any(axis=1)
        step = np.empty((children.size, d, d))
        step[fwd] = O[parents[fwd], hit[fwd].argmax(axis=1)]
        back = ~fwd
        if back.any():
            pos = (idx[children[back]] == parents[back, None]).argmax(axis=1)
            step[back] = O[children[back], pos].transpose(0, 2, 1)
        # propagate level by level: R_j = R_i O_ij
        for lo, hi in _bfs_batches(order, pred):
            R[order[lo:hi]] = R[pred[order[lo:hi]]] @ step[lo - 1:hi - 1]
    Ot = np.ascontiguousarray(O.transpose(0, 1, 3, 2)).reshape(n, k * d, d)  # rows (k, b): O_ij^T
    for _ in range(n_iter):
        new = np.empty_like(R)

        def average(s: int, e: int, R=R, new=new) -> None:
            # sum_j R_j O_ij^T as one (d x kd) @ (kd x d) product per cell
            Rn = R[idx[s:e]].transpose(0, 2, 1, 3).reshape(e - s, d, k * d)
            A, _, Bt = np.linalg.svd(np.matmul(Rn, Ot[s:e]) + 1e-12 * R[s:e])
            new[s:e] = A @ Bt

        for_blocks(average, n, cell_block, n_jobs=n_jobs)
        R = new
    return R


def _bfs_batches(order: NDArray, pred: NDArray) -> list[tuple[int, int]]:
    """Ranges ``[lo, hi)`` of a breadth-first ``order`` (root first) whose parents all lie in ``order[:lo]``.

    In breadth-first order depths never decrease and a node's parent is one level up, so each range is one
    level of the tree: all its nodes can be updated together from their parents.
    """
    pos = np.empty(pred.shape[0], dtype=np.int64)
    pos[order] = np.arange(order.size)
    parent_pos = pos[np.maximum(pred[order], 0)]
    out, lo = [], 1
    while lo < order.size:
        known = parent_pos[lo:] < lo
        hi = lo + (known.size if known.all() else int(np.argmin(known)))
        out.append((lo, hi))
        lo = hi
    return out


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


def peakedness(model: GradientModel, signals: NDArray, *, cells: NDArray | None = None) -> NDArray[np.float64]:
    """``(g, T)``: where the highest and lowest cells sit, from the graph Laplacian ``L s = (P - I) s``.

    ``-(mean L s over the top decile + mean L s over the bottom decile) / (mean |L s| over both)``, in
    ``[-1, 1]``. ``L s`` is negative on a peak and positive in a trough: +1 when the highest cells sit on a peak
    and the lowest on a plateau (bump, transient), -1 for a trough, about 0 when both ends are alike (ramp,
    periodic, saddle: the boundary and the extrema cancel). ``cells`` restricts it to a sample of cells (the
    deciles are those of the sample).
    """
    n, g, T = signals.shape
    flat = signals.reshape(n, g * T)
    if cells is None:
        cells = np.arange(n)
    rows = model.diffusion_[cells] if cells.size < n else model.diffusion_
    # (g T, cells), contiguous per column: the partition below runs along rows in memory
    lap = np.ascontiguousarray((rows @ flat - flat[cells]).T, dtype=np.float64)
    vals = np.ascontiguousarray(flat[cells].T)
    c = cells.size
    m = max(1, round(TOP_SHARE * c))
    order = np.argpartition(vals, (m, c - m), axis=1)
    top = np.take_along_axis(lap, order[:, c - m:], axis=1)
    bottom = np.take_along_axis(lap, order[:, :m], axis=1)
    num = -(top.mean(axis=1) + bottom.mean(axis=1))
    den = np.abs(top).mean(axis=1) + np.abs(bottom).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / den, np.nan)
    return out.reshape(g, T)
