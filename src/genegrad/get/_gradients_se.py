"""Standard errors of the gradients' lengths, at one scale or at each gene's recommended scale."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from .. import _keys
from .._core._scale import widened_se
from ._gradients import _Reader

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from numpy.typing import NDArray


def gradients_se(
    adata: ad.AnnData,
    genes: Sequence[str] | str,
    *,
    scale: int | Literal["auto"] = 0,
    key: str = _keys.UNS,
) -> NDArray[np.float32]:
    """Standard error of each gradient's length, ``(cells, genes)``.

    A gradient ``g`` of a ``d``-dimensional manifold and its standard error ``se`` give the 95% ball of radius
    ``se * sqrt(chi2_0.95(d) / d)`` around ``g`` (the error spread evenly over the ``d`` tangent directions).
    At a fixed scale the standard error counts the noise only: the bias that smoothing adds at coarse scales is
    not in it, and its balls cover the true gradient less often than 95%.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.gradients` ran with ``with_se=True`` (the default).
    genes
        One gene or a list; each must have been differentiated.
    scale
        Diffusion time, one of ``adata.uns['genegrad']['scales']``; or ``'auto'``: each gene at its recommended
        scale (``var['genegrad_scale']``, the scale of ``genegrad.get.gradients(..., scale='auto')``), with the
        finest scale's standard error widened by the distance between the gradients at the two scales
        (``se_0 + |g_t - g_0| / sqrt(chi2_0.95(d) / d)``). Its ball contains the finest scale's 95% ball: it
        covers the truth at least as often, whatever bias smoothing adds, and is at least as wide.
    key
        Prefix under which :func:`genegrad.pp.manifold` stored the manifold.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("plane", n_cells=300, n_genes=100)
    >>> gg.pp.preprocess(adata, n_comps=10)
    >>> gg.pp.manifold(adata, n_dims=2, n_neighbors=20)
    >>> gg.tl.gradients(adata, adata.var_names[:5])
    >>> gg.get.gradients_se(adata, adata.var_names[:2], scale="auto").shape
    (300, 2)
    """
    reader = _Reader(adata, genes, key)
    if scale != "auto":
        return reader.se(reader.check(scale))
    per_gene = reader.auto_scales()
    finest = min(reader.scales)
    out = np.empty((adata.n_obs, len(reader.genes)), dtype=np.float32)
    for t in np.unique(per_gene):
        cols = np.flatnonzero(per_gene == t)
        out[:, cols] = widened_se(reader.tangent(int(t), cols), reader.tangent(finest, cols),
                                   reader.se(finest, cols))
    return out
