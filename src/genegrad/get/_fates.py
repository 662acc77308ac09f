"""Fate probabilities as a tidy table: one row per cell, with its terminal state and pseudotime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .. import _keys
from .._validation import fate_bias_info, fate_terminal, require_key

if TYPE_CHECKING:
    import anndata as ad

#: ``obsm`` suffix of each kind of per-fate values :func:`genegrad.tl.fate_bias` writes.
KINDS = {"probs": "fate_probs", "chain": "fate_probs_chain", "deviation": "fate_deviation"}


def fates(
    adata: ad.AnnData,
    *,
    kind: Literal["probs", "chain", "deviation"] = "probs",
    key: str = _keys.UNS,
) -> pd.DataFrame:
    """Per cell: ``terminal_state``, ``pseudotime`` (with a root or a time key) and one column per fate.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.fate_bias` ran.
    kind
        The per-fate values: ``'probs'``, the fate probabilities (``obsm['genegrad_fate_probs']``); ``'chain'``,
        the Markov chain's absorption probabilities before the fine-scale step; ``'deviation'``, the
        standardised fine-scale evidence of each fate (0 for terminal cells).
    key
        Prefix of the keys :func:`genegrad.tl.fate_bias` wrote.

    Returns
    -------
    DataFrame indexed by ``obs_names``: ``terminal_state`` (categorical, missing for cells that are not terminal),
    ``pseudotime`` (the one orienting the chain: the graph pseudotime from the root, or ``obs[time_key]``
    shifted to start at 0; when either was given) and the fates' columns, in the order
    of ``uns['genegrad']['fate_bias']['fates']``.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("tree", n_cells=600, n_genes=60, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=15)
    >>> gg.pp.manifold(adata)
    >>> adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
    >>> gg.tl.fate_bias(adata, "terminal", root=int(adata.obs["pseudotime"].argmin()))
    >>> gg.get.fates(adata).columns.tolist()
    ['terminal_state', 'pseudotime', 'A', 'B', 'C']
    """
    if kind not in KINDS:
        msg = f"Expected `kind` in {sorted(KINDS)}, got {kind!r}."
        raise ValueError(msg)
    info = fate_bias_info(adata, key)
    names = [str(f) for f in info["fates"]]
    require_key(adata, "obsm", f"{key}_{KINDS[kind]}", fix="run `genegrad.tl.fate_bias` again")
    values = pd.DataFrame(np.asarray(adata.obsm[f"{key}_{KINDS[kind]}"], dtype=np.float64), index=adata.obs_names,
                          columns=names)
    terminal = fate_terminal(adata, key)
    out = pd.DataFrame({"terminal_state": pd.Categorical(np.where(terminal == "", None, terminal), categories=names)},
                       index=adata.obs_names)
    if f"{key}_pseudotime" in adata.obs:  # written with a root, removed by a run without one
        out["pseudotime"] = adata.obs[f"{key}_pseudotime"].to_numpy(dtype=np.float64)
    return pd.concat([out, values], axis=1)
