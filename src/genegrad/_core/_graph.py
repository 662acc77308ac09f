"""k-nearest-neighbour graph, adaptive Gaussian affinities and the diffusion operator."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Above this many cells ``'auto'`` uses the partitioned search instead of the exact one. benchmarks/knn.py at
#: 100,000 cells x 30 PCs on 2 cores: exact brute force 17.6 s (it grows as N^2); partitioned 4.7 s with 99.9%
#: of the exact neighbours; pynndescent 29.4 s (99.5%), most of it numba compiling in every new process.
EXACT_KNN_MAX_CELLS = 50_000
#: Partitioned search: cells per k-means partition, partitions searched per cell, cells the k-means is fitted on.
PARTITION_SIZE = 1000
PARTITION_PROBES = 3
PARTITION_FIT_SAMPLE = 50_000


def knn(
    Y: NDArray, n_neighbors: int, *, method: str = "auto", random_state: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Nearest neighbours of every row of ``Y``, the row itself excluded.

    Returns ``(indices, distances)``, both ``(N, n_neighbors)``, sorted by distance.
    """
    n = Y.shape[0]
    if method == "auto":
        method = "exact" if n <= EXACT_KNN_MAX_CELLS else "partition"
    k1 = n_neighbors + 1
    if method == "partition":
        idx, dist = _partition_knn(Y, k1, random_state=random_state)
    elif method == "exact":
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k1, algorithm="brute").fit(Y)
        dist, idx = nn.kneighbors(Y)
    elif method == "pynndescent":
        from pynndescent import NNDescent

        index = NNDescent(
            Y, n_neighbors=k1, random_state=random_state, n_jobs=-1, low_memory=True
        )
        idx, dist = index.neighbor_graph
    else:
        msg = f"Expected `knn_method` in {{'auto', 'exact', 'partition', 'pynndescent'}}, got {method!r}."
        raise ValueError(msg)
    return _drop_self(np.asarray(idx), np.asarray(dist))


