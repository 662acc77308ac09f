"""Terminal states: the persistent branch tips of the graph pseudotime from a root cell."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._core import _terminal
from .._validation import check_range, check_unique_names, require_key, warn
from ..pp._manifold import load_model
from . import _pseudotime

if TYPE_CHECKING:
    import anndata as ad
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Share of each branch tip's persistence (from the tip down towards where its branch joins the rest) whose
#: cells form the detected terminal state.
TERMINAL_TAIL = 0.3
#: Fewest cells of a detected terminal state; a tip whose state would hold fewer is dropped.
MIN_TERMINAL_CELLS = 10


def terminal_states(
    adata: ad.AnnData,
    root: str | int,
    *,
    groupby: str | None = None,
    n_terminal: int | None = None,
    min_persistence: float = 0.05,
    key: str = _keys.UNS,
    copy: bool = False,
) -> ad.AnnData | None:
    """Detect the terminal states: the persistent tips of the graph pseudotime from ``root``.

    The pseudotime is :func:`genegrad.tl.pseudotime`'s. Its local maxima are the branch tips; a tip is kept
    when its *persistence* (how far the pseudotime falls from the tip before its branch joins one reaching
    further) is at least ``min_persistence`` of the pseudotime's 99th percentile (or the ``n_terminal`` most
    persistent are kept), and when its branch does not join the rest within that distance of the root (it would
    lie behind the root). A tip's terminal state is the last 30% of that fall: the cells connected to the tip
    above that level; states of fewer than 10 cells (an outlying cell is a persistent spike) are dropped. Pass
    the result to :func:`genegrad.tl.fate_bias` as ``terminal_states='genegrad_terminal_states'``.

    Parameters
    ----------
    adata
        Data with the manifold of :func:`genegrad.pp.manifold`.
    root
        A cell of the starting population, by obs name or position.
    groupby
        An ``obs`` key whose majority category within each state names it; ``T1``, ``T2``, ... (by persistence)
        when ``None``.
    n_terminal
        Keep this many tips, the most persistent; by default every tip whose persistence reaches
        ``min_persistence``.
    min_persistence
        Smallest persistence of a kept tip, as a share of the pseudotime's 99th percentile.
    key
        Prefix under which :func:`genegrad.pp.manifold` stored the manifold.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with (for ``key='genegrad'``) ``adata.obs['genegrad_terminal_states']``
    (categorical, missing outside the terminal cells), ``adata.obs['genegrad_pseudotime']`` and
    ``adata.uns['genegrad']['terminal_states']``: the root's name, each state's persistence and the parameters.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("tree", n_cells=3000, n_genes=300, depth=2000, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=20)
    >>> gg.pp.manifold(adata)
    >>> root = int(adata.obs["pseudotime"].argmin())  # a cell of the starting population
    >>> gg.tl.terminal_states(adata, root, groupby="fate")
    >>> sorted(adata.obs["genegrad_terminal_states"].dropna().unique())
    ['A', 'B', 'C']
    """
    check_unique_names(adata)
    check_range("min_persistence", min_persistence, 0.0, 1.0)
    if n_terminal is not None:
        check_range("n_terminal", n_terminal, 2, None, integer=True)
    model = load_model(adata, key)
    root_cell = _pseudotime.root_index(adata, root)
    K_snn, time = _pseudotime.graph_time(adata, model, root_cell, key=key)
    labels, fates, tips = detect_terminal_states(adata, K_snn, time, groupby=groupby, n_terminal=n_terminal,
                                                 min_persistence=min_persistence)
    target = adata.copy() if copy else adata
    states = pd.Categorical(np.array([fates[i] if i >= 0 else None for i in labels], dtype=object), categories=fates)
    _drop_stale_fates(target, key, states)
    target.obs[f"{key}_terminal_states"] = states
    target.obs[f"{key}_pseudotime"] = np.where(np.isfinite(time), time, np.nan)
    target.uns[key]["terminal_states"] = {
        "root": str(adata.obs_names[root_cell]), "states": np.array(fates, dtype=object),
        "persistence": np.array([t.persistence for t in tips]), "min_persistence": float(min_persistence),
        "n_terminal": -1 if n_terminal is None else int(n_terminal), "groupby": groupby or "",
    }
    logger.info("added `adata.obs['%s_terminal_states']`", key)
    return target if copy else None


def _drop_stale_fates(adata: ad.AnnData, key: str, states: pd.Categorical) -> None:
    """Remove the last fate-bias results when they came from other terminal states than ``states``."""
    col = f"{key}_terminal_states"
    if "fate_bias" not in adata.uns[key]:
        return
    if col in adata.obs:
        old = adata.obs[col].astype(object).fillna("").astype(str).to_numpy()
        if np.array_equal(old, pd.Series(states, dtype=object).fillna("").astype(str).to_numpy()):
            return
    for slot, names in _keys.FATE_RESULTS.items():
        store = getattr(adata, slot)
        for name in names:
            if f"{key}_{name}" in store:
                del store[f"{key}_{name}"]
    del adata.uns[key]["fate_bias"]
    warn("The fate probabilities of the last `genegrad.tl.fate_bias` run came from other terminal states: they were "
         "removed (with the fate flows, features and transitions). Run `genegrad.tl.fate_bias(adata, "
         "'genegrad_terminal_states', root=...)` on the states detected now.")


def detect_terminal_states(
    adata: ad.AnnData, K, pseudotime: NDArray, *, groupby: str | None, n_terminal: int | None,
    min_persistence: float,
) -> tuple[NDArray[np.int64], list[str], list[_terminal.Tip]]:
    """``(labels, fates, tips)``: the branch tips of the pseudotime kept by persistence and their populations."""
    if groupby is not None:
        require_key(adata, "obs", groupby, fix="pass an existing obs column as `groupby` to name the states")
    det = _terminal.detect_tips(K, pseudotime, n_tips=n_terminal, min_persistence=min_persistence,
                                tail=TERMINAL_TAIL, min_cells=MIN_TERMINAL_CELLS)
    kept, labels = det.kept, det.labels
    if len(kept) < 2 or (n_terminal is not None and len(kept) < n_terminal):
        # every tip, also those under the bars, so that the user sees how far to lower `min_persistence`
        found = ", ".join(f"{t.persistence / max(det.span, 1e-300):.3f}" for t in det.maxima[:6]
                          if np.isfinite(t.persistence)) or "none"
        msg = (f"Found {len(kept)} branch tip(s) to keep as terminal states, need "
               f"{max(2, n_terminal or 2)}; beside the farthest tip (always a candidate), the most persistent "
               f"tips have relative persistence {found}"
               + (f" ({det.n_small} dropped for ending in fewer than {MIN_TERMINAL_CELLS} cells)"
                  if det.n_small else "")
               + ". Lower `min_persistence`, check the root, or name the terminal states.")
        raise ValueError(msg)
    if groupby is None:
        names = [f"T{j + 1}" for j in range(len(kept))]
    else:
        groups = adata.obs[groupby].astype(str).to_numpy()
        names = []
        for j in range(len(kept)):
            values, counts = np.unique(groups[labels == j], return_counts=True)
            base = str(values[np.argmax(counts)])
            name, n = base, 1
            while name in names:
                n += 1
                name = f"{base}_{n}"
            names.append(name)
    logger.info("detected %d terminal states: %s", len(kept), ", ".join(
        f"{nm} ({int((labels == j).sum())} cells)" for j, nm in enumerate(names)))
    return labels, names, kept
