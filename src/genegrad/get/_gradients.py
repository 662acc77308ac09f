"""Read gradients in any basis: tangent coordinates, the representation, or any embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from .. import _keys
from .._core._operator import gradient_matrix
from .._store import GradientStore, StoreError, names_hash
from .._validation import check_scale, gene_positions, require_key, resolve_genes
from ..pp._manifold import check_manifold, load_model, manifold_neighbors
from ..tl._signal import read_signal, signal_sums

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from numpy.typing import NDArray

    from .._core._model import GradientChunk


def gradients(
    adata: ad.AnnData,
    genes: Sequence[str] | str,
    *,
    scale: int | Literal["auto"] = 0,
    basis: str | None = None,
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
        Diffusion time, one of ``adata.uns['genegrad']['scales']``; or ``'auto'``: each gene at its recommended
        scale, ``var['genegrad_scale']`` (written by :func:`genegrad.tl.gradients` with standard errors).
    basis
        ``'tangent'``: coordinates in each cell's tangent frame (frames are defined up to sign and rotation, so
        compare cells only through the other bases). The representation the manifold was built on (the default:
        ``'X_pca'``, or ``'X_lsi'`` for scATAC-seq): ``U_i beta_i``.
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
    >>> gg.get.gradients(adata, adata.var_names[:2], scale="auto").shape
    (300, 2, 10)
    """
    reader = _Reader(adata, genes, key)
    basis = default_basis(adata, key) if basis is None else basis
    if scale == "auto":
        per_gene = reader.auto_scales()
        out = None
        for t in np.unique(per_gene):
            cols = np.flatnonzero(per_gene == t)
            part = to_basis(adata, reader.tangent(int(t), cols), scale=int(t), basis=basis, key=key)
            if out is None:
                out = np.empty((adata.n_obs, len(reader.genes), part.shape[2]), dtype=np.float32)
            out[:, cols] = part
        return out
    reader.check(scale)
    return to_basis(adata, reader.tangent(int(scale)), scale=int(scale), basis=basis, key=key)


