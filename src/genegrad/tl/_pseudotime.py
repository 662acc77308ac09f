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
    Cells the root cannot reach get NaN, with a warning. :func:`genegrad.tl.fate_bias` writes the same column
    (the pseudotime orienting its chain) and removes it when it runs with neither ``root`` nor ``time_key``.

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
    model = load_model(adata, key)
    root_cell = root_index(adata, root)
    _, time = graph_time(adata, model, root_cell, key=key)
    target = adata.copy() if copy else adata
    target.obs[f"{key}_pseudotime"] = np.where(np.isfinite(time), time, np.nan)
    return target if copy else None


def root_index(adata: ad.AnnData, root: str | int) -> int:
    """Position of the root cell, given by ``obs`` name or position."""
    if isinstance(root, (int, np.integer)) and not isinstance(root, bool):
        if not -adata.n_obs <= int(root) < adata.n_obs:
            msg = f"`root` is a position: expected it in [0, {adata.n_obs - 1}], got {root}."
            raise ValueError(msg)
        return int(root) % adata.n_obs
    if isinstance(root, str):
        pos = adata.obs_names.get_indexer([root])[0]
        if pos < 0:
            msg = f"`root` {root!r} is not an obs name (e.g. {list(adata.obs_names[:3])}); pass a name or a position."
            raise KeyError(msg)
        return int(pos)
    msg = f"`root` must be an obs name or an integer position, got {type(root).__name__}."
    raise TypeError(msg)


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
             "to cells sharing few neighbours); their pseudotime is NaN.")
    return K_snn, time
