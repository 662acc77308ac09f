"""Separate high and low regions of signals on the manifold: components of their superlevel sets.

Counting peaks on the kNN graph itself is slow (one graph search per signal and level over every cell) and
noisy (a few cells make a component). The cells are grouped instead around landmark cells, each cell joining the
landmark fewest kNN edges away (Voronoi cells along the graph: a group never straddles two layers of a folded
manifold); a signal is averaged over each group, and two groups are adjacent when a kNN edge joins them. On that
coarse graph, the high regions of a signal at a level are the connected components of the groups above it, and
a region counts when it holds at least :data:`MIN_SHARE` of the cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Landmarks of the coarse graph (all cells below this). Chosen on held-out simulations (seeds 5 and 6 of the
#: patterns benchmark): 300 landmarks clustered the patterns as well as 1,000, in less than half the time.
N_LANDMARKS = 300
#: Levels, as shares of each signal's range (its 1st to 99th percentile over the landmarks), at which regions
#: are counted; the counts are averaged over them (eight levels separated the patterns better than four).
LEVELS = np.linspace(0.2, 0.9, 8)
#: Smallest region counted, as a share of the cells.
MIN_SHARE = 0.01


@dataclass(frozen=True)
class Coarsening:
    """Cells grouped around landmarks: the group of each cell, the groups' adjacency and sizes."""

    assign: NDArray[np.int64]  # (N,) group of each cell
    rows: NDArray[np.int64]  # (E,) adjacent groups, each pair once (rows < cols)
    cols: NDArray[np.int64]
    sizes: NDArray[np.float64]  # (M,) cells per group

    @property
    def n_groups(self) -> int:
        return self.sizes.size

    def means(self, X: NDArray) -> NDArray[np.float64]:
        """``(M, ...)``: the mean of ``X`` ``(N, ...)`` over each group.

        Each group's sum is accumulated in float64 over its cells in order, in one pass over ``X`` (compiled).
        """
        X = np.asarray(X)
        n = X.shape[0]
        flat = X.reshape(n, -1)
        if flat.dtype not in (np.float32, np.float64):
            flat = flat.astype(np.float64)
        sums = _group_sums(np.ascontiguousarray(flat), self.assign, self.n_groups)
        return (sums / self.sizes[:, None]).reshape(self.n_groups, *X.shape[1:])


def coarsen(idx: NDArray, *, n_landmarks: int = N_LANDMARKS, random_state: int = 0) -> Coarsening:
    """Group the cells of a kNN graph (``idx`` ``(N, k)``) around ``n_landmarks`` random landmark cells.

    Each cell joins the landmark fewest edges away (one breadth-first search from all landmarks at once, on the
    symmetrised graph); the first cell of a connected component without a landmark becomes one.
    """
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    G = sparse.csr_matrix((np.ones(n * k), (rows, idx.ravel())), shape=(n, n))
    G = G.maximum(G.T).tocsr()
    rng = np.random.default_rng(random_state)
    landmarks = np.sort(rng.choice(n, min(n_landmarks, n), replace=False))
    _, comp = csgraph.connected_components(G, directed=False)
    missing = np.setdiff1d(np.unique(comp), np.unique(comp[landmarks]))
    if missing.size:  # one landmark in every component the sample missed: its first cell
        first = np.array([np.flatnonzero(comp == c)[0] for c in missing])
        landmarks = np.sort(np.concatenate([landmarks, first]))
    _, _, source = csgraph.dijkstra(G, directed=False, indices=landmarks, unweighted=True, min_only=True,
                                    return_predecessors=True)
    group = np.searchsorted(landmarks, source)
    a, b = group[rows], group[idx.ravel()]
    cross = a != b
    pairs = np.unique(np.column_stack([np.minimum(a, b), np.maximum(a, b)])[cross], axis=0)
    sizes = np.bincount(group, minlength=landmarks.size).astype(np.float64)
    return Coarsening(assign=group.astype(np.int64), rows=pairs[:, 0].astype(np.int64),
                      cols=pairs[:, 1].astype(np.int64), sizes=sizes)


def count_regions(values: NDArray, coarse: Coarsening, *, levels: NDArray = LEVELS,
                  min_share: float = MIN_SHARE) -> NDArray[np.float64]:
    """``(S, 2)``: the number of separate high and low regions of each signal, averaged over ``levels``.

    ``values`` ``(M, S)`` are signals averaged over the groups (:meth:`Coarsening.means`). Each is rescaled to its
    1st-99th percentile range ``z``; at a level ``L`` its high regions are the components of the groups with
    ``z >= L`` holding at least ``min_share`` of the cells, its low regions those with ``z <= 1 - L``. A ramp, a
    single bump or a plateau has one high region, two bumps two, a cosine of period half the manifold two on a
    closed curve. A constant signal has no high region and one low region.
    """
    values = np.asarray(values, dtype=np.float64)
    m, s = values.shape
    lo, hi = np.percentile(values, [1, 99], axis=0)
    span = hi - lo
    z = np.where(span > 1e-12, (values - lo) / np.where(span > 1e-12, span, 1.0), 0.0)
    L = np.asarray(levels, dtype=np.float64)
    inside = np.stack([z[:, :, None] >= L, (1.0 - z)[:, :, None] >= L], axis=2).reshape(m, -1)  # (M, S*2*L)
    min_cells = min_share * coarse.sizes.sum()
    counts = _components(inside, coarse, min_cells)
    return counts.reshape(s, 2, L.size).mean(axis=2)


@numba.njit(cache=True, nogil=True)
def _group_sums(X, group, n_groups):  # pragma: no cover (compiled)
    out = np.zeros((n_groups, X.shape[1]))
    for i in range(X.shape[0]):
        g = group[i]
        for j in range(X.shape[1]):
            out[g, j] += X[i, j]
    return out


def _components(inside: NDArray, coarse: Coarsening, min_cells: float) -> NDArray[np.int64]:
    """``(C,)``: components of the groups inside, per column of ``inside`` ``(M, C)``, holding ``min_cells`` cells.

    A union-find over the coarse graph's edges, per column (compiled): no graph is built per column.
    """
    return _count_components(np.ascontiguousarray(inside.T), coarse.rows, coarse.cols, coarse.sizes,
                             float(min_cells))


@numba.njit(cache=True, nogil=True)
def _count_components(inside, rows, cols, sizes, min_cells):  # pragma: no cover (compiled)
    n_cols, m = inside.shape
    out = np.zeros(n_cols, dtype=np.int64)
    parent = np.empty(m, dtype=np.int64)
    weight = np.empty(m, dtype=np.float64)
    for c in range(n_cols):
        for g in range(m):
            parent[g] = g
            weight[g] = sizes[g]
        for e in range(rows.size):
            a, b = rows[e], cols[e]
            if inside[c, a] and inside[c, b]:
                while parent[a] != a:  # find, halving the path
                    parent[a] = parent[parent[a]]
                    a = parent[a]
                while parent[b] != b:
                    parent[b] = parent[parent[b]]
                    b = parent[b]
                if a != b:
                    parent[b] = a
                    weight[a] += weight[b]
        for g in range(m):
            if inside[c, g] and parent[g] == g and weight[g] >= min_cells:
                out[c] += 1
    return out
