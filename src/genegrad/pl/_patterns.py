"""A gallery of the gene patterns: each pattern's most typical genes with their gradient streamlines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _keys, get
from .._validation import gene_positions
from ..get._gradients import default_basis, to_basis
from ..pp._manifold import load_model
from ..tl._signal import read_signal
from ._gradients import draw_stream, literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from matplotlib.figure import Figure


def patterns(
    adata: ad.AnnData,
    *,
    basis: str | None = None,
    n_genes: int = 3,
    patterns: Sequence[str] | None = None,
    scale: int | None = None,
    components: tuple[int, int] = (0, 1),
    grid_size: int = 30,
    panel_size: float = 3.2,
    key: str = _keys.UNS,
) -> Figure:
    """One row per pattern: its ``n_genes`` most typical genes on ``basis``, coloured by expression, with streamlines.

    Each panel shows the gene's expression smoothed at ``scale`` (the signal whose gradient is drawn), on its own
    colour scale with a colour bar, and the streamlines of its gradient where it is steep.

    Typical genes are those with the highest posterior probability of their pattern (ties broken by the
    structure score). Their gradients are computed here, at ``scale``, so :func:`genegrad.tl.gradients` need
    not have stored them. The first panel of each row is labelled with the pattern's number of genes and its
    median ``peaks``, ``troughs``, ``coherence`` and ``localisation`` at ``scale`` (see
    :func:`genegrad.tl.patterns`): what the pattern looks like, in numbers.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.patterns` ran.
    basis
        An ``obsm`` embedding (``'X_pca'``, ``'X_umap'``, ...); by default the representation the manifold was
        built on (``'X_pca'`` after :func:`genegrad.pp.preprocess`, ``'X_lsi'`` after
        :func:`genegrad.pp.preprocess_atac`).
    n_genes
        Genes per pattern.
    patterns
        Patterns to draw; every pattern except ``'noise'`` by default.
    scale
        Diffusion time of the gradients; the pattern scale by default.
    components
        The two columns of ``basis`` to draw.
    grid_size
        Grid points per axis for the streamlines.
    panel_size
        Inches per panel.
    key
        Prefix of the keys :func:`genegrad.tl.patterns` wrote.

    Returns
    -------
    The ``Figure``.
    """
    import matplotlib.pyplot as plt

    df = get.descriptors(adata, scale=scale, key=key)
    scale = int(adata.uns[key]["patterns"]["scale"]) if scale is None else scale
    basis = default_basis(adata, key) if basis is None else basis
    if basis not in adata.obsm:
        msg = f"`adata.obsm['{basis}']` not found (available: {list(adata.obsm)}); compute the embedding first."
        raise KeyError(msg)
    names = [p for p in df["pattern"].cat.categories if p != "noise"] if patterns is None else list(patterns)
    unknown = sorted(set(names) - set(df["pattern"].cat.categories))
    if unknown:
        msg = f"Unknown patterns {unknown}; choose among {list(df['pattern'].cat.categories)}."
        raise ValueError(msg)
    if not names:
        msg = "No structured pattern to draw: every gene was called noise."
        raise ValueError(msg)
    picks = {p: df[df["pattern"] == p].sort_values(["typicality", "score"], ascending=False).index[:n_genes]
             for p in names}
    genes = list(dict.fromkeys(g for sel in picks.values() for g in sel))
    model = load_model(adata, key)
    layer = adata.uns[key]["patterns"]["params"].get("layer", "X")
    F = read_signal(adata, None if layer == "X" else layer, gene_positions(adata, genes))
    tangent = model.gradients(F, with_se=False, scales=[scale]).gradients[:, :, :, 0]
    V = to_basis(adata, tangent, scale=scale, basis=basis, key=key)
    expr = model.smooth(F.toarray() if hasattr(F, "toarray") else np.asarray(F), scale)  # what was differentiated
    fig, axes = plt.subplots(len(names), n_genes, figsize=(panel_size * n_genes, panel_size * len(names)),
                             squeeze=False, layout="constrained")
    for r, p in enumerate(names):
        for c in range(n_genes):
            ax = axes[r, c]
            if c >= len(picks[p]):
                ax.axis("off")
                continue
            g = genes.index(picks[p][c])
            draw_stream(adata, V[:, g], expr[:, g], basis=basis, components=components, grid_size=grid_size,
                        ax=ax, scatter_kwargs=None, title=f"{p}: {genes[g]}", axis_labels=False,
                        colorbar_label=f"expression (t={scale})")
            if c == 0:
                ax.set_ylabel(_profile(df[df["pattern"] == p]), fontsize=8)
    fig.suptitle(literal(f"Gene patterns on {basis} at t={scale}\ncolour: expression smoothed at t={scale} (1st-99th "
                         "percentile); streamlines: its gradient, thicker where steeper"), fontsize=10)
    return fig


def _profile(rows) -> str:
    """A pattern's size and median shape descriptors, for the first panel of its row.

    Only the descriptors present: data described by an older genegrad has no ``peaks`` or ``troughs``.
    """
    shown = [("peaks", 1), ("troughs", 1), ("coherence", 2), ("localisation", 2)]
    parts = [f"{name} {rows[name].median():.{digits}f}" for name, digits in shown if name in rows]
    lines = [f"{len(rows)} genes", ", ".join(parts[:2]), ", ".join(parts[2:])]
    return "\n".join(line for line in lines if line)
