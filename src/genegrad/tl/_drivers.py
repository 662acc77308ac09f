"""Driver genes: genes whose gradients at early cells point towards one fate and away from the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._validation import (
    check_cell_mask,
    check_range,
    default_genes,
    fate_bias_info,
    fate_terminal,
    gene_positions,
)
from ..pp._manifold import load_model
from ._signal import read_signal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad

CHUNK_SIZE = 64


def drivers(
    adata: ad.AnnData,
    fate: str,
    *,
    n_genes: int = 50,
    genes: Sequence[str] | None = None,
    cells: Sequence[bool] | None = None,
    key: str = _keys.UNS,
) -> pd.DataFrame:
    """Genes whose gradients at early cells best separate ``fate`` from the others.

    For every gene, over the early cells (by default the cells that are not terminal): ``alignment``, the
    magnitude-weighted cosine between the gene's gradient and the fate's flow contrast ``Phi_f - mean of the
    other flows`` (+1: the gene rises towards ``fate`` wherever it changes); ``corr``, the correlation of its
    smoothed expression with the fate probability; ``score = alignment x max(corr, 0)``.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.fate_bias` ran.
    fate
        One of the fates.
    n_genes
        Rows returned (best first).
    genes
        Candidate genes; the highly variable genes by default, else all.
    cells
        Boolean mask of the early cells.
    key
        Prefix of the keys :func:`genegrad.tl.fate_bias` wrote.

    Returns
    -------
    DataFrame indexed by gene: ``score``, ``alignment``, ``corr``, sorted by ``score``.
    """
    check_range("n_genes", n_genes, 1, None, integer=True)
    return driver_scores(adata, [fate], genes=genes, cells=cells, key=key)[fate].head(n_genes)


def driver_scores(
    adata: ad.AnnData,
    fates: Sequence[str],
    *,
    genes: Sequence[str] | None = None,
    cells: Sequence[bool] | None = None,
    key: str = _keys.UNS,
) -> dict[str, pd.DataFrame]:
    """:func:`drivers` of several fates, every candidate gene sorted by score: one pass over the genes' gradients."""
    info = fate_bias_info(adata, key)
    known = [str(f) for f in info["fates"]]
    for fate in fates:
        if fate not in known:
            msg = f"Unknown fate {fate!r}; choose among {known}."
            raise ValueError(msg)
    genes = default_genes(adata, genes)
    early = (fate_terminal(adata, key) == "" if cells is None
             else check_cell_mask(cells, adata.n_obs))
    if early.sum() < 3:
        msg = f"Need at least 3 early cells, got {int(early.sum())}; pass `cells`."
        raise ValueError(msg)
    model = load_model(adata, key)
    scale = int(info["scale"])
    flows = np.asarray(adata.obsm[f"{key}_fate_flow"], dtype=np.float64)[early]  # tangent (n, fates, d)
    contrast, c_norm, prob_c = [], [], []
    for fate in fates:
        j = known.index(fate)
        c = flows[:, j] - np.delete(flows, j, axis=1).mean(axis=1)
        contrast.append(c)
        c_norm.append(np.linalg.norm(c, axis=1))
        prob = np.asarray(adata.obsm[f"{key}_fate_probs"][fate], dtype=np.float64)[early]
        prob_c.append(prob - np.nanmean(prob))
    layer = info["layer"]
    F = read_signal(adata, None if layer == "X" else layer, gene_positions(adata, genes))
    align = np.empty((len(fates), len(genes)))
    corr = np.empty((len(fates), len(genes)))
    for part in model.iter_gradients(F, chunk_size=CHUNK_SIZE, with_se=False, with_signals=True, scales=[scale]):
        g = part.gradients[early, :, :, 0].astype(np.float64)  # (n, g, d)
        g_norm = np.linalg.norm(g, axis=2)
        s = part.signals[early, :, 0].astype(np.float64)
        s_c = s - s.mean(axis=0)
        for i in range(len(fates)):
            num = np.einsum("ngd,nd->g", g, contrast[i])
            den = (g_norm * c_norm[i][:, None]).sum(axis=0)
            align[i, part.start:part.stop] = np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)
            sd = np.sqrt((s_c**2).sum(axis=0) * np.nansum(prob_c[i] ** 2))
            cov = np.nansum(s_c * prob_c[i][:, None], axis=0)
            corr[i, part.start:part.stop] = np.where(sd > 0, cov / np.maximum(sd, 1e-300), 0.0)
    out = {}
    for i, fate in enumerate(fates):
        df = pd.DataFrame({"score": align[i] * np.clip(corr[i], 0, None), "alignment": align[i], "corr": corr[i]},
                          index=pd.Index(genes, name="gene"))
        out[fate] = df.sort_values("score", ascending=False)
    return out