class _Reader:
    """The stored gradients (and standard errors) of ``genes``, checked: from ``obsm`` or the zarr store."""

    def __init__(self, adata: ad.AnnData, genes: Sequence[str] | str, key: str) -> None:
        # the gradients are in the manifold's tangent frames (per cell: a subset of the cells reads them right);
        # the push-forward to another embedding uses the graph, which must hold every neighbour
        info = check_manifold(adata, key, whole=False)
        self.store = info["gradients"].get("store", "obsm") if "gradients" in info else None
        if self.store is None or (self.store == "obsm" and _keys.gradients(key) not in adata.obsm):
            msg = f"No gradients under `adata.uns['{key}']['gradients']`; run `genegrad.tl.gradients` first."
            raise KeyError(msg)
        self.adata, self.key, self.info = adata, key, info["gradients"]
        self._computed: dict[tuple, GradientChunk] = {}
        self._model = None  # loaded once, when the first gradients are recomputed
        self.genes = resolve_genes(adata, genes)
        self.done = [str(g) for g in self.info["genes"]]  # object or StringDType (zarr round trip) alike
        pos = {g: j for j, g in enumerate(self.done)}
        missing = [g for g in self.genes if g not in pos]
        if missing:
            msg = f"No gradients for {missing[:10]}; run `genegrad.tl.gradients(adata, genes=...)` including them."
            raise KeyError(msg)
        self.columns = np.array([pos[g] for g in self.genes], dtype=int)
        self.scales = [int(t) for t in self.info["scales"]]

    def check(self, scale: object) -> int:
        """``scale`` if it is one of the computed scales, else a ValueError that lists them (and ``'auto'``)."""
        if isinstance(scale, str):
            msg = f"Expected `scale` in {self.scales} or 'auto', got {scale!r}."
            raise ValueError(msg)
        return check_scale(scale, self.scales)

    def tangent(self, scale: int, cols: NDArray | None = None) -> NDArray:
        """Tangent gradients ``(cells, genes, d)`` of the genes (or of those at ``cols``) at ``scale``."""
        columns = self.columns if cols is None else self.columns[cols]
        i = self.scales.index(scale)
        if self.store == "recompute":
            return self._recompute(scale, cols).gradients[..., 0]
        if self.store == "zarr":
            return _from_store(self.adata, self.info, list(columns), scale_index=i, genes=self.done)
        return np.asarray(self.adata.obsm[_keys.gradients(self.key)][:, :, :, i])[:, columns, :]

    def se(self, scale: int, cols: NDArray | None = None) -> NDArray:
        """Standard errors ``(cells, genes)`` of the gradients' lengths at ``scale``."""
        if not self.info.get("with_se", True):
            msg = "The gradients were computed without standard errors; run `genegrad.tl.gradients(..., with_se=True)`."
            raise KeyError(msg)
        columns = self.columns if cols is None else self.columns[cols]
        i = self.scales.index(scale)
        if self.store == "recompute":
            return self._recompute(scale, cols).se[..., 0]
        if self.store == "zarr":
            return _from_store(self.adata, self.info, list(columns), scale_index=i, genes=self.done, se=True)
        return np.asarray(self.adata.obsm[_keys.gradients_se(self.key)][:, :, i])[:, columns]

    def _recompute(self, scale: int, cols: NDArray | None) -> GradientChunk:
        """The gradients (and standard errors) of the genes (or of those at ``cols``) at ``scale``, recomputed.

        The operator and the signal are checked first: the whole manifold must be there (no cells removed), and
        each gene's signal must be the one ``genegrad.tl.gradients`` differentiated (same fingerprint:
        :func:`~genegrad.tl._signal.signal_sums`).
        """
        local = np.arange(len(self.genes)) if cols is None else np.asarray(cols, dtype=int)
        memo = (scale, local.tobytes())
        if memo in self._computed:
            return self._computed[memo]
        try:
            check_manifold(self.adata, self.key, whole=True)
        except ValueError as err:
            msg = (f"{err} The gradients are recomputed when read (`genegrad.tl.gradients(..., store='recompute')`, "
                   "the default), which needs every cell of the manifold: read them before subsetting the cells, or "
                   "run `genegrad.tl.gradients(..., store='obsm')` before subsetting.")
            raise ValueError(msg) from None
        genes = [self.genes[j] for j in local]
        layer = str(self.info["layer"])
        F = read_signal(self.adata, None if layer == "X" else layer, gene_positions(self.adata, genes))
        stored = np.asarray(self.info["signal_sums"], dtype=np.float64)[self.columns[local]]
        now = signal_sums(F, self.adata.obs_names)[:, :stored.shape[1]]  # two columns in earlier results
        # float64 sums of the same values in another order (cells reordered, another sparse format) differ by
        # round-off only, at most ~n x 1e-16 relative: 1e-9 still holds at 10^6 cells, and a looser bar would miss
        # small edits in the long columns of many cells (their sums grow with n)
        changed = ~np.all(np.isclose(now, stored, rtol=1e-9, atol=1e-9), axis=1)
        if changed.any():
            where = "adata.X" if layer == "X" else f"adata.layers[{layer!r}]"
            bad = [g for g, c in zip(genes, changed, strict=True) if c][:5]
            msg = (f"The signal of {int(changed.sum())} genes (e.g. {bad}) in `{where}` changed since "
                   "`genegrad.tl.gradients` differentiated it, so the gradients recomputed from it would not be the "
                   "ones its results (recommended scales, patterns, fates) came from. Rerun `genegrad.tl.gradients` "
                   "(and the tools after it), or restore the signal.")
            raise ValueError(msg)
        if self._model is None:
            self._model = load_model(self.adata, self.key)
        part = self._model.gradients(F, with_se=bool(self.info.get("with_se", True)), scales=[scale],
                                     log_mean=bool(self.info.get("log_mean", False)))
        self._computed[memo] = part
        return part

    def auto_scales(self) -> NDArray[np.int64]:
        """Each gene's recommended scale, ``var['<key>_scale']``, checked against the stored scales."""
        col = _keys.scale(self.key)
        if col not in self.adata.var:
            msg = (f"No recommended scales (`adata.var['{col}']`): `scale='auto'` needs the standard errors; run "
                   "`genegrad.tl.gradients(..., with_se=True)` (the default).")
            raise KeyError(msg)
        per_gene = self.adata.var[col].to_numpy(dtype=float)[gene_positions(self.adata, self.genes)]
        bad = [g for g, t in zip(self.genes, per_gene, strict=True) if not np.isfinite(t) or int(t) not in self.scales]
        if bad:
            msg = (f"`adata.var['{col}']` gives no computed scale for {bad[:5]} (not differentiated by the last "
                   "`genegrad.tl.gradients` call, or edited since); run `genegrad.tl.gradients` on them again.")
            raise KeyError(msg)
        return per_gene.astype(np.int64)


def _from_store(adata: ad.AnnData, info, columns: list[int], *, scale_index: int, genes: list[str],
                se: bool = False) -> NDArray:
    """Tangent gradients (or their SEs) of the store's ``columns`` for ``adata``'s cells, the store checked."""
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
    out = (store.se if se else store.gradients)(columns, scale_index=scale_index)
    return out if rows is None else out[rows]


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
