"""Columns of a row-major (CSR) sparse matrix, read without a column-major copy of it.

At a million cells the signal is gigabytes: a CSC copy doubles it. Each row's sorted column indices are
searched for the range asked instead, so that a block of columns costs ``O(rows log(row length))`` plus its
own entries, not a pass over the whole matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from numpy.typing import NDArray


def readable_by_rows(F) -> bool:
    """Whether :func:`dense_columns` reads ``F`` in place: CSR with sorted column indices in every row."""
    return sparse.issparse(F) and F.format == "csr" and bool(F.has_sorted_indices)


def dense_columns(F: sparse.csr_matrix, start: int, stop: int) -> NDArray:
    """Columns ``start:stop`` of ``F`` (CSR, sorted indices) as a dense ``(rows, stop - start)`` array of F's dtype.

    Equal to ``F[:, start:stop].toarray()``.
    """
    if not readable_by_rows(F):
        msg = "dense_columns reads CSR matrices with sorted indices (see readable_by_rows)."
        raise ValueError(msg)
    return dense_columns_at(F, np.arange(start, max(start, stop)))


def dense_columns_at(F: sparse.csr_matrix, cols: NDArray) -> NDArray:
    """Columns ``cols`` (increasing positions) of ``F`` (CSR, sorted indices) as a dense ``(rows, len(cols))`` array.

    Equal to ``F[:, cols].toarray()``; each row is read only between ``cols[0]`` and ``cols[-1]``.
    """
    if not readable_by_rows(F):
        msg = "dense_columns_at reads CSR matrices with sorted indices (see readable_by_rows)."
        raise ValueError(msg)
    cols = checked_columns(cols, F.shape[1])
    out = np.zeros((F.shape[0], cols.size), dtype=F.dtype)
    if cols.size:
        where = np.full(int(cols[-1]) - int(cols[0]) + 1, -1, dtype=np.int64)
        where[cols - cols[0]] = np.arange(cols.size)
        _fill_at(F.indptr, F.indices, F.data, int(cols[0]), int(cols[-1]) + 1, where, out)
    return out


def checked_columns(columns, n_columns: int) -> NDArray[np.int64]:
    """``columns`` as an int64 array after checking that they are increasing positions among ``n_columns``."""
    cols = np.asarray(columns)
    if cols.ndim != 1 or (cols.size and not np.issubdtype(cols.dtype, np.integer)):
        msg = f"`columns` must be a 1-D array of column positions (integers), not {cols.dtype} of shape {cols.shape}."
        raise ValueError(msg)
    cols = cols.astype(np.int64)
    if cols.size and (np.any(np.diff(cols) <= 0) or cols[0] < 0 or cols[-1] >= n_columns):
        msg = (f"`columns` must be increasing positions in [0, {n_columns}) without repeats; sort them "
               "(np.unique) and map results back to the order you need.")
        raise ValueError(msg)
    return cols


def row_products(F: sparse.csr_matrix, W: NDArray) -> NDArray[np.float64]:
    """``F @ W`` in float64 for ``F`` CSR (any float dtype) and dense ``W`` ``(columns, k)``.

    No float64 copy of ``F``: each row's sum runs in stored order, as scipy's product of the float64-converted
    matrix does.
    """
    if not (sparse.issparse(F) and F.format == "csr"):
        msg = f"row_products reads CSR matrices, got {type(F).__name__}."
        raise ValueError(msg)
    W = np.ascontiguousarray(W, dtype=np.float64)
    out = np.zeros((F.shape[0], W.shape[1]))
    _row_products(F.indptr, F.indices, F.data, W, out)
    return out


def column_moments(
    F: sparse.csr_matrix, row_weights: NDArray | None = None
) -> tuple[NDArray[np.float64], ...]:
    """Per column, the sum and the sum of squares of ``F`` (CSR) in float64, with no copy of ``F``.

    With ``row_weights`` (one per row), also the weighted sum ``F.T @ row_weights``.
    """
    if not (sparse.issparse(F) and F.format == "csr"):
        msg = f"column_moments reads CSR matrices, got {type(F).__name__}."
        raise ValueError(msg)
    if row_weights is None:
        return _moments(F.indices, F.data, F.shape[1])
    w = np.asarray(row_weights, dtype=np.float64)
    if w.shape != (F.shape[0],):
        msg = f"`row_weights` needs one value per row ({F.shape[0]}), got shape {w.shape}."
        raise ValueError(msg)
    return _weighted_moments(F.indptr, F.indices, F.data, w, F.shape[1])


@numba.njit(cache=True, nogil=True)
def _moments(indices, data, n_cols):  # pragma: no cover - compiled
    s = np.zeros(n_cols)
    q = np.zeros(n_cols)
    for k in range(indices.size):
        v = np.float64(data[k])
        s[indices[k]] += v
        q[indices[k]] += v * v
    return s, q


@numba.njit(cache=True, nogil=True)
def _weighted_moments(indptr, indices, data, w, n_cols):  # pragma: no cover - compiled
    s = np.zeros(n_cols)
    q = np.zeros(n_cols)
    ws = np.zeros(n_cols)
    for i in range(indptr.size - 1):
        for k in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[k])
            s[indices[k]] += v
            q[indices[k]] += v * v
            ws[indices[k]] += v * w[i]
    return s, q, ws


@numba.njit(cache=True, nogil=True)
def _fill_at(indptr, indices, data, start, stop, where, out):  # pragma: no cover - compiled
    for i in range(out.shape[0]):
        lo, hi = indptr[i], indptr[i + 1]
        row = indices[lo:hi]
        a = lo + np.searchsorted(row, start)
        b = lo + np.searchsorted(row, stop)
        for k in range(a, b):
            j = where[indices[k] - start]
            if j >= 0:
                out[i, j] = data[k]


@numba.njit(cache=True, nogil=True)
def _row_products(indptr, indices, data, W, out):  # pragma: no cover - compiled
    k_out = W.shape[1]
    for i in range(out.shape[0]):
        for f in range(k_out):
            acc = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                acc += np.float64(data[k]) * W[indices[k], f]
            out[i, f] = acc
