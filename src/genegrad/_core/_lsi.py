"""TF-IDF and latent semantic indexing (LSI) of sparse accessibility counts: pure numerics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from numpy.typing import NDArray


def tfidf(C: sparse.spmatrix, *, scale_factor: float = 1e4) -> tuple[sparse.csr_matrix, NDArray[np.float64]]:
    """``log1p(scale_factor * (c_ig / n_i) * (N / n_g))`` (CSR float32) and the ``idf`` ``N / n_g`` (0 if unseen).

    Computed on the non-zeros of one float32 copy of ``C`` (memory: that copy).
    """
    X = sparse.csr_matrix(C, dtype=np.float32, copy=True)
    X.sum_duplicates()
    depth = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()
    peak_tot = np.bincount(X.indices, weights=X.data, minlength=X.shape[1])
    idf = np.divide(X.shape[0], peak_tot, out=np.zeros_like(peak_tot), where=peak_tot > 0)
    inv_depth = np.divide(1.0, depth, out=np.zeros_like(depth), where=depth > 0)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    X.data *= (inv_depth[rows] * scale_factor).astype(np.float32)
    del rows
    X.data *= idf[X.indices].astype(np.float32)
    np.log1p(X.data, out=X.data)
    X.eliminate_zeros()
    return X, idf


def svd(X: sparse.spmatrix | NDArray, n_comps: int, *, random_state: int = 0):
    """Truncated SVD of ``X`` (uncentred): scores ``U S``, loadings ``V`` and each component's variance ratio.

    scikit-learn's randomised ``TruncatedSVD``; signs fixed so that each loading vector's largest entry is
    positive (the same data give the same coordinates).
    """
    from sklearn.decomposition import TruncatedSVD

    est = TruncatedSVD(n_components=n_comps, algorithm="randomized", n_iter=7, random_state=random_state)
    X = sparse.csr_matrix(X, dtype=np.float32) if sparse.issparse(X) else np.asarray(X, dtype=np.float32)
    scores = est.fit_transform(X).astype(np.float64)
    V = est.components_.T.astype(np.float64)
    flip = np.sign(V[np.abs(V).argmax(axis=0), np.arange(V.shape[1])])
    flip[flip == 0] = 1.0
    return scores * flip, V * flip, np.asarray(est.explained_variance_ratio_, dtype=np.float64)


@dataclass
class LSI:
    """An LSI: the kept scores (rows scaled to unit length when asked), loadings and what was dropped."""

    scores: NDArray[np.float64]
    loadings: NDArray[np.float64]
    variance_ratio: NDArray[np.float64]
    depth_corr: NDArray[np.float64]
    kept: NDArray[np.int64]
    dropped: NDArray[np.int64]


def lsi(
    X: sparse.spmatrix | NDArray,
    depth: NDArray,
    n_comps: int,
    *,
    max_depth_corr: float = 0.5,
    normalize_rows: bool = True,
    random_state: int = 0,
) -> LSI:
    """SVD of the TF-IDF signal ``X`` without its depth components; rows scaled to unit length if asked.

    Components whose scores correlate with ``log(depth)`` beyond ``max_depth_corr`` (absolute Pearson) are
    dropped; the kept scores are scaled to unit length per cell if ``normalize_rows``. Raises
    ``ValueError`` when fewer than two components are kept.
    """
    scores, V, ratio = svd(X, n_comps, random_state=random_state)
    logd = np.log(np.maximum(np.asarray(depth, dtype=np.float64), 1e-12))
    corr = np.array([_pearson(scores[:, j], logd) for j in range(scores.shape[1])])
    dropped = np.flatnonzero(np.abs(corr) > max_depth_corr)
    kept = np.setdiff1d(np.arange(scores.shape[1]), dropped)
    if kept.size < 2:
        msg = (f"Only {kept.size} LSI components do not correlate with depth beyond `max_depth_corr` "
               f"({max_depth_corr}); raise it or `n_comps`.")
        raise ValueError(msg)
    Y = scores[:, kept]
    if normalize_rows:
        norms = np.linalg.norm(Y, axis=1)
        Y = Y / np.where(norms > 0, norms, 1.0)[:, None]
    return LSI(scores=Y, loadings=V[:, kept], variance_ratio=ratio, depth_corr=corr, kept=kept.astype(np.int64),
               dropped=dropped.astype(np.int64))


def lsi_scores(
    X: sparse.spmatrix | NDArray, n_comps: int, *, depth: NDArray, max_depth_corr: float = 0.5,
    normalize_rows: bool = True, random_state: int = 0,
) -> NDArray[np.float64]:
    """The kept scores of :func:`lsi`, as a representation ``(X, n_comps) -> Y``."""
    return lsi(X, depth, n_comps, max_depth_corr=max_depth_corr, normalize_rows=normalize_rows,
               random_state=random_state).scores


def _pearson(a: NDArray, b: NDArray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else 0.0
