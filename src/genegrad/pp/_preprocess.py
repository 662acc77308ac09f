"""Normalise, log-transform, select highly variable genes and compute a PCA, through scanpy."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .. import _keys
from .._core import _columns
from .._core._intervals import looks_like_peaks
from .._validation import check_counts, check_counts_layer, check_range, check_unique_names, warn

logger = logging.getLogger(__name__)


def preprocess(
    adata: ad.AnnData,
    *,
    n_top_genes: int = 2000,
    n_comps: int = 50,
    layer: str | None = None,
    target_sum: float = 1e4,
    random_state: int = 0,
    copy: bool = False,
) -> ad.AnnData | None:
    """Counts to a log-normalised signal and its PCA, the standard scanpy recipe.

    ``normalize_total`` (to ``target_sum``), ``log1p``, ``highly_variable_genes`` (Seurat flavour on the
    log data, all genes kept and flagged) and ``pca`` on the highly variable genes.

    Parameters
    ----------
    adata
        Raw counts in ``X`` (or in ``layers[layer]``), cells x genes.
    n_top_genes
        Number of highly variable genes (all genes when there are fewer).
    n_comps
        Principal components.
    layer
        Layer holding the counts; ``X`` by default.
    target_sum
        Total counts per cell after normalisation.
    random_state
        Seed of the PCA solver.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with

    - ``adata.layers['counts']``: the counts; ``adata.X``: ``log1p`` of the normalised counts (float32);
    - ``adata.var['highly_variable']``, ``adata.obsm['X_pca']``, ``adata.varm['PCs']``, ``adata.uns['pca']``;
    - ``adata.uns['genegrad_preprocess']``: the parameters.
    """
    import scanpy as sc

    check_range("n_top_genes", n_top_genes, 2, None, integer=True)
    check_range("n_comps", n_comps, 2, None, integer=True)
    check_range("target_sum", target_sum, 1e-12, None)
    check_unique_names(adata)
    if looks_like_peaks(adata.var_names):
        warn("`adata.var_names` look like genomic intervals (e.g. 'chr1:100-200'): for scATAC-seq peak counts use "
             "`genegrad.pp.preprocess_atac` (TF-IDF and LSI), then `genegrad.pp.manifold(adata, use_rep='X_lsi')`.")
    counts, name = check_counts(adata, layer)
    check_counts_layer(adata, counts, layer=layer, name=name, tool="preprocess")
    n_comps_eff = min(n_comps, adata.n_obs - 1, adata.n_vars - 1)
    check_range("n_comps (limited by the data's shape)", n_comps_eff, 2, None, integer=True)

    # computed on a bare AnnData (the names only): a failure leaves adata untouched, and no copy of adata's other
    # fields is made (at a million cells each copy of the matrix is gigabytes)
    stored = sparse.csr_matrix(counts, dtype=np.float32) if sparse.issparse(counts) else np.asarray(counts, np.float32)
    # the counts layer may keep the counts' memory only where nothing else will hold it: X (replaced below) or the
    # 'counts' layer itself, of an AnnData not returned as a copy (a view's X is its own slice of the parent's)
    if copy or layer not in (None, "counts"):
        stored = stored.copy()
    # while it is computed, a sparse X holds its own values but the counts' column indices (nothing below changes
    # them: scanpy's highly variable genes work on a copy); it gets its own at the end
    X = sparse.csr_matrix((stored.data.copy(), stored.indices, stored.indptr), shape=stored.shape) \
        if sparse.issparse(stored) else stored.copy()
    work = ad.AnnData(X=X, obs=pd.DataFrame(index=adata.obs_names.copy()),
                      var=pd.DataFrame(index=adata.var_names.copy()))
    logger.info("normalising, log1p, %d highly variable genes, %d PCs", n_top_genes, n_comps_eff)
    _normalise_log1p(work, target_sum)
    work.uns["log1p"] = {"base": None}
    n_hvg = min(n_top_genes, int(np.count_nonzero(_expressed(work.X))))
    sc.pp.highly_variable_genes(work, n_top_genes=n_hvg, flavor="seurat", subset=False)
    # every gene highly variable: no mask, which would copy the whole matrix (the same PCA; recorded as masked)
    every = bool(work.var["highly_variable"].all())
    sc.pp.pca(work, n_comps=min(n_comps_eff, n_hvg - 1), mask_var=None if every else "highly_variable",
              random_state=random_state)
    if every:  # as a masked PCA writes them: float64 loadings, recorded as on the highly variable genes
        work.varm["PCs"] = np.asarray(work.varm["PCs"], dtype=np.float64)
        work.uns["pca"]["params"].update(use_highly_variable=True, mask_var="highly_variable")
    if sparse.issparse(work.X):
        work.X = sparse.csr_matrix((work.X.data, work.X.indices.copy(), work.X.indptr.copy()), shape=work.X.shape)
    work.uns[_keys.PREPROCESS] = {
        "n_top_genes": int(n_hvg), "n_comps": int(work.obsm["X_pca"].shape[1]),
        "target_sum": float(target_sum), "layer": layer or "X",
    }
    work.layers["counts"] = stored
    target = adata.copy() if copy else adata
    target.layers["counts"] = work.layers["counts"]
    target.X = work.X
    for col in ("highly_variable", "means", "dispersions", "dispersions_norm"):
        target.var[col] = work.var[col].to_numpy()
    target.obsm["X_pca"] = work.obsm["X_pca"]
    target.varm["PCs"] = work.varm["PCs"]
    for key in ("pca", "log1p", "hvg", _keys.PREPROCESS):
        target.uns[key] = work.uns[key]
    if copy:
        return target
    for key in ("layers['counts']", "X", "var['highly_variable']", "obsm['X_pca']", "varm['PCs']",
                f"uns['{_keys.PREPROCESS}']"):
        logger.info("added `adata.%s`", key)
    return None


def _expressed(X) -> np.ndarray:
    """Per gene, whether any cell has a positive value (``X`` non-negative; no copy of a sparse matrix)."""
    if sparse.issparse(X):
        X = sparse.csr_matrix(X)
        return _columns.column_moments(X)[0] > 0
    return np.any(np.asarray(X) > 0, axis=0)


def _normalise_log1p(work: ad.AnnData, target_sum: float, *, block: int = 50_000) -> None:
    """Scanpy's ``normalize_total`` and ``log1p`` of ``work.X``, in place; a sparse X in blocks of rows.

    Both act row by row, so blocks give the same numbers, with temporaries of one block (scanpy's row scaling
    makes two arrays the size of the whole matrix's values).
    """
    import scanpy as sc

    X = work.X
    if not sparse.issparse(X):
        sc.pp.normalize_total(work, target_sum=target_sum)
        sc.pp.log1p(work)
        return
    for lo in range(0, X.shape[0], block):
        hi = min(lo + block, X.shape[0])
        a, b = X.indptr[lo], X.indptr[hi]
        part = ad.AnnData(X=sparse.csr_matrix((X.data[a:b], X.indices[a:b], X.indptr[lo:hi + 1] - a),
                                              shape=(hi - lo, X.shape[1])))
        sc.pp.normalize_total(part, target_sum=target_sum)
        sc.pp.log1p(part)
        X.data[a:b] = part.X.data
