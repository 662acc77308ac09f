"""The fate programs of :func:`genegrad.tl.fate_bias` as a tidy table: one row per fate and gene."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._validation import fate_bias_info, fate_program

if TYPE_CHECKING:
    import anndata as ad


def fate_programs(adata: ad.AnnData, *, key: str = _keys.UNS) -> pd.DataFrame:
    """Each fate's program: the genes up in its terminal cells and their weights (summing to one per fate).

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.fate_bias` ran.
    key
        Prefix of the keys :func:`genegrad.tl.fate_bias` wrote.

    Returns
    -------
    One row per fate and gene: ``fate``, ``gene`` and ``weight``, each fate's genes by decreasing weight, the fates
    in the order of ``uns['genegrad']['fate_bias']['fates']``.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("tree", n_cells=600, n_genes=100, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=15)
    >>> gg.pp.manifold(adata, n_neighbors=20)
    >>> adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
    >>> gg.tl.fate_bias(adata, "terminal")
    >>> gg.get.fate_programs(adata).columns.tolist()
    ['fate', 'gene', 'weight']
    """
    info = fate_bias_info(adata, key)
    fates = [str(f) for f in info["fates"]]
    parts = []
    for j, fate in enumerate(fates):
        prog = fate_program(info, j)
        genes = np.asarray([str(g) for g in prog["genes"]], dtype=object)
        weights = np.asarray(prog["weights"], dtype=np.float64)
        order = np.argsort(-weights, kind="stable")
        parts.append(pd.DataFrame({"fate": fate, "gene": genes[order], "weight": weights[order]}))
    out = pd.concat(parts, ignore_index=True)
    out["fate"] = pd.Categorical(out["fate"], categories=fates)
    return out
