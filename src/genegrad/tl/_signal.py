"""Reading the signal genegrad differentiates, and progress bars for long streamed work."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from .._validation import check_finite, warn

if TYPE_CHECKING:
    import anndata as ad
    from numpy.typing import NDArray


def read_signal(
    adata: ad.AnnData, layer: str | None, columns: NDArray | None = None
) -> NDArray | sparse.csc_matrix:
    """The log-normalised signal (``X`` or a layer) in memory, checked: CSC when sparse, else dense.

    ``columns`` (positions in ``var_names``) are selected before the conversion, so that at most the selected
    genes are copied (nothing is selected when they are all genes in order).
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
    check_finite(name, F)
    data = F.data if sparse.issparse(F) else np.asarray(F)
    if data.size and np.all(np.mod(data[: 100_000], 1) == 0) and data.max() > 30:
        warn(f"`{name}` looks like raw counts (integers up to {data.max():.0f}); gradients of a log-normalised "
             "signal are what the method assumes: run `genegrad.pp.preprocess` first.")
    if columns is not None and not np.array_equal(columns, np.arange(F.shape[1])):
        F = F[:, np.asarray(columns)]
    return sparse.csc_matrix(F) if sparse.issparse(F) else np.asarray(F)


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
