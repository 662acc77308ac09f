"""Gene descriptors and patterns as a tidy DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._validation import check_scale, gene_positions, require_key, resolve_genes

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad


def descriptors(
    adata: ad.AnnData,
    genes: Sequence[str] | None = None,
    *,
    scale: int | None = None,
    key: str = _keys.UNS,
) -> pd.DataFrame:
    """Descriptors of each gene's gradient field at one scale, with its pattern and structure test.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.patterns` ran.
    genes
        Genes to return; every described gene (still in ``var_names``) by default.
    scale
        Diffusion time; the pattern scale of :func:`genegrad.tl.patterns` by default.
    key
        Prefix of the keys :func:`genegrad.tl.patterns` wrote.

    Returns
    -------
    One row per gene: every descriptor, then ``pattern``, ``typicality``, ``structured``, ``score``, ``qval``
    and ``module``.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("plane", n_cells=400, n_genes=60, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=10)
    >>> gg.pp.manifold(adata, n_dims=2, n_neighbors=20)
    >>> gg.tl.patterns(adata, n_null=60)
    >>> gg.get.descriptors(adata).columns[:3].tolist()
    ['magnitude', 'snr', 'coherence']
    """
    require_key(adata, "uns", key, fix="run `genegrad.pp.manifold` first")
    info = adata.uns[key].get("patterns")
    name = f"{key}_descriptors"
    if info is None or name not in adata.varm:
        msg = f"No descriptors under `adata.varm['{name}']`; run `genegrad.tl.patterns` first."
        raise KeyError(msg)
    scales = [int(t) for t in info["scales"]]
    scale = int(info["scale"]) if scale is None else scale
    check_scale(scale, scales)
    described = [str(g) for g in info["genes"]]  # object or StringDType (zarr round trip) alike
    if genes is None:  # the described genes still in the AnnData: their rows of varm moved with them
        genes = [g for g in described if g in adata.var_names]
    else:
        genes = resolve_genes(adata, genes)
    missing = sorted(set(genes) - set(described))
    if missing:
        msg = f"No descriptors for {missing[:10]}; run `genegrad.tl.patterns(adata, genes=...)` including them."
        raise KeyError(msg)
    rows = gene_positions(adata, genes)
    values = np.asarray(adata.varm[name])[rows, :, scales.index(scale)]
    df = pd.DataFrame(values, index=pd.Index(genes, name="gene"),
                      columns=[str(c) for c in info["descriptors"]])
    var = adata.var.iloc[rows]
    for col, src in (("pattern", "pattern"), ("typicality", "pattern_typicality"), ("structured", "structured"),
                     ("score", "structured_score"), ("qval", "structured_qval"), ("module", "module")):
        df[col] = var[f"{key}_{src}"].to_numpy()
    df["pattern"] = pd.Categorical(df["pattern"], categories=adata.var[f"{key}_pattern"].cat.categories)
    return df
