"""Peaks to a signal and a representation: TF-IDF and latent semantic indexing (LSI) for scATAC-seq."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from .. import _keys
from .._core import _lsi
from .._validation import check_counts, check_counts_layer, check_range, check_unique_names

if TYPE_CHECKING:
    import anndata as ad

logger = logging.getLogger(__name__)


def preprocess_atac(
    adata: ad.AnnData,
    *,
    n_comps: int = 50,
    n_top_peaks: int | None = None,
    min_cells: int = 5,
    max_depth_corr: float = 0.5,
    normalize_rows: bool = True,
    binarize: bool = False,
    scale_factor: float = 1e4,
    layer: str | None = None,
    random_state: int = 0,
    copy: bool = False,
) -> ad.AnnData | None:
    """Peak counts to a TF-IDF signal and its LSI, the representation genegrad builds the manifold on.

    The signal is ``log1p(scale_factor * tf * idf)`` with ``tf = c_ig / n_i`` (the cell's counts in peaks) and
    ``idf = N / n_g`` (the peak's counts over all cells), as Signac's default TF-IDF. The LSI is a truncated SVD
    of that signal on the selected peaks (uncentred, so that sparsity is kept); components whose scores
    correlate with sequencing depth (``|r| > max_depth_corr`` with the log of each cell's counts, usually the
    first) are dropped. The gradients of every peak (or of gene activities, :func:`gene_activity`, or of
    paired RNA, :func:`transfer_manifold`) are then computed on the manifold of ``obsm['X_lsi']``:
    ``gg.pp.manifold(adata, use_rep='X_lsi')``.

    Parameters
    ----------
    adata
        Fragment (or insertion) counts in peaks, cells x peaks, in ``X`` (or ``layers[layer]``).
    n_comps
        SVD components computed (the depth-correlated ones are then dropped).
    n_top_peaks
        Peaks of the LSI: the ``n_top_peaks`` accessible in the most cells; ``None``: every peak accessible in at
        least ``min_cells`` cells.
    min_cells
        Cells a peak must be accessible in to enter the LSI.
    max_depth_corr
        Components whose scores correlate with log depth beyond this (absolute Pearson) are dropped; ``1``
        keeps every component.
    normalize_rows
        Scale each cell's kept LSI scores to unit length (the cosine geometry of ArchR and SnapATAC): what is
        left of depth after TF-IDF is the length of a cell's scores.
    binarize
        Count accessibility (0/1) rather than fragments.
    scale_factor
        Multiplier inside the ``log1p``.
    layer
        Layer holding the counts; ``X`` by default.
    random_state
        Seed of the randomised SVD.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with

    - ``adata.layers['counts']``: the counts; ``adata.X``: the TF-IDF signal (CSR float32);
    - ``adata.var['highly_variable']``: the LSI's peaks (the peaks genegrad's tools use by default), with
      ``var['n_cells']`` (cells where accessible) and ``var['idf']``;
    - ``adata.obsm['X_lsi']`` (kept components), ``adata.varm['LSI']`` (their loadings: ``X_lsi = X @ LSI``,
      before the rows are scaled to unit length),
      ``adata.uns['lsi']`` (``variance_ratio`` and ``depth_corr`` of every component, ``dropped``);
    - ``adata.uns['genegrad_preprocess']``: the parameters, with ``modality='atac'``.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("tree", n_cells=300, n_genes=400, depth=200)
    >>> gg.pp.preprocess_atac(adata, n_comps=10)
    >>> adata.obsm["X_lsi"].shape[1] < 10  # the depth component is dropped
    True
    """
    check_range("n_comps", n_comps, 2, None, integer=True)
    if n_top_peaks is not None:
        check_range("n_top_peaks", n_top_peaks, 2, None, integer=True)
    check_range("min_cells", min_cells, 1, None, integer=True)
    check_range("max_depth_corr", max_depth_corr, 0.0, 1.0)
    check_range("scale_factor", scale_factor, 1e-12, None)
    for arg, flag in (("normalize_rows", normalize_rows), ("binarize", binarize)):
        if not isinstance(flag, bool):
            msg = f"Expected `{arg}` to be True or False, got {flag!r}."
            raise TypeError(msg)
    check_unique_names(adata)
    raw, name = check_counts(adata, layer)
    check_counts_layer(adata, raw, layer=layer, name=name, tool="preprocess_atac")
    counts = sparse.csr_matrix(raw, dtype=np.float32, copy=True)  # a copy: never a view of the caller's data
    counts.eliminate_zeros()
    C = counts.copy()
    if binarize:
        C.data[:] = 1.0
    depth = np.asarray(C.sum(axis=1), dtype=np.float64).ravel()

    n_cells = np.bincount(C.indices, minlength=C.shape[1])
    selected = n_cells >= min_cells
    if n_top_peaks is not None and selected.sum() > n_top_peaks:
        order = np.lexsort((np.arange(C.shape[1]), -n_cells))  # most accessible first, ties by position
        keep = order[:n_top_peaks]
        selected = np.zeros(C.shape[1], dtype=bool)
        selected[keep] = n_cells[keep] >= min_cells
    n_comps_eff = int(min(n_comps, C.shape[0] - 1, selected.sum() - 1))
    if n_comps_eff < 2:
        msg = (f"Too few peaks pass `min_cells={min_cells}` ({int(selected.sum())}) for an LSI of 2 components "
               f"or more on {C.shape[0]} cells; lower `min_cells` or pass more peaks.")
        raise ValueError(msg)

    X, idf = _lsi.tfidf(C, scale_factor=scale_factor)
    logger.info("TF-IDF of %d peaks; LSI of %d components on %d peaks", C.shape[1], n_comps_eff,
                int(selected.sum()))
    fit = _lsi.lsi(X[:, selected], depth, n_comps_eff, max_depth_corr=max_depth_corr,
                   normalize_rows=normalize_rows, random_state=random_state)
    logger.info("dropped LSI components %s (|correlation with log depth| > %.2f)", fit.dropped.tolist(),
                max_depth_corr)
    kept, dropped = fit.kept, fit.dropped
    full_loadings = np.zeros((C.shape[1], kept.size), dtype=np.float32)
    full_loadings[selected] = fit.loadings

    result = {
        ("layers", "counts"): counts,
        ("obsm", "X_lsi"): fit.scores.astype(np.float32),
        ("varm", "LSI"): full_loadings,
    }
    var_cols = {"highly_variable": selected, "n_cells": n_cells.astype(np.int64), "idf": idf}
    uns = {
        "lsi": {"variance_ratio": fit.variance_ratio, "depth_corr": fit.depth_corr, "dropped": dropped.astype(int),
                "kept": kept.astype(int), "normalize_rows": bool(normalize_rows)},
        _keys.PREPROCESS: {
            "modality": "atac", "n_comps": int(kept.size), "n_top_peaks": int(selected.sum()),
            "min_cells": int(min_cells), "max_depth_corr": float(max_depth_corr), "binarize": bool(binarize),
            "scale_factor": float(scale_factor), "layer": layer or "X",
        },
    }
    # everything is computed: writing cannot fail half-way
    target = adata.copy() if copy else adata
    for (slot, key), value in result.items():
        getattr(target, slot)[key] = value
    target.X = X
    for col, value in var_cols.items():
        target.var[col] = value
    target.uns.update(uns)
    if not copy:
        for key in ("layers['counts']", "X", "var['highly_variable']", "var['n_cells']", "var['idf']",
                    "obsm['X_lsi']", "varm['LSI']", "uns['lsi']", f"uns['{_keys.PREPROCESS}']"):
            logger.info("added `adata.%s`", key)
    return target if copy else None
