"""Fate numerics: programs, flows and fine-scale evidence from gene gradients; the tilted chain and its absorption."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from . import _columns

if TYPE_CHECKING:
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Largest number of transient cells solved by a sparse LU factorisation; above, GMRES preconditioned by
#: algebraic multigrid. Profiled (not benchmarked) on a 100,000-cell tree, 83,437 transient cells, 3 fates:
#: multigrid-GMRES 6.9 s; ILU-GMRES 42-79 s (drop tolerance 1e-3 to 1e-4); LU 139 s and 281 M nonzeros of fill.
DIRECT_MAX = 20_000
#: Progenitors per block of the fine step's float64 correlation sums.
FINE_ROW_BLOCK = 65_536


def tilted_transitions(K: sparse.spmatrix, Y: NDArray, v: NDArray | None, *, beta: float,
                       edge_block: int = 1 << 20) -> sparse.csr_matrix:
    """``T_ij ∝ K_ij exp(beta cos(y_j - y_i, v_i))``, rows summing to one.

    ``K`` are the affinities of the kNN graph (symmetric, or oriented by :func:`forward_affinities`), ``Y``
    ``(N, p)`` the coordinates, ``v`` ``(N, p)`` the flow at every cell (not read when ``beta`` is 0). Where
    ``v_i`` is zero the step is the plain diffusion ``K_ij / sum_j K_ij``.
    """
    K = sparse.csr_matrix(K, dtype=np.float64)  # may share the caller's arrays: changed on a copy only
    if (K.data == 0).any():
        K = K.copy()
        K.eliminate_zeros()
    cols = K.indices
    data = K.data
    if beta != 0:  # without a tilt every edge keeps its affinity (exp(0) = 1): no cosines to compute
        rows = np.repeat(np.arange(K.shape[0]), np.diff(K.indptr))
        vn = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
        cos = np.empty(cols.size)
        for s in range(0, cols.size, edge_block):  # edges in blocks: (edges, p) displacements never all held
            e = min(s + edge_block, cols.size)
            disp = Y[cols[s:e]] - Y[rows[s:e]]
            cos[s:e] = (disp * vn[rows[s:e]]).sum(axis=1) / np.maximum(np.linalg.norm(disp, axis=1), 1e-300)
        data = data * np.exp(beta * cos)
    T = sparse.csr_matrix((data, cols, K.indptr), shape=K.shape)
    deg = np.asarray(T.sum(axis=1)).ravel()
    isolated = deg <= 0
    deg[isolated] = 1.0
    T = sparse.diags(1.0 / deg) @ T
    if isolated.any():  # a cell without edges stays where it is
        T = T + sparse.diags(isolated.astype(np.float64))
    return sparse.csr_matrix(T)


#: Sharpness of :func:`flow_mixed_transitions`' flow kernel: ``exp(10 cos)`` favours the neighbours along the flow
#: about e^20 times over those against it, a near-deterministic step as a velocity kernel's.
FLOW_BETA = 10.0


def flow_mixed_transitions(T: sparse.spmatrix, K: sparse.spmatrix, Y: NDArray, v: NDArray, *,
                           weight: float) -> sparse.csr_matrix:
    """``(1 - weight) T + weight T_flow``, CellRank-style kernel mixing (as its velocity and connectivity kernels).

    ``T_flow`` is :func:`tilted_transitions` of the affinities ``K`` (not oriented in time) along the flow ``v``
    with ``beta = FLOW_BETA``; ``T`` the chain's transitions. Rows of both sum to one, so the mixture's do.
    """
    return ((1.0 - weight) * T + weight * tilted_transitions(K, Y, v, beta=FLOW_BETA)).tocsr()


def forward_affinities(K: sparse.spmatrix, pseudotime: NDArray, *, strength: float) -> sparse.csr_matrix:
    """``K`` with each edge to an earlier cell down-weighted: ``K_ij 2 / (1 + exp(b (tau_i - tau_j)))^2``.

    ``b = strength``; ``tau`` is the pseudotime over its 99th percentile (about ``[0, 1]``). Edges to later or
    equal cells keep their weight, and so does every edge of a cell whose pseudotime is not finite (unreached
    from the root). This is CellRank's soft threshold scheme (``PseudotimeKernel``, after Stassen et al. 2021;
    its defaults ``b = 10``, ``nu = 1/2``). The result is not symmetric: row ``i`` is where a chain at ``i``
    may step.
    """
    K = sparse.csr_matrix(K, dtype=np.float64)
    tau = np.asarray(pseudotime, dtype=np.float64)
    finite = np.isfinite(tau)
    top = np.percentile(tau[finite], 99) if finite.any() else 0.0
    tau = np.where(finite, tau / top, np.nan) if top > 0 else np.full_like(tau, np.nan)
    rows = np.repeat(np.arange(K.shape[0]), np.diff(K.indptr))
    back = np.nan_to_num(tau[rows] - tau[K.indices], nan=0.0)  # > 0: a step back in pseudotime
    w = np.where(back > 0, 2.0 / (1.0 + np.exp(np.minimum(strength * back, 700.0))) ** 2, 1.0)
    return sparse.csr_matrix((K.data * w, K.indices.copy(), K.indptr.copy()), shape=K.shape)


def absorption_probabilities(T: sparse.spmatrix, terminal: NDArray, n_fates: int) -> NDArray[np.float64]:
    """Probability that the chain ``T`` started at each cell is absorbed in each fate ``(N, n_fates)``.

    ``terminal`` ``(N,)`` holds the fate index of each terminal cell and -1 elsewhere. Terminal cells are made
    absorbing; for the transient cells ``(I - Q) X = R`` is solved (``Q`` transient-to-transient, ``R``
    transient-to-fate), by a sparse LU factorisation up to :data:`DIRECT_MAX` transient cells and by
    GMRES preconditioned by smoothed-aggregation algebraic multigrid (pyamg) above. Cells from which no
    terminal cell can be reached get NaN.
    """
    from scipy.sparse import csgraph
    from scipy.sparse.linalg import splu

    T = sparse.csr_matrix(T, dtype=np.float64)
    n = T.shape[0]
    absorbing = terminal >= 0
    trans = np.flatnonzero(~absorbing)
    out = np.zeros((n, n_fates))
    out[np.flatnonzero(absorbing), terminal[absorbing]] = 1.0
    if trans.size == 0:
        return out
    # cells that cannot reach any terminal cell: reachability on the reversed graph from the terminal cells
    reach = csgraph.breadth_first_order(_with_source(T.T.tocsr(), absorbing), n, return_predecessors=False)
    reachable = np.zeros(n + 1, dtype=bool)
    reachable[reach] = True
    stuck = trans[~reachable[trans]]
    trans = trans[reachable[trans]]
    if stuck.size:
        logger.info("%d cells cannot reach any terminal state; their fate probabilities are NaN", stuck.size)
        out[stuck] = np.nan
    if trans.size == 0:
        return out
    rows = T[trans]
    R = np.zeros((trans.size, n_fates))
    to_abs = rows[:, np.flatnonzero(absorbing)]
    fates_abs = terminal[absorbing]
    for f in range(n_fates):
        R[:, f] = np.asarray(to_abs[:, fates_abs == f].sum(axis=1)).ravel()
    # A = I - Q built in CSR, with no other copy of Q kept while it is solved (a million cells: ~0.4 GB a copy)
    A = sparse.identity(trans.size, format="csr") - rows[:, trans]
    del rows, to_abs
    if trans.size <= DIRECT_MAX:
        X = splu(A.tocsc()).solve(R)
    else:
        X = _multigrid_gmres(A, R)
    out[trans] = np.clip(X, 0.0, 1.0)
    return out


def _with_source(A: sparse.csr_matrix, sources: NDArray) -> sparse.csr_matrix:
    """``A`` with one extra node ``n`` linked to every source (for one breadth-first search from all of them)."""
    n = A.shape[0]
    src = np.flatnonzero(sources)
    extra = sparse.csr_matrix((np.ones(src.size), (np.full(src.size, n), src)), shape=(n + 1, n + 1))
    big = sparse.bmat([[A, None], [None, sparse.csr_matrix((1, 1))]], format="csr")
    return (big + extra).tocsr()


def _multigrid_gmres(A: sparse.spmatrix, R: NDArray) -> NDArray:
    """Solve ``A X = R`` column by column: GMRES with one V-cycle of smoothed-aggregation multigrid as preconditioner.

    ``A = I - Q`` is a non-symmetric M-matrix (diagonally dominant); one multigrid hierarchy serves every fate.
    The prolongation's Jacobi smoother is weighted locally: pyamg's default weighting estimates a spectral
    radius from a random start (``numpy.random``, unseeded), which made the solution differ from run to run
    within the solver's tolerance; the local weighting is deterministic (and its setup cheaper).
    """
    import pyamg
    from scipy.sparse.linalg import gmres

    A = sparse.csr_matrix(A)  # no copy of a CSR matrix
    M = pyamg.smoothed_aggregation_solver(
        A, symmetry="nonsymmetric", smooth=("jacobi", {"omega": 4.0 / 3.0, "weighting": "local"}),
    ).aspreconditioner(cycle="V")
    X = np.empty_like(R)
    for f in range(R.shape[1]):
        x, info = gmres(A, R[:, f], M=M, rtol=1e-10, atol=0.0, restart=50, maxiter=1000)
        if info != 0:
            logger.warning("GMRES did not converge for fate %d (info=%d); probabilities are approximate", f, info)
        X[:, f] = x
    return X


def fate_effects(F, labels: NDArray, *, n_fates: int) -> NDArray[np.float64]:
    """``(fates, genes)``: each fate's terminal cells' mean minus the other terminal cells', in SDs.

    The SD is over all terminal cells; a sparse ``F`` stays sparse.
    """
    term = labels >= 0
    Ft = F[np.flatnonzero(term)]
    lt = labels[term]

    def col_mean(M) -> NDArray:
        return np.asarray(M.mean(axis=0), dtype=np.float64).ravel()

    mean_all = col_mean(Ft)
    sq = Ft.multiply(Ft) if sparse.issparse(Ft) else np.asarray(Ft, dtype=np.float64) ** 2
    sd = np.sqrt(np.maximum(col_mean(sq) - mean_all**2, 0.0)) + 1e-9
    effect = np.zeros((n_fates, F.shape[1]))
    for f in range(n_fates):
        inside = lt == f
        m_in = col_mean(Ft[np.flatnonzero(inside)])
        m_out = (mean_all * lt.size - m_in * inside.sum()) / max((~inside).sum(), 1)
        effect[f] = (m_in - m_out) / sd
    return effect


def fate_programs(model, F, labels: NDArray, *, n_fates: int, scale: int, n_genes: int,
                  n_jobs: int | None = None, effect: NDArray | None = None) -> NDArray[np.float64]:
    """``(fates, genes)`` program weights: up in the fate's terminal cells, weighted by gradient significance.

    The candidates' gradients are streamed in chunks on ``n_jobs`` threads, each reduced to its SNR there.
    ``effect``: :func:`fate_effects` of ``F``, when already computed.
    """
    if effect is None:
        effect = fate_effects(F, labels, n_fates=n_fates)
    cand = np.unique(np.argsort(-effect, axis=1)[:, : 2 * n_genes])  # increasing: a CSR F is read in place
    reduce = partial(_mean_snr, scale_index=0)
    snr = np.concatenate(list(model.iter_gradients(F, with_se=True, n_jobs=n_jobs, reduce=reduce, scales=[scale],
                                                   chunk_size=model.chunk_size(1), columns=cand)))
    signif = np.zeros(F.shape[1])
    signif[cand] = np.clip(1.0 - 1.0 / np.maximum(snr, 1e-12), 0.0, 1.0)
    weights = np.clip(effect, 0.0, None) * signif[None, :]
    out = np.zeros_like(weights)
    for f in range(n_fates):
        top = np.argsort(-weights[f])[:n_genes]
        top = top[weights[f, top] > 0]
        if top.size == 0:
            msg = f"No gene is up in terminal state {f} against the others; check the terminal states."
            raise ValueError(msg)
        out[f, top] = weights[f, top] / weights[f, top].sum()
    return out


def _mean_snr(model, chunk, *, scale_index: int) -> NDArray[np.float64]:
    """``(g,)``: mean over cells of ``|grad|^2 / SE^2`` at one scale (about 1 for noise)."""
    g = chunk.gradients[:, :, :, scale_index].astype(np.float64)
    se2 = chunk.se[:, :, scale_index].astype(np.float64) ** 2
    return ((g * g).sum(axis=2) / np.maximum(se2, 1e-24)).mean(axis=0)


def fine_deviation(model, F, labels: NDArray, *, n_fates: int, coarse_scale: int,
                   n_candidates: int = 200, effect: NDArray | None = None,
                   n_jobs: int | None = None) -> NDArray[np.float64]:
    """``(N, fates)``: each cell's standardised score on each fate's fine-scale program (0 for terminal cells).

    Candidates: the ``n_candidates`` genes most up in the fate's terminal cells. Their residuals
    ``f - P^t f`` over the progenitors (non-terminal cells), standardised per gene, are decomposed; the leading
    eigenvector of their correlation matrix (signed so that its weights sum positive, negative weights dropped)
    is the fine program: genes whose deviations from the neighbourhood trend move together. ``effect``:
    :func:`fate_effects` of ``F``, when already computed. ``n_jobs`` threads smooth the candidates.
    """
    if effect is None:
        effect = fate_effects(F, labels, n_fates=n_fates)
    cands = [c[effect[f, c] > 0] for f, c in enumerate(np.argsort(-effect, axis=1)[:, :n_candidates])]
    prog = labels < 0
    out = np.zeros((F.shape[0], n_fates))
    for f in range(n_fates):
        if cands[f].size < 2:
            continue
        # one fate's candidates at a time (memory: progenitors x n_candidates, not x the fates' union)
        # in column order (the program does not depend on the genes' order)
        resid = _progenitor_residuals(model, F, np.sort(cands[f]), prog, coarse_scale=coarse_scale, n_jobs=n_jobs)
        # the standardised residuals Z, their correlation matrix and scores, in float64 blocks of rows (memory: a
        # block, not the progenitors x candidates float64 matrix)
        rows = [slice(r, r + FINE_ROW_BLOCK) for r in range(0, resid.shape[0], FINE_ROW_BLOCK)]
        n_rows = max(resid.shape[0], 1)
        mean = sum(resid[r].sum(axis=0, dtype=np.float64) for r in rows) / n_rows
        sd = np.sqrt(sum(((resid[r] - mean) ** 2).sum(axis=0) for r in rows) / n_rows)
        z_block = partial(_standardised, resid, mean=mean, scale=sd + 1e-9)
        C = sum(Z.T @ Z for Z in map(z_block, rows)) / n_rows
        _, vecs = np.linalg.eigh(C)
        u = vecs[:, -1] * (1.0 if vecs[:, -1].sum() >= 0 else -1.0)
        u = np.clip(u, 0.0, None)
        if not u.any():
            continue
        s = np.concatenate([z_block(r) @ u for r in rows])
        out[prog, f] = (s - s.mean()) / (s.std() + 1e-12)
    return out


def _progenitor_residuals(model, F, genes: NDArray, prog: NDArray, *, coarse_scale: int,
                          n_jobs: int | None) -> NDArray[np.float32]:
    """``(progenitors, genes)``: the residuals ``f - P^t f`` of ``genes`` (increasing positions) over ``prog``.

    Smoothed a block of genes at a time (memory: one dense block of every cell); a CSR signal is read in place.
    """
    in_place = _columns.readable_by_rows(F)
    resid = np.empty((int(prog.sum()), genes.size), dtype=np.float32)
    block = model.chunk_size(1)
    for s in range(0, genes.size, block):
        e = min(s + block, genes.size)
        Xb = _columns.dense_columns_at(F, genes[s:e]) if in_place else F[:, genes[s:e]]
        Xb = np.asarray(Xb.toarray() if sparse.issparse(Xb) else Xb, dtype=np.float32)
        resid[:, s:e] = (Xb - model.smooth(Xb, coarse_scale, n_jobs=n_jobs))[prog]
    return resid


def _standardised(resid: NDArray, rows: slice, *, mean: NDArray, scale: NDArray) -> NDArray:
    """``(resid[rows] - mean) / scale`` in float64."""
    return (resid[rows] - mean) / scale


def fine_agreement(z: NDArray, chain: NDArray, labels: NDArray) -> NDArray[np.float64]:
    """``(fates,)``: Spearman correlation, over the progenitors, of each fate's fine score with its chain probability.

    NaN where it is undefined (a constant score or probability, or fewer than three progenitors).
    """
    from scipy.stats import spearmanr

    prog = (labels < 0) & np.all(np.isfinite(chain), axis=1)
    out = np.full(z.shape[1], np.nan)
    if prog.sum() < 3:
        return out
    for f in range(z.shape[1]):
        a, b = z[prog, f], chain[prog, f]
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            out[f] = float(spearmanr(a, b)[0])
    return out


def fate_flows(model, F, programs: NDArray, *, scale: int) -> NDArray[np.float64]:
    """``(N, fates, d)``: tangent gradients of the program scores ``F w_f`` at ``scale``."""
    # (N, fates); a CSR signal without a float64 copy (the same sums)
    S = _columns.row_products(F, programs.T) if sparse.issparse(F) and F.format == "csr" else F @ programs.T
    S = np.asarray(S, dtype=np.float32)
    grads = model.gradients(S, with_se=False, scales=[scale]).gradients  # (N, fates, d, 1)
    return grads[:, :, :, 0].astype(np.float64)
