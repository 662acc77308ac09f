"""Carry a manifold from one AnnData to another of the same cells (paired multiome, gene activity)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from .. import _keys
from ._manifold import clear_results, manifold_neighbors

if TYPE_CHECKING:
    import anndata as ad
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)


def transfer_manifold(
    adata: ad.AnnData,
    source: ad.AnnData,
    *,
    key: str = _keys.UNS,
    copy: bool = False,
) -> ad.AnnData | None:
    """Give ``adata`` the manifold of ``source`` (its graph, tangent frames and gradient operator).

    For paired measurements of the same cells: the gradients of RNA on the ATAC manifold of a multiome
    experiment, or of gene activities (:func:`gene_activity`) on the peaks' manifold. Cells are matched by name,
    in any order (``adata``'s order is kept). After it, :func:`genegrad.tl.gradients` and the other tools
    differentiate ``adata``'s signal on ``source``'s manifold.

    With MuData: ``gg.pp.transfer_manifold(mdata['rna'], mdata['atac'])``.

    Parameters
    ----------
    adata
        AnnData that receives the manifold: the same cells as ``source`` (the same ``obs_names``, in any order).
    source
        AnnData with a manifold (:func:`genegrad.pp.manifold`).
    key
        Prefix of the manifold's keys.
    copy
        Return a modified copy of ``adata`` instead of writing into it.

    Returns
    -------
    ``None`` or a copy (``copy=True``) with the manifold's ``obsp``, ``obsm`` and ``uns[key]``
    entries, and the representation it was built on (``obsm[use_rep]``). Results of genegrad's tools stored in
    ``adata`` under ``key`` before (gradients, patterns, fates) are removed: they refer to its former manifold.

    Examples
    --------
    >>> import genegrad as gg
    >>> atac = gg.datasets.synthetic("tree", n_cells=300, n_genes=300, depth=300, rng=1)
    >>> rna = gg.datasets.synthetic("tree", n_cells=300, n_genes=100, rng=1)
    >>> gg.pp.preprocess_atac(atac, n_comps=10)
    >>> gg.pp.manifold(atac, use_rep="X_lsi", n_neighbors=15)
    >>> gg.pp.preprocess(rna, n_comps=10)
    >>> gg.pp.transfer_manifold(rna, atac)
    >>> rna.uns["genegrad"]["params"]["use_rep"]
    'X_lsi'
    """
    manifold_neighbors(source, key)  # the source's manifold is complete and fits its cells
    order = _match_cells(source, adata)
    info = source.uns[key]
    rep = str(info["params"]["use_rep"])
    writes: dict[tuple[str, str], object] = {}
    for fn in _keys.MANIFOLD_OBSM:
        writes["obsm", fn(key)] = np.asarray(source.obsm[fn(key)])[order]
    for fn in _keys.MANIFOLD_OBSP:
        writes["obsp", fn(key)] = sparse.csr_matrix(source.obsp[fn(key)])[order][:, order]
    if rep != "X" and rep in source.obsm:
        Y = np.asarray(source.obsm[rep])[order]
        if rep in adata.obsm and not (np.shape(adata.obsm[rep]) == Y.shape and np.allclose(adata.obsm[rep], Y)):
            msg = (f"`adata.obsm['{rep}']` exists and differs from the representation the manifold was built on "
                   f"(`source.obsm['{rep}']`); rename one of them (e.g. `adata.obsm['{rep}_rna'] = "
                   f"adata.obsm.pop('{rep}')`) and transfer again.")
            raise ValueError(msg)
        writes["obsm", rep] = Y
    uns = {k: info[k] for k in _keys.MANIFOLD_UNS if k in info}
    out = adata.copy() if copy else adata
    clear_results(out, key)  # results of adata's former manifold
    for (slot, k), value in writes.items():
        getattr(out, slot)[k] = value
    out.uns[key] = uns
    logger.info("transferred the manifold `%s` (%d cells, d=%d, built on `%s`)", key, out.n_obs,
                int(uns["n_dims"]), rep)
    return out if copy else None


def _match_cells(source: ad.AnnData, target: ad.AnnData) -> NDArray[np.int64]:
    """Position in ``source`` of each of ``target``'s cells (the AnnData receiving the manifold)."""
    if source.n_obs == target.n_obs and source.obs_names.equals(target.obs_names):
        return np.arange(source.n_obs)
    if not source.obs_names.is_unique or not target.obs_names.is_unique:
        msg = "Cell names must be unique in `adata` and `source` to match them; call `obs_names_make_unique()`."
        raise ValueError(msg)
    order = source.obs_names.get_indexer(target.obs_names)
    missing = order < 0
    if missing.any():
        ex_t = target.obs_names[np.flatnonzero(missing)[0]]
        ex_s = source.obs_names[0]
        msg = (f"{int(missing.sum())} of `adata`'s {target.n_obs} cells are not in `source` (e.g. {ex_t!r}; "
               f"`source` has e.g. {ex_s!r}). Paired modalities must name each cell the same way: strip a "
               f"modality suffix, e.g. `rna.obs_names = rna.obs_names.str.removesuffix('_rna')`.")
        raise ValueError(msg)
    if target.n_obs != source.n_obs:
        msg = (f"`source` has {source.n_obs} cells and `adata` {target.n_obs}: a manifold moves only to the same "
               "cells. Subset `source` like `adata` and run `genegrad.pp.manifold` on it, then transfer.")
        raise ValueError(msg)
    return order.astype(np.int64)
