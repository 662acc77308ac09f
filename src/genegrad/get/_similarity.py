"""Gradient similarity between genes: whether they change in the same direction at the same places."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from .. import _keys
from .._core._patterns import gradient_similarity as _similarity
from .._validation import check_scale, gene_positions, resolve_genes
from ..pp._manifold import load_model
from ..tl._signal import read_signal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad


def gradient_similarity(
    adata: ad.AnnData,
    genes: Sequence[str],
    *,
    scale: int | None = None,
    layer: str | None = None,
    key: str = _keys.UNS,
) -> pd.DataFrame:
    """Magnitude-weighted cosine of the genes' gradients, averaged over cells (genes x genes).

    ``S_ab = sum_i <grad a_i, grad b_i> / sum_i |grad a_i| |grad b_i|``: +1 for genes that rise in the same
    direction wherever both change, -1 for opposite directions, about 0 for unrelated geometry. Cells where
    either gene is flat weigh nothing; a gene constant over all cells has no direction (NaN row and column).

    Parameters
    ----------
    adata
        Data with the manifold of :func:`genegrad.pp.manifold`.
    genes
        Genes to compare (their gradients are computed here, at one scale).
    scale
        Diffusion time; the pattern scale of :func:`genegrad.tl.patterns` when it ran, else the largest scale.
    layer
        Layer holding the signal; ``X`` by default.
    key
        Prefix under which :func:`genegrad.pp.manifold` stored the manifold.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("plane", n_cells=300, n_genes=20, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=10)
    >>> gg.pp.manifold(adata, n_dims=2, n_neighbors=20)
    >>> S = gg.get.gradient_similarity(adata, adata.var_names[:3])
    >>> S.shape, bool((S.to_numpy().diagonal() > 0.999).all())
    ((3, 3), True)
    """
    genes = resolve_genes(adata, genes)
    model = load_model(adata, key)
    if scale is None:
        info = adata.uns[key].get("patterns")
        scale = int(info["scale"]) if info is not None else model.scales_[-1]
    check_scale(scale, model.scales_)
    F = read_signal(adata, layer, gene_positions(adata, genes))
    grads = model.gradients(F, with_se=False, scales=[scale]).gradients[:, :, :, 0]
    S = _similarity(grads)
    # a constant gene has no direction (its gradients are float32 round-off, which a cosine would normalise)
    lo = np.asarray(F.min(axis=0).toarray() if sparse.issparse(F) else F.min(axis=0)).ravel()
    hi = np.asarray(F.max(axis=0).toarray() if sparse.issparse(F) else F.max(axis=0)).ravel()
    flat = hi <= lo
    S[flat, :] = np.nan
    S[:, flat] = np.nan
    return pd.DataFrame(S, index=pd.Index(genes, name="gene"), columns=pd.Index(genes, name="gene"))
