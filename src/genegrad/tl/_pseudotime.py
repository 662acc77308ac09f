"""Pseudotime: the geodesic distance from a root cell along the manifold's graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _keys
from .._core import _terminal
from .._validation import require_key, warn
from ..pp._manifold import load_model

if TYPE_CHECKING:
    import anndata as ad
    from numpy.typing import NDArray
    from scipy import sparse


def pseudotime(adata: ad.AnnData, root: str | int, *, key: str = _keys.UNS, copy: bool = False) -> ad.AnnData | None:
    """Graph pseudotime from ``root``: the pseudotime :func:`genegrad.tl.fate_bias` orients its chain by.

    The length of the shortest path from the root along the manifold's shared-neighbour graph, each edge as long
    as it is in the representation denoised as for the tangent frames (so single noisy cells make no shortcuts).
    Cells the root cannot reach get NaN, with a warning.

    Parameters
    ----------
    adata
        Data with the manifold of :func:`genegrad.pp.manifold`.
    root
        A cell of the starting population, by obs name or position.
    key
        Prefix under which :func:`genegrad.pp.manifold` stored the manifold.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with ``adata.obs['genegrad_pseudotime']`` (for ``key='genegrad'``).
    """
    from ._fate import root_index

    model = load_model(adata, key)
    root_cell = root_index(adata, root)
    _, time = graph_time(adata, model, root_cell, key=key)
    target = adata.copy() if copy else adata
    target.obs[f"{key}_pseudotime"] = np.where(np.isfinite(time), time, np.nan)
    return target if copy else None


def graph_time(adata: ad.AnnData, model, root_cell: int, *, key: str) -> tuple[sparse.csr_matrix, NDArray]:
    """``(K_snn, time)``: the shared-neighbour graph and the geodesic distance from ``root_cell`` along it."""
    rep = adata.uns[key]["params"]["use_rep"]
    require_key(adata, "obsm", rep, fix="run `genegrad.pp.manifold` again")
    Y = np.asarray(adata.obsm[rep], dtype=np.float64)
    K_snn = _terminal.shared_neighbor_graph(model.knn_indices_, adata.obsp[_keys.connectivities(key)])
    time = _terminal.graph_pseudotime(K_snn, model.smooth(Y, model.n_smooth), root_cell)
    unreached = int((~np.isfinite(time)).sum())
    if unreached:
        warn(f"{unreached} cells cannot be reached from the root along the graph (another component, or edges "
             "to cells sharing few neighbours); their pseudotime is NaN and they take no part in detecting "
             "terminal states.")
    return K_snn, time
