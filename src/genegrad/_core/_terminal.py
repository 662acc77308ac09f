"""Terminal states from a root cell: graph pseudotime, its persistent maxima (branch tips) and their populations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass
class Tip:
    """A local maximum of a function on a graph and how long it survives as its own superlevel component.

    ``death`` is the level at which its component joins one with a higher maximum (``-inf`` for the maximum of a
    connected component, which never does); ``persistence = value - death``.
    """

    cell: int
    value: float
    death: float

    @property
    def persistence(self) -> float:
        return self.value - self.death


def shared_neighbor_graph(
    idx: NDArray, A: sparse.spmatrix, *, min_jaccard: float = 0.1, chunk_size: int = 8192,
) -> sparse.csr_matrix:
    """The edges of ``A`` whose ends share enough neighbours (a shared-nearest-neighbour pruning).

    An edge is kept when the Jaccard index of its ends' kNN sets (each with the cell itself) is at least
    ``min_jaccard``. A single edge between two branches whose cells are otherwise apart (noise) shares few
    neighbours, and one such edge would join their superlevel sets. Returns the symmetric pattern (ones). Rows in
    chunks: memory ``O(chunk_size k^2)``.

    The default 0.1 was chosen on synthetic trees held out from the terminal-states benchmark (seeds 5-9, 3,000
    cells, 1,000 UMIs/cell) among 1/15 (Seurat's pruning of its shared-nearest-neighbour graph), 0.1, 0.15 and 0.2:
    all three fates were found in 3, 4, 4 and 4 of 5 seeds; from 0.15 on, paul15 fell apart into single-cell tips,
    and 0.2 left cells unreachable.
    """
    n, k = idx.shape
    D = sparse.csr_matrix((np.ones(n * (k + 1)), (np.repeat(np.arange(n), k + 1),
                                                   np.concatenate([np.arange(n)[:, None], idx], axis=1).ravel())),
                          shape=(n, n))
    D.data[:] = 1.0  # a cell listed among its own neighbours counts once
    pattern = sparse.csr_matrix(A, dtype=np.float64)
    pattern.eliminate_zeros()
    pattern.data[:] = 1.0
    parts = []
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        shared = (D[s:e] @ D.T).multiply(pattern[s:e]).tocsr()
        shared.data = shared.data / (2 * (k + 1) - shared.data)
        shared.data = (shared.data >= min_jaccard).astype(np.float64)
        parts.append(shared)
    out = sparse.vstack(parts, format="csr")
    out.eliminate_zeros()
    return out.maximum(out.T).tocsr()


def graph_pseudotime(K: sparse.spmatrix, Y: NDArray, root: int) -> NDArray[np.float64]:
    """Geodesic distance from ``root`` along the graph's edges, each as long as it is in ``Y`` ``(N, p)``.

    ``K``: the symmetric affinities (only their pattern is used). Cells the root cannot reach get ``inf``.
    """
    from scipy.sparse import csgraph

    A = sparse.csr_matrix(K, dtype=np.float64)
    A.eliminate_zeros()
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    length = np.linalg.norm(Y[A.indices] - Y[rows], axis=1)
    L = sparse.csr_matrix((np.maximum(length, 1e-12), A.indices, A.indptr), shape=A.shape)  # no zero-length edge
    return csgraph.dijkstra(L, directed=False, indices=int(root))


def diffusion_pseudotime(K: sparse.spmatrix, root: int, *, n_comps: int = 10) -> NDArray[np.float64]:
    """Diffusion pseudotime from ``root`` (Haghverdi et al. 2016), on the graph of symmetric affinities ``K``.

    ``K`` is density-normalised (``D^-1 K D^-1``), then symmetrically normalised; with ``(lambda_l, psi_l)``
    its ``n_comps`` leading eigenpairs after the stationary one, a cell's time is
    ``sqrt(sum_l (lambda_l / (1 - lambda_l))^2 (psi_l(i) - psi_l(root))^2)``: the distance after summing the
    walk over every number of steps. Eigenvalues within 1e-9 of 1 (another connected component) are dropped.
    """
    from scipy.sparse.linalg import eigsh

    A = sparse.csr_matrix(K, dtype=np.float64)
    deg = np.asarray(A.sum(axis=1)).ravel()
    inv = 1.0 / np.maximum(deg, 1e-300)
    A = sparse.diags(inv) @ A @ sparse.diags(inv)
    d = np.sqrt(np.maximum(np.asarray(A.sum(axis=1)).ravel(), 1e-300))
    S = sparse.diags(1.0 / d) @ A @ sparse.diags(1.0 / d)
    k = int(min(n_comps + 1, S.shape[0] - 1))
    vals, vecs = eigsh(S, k=k, which="LA", v0=d / np.linalg.norm(d))
    order = np.argsort(-vals)
    vals, vecs = vals[order], vecs[:, order]
    keep = vals < 1.0 - 1e-9
    lam, psi = vals[keep], vecs[:, keep]
    w = lam / (1.0 - lam)
    return np.sqrt((((psi - psi[int(root)]) * w) ** 2).sum(axis=1))


def merge_events(A: sparse.spmatrix, f: NDArray) -> tuple[list[int], list[tuple[float, int, int]]]:
    """The superlevel sets of ``f`` on the graph ``A`` swept from the top: ``(maxima, events)``.

    Cells are added in decreasing ``f`` and joined to their already-added neighbours (union-find). ``maxima``
    are the cells that start a component (local maxima), ``events`` the joins ``(level, elder, younger)``, each
    component named by its maximum, the elder being the one with the higher maximum. Cells with non-finite
    ``f`` are left out. ``O(E alpha(N))`` after the sort.
    """
    A = sparse.csr_matrix(A)
    f = np.asarray(f, dtype=np.float64)
    n = f.size
    finite = np.isfinite(f)
    order = np.flatnonzero(finite)[np.argsort(-f[finite], kind="stable")]
    rank = np.full(n, n, dtype=np.int64)
    rank[order] = np.arange(order.size)
    parent = np.arange(n)  # a component's root is its maximum
    maxima: list[int] = []
    events: list[tuple[float, int, int]] = []
    indptr, indices = A.indptr, A.indices
    for v in order:
        nbrs = indices[indptr[v]:indptr[v + 1]]
        nbrs = nbrs[rank[nbrs] < rank[v]]
        roots = {_find(parent, int(u)) for u in nbrs}
        if not roots:
            maxima.append(int(v))
            continue
        elder = min(roots, key=lambda r: rank[r])
        for r in sorted(roots, key=lambda r: rank[r])[1:]:
            events.append((float(f[v]), elder, r))
            parent[r] = elder
        parent[v] = elder
    return maxima, events


def _find(parent: NDArray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        parent[x], x = root, parent[x]
    return root


Events = tuple[list[int], list[tuple[float, int, int]]]


def persistent_maxima(A: sparse.spmatrix, f: NDArray, *, events: Events | None = None) -> list[Tip]:
    """Every local maximum of ``f`` on the graph ``A`` with its death level, most persistent first.

    Zero-dimensional persistence of the superlevel sets (:func:`merge_events`, or its result ``events``): when
    two components meet at a cell of value ``c``, the one with the lower maximum dies at ``c``.
    """
    f = np.asarray(f, dtype=np.float64)
    maxima, joins = merge_events(A, f) if events is None else events
    death = dict.fromkeys(maxima, -np.inf)
    for level, _, younger in joins:
        death[younger] = level
    tips = [Tip(cell=c, value=float(f[c]), death=float(d)) for c, d in death.items()]
    return sorted(tips, key=lambda t: (-t.persistence, -t.value))


def separation_levels(
    A: sparse.spmatrix, f: NDArray, cells: list[int], *, events: Events | None = None,
) -> NDArray[np.float64]:
    """The highest level at which each of ``cells`` (local maxima) shares a superlevel component with another.

    The lowest finite ``f`` for a cell that never does. The joins of :func:`merge_events` (or ``events``) are
    replayed on a union-find over the components' maxima.
    """
    f = np.asarray(f, dtype=np.float64)
    _, joins = merge_events(A, f) if events is None else events
    parent = np.arange(f.size)
    members = {int(c): [j] for j, c in enumerate(cells)}  # the given cells in each component, by its root
    sep = np.full(len(cells), float(np.min(f[np.isfinite(f)])))
    done = np.zeros(len(cells), dtype=bool)
    for level, elder, younger in joins:
        a, b = _find(parent, elder), _find(parent, younger)
        ma, mb = members.get(a, []), members.pop(b, [])
        if ma and mb:
            for j in ma + mb:
                if not done[j]:
                    sep[j], done[j] = level, True
        parent[b] = a
        if mb:
            members[a] = ma + mb
    return sep


def tip_populations(
    A: sparse.spmatrix, f: NDArray, tips: list[Tip], *, tail: float, events: Events | None = None,
) -> NDArray[np.int64]:
    """``(N,)``: the index of the tip whose terminal population each cell belongs to, -1 elsewhere.

    Tip ``m``'s population is its connected component of ``{f >= f_m - tail (f_m - s_m)}``, ``s_m`` the level
    at which its component first meets another tip's (:func:`separation_levels`). With ``tail < 1`` that
    level lies above ``s_m``, where no other tip shares the component: the populations are disjoint.
    """
    from scipy.sparse import csgraph

    A = sparse.csr_matrix(A)
    f = np.asarray(f, dtype=np.float64)
    sep = separation_levels(A, f, [t.cell for t in tips], events=events)
    labels = np.full(f.size, -1, dtype=np.int64)
    for j, tip in enumerate(tips):
        level = tip.value - tail * (tip.value - sep[j])
        sel = np.flatnonzero(np.isfinite(f) & (f >= level))
        sub = A[sel][:, sel]
        start = int(np.searchsorted(sel, tip.cell))
        reached = csgraph.breadth_first_order(sub, start, directed=False, return_predecessors=False)
        cells = sel[reached]
        labels[cells[labels[cells] < 0]] = j
    return labels


@dataclass
class Detection:
    """What :func:`detect_tips` found: the kept tips and their populations, and what it weighed."""

    kept: list[Tip]
    labels: NDArray[np.int64]
    candidates: list[Tip]
    span: float
    n_small: int
    maxima: list[Tip]  # every tip, most persistent first, before the bars of min_persistence


def detect_tips(
    A: sparse.spmatrix, f: NDArray, *, n_tips: int | None, min_persistence: float, tail: float, min_cells: int,
) -> Detection:
    """Branch tips of a pseudotime ``f`` (from a root) on the graph ``A``, and their terminal populations.

    Persistence is measured against the 99th percentile of the finite ``f`` (robust to a few outlying cells).
    A tip whose branch joins the rest within ``min_persistence`` of the root lies behind the root (the root is
    not at the very start): the starting population, not a fate; it is left out. The candidates are then the
    tips whose persistence reaches ``min_persistence`` (or, with ``n_tips``, the ``n_tips`` most persistent).
    A tip whose population (:func:`tip_populations`) would hold fewer than ``min_cells`` cells (an outlying
    cell far from its neighbours is a persistent spike) is dropped and the others' populations recomputed
    without it. ``kept`` may hold fewer than two tips: the caller decides.
    """
    f = np.asarray(f, dtype=np.float64)
    finite = np.isfinite(f)
    span = float(np.percentile(f[finite], 99))
    events = merge_events(A, f)  # one sweep serves the persistence and every population below
    maxima = persistent_maxima(A, f, events=events)
    tips = [t for t in maxima if not np.isfinite(t.death) or t.death >= min_persistence * span]
    if n_tips is None:
        tips = [t for t in tips if t.persistence >= min_persistence * span]
    small: set[int] = set()
    labels = np.full(f.size, -1, dtype=np.int64)
    while True:
        kept = [t for t in tips if t.cell not in small][:n_tips]
        if len(kept) < 2:
            break
        labels = tip_populations(A, f, kept, tail=tail, events=events)
        sizes = np.bincount(labels[labels >= 0], minlength=len(kept))
        if (sizes >= min_cells).all():
            break
        small |= {t.cell for t, size in zip(kept, sizes, strict=True) if size < min_cells}
    return Detection(kept=kept, labels=labels, candidates=tips, span=span, n_small=len(small), maxima=maxima)