def _partition_knn(
    Y: NDArray, k1: int, *, random_state: int = 0, block: int = 1024
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Approximate kNN by an inverted-file search: exact search among the cells of each cell's nearest partitions.

    The cells are split by k-means (scikit-learn, fitted on a seeded sample of ``PARTITION_FIT_SAMPLE`` cells)
    into partitions of ~``PARTITION_SIZE`` cells; each cell's candidates are the cells of the partitions whose
    centres are among the ``PARTITION_PROBES`` nearest to any cell of its query block, searched exactly with
    scikit-learn's brute-force kNN. Linear in N; neighbours of cells near partition borders are the ones that
    can be missed (0.1% of neighbours on 100,000 synthetic cells).
    """
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    Y = np.ascontiguousarray(Y, dtype=np.float32)
    n = Y.shape[0]
    n_parts = max(1, n // PARTITION_SIZE)
    rng = np.random.default_rng(random_state)
    fit_on = Y if n <= PARTITION_FIT_SAMPLE else Y[np.sort(rng.choice(n, PARTITION_FIT_SAMPLE, replace=False))]
    centres = KMeans(n_clusters=n_parts, n_init=1, max_iter=30, random_state=random_state).fit(fit_on)
    centres = centres.cluster_centers_.astype(np.float32)
    n_probe = min(PARTITION_PROBES, n_parts)
    sq_c = (centres**2).sum(axis=1)
    probes = np.empty((n, n_probe), dtype=np.int64)
    home = np.empty(n, dtype=np.int64)
    for s in range(0, n, 65536):
        D = sq_c[None, :] - 2.0 * (Y[s : s + 65536] @ centres.T)  # squared distances up to a per-row constant
        p = np.argpartition(D, n_probe - 1, axis=1)[:, :n_probe] if n_parts > n_probe else np.argsort(D, axis=1)
        probes[s : s + 65536] = p
        home[s : s + 65536] = p[np.arange(len(p)), np.argmin(np.take_along_axis(D, p, axis=1), axis=1)]
    order = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[order], np.arange(n_parts + 1))
    members = [order[bounds[c] : bounds[c + 1]] for c in range(n_parts)]
    idx = np.empty((n, k1), dtype=np.int64)
    dist = np.empty((n, k1), dtype=np.float32)
    for c in range(n_parts):
        for s in range(0, len(members[c]), block):
            q = members[c][s : s + block]
            cand = np.concatenate([members[j] for j in np.unique(probes[q])])
            if len(cand) < k1:  # tiny data: fall back on every cell
                cand = np.arange(n)
            dq, iq = NearestNeighbors(n_neighbors=k1, algorithm="brute").fit(Y[cand]).kneighbors(Y[q])
            idx[q] = cand[iq]
            dist[q] = dq
    return idx, dist


def _drop_self(idx: NDArray, dist: NDArray) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Remove each row's own index (or, when duplicates hid it, the farthest neighbour)."""
    n, k1 = idx.shape
    is_self = idx == np.arange(n)[:, None]
    # rows where self was not returned (exact duplicates): drop the last column instead
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    # keep exactly one dropped entry per row
    first = np.argmax(is_self, axis=1)
    keep = np.ones_like(is_self)
    keep[np.arange(n), first] = False
    idx = idx[keep].reshape(n, k1 - 1)
    dist = dist[keep].reshape(n, k1 - 1)
    return idx.astype(np.int64), dist.astype(np.float32)


def knn_from_distances(
    distances: sparse.spmatrix, n_neighbors: int | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Neighbour lists from a sparse distance matrix such as ``scanpy.pp.neighbors``'s.

    Every row must hold the same number of neighbours (``n_neighbors`` when given): a graph subset with its cells
    loses neighbours in some rows, and is refused rather than read with a smaller ``k``. Returns
    ``(indices, distances)`` sorted by distance.
    """
    D = sparse.csr_matrix(distances)
    D.sum_duplicates()
    counts = np.diff(D.indptr)
    k = int(counts.max()) if n_neighbors is None else int(n_neighbors)
    if counts.size == 0 or counts.min() < 1:
        msg = "The neighbour graph has cells without neighbours; recompute it with `scanpy.pp.neighbors`."
        raise ValueError(msg)
    if np.any(counts != k):
        short = int((counts < k).sum())
        msg = (f"The neighbour graph has {short} of {D.shape[0]} cells with fewer than {k} neighbours (as few as "
               f"{int(counts.min())}): it was computed on other cells (a subset keeps the graph but loses "
               "neighbours). Recompute it on these cells with `scanpy.pp.neighbors`, or pass `neighbors_key=None`.")
        raise ValueError(msg)
    n = D.shape[0]
    rows = np.repeat(np.arange(n), k)
    order = np.lexsort((D.indices, D.data, rows))  # by row, then distance (ties by index, deterministic)
    idx = D.indices[order].reshape(n, k).astype(np.int64)
    dist = D.data[order].reshape(n, k).astype(np.float32)
    return idx, dist


def rank_matrix(idx: NDArray) -> sparse.csr_matrix:
    """The directed kNN graph as a cells x cells matrix: entry ``(i, idx[i, r])`` is the rank ``r + 1``."""
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    ranks = np.tile(np.arange(1, k + 1, dtype=np.float32), n)
    R = sparse.csr_matrix((ranks, (rows, idx.ravel())), shape=(n, n))
    if R.nnz != n * k:  # duplicated neighbours were summed: the ranks would be lost
        msg = "The neighbour search returned a cell twice among one cell's neighbours; use `knn_method='exact'`."
        raise ValueError(msg)
    return R


def knn_from_ranks(R: sparse.spmatrix, k: int) -> NDArray[np.int64] | None:
    """Neighbour lists ``(N, k)`` from :func:`rank_matrix`, or ``None`` when a row does not hold ranks 1..k.

    AnnData reorders such a matrix with the cells, so the lists follow the cells; a row that lost a neighbour
    (its cell was removed) no longer holds every rank.
    """
    R = sparse.csr_matrix(R)
    n = R.shape[0]
    if R.shape != (n, n) or np.any(np.diff(R.indptr) != k):
        return None
    rows = np.repeat(np.arange(n), k)
    order = np.lexsort((R.data, rows))
    ranks = R.data[order].reshape(n, k)
    if not np.array_equal(ranks, np.broadcast_to(np.arange(1, k + 1, dtype=ranks.dtype), (n, k))):
        return None
    return R.indices[order].reshape(n, k).astype(np.int64)


def diffusion_graph(
    idx: NDArray, dist: NDArray, *, alpha: float = 1.0
) -> tuple[NDArray, sparse.csr_matrix, sparse.csr_matrix]:
    """From neighbour lists to ``(weights, K, P)``: Gaussian weights, the affinity matrix, the diffusion operator."""
    w = gaussian_weights(dist, idx)
    K = affinity_matrix(idx, w)
    return w, K, diffusion_operator(K, alpha=alpha)


def gaussian_weights(dist: NDArray, idx: NDArray, *, bandwidth_neighbor: int | None = None) -> NDArray:
    """Adaptive Gaussian weights ``exp(-d_ij^2 / (sigma_i sigma_j))`` on the directed kNN edges.

    ``sigma_i`` is the distance to the ``bandwidth_neighbor``-th neighbour (default: the middle one), floored
    so that duplicated cells and collapsed neighbourhoods give finite weights.
    """
    _n, k = dist.shape
    m = k // 2 if bandwidth_neighbor is None else min(bandwidth_neighbor, k) - 1
    sigma = dist[:, max(m, 0)].astype(np.float64)
    positive = sigma[sigma > 0]
    floor = (np.median(positive) if positive.size else 1.0) * 1e-3
    sigma = np.maximum(sigma, floor)
    d2 = dist.astype(np.float64) ** 2
    return np.exp(-d2 / (sigma[:, None] * sigma[idx]))


def affinity_matrix(idx: NDArray, weights: NDArray) -> sparse.csr_matrix:
    """Symmetrised affinity ``K = (W + W^T) / 2`` from directed kNN weights."""
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    W = sparse.csr_matrix((weights.ravel(), (rows, idx.ravel())), shape=(n, n))
    K = (W + W.T) * 0.5
    K = sparse.csr_matrix(K)
    K.sum_duplicates()
    return K


def diffusion_operator(K: sparse.csr_matrix, *, alpha: float = 1.0) -> sparse.csr_matrix:
    """Row-stochastic diffusion operator ``P = D^-1 K_alpha`` with ``K_alpha = D^-a K D^-a``.

    ``alpha=1`` removes the influence of sampling density (Coifman-Lafon). Cells without any affinity
    (impossible for a kNN graph) keep themselves.
    """
    K = sparse.csr_matrix(K, dtype=np.float64) + sparse.identity(K.shape[0], format="csr") * 1e-12
    deg = np.asarray(K.sum(axis=1)).ravel()
    if alpha:
        inv = deg ** (-alpha)
        K = sparse.diags(inv) @ K @ sparse.diags(inv)
        deg = np.asarray(K.sum(axis=1)).ravel()
    P = sparse.diags(1.0 / deg) @ K
    P = sparse.csr_matrix(P, dtype=np.float32)
    P.sort_indices()
    return P


def locality_order(P: sparse.spmatrix) -> NDArray[np.int64]:
    """A cell order that keeps graph neighbours close in memory (reverse Cuthill-McKee on ``P + P^T``)."""
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    pattern = sparse.csr_matrix(P, dtype=np.float32)
    pattern = (pattern + pattern.T).tocsr()
    return np.asarray(reverse_cuthill_mckee(pattern, symmetric_mode=True), dtype=np.int64)


def n_components(K: sparse.spmatrix) -> tuple[int, NDArray[np.int32]]:
    """Connected components of the graph."""
    from scipy.sparse.csgraph import connected_components

    return connected_components(K, directed=False)
