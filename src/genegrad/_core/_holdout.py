"""Held-out graphs for the structure test: diffusion operators built from disjoint halves of the genes.

A gene that helped build the kNN graph looks smoother on it than a gene that did not: cells whose values of that
gene happen to be close are a little more likely to be neighbours. On large data this small excess is
significant, and a permutation null (whose genes built nothing) cannot see it. Splitting the genes that make the
representation into two folds, and testing each gene on the graph of the fold it is not in, removes it
(cross-fitting, as in sample splitting for selective inference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from . import _graph

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray


def split_genes(n_pool: int, rng: np.random.Generator, n_folds: int = 2) -> NDArray[np.int64]:
    """Fold (``0 .. n_folds-1``) of each of ``n_pool`` genes, balanced and random."""
    fold = np.arange(n_pool) % n_folds
    return rng.permutation(fold).astype(np.int64)


def fold_graph(
    X: NDArray | sparse.spmatrix,
    *,
    n_comps: int,
    n_neighbors: int,
    alpha: float = 1.0,
    knn_method: str = "auto",
    random_state: int = 0,
    embed: Callable[[NDArray | sparse.spmatrix, int], NDArray] | None = None,
) -> sparse.csr_matrix:
    """Row-stochastic diffusion operator of the kNN graph on the PCA of ``X`` (cells x the fold's genes).

    Built as :func:`genegrad.pp.manifold` builds its own (adaptive Gaussian affinities, density-normalised with
    ``alpha``), on ``n_comps`` principal components (:func:`pca`) of the fold's log-normalised genes, or on
    ``embed(X, n_comps)`` (e.g. the LSI of a fold of TF-IDF peaks).
    """
    n, g = X.shape
    k = int(min(n_comps, g - 1, n - 1))
    Y = pca(X, n_comps=k) if embed is None else embed(X, k)
    idx, dist = _graph.knn(Y, n_neighbors, method=knn_method, random_state=random_state)
    return _graph.diffusion_graph(idx, dist, alpha=alpha)[2]


def pca(X: NDArray | sparse.spmatrix, n_comps: int, *, block: int = 16384) -> NDArray[np.float64]:
    """Exact principal-component scores of ``X`` (cells x genes, genes in the hundreds to thousands).

    The genes' covariance is accumulated over blocks of ``block`` cells made dense (memory: one block and a
    genes x genes matrix) and eigendecomposed, without a random step. scikit-learn's ``covariance_eigh`` solver
    does the same but on a dense copy of the whole fold plus a centred one (1.2 GB each for 1,000 genes on
    300,000 cells), and ``scanpy.pp.pca`` on the sparse fold was several times slower (a development check).
    """
    X = sparse.csr_matrix(X, dtype=np.float32) if sparse.issparse(X) else np.asarray(X, dtype=np.float32)
    n, g = X.shape

    def rows(s: int) -> NDArray[np.float32]:
        B = X[s : s + block]
        return B.toarray() if sparse.issparse(B) else np.array(B)

    mu = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
    cov = np.zeros((g, g))
    for s in range(0, n, block):
        B = rows(s) - mu.astype(np.float32)
        cov += B.T @ B
    _, vecs = np.linalg.eigh(cov)
    V = np.ascontiguousarray(vecs[:, ::-1][:, :n_comps], dtype=np.float32)
    return np.concatenate([(rows(s) - mu.astype(np.float32)) @ V for s in range(0, n, block)]).astype(np.float64)
