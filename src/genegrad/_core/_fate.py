"""The gradient-tilted Markov chain on the kNN graph and its absorption probabilities (sparse, nothing dense in N)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Largest number of transient cells solved by a sparse LU factorisation; above, preconditioned GMRES.
DIRECT_MAX = 60_000


def tilted_transitions(K: sparse.spmatrix, Y: NDArray, v: NDArray, *, beta: float) -> sparse.csr_matrix:
    """``T_ij ∝ K_ij exp(beta cos(y_j - y_i, v_i))``, rows summing to one.

    ``K`` are the symmetric affinities of the kNN graph, ``Y`` ``(N, p)`` the coordinates, ``v`` ``(N, p)`` the
    flow at every cell. Where ``v_i`` is zero the step is the plain diffusion ``K_ij / sum_j K_ij``.
    """
    K = sparse.csr_matrix(K, dtype=np.float64)
    K.eliminate_zeros()
    rows = np.repeat(np.arange(K.shape[0]), np.diff(K.indptr))
    cols = K.indices
    disp = Y[cols] - Y[rows]
    vn = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    cos = (disp * vn[rows]).sum(axis=1) / np.maximum(np.linalg.norm(disp, axis=1), 1e-300)
    data = K.data * np.exp(beta * cos)
    T = sparse.csr_matrix((data, cols, K.indptr), shape=K.shape)
    deg = np.asarray(T.sum(axis=1)).ravel()
    isolated = deg <= 0
    deg[isolated] = 1.0
    T = sparse.diags(1.0 / deg) @ T
    if isolated.any():  # a cell without edges stays where it is
        T = T + sparse.diags(isolated.astype(np.float64))
    return sparse.csr_matrix(T)


def absorption_probabilities(T: sparse.spmatrix, terminal: NDArray, n_fates: int) -> NDArray[np.float64]:
    """Probability that the chain ``T`` started at each cell is absorbed in each fate ``(N, n_fates)``.

    ``terminal`` ``(N,)`` holds the fate index of each terminal cell and -1 elsewhere. Terminal cells are made
    absorbing; for the transient cells ``(I - Q) X = R`` is solved (``Q`` transient-to-transient, ``R``
    transient-to-fate), by a sparse LU factorisation up to :data:`DIRECT_MAX` transient cells and by
    ILU-preconditioned GMRES above. Cells from which no terminal cell can be reached get NaN.
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
    Q = T[trans][:, trans]
    R = np.zeros((trans.size, n_fates))
    to_abs = T[trans][:, np.flatnonzero(absorbing)]
    fates_abs = terminal[absorbing]
    for f in range(n_fates):
        R[:, f] = np.asarray(to_abs[:, fates_abs == f].sum(axis=1)).ravel()
    A = (sparse.identity(trans.size, format="csc") - Q.tocsc()).tocsc()
    if trans.size <= DIRECT_MAX:
        X = splu(A).solve(R)
    else:
        X = _gmres(A, R)
    out[trans] = np.clip(X, 0.0, 1.0)
    return out


def _with_source(A: sparse.csr_matrix, sources: NDArray) -> sparse.csr_matrix:
    """``A`` with one extra node ``n`` linked to every source (for one breadth-first search from all of them)."""
    n = A.shape[0]
    src = np.flatnonzero(sources)
    extra = sparse.csr_matrix((np.ones(src.size), (np.full(src.size, n), src)), shape=(n + 1, n + 1))
    big = sparse.bmat([[A, None], [None, sparse.csr_matrix((1, 1))]], format="csr")
    return (big + extra).tocsr()


def _gmres(A: sparse.csc_matrix, R: NDArray) -> NDArray:
    from scipy.sparse.linalg import LinearOperator, gmres, spilu

    ilu = spilu(A, drop_tol=1e-4, fill_factor=10)
    M = LinearOperator(A.shape, ilu.solve)
    X = np.empty_like(R)
    for f in range(R.shape[1]):
        x, info = gmres(A, R[:, f], M=M, rtol=1e-10, atol=0.0, restart=50, maxiter=1000)
        if info != 0:
            logger.warning("GMRES did not converge for fate %d (info=%d); probabilities are approximate", f, info)
        X[:, f] = x
    return X
