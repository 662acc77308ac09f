"""Reading the signal genegrad differentiates, and progress bars for long streamed work."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from .._core import _columns
from .._validation import canonical, check_finite, sample_values, warn

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from numpy.typing import NDArray


def read_signal(
    adata: ad.AnnData, layer: str | None, columns: NDArray | None = None, *, by_column: bool = True
) -> NDArray | sparse.csc_matrix | sparse.csr_matrix:
    """The log-normalised signal (``X`` or a layer) in memory, checked: CSC when sparse, else dense.

    ``columns`` (positions in ``var_names``) are selected before the conversion, so that at most the selected
    genes are copied (nothing is selected when they are all genes in order). Without ``by_column``, a sparse
    signal stays CSR or CSC as it is (other formats become CSR), sparing the conversion for readers that take
    rows as well as columns.
    """
    if layer is None:
        F = adata.X
        name = "adata.X"
    else:
        if layer not in adata.layers:
            msg = f"`adata.layers['{layer}']` not found (available: {list(adata.layers)}); pass another `layer`."
            raise KeyError(msg)
        F = adata.layers[layer]
        name = f"adata.layers['{layer}']"
    if F is None:
        msg = f"`{name}` is empty; put the log-normalised expression there (see `genegrad.pp.preprocess`)."
        raise ValueError(msg)
    if adata.isbacked and layer is None:
        F = F[:, :]  # on-disk X (dense or sparse dataset): read it once, in memory
    F = canonical(F)  # duplicate sparse entries summed, on a copy
    check_finite(name, F)
    _warn_unlogged(F, name)
    if columns is not None and not np.array_equal(columns, np.arange(F.shape[1])):
        F = F[:, np.asarray(columns)]
    if not sparse.issparse(F):
        return np.asarray(F)
    return sparse.csc_matrix(F) if by_column else F  # canonical: CSR or CSC already


def _warn_unlogged(F, name: str) -> None:
    """Warn when the signal looks like counts, or normalised but not log-transformed."""
    sample = sample_values(F)
    if not sample.size:
        return
    top = float(sample.max())
    if np.all(np.mod(sample, 1) == 0) and top > 1:
        warn(f"`{name}` looks like raw counts (integers up to {top:.0f}); gradients of a log-normalised signal are "
             "what the method assumes: run `genegrad.pp.preprocess` first.")
        return
    totals = np.asarray(F.sum(axis=1), dtype=np.float64).ravel()
    equal_totals = totals.size > 1 and totals.mean() > 0 and totals.std() <= 1e-3 * totals.mean()
    if equal_totals or top > 50:
        why = "every cell has the same total" if equal_totals else f"values up to {top:.3g}"
        warn(f"`{name}` looks normalised but not log-transformed ({why}); gradients of a log-normalised signal "
             "are what the method assumes: apply `scanpy.pp.log1p` (or run `genegrad.pp.preprocess` on the counts).")


def signal_sums(F: NDArray | sparse.spmatrix, cells: Sequence[str]) -> NDArray[np.float64]:
    """A fingerprint of each column of ``F`` (rows: the ``cells`` named): ``(columns, 3)`` float64, summed in float64.

    The sum, the sum of squares, and a sum weighted by a number drawn from each cell's name: the same whatever the
    order of the cells (an AnnData reordered moves its rows with its names), different when values move to other
    cells.
    """
    import pandas as pd

    w = (pd.util.hash_array(np.asarray([str(c) for c in cells], dtype=object)) >> np.uint64(11)) / 2.0**53
    if sparse.issparse(F):  # summed in float64 in one pass over the rows, without a copy of a CSR signal
        return np.column_stack(_columns.column_moments(sparse.csr_matrix(F), w))
    F = np.asarray(F, dtype=np.float64)
    return np.column_stack([F.sum(axis=0), (F * F).sum(axis=0), w @ F])


def signal_nbytes(F: NDArray | sparse.spmatrix) -> int:
    """Bytes held by a dense or compressed sparse matrix."""
    if sparse.issparse(F):
        return int(F.data.nbytes + F.indices.nbytes + F.indptr.nbytes)
    return int(np.asarray(F).nbytes)


def progress_bar(progress: bool | None, *, total: int, desc: str):  # ruff: ignore[boolean-type-hint-positional-argument]
    """A tqdm bar, shown when ``progress`` or, by default, when genegrad logs at INFO level or below."""
    from tqdm.auto import tqdm

    if progress is None:
        progress = logging.getLogger("genegrad").getEffectiveLevel() <= logging.INFO
    return tqdm(total=total, disable=not progress, desc=desc, unit="gene")
