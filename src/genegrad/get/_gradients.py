"""Read gradients in any basis: tangent coordinates, the representation, or any embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _keys
from .._core._operator import gradient_matrix
from .._store import GradientStore, StoreError, names_hash
from .._validation import check_scale, require_key, resolve_genes
from ..pp._manifold import check_manifold, manifold_neighbors

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from numpy.typing import NDArray


def gradients(
    adata: ad.AnnData,
    genes: Sequence[str] | str,
    *,
    scale: int = 0,
    basis: str = "X_pca",
    key: str = _keys.UNS,
) -> NDArray[np.float32]:
    """Gradients of ``genes`` at one scale, ``(cells, genes, dim)``.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.gradients` ran.
    genes
        One gene or a list; each must have been differentiated.
    scale
        Diffusion time, one of ``adata.uns['genegrad']['scales']``.
    basis
        ``'tangent'``: coordinates in each cell's tangent frame (frames are defined up to sign and rotation, so
        compare cells only through the other bases). The representation key (``'X_pca'``): ``U_i beta_i``.
        Any other ``obsm`` key (e.g. ``'X_umap'``): the push-forward ``(grad E_k . beta_i)_k``, the rate at
        which each embedding coordinate changes along the gradient (``grad E_k`` estimated by the same operator,
        at the same scale), for arrows and streamlines.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("plane", n_cells=300, n_genes=100)
    >>> gg.pp.preprocess(adata, n_comps=10)
    >>> gg.pp.manifold(adata, n_dims=2, n_neighbors=20)
    >>> gg.tl.gradients(adata, adata.var_names[:5])
    >>> gg.get.gradients(adata, adata.var_names[:2], scale=1).shape
    (300, 2, 10)
    """
    # the gradients are in the manifold's tangent frames (per cell: a subset of the cells reads them right); the
    # push-forward to another embedding uses the graph, which must hold every neighbour (manifold_neighbors)
    info = check_manifold(adata, key, whole=False)
    zarr_store = "gradients" in info and info["gradients"].get("store", "obsm") == "zarr"
    if "gradients" not in info or (_keys.gradients(key) not in adata.obsm and not zarr_store):
        msg = f"No gradients under `adata.obsm['{_keys.gradients(key)}']`; run `genegrad.tl.gradients` first."
        raise KeyError(msg)
    genes = resolve_genes(adata, genes)
    done = [str(g) for g in info["gradients"]["genes"]]  # object or StringDType (zarr round trip) alike
    pos = {g: j for j, g in enumerate(done)}
    missing = [g for g in genes if g not in pos]
    if missing:
        msg = (f"No gradients for {missing[:10]}; run `genegrad.tl.gradients(adata, genes=...)` including them.")
        raise KeyError(msg)
    scales = [int(t) for t in info["gradients"]["scales"]]
    check_scale(scale, scales)
    if zarr_store:
        tangent = _from_store(adata, info["gradients"], [pos[g] for g in genes], scale_index=scales.index(scale),
                              genes=done)
    else:
        stored = adata.obsm[_keys.gradients(key)]
        tangent = np.asarray(stored[:, :, :, scales.index(scale)])[:, [pos[g] for g in genes], :]
    return to_basis(adata, tangent, scale=scale, basis=basis, key=key)


def _from_store(adata: ad.AnnData, info, columns: list[int], *, scale_index: int, genes: list[str]) -> NDArray:
    """Tangent gradients of the store's ``columns`` for ``adata``'s cells, after checking the store is theirs."""
    if "store_id" not in info:
        msg = ("This AnnData's gradient store was written by an older genegrad, which recorded no store id; run "
               "`genegrad.tl.gradients(..., store='zarr')` again.")
        raise StoreError(msg)
    store = GradientStore(info["path"], store_id=str(info["store_id"]))
    if store.meta["var_hash"] != names_hash(genes):
        msg = (f"The gradient store at {info['path']!r} holds other genes than this AnnData recorded; run "
               "`genegrad.tl.gradients(..., store='zarr')` again.")
        raise StoreError(msg)
    rows = store.rows_for(adata.obs_names)  # the cells by name: subsets and reorders of the AnnData read right
    tangent = store.gradients(columns, scale_index=scale_index)
    return tangent if rows is None else tangent[rows]


def default_basis(adata: ad.AnnData, key: str = _keys.UNS) -> str:
    """The representation the manifold under ``key`` was built on (``'X_pca'`` when there is none)."""
    return str(adata.uns.get(key, {}).get("params", {}).get("use_rep", "X_pca"))


def to_basis(adata: ad.AnnData, tangent: NDArray, *, scale: int, basis: str, key: str = _keys.UNS) -> NDArray:
    """Tangent gradients ``(N, g, d)`` at ``scale`` in ``basis`` (see :func:`gradients`)."""
    info = adata.uns[key]
    if basis == "tangent":
        return tangent
    if basis == info["params"]["use_rep"]:
        frames = np.asarray(adata.obsm[_keys.frames(key)])
        return np.einsum("npd,ngd->ngp", frames, tangent).astype(np.float32)
    require_key(adata, "obsm", basis, fix="compute the embedding first (e.g. `scanpy.tl.umap`) or use 'tangent'")
    E = np.asarray(adata.obsm[basis], dtype=np.float32)
    P = adata.obsp[_keys.diffusion(key)]
    for _ in range(scale):  # the embedding at the same scale as the signal, like the coordinates
        E = P @ E
    d = int(info["n_dims"])
    j = [int(t) for t in info["fit_scales"]].index(scale)
    coef = np.asarray(adata.obsm[_keys.operator(key)][:, j, :d])
    D = gradient_matrix(coef, manifold_neighbors(adata, key), d)  # only this scale's operator
    dE = (D @ E).reshape(adata.n_obs, d, E.shape[1])  # gradient of each embedding coordinate
    return np.einsum("nde,ngd->nge", dE, tangent).astype(np.float32)
