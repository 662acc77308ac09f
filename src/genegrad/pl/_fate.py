"""Fate maps: fate probabilities with fate-flow streamlines, and driver genes along pseudotime."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from .. import _keys
from .._validation import fate_terminal, require_key
from ..get._gradients import default_basis, to_basis
from ._gradients import draw_stream, literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from matplotlib.figure import Figure


def fate_probs(
    adata: ad.AnnData,
    *,
    basis: str | None = None,
    fates: Sequence[str] | None = None,
    components: tuple[int, int] = (0, 1),
    grid_size: int = 30,
    panel_size: float = 3.5,
    show_terminal: bool = True,
    key: str = _keys.UNS,
) -> Figure:
    """One panel per fate: cells coloured by its probability, with the streamlines of its fate flow ``Phi_f``.

    The fate's terminal cells (given or detected) are circled.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.fate_bias` ran.
    basis
        An ``obsm`` embedding (``'X_pca'``, ``'X_umap'``, ...); by default the representation the manifold was
        built on (``'X_pca'`` after :func:`genegrad.pp.preprocess`, ``'X_lsi'`` after
        :func:`genegrad.pp.preprocess_atac`). The flows are pushed forward into it.
    fates
        Fates to draw; all by default.
    components
        The two columns of ``basis`` to draw.
    grid_size
        Grid points per axis for the streamlines.
    panel_size
        Inches per panel.
    show_terminal
        Circle each fate's terminal cells.
    key
        Prefix of the keys :func:`genegrad.tl.fate_bias` wrote.

    Returns
    -------
    The ``Figure``.
    """
    import matplotlib.pyplot as plt

    if not isinstance(show_terminal, bool | np.bool_):
        msg = f"Expected `show_terminal` to be True or False, got {show_terminal!r}."
        raise TypeError(msg)
    require_key(adata, "obsm", f"{key}_fate_probs", fix="run `genegrad.tl.fate_bias` first")
    basis = default_basis(adata, key) if basis is None else basis
    require_key(adata, "obsm", basis, fix="compute the embedding first (e.g. `scanpy.tl.umap`)")
    info = adata.uns[key]["fate_bias"]
    all_fates = [str(f) for f in info["fates"]]
    fates = all_fates if fates is None else list(fates)
    unknown = sorted(set(fates) - set(all_fates))
    if unknown:
        msg = f"Unknown fates {unknown}; choose among {all_fates}."
        raise ValueError(msg)
    flows = np.asarray(adata.obsm[f"{key}_fate_flow"], dtype=np.float32)  # (N, fates, d) tangent
    V = to_basis(adata, flows, scale=int(info["scale"]), basis=basis, key=key)
    probs = adata.obsm[f"{key}_fate_probs"]
    fig, axes = plt.subplots(1, len(fates), figsize=(panel_size * len(fates) + 1, panel_size), squeeze=False,
                             layout="constrained")
    for ax, f in zip(axes[0], fates, strict=True):
        j = all_fates.index(f)
        draw_stream(adata, V[:, j], probs[f].to_numpy(), basis=basis, components=components,
                    grid_size=grid_size, ax=ax, scatter_kwargs={"cmap": "magma", "vmin": 0, "vmax": 1},
                    title=f"p({f}) and its fate flow", colorbar=False)
        if show_terminal:
            E = np.asarray(adata.obsm[basis])[:, list(components)]
            cells = fate_terminal(adata, key) == f
            ax.scatter(E[cells, 0], E[cells, 1], s=14, facecolors="none", edgecolors="#19a7a7", linewidths=0.4,
                       alpha=0.5, label="terminal cells")  # light: the probabilities stay visible
            root = str(info.get("root", ""))
            if root in adata.obs_names:
                r = adata.obs_names.get_loc(root)
                ax.scatter(E[r, 0], E[r, 1], s=90, marker="*", c="#19a7a7", edgecolors="white", linewidths=0.6,
                           label="root", zorder=5)
            ax.legend(loc="best", fontsize=7, frameon=False)
    fig.colorbar(axes[0, -1].collections[0], ax=axes[0].tolist(), label="fate probability", shrink=0.8)
    return fig


def drivers(
    adata: ad.AnnData,
    fate: str,
    *,
    pseudotime: str | None = None,
    n_genes: int = 20,
    n_bins: int = 50,
    key: str = _keys.UNS,
) -> Figure:
    """Heatmap of ``fate``'s driver genes (:func:`genegrad.tl.drivers`) along pseudotime, cells binned.

    Each gene's expression is averaged in ``n_bins`` bins of ``obs[pseudotime]`` that hold equal shares of the
    fate's probability (so that no bin is empty: the late cells of other fates, with none of it, are left out),
    cells weighted by their probability of ``fate``, and scaled to [0, 1] per gene. The x axis is the pseudotime
    itself, each bin as wide as the stretch it covers; fewer bins are drawn when the fate's probability sums to
    less than one cell's worth per bin.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.fate_bias` ran.
    fate
        One of the fates.
    pseudotime
        ``obs`` column ordering the cells (e.g. ``'dpt_pseudotime'``); by default the pseudotime that
        :func:`genegrad.tl.fate_bias` wrote when given a ``root`` or a ``time_key``
        (``obs['genegrad_pseudotime']``). Cells without one (not reachable from the root) are left out.
    n_genes
        Driver genes shown, best first.
    n_bins
        Pseudotime bins.
    key
        Prefix of the keys :func:`genegrad.tl.fate_bias` wrote.

    Returns
    -------
    The ``Figure``.
    """
    from ..tl import drivers as find_drivers

    pseudotime = f"{key}_pseudotime" if pseudotime is None else pseudotime
    require_key(adata, "obs", pseudotime, fix="pass `pseudotime`, an obs column (e.g. scanpy's `dpt_pseudotime`), "
                                             "or run `genegrad.tl.fate_bias(..., root=...)`")
    table = find_drivers(adata, fate, n_genes=n_genes, key=key)
    return driver_heatmap(adata, fate, list(table.index), pseudotime=pseudotime, n_bins=n_bins, key=key)


def driver_heatmap(adata: ad.AnnData, fate: str, genes: list[str], *, pseudotime: str, n_bins: int,
                   key: str) -> Figure:
    """The heatmap of :func:`drivers` for given ``genes`` (already found, and ``obs[pseudotime]`` checked)."""
    import matplotlib.pyplot as plt

    X = adata[:, genes].X
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    w = np.nan_to_num(adata.obsm[f"{key}_fate_probs"][fate].to_numpy(dtype=np.float64))
    t = adata.obs[pseudotime].to_numpy(dtype=np.float64)
    order = np.flatnonzero(np.isfinite(t) & (w > 0))
    order = order[np.argsort(t[order], kind="stable")]
    if order.size == 0:
        msg = f"No cell with a pseudotime has a probability of {fate!r}: nothing to draw."
        raise ValueError(msg)
    # bins of equal probability mass, each at least one cell's worth: a cell goes where its mass's midpoint falls
    cum = np.cumsum(w[order])
    n = int(max(1, min(n_bins, np.floor(cum[-1]))))
    bin_of = np.minimum(((cum - w[order] / 2) / cum[-1] * n).astype(int), n - 1)
    bins = [order[bin_of == b] for b in range(n) if (bin_of == b).any()]
    M = np.array([(X[b] * w[b, None]).sum(axis=0) / w[b].sum() for b in bins]).T
    with np.errstate(invalid="ignore"):
        lo, hi = M.min(axis=1, keepdims=True), M.max(axis=1, keepdims=True)
        M = (M - lo) / np.where(hi > lo, hi - lo, 1.0)
    # bin edges in pseudotime: midway between neighbouring bins; the outer edges where 0.5% of the fate's probability
    # lies beyond (a long tail of cells with almost none of it would stretch the first or last bin)
    inner = [(t[a[-1]] + t[b[0]]) / 2 for a, b in itertools.pairwise(bins)]
    first = t[order[np.searchsorted(cum, 0.005 * cum[-1])]]
    last = t[order[min(np.searchsorted(cum, 0.995 * cum[-1]), order.size - 1)]]
    edges = np.array([min(first, *inner[:1]), *inner, max(last, *inner[-1:])])
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(genes) + 1.2))
    im = ax.pcolormesh(edges, np.arange(len(genes) + 1) - 0.5, M, cmap="viridis", shading="flat")
    ax.set_ylim(len(genes) - 0.5, -0.5)  # the best driver on top
    ax.set_yticks(range(len(genes)), [literal(g) for g in genes], fontsize=7)
    ax.set_xlabel(literal(f"{pseudotime} (bins of equal p({fate}))"))
    ax.set_title(literal(f"drivers of {fate}"))
    fig.colorbar(im, ax=ax, label="scaled expression", shrink=0.8)
    fig.tight_layout()
    return fig
