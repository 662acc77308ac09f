"""A gene's gradient field as streamlines over an embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys, get
from .._validation import gene_positions
from ..get._gradients import default_basis
from ..pp._manifold import load_model
from ..tl._signal import read_signal

if TYPE_CHECKING:
    from collections.abc import Mapping

    import anndata as ad
    from matplotlib.axes import Axes


def gradient_stream(
    adata: ad.AnnData,
    gene: str,
    *,
    basis: str | None = None,
    scale: int = 0,
    components: tuple[int, int] = (0, 1),
    grid_size: int = 40,
    ax: Axes | None = None,
    scatter_kwargs: Mapping[str, Any] | None = None,
) -> Axes:
    """Cells coloured by ``gene``'s expression smoothed at ``scale``, with the streamlines of its gradient.

    The gradient is pushed forward into ``basis`` (see :func:`genegrad.get.gradients`), averaged on a regular
    grid with a Gaussian kernel, and drawn where cells are.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.gradients` ran for ``gene``.
    gene
        Gene to draw.
    basis
        An ``obsm`` embedding (``'X_pca'``, ``'X_umap'``, ...); by default the representation the manifold was
        built on (``'X_pca'`` after :func:`genegrad.pp.preprocess`, ``'X_lsi'`` after
        :func:`genegrad.pp.preprocess_atac`).
    scale
        Diffusion time of the gradient.
    components
        The two columns of ``basis`` to draw.
    grid_size
        Grid points per axis for the streamlines.
    ax
        Axes to draw into; a new figure otherwise.
    scatter_kwargs
        Passed to ``Axes.scatter``.

    Returns
    -------
    The ``Axes``.
    """
    basis = default_basis(adata) if basis is None else basis
    if basis not in adata.obsm:
        msg = f"`adata.obsm['{basis}']` not found (available: {list(adata.obsm)}); compute the embedding first."
        raise KeyError(msg)
    V = get.gradients(adata, [gene], scale=scale, basis=basis)[:, 0, :]
    layer = str(adata.uns[_keys.UNS]["gradients"]["layer"])
    expr = read_signal(adata, None if layer == "X" else layer, gene_positions(adata, [gene]))
    expr = np.asarray(expr.toarray() if hasattr(expr, "toarray") else expr, dtype=np.float32)
    if scale:  # the signal whose gradient is drawn
        expr = load_model(adata).smooth(expr, scale)
    return draw_stream(adata, V, expr.ravel(), basis=basis, components=components, grid_size=grid_size, ax=ax,
                       scatter_kwargs=scatter_kwargs, title=f"{gene}  (t={scale})",
                       colorbar_label="expression" if not scale else f"expression smoothed at t={scale}")


def draw_stream(
    adata: ad.AnnData,
    V: np.ndarray,
    expr: np.ndarray,
    *,
    basis: str,
    components: tuple[int, int],
    grid_size: int,
    ax: Axes | None,
    scatter_kwargs: Mapping[str, Any] | None,
    title: str,
    colorbar: bool = True,
    colorbar_label: str = "expression",
    axis_labels: bool = True,
) -> Axes:
    """Cells coloured by ``expr`` on ``basis`` with the streamlines of the vectors ``V`` (cells x dims).

    Frameless, as scanpy draws embeddings. The colours span the 1st to 99th percentile of ``expr`` (a few extreme
    cells do not darken the rest); the streamlines are drawn where the gradient is at least 20% of its 95th
    percentile on the grid, thicker where it is steeper, so that each gene shows where it changes.
    """
    import matplotlib.pyplot as plt

    c0, c1 = components
    xy = np.asarray(adata.obsm[basis])[:, [c0, c1]].astype(np.float64)
    v = V[:, [c0, c1]].astype(np.float64)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    lo_c, hi_c = np.percentile(expr, [1, 99]) if np.size(expr) else (0.0, 1.0)
    if hi_c <= lo_c:
        lo_c, hi_c = float(np.min(expr)), float(np.max(expr))
    kw = {"s": 6, "cmap": "viridis", "linewidths": 0, "alpha": 0.8, "vmin": lo_c, "vmax": hi_c,
          **(scatter_kwargs or {})}
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=expr, **kw)
    gx, gy, U, W = _grid(xy, v, grid_size)
    speed = np.hypot(U, W)
    top = np.nanpercentile(speed, 95) if np.isfinite(speed).any() else 0.0
    if top > 0:
        flat = speed < 0.2 * top  # no streamline where the gene hardly changes
        U, W = np.where(flat, np.nan, U), np.where(flat, np.nan, W)
        width = 0.4 + 1.6 * np.clip(np.nan_to_num(speed) / top, 0, 1)
        ax.streamplot(gx, gy, U, W, color="k", linewidth=width, density=1.2, arrowsize=0.9)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = 0.03 * np.where(hi > lo, hi - lo, 1.0)  # streamplot fits the axes to its grid: cells at the edge were cut
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_title(literal(title))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if axis_labels:
        ax.set_xlabel(literal(f"{basis}[{c0}]"), loc="left", fontsize=8)
        ax.set_ylabel(literal(f"{basis}[{c1}]"), loc="bottom", fontsize=8)
    if colorbar:
        ax.figure.colorbar(sc, ax=ax, label=colorbar_label, shrink=0.8, pad=0.02)
    return ax


def _grid(xy: np.ndarray, v: np.ndarray, n: int, *, fine: int = 8) -> tuple[np.ndarray, ...]:
    """Vectors ``v`` of the cells at ``xy`` averaged on an ``n x n`` grid by a Gaussian kernel (``h`` = 1.5 steps).

    The cells are binned on a lattice ``fine`` times finer than the grid (each moves by at most 0.06 ``h``), the
    bins' counts and vector sums smoothed by the Gaussian (cut at ``4h``, where it weighs ``exp(-8)``) and read
    at the grid points: ``O(N)`` plus a small image filter, instead of every cell against every grid point.
    Grid points with no cell within one step are NaN (no streamline drawn there).
    """
    from scipy import ndimage
    from scipy.spatial import cKDTree

    lo, hi = xy.min(axis=0), xy.max(axis=0)
    gx = np.linspace(lo[0], hi[0], n)
    gy = np.linspace(lo[1], hi[1], n)
    h = max(float(np.mean((hi - lo) / n)) * 1.5, 1e-12)
    m = (n - 1) * fine + 1  # lattice points per axis, every fine-th one a grid point
    step = np.where(hi > lo, (hi - lo) / (m - 1), 1.0)
    ij = np.clip(np.rint((xy - lo) / step).astype(np.int64), 0, m - 1)
    flat = ij[:, 1] * m + ij[:, 0]  # rows along y, as np.meshgrid lays the grid out
    sigma = (h / step[1], h / step[0])

    def smoothed(weights: np.ndarray) -> np.ndarray:
        lattice = np.bincount(flat, weights, minlength=m * m).reshape(m, m)
        return ndimage.gaussian_filter(lattice, sigma, mode="constant", truncate=4.0)[::fine, ::fine].ravel()

    dens = np.maximum(smoothed(np.ones(len(xy))), 1e-12)
    U = smoothed(v[:, 0]) / dens
    W = smoothed(v[:, 1]) / dens
    X, Y = np.meshgrid(gx, gy)
    empty = cKDTree(xy).query(np.column_stack([X.ravel(), Y.ravel()]))[0] > h / 1.5  # no cell within a step
    U[empty] = np.nan
    W[empty] = np.nan
    return gx, gy, U.reshape(n, n), W.reshape(n, n)


def literal(text: str) -> str:
    """``text`` drawn as written: a ``$`` in a gene or fate name would start matplotlib's mathtext."""
    return str(text).replace("$", r"\$")
