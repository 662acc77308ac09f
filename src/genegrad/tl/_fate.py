"""Fate bias from gene-gradient geometry: fate programs, fate flows, a gradient-tilted Markov chain."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._core import _fate
from .._validation import check_range, check_scale, check_unique_names, require_key, resolve_genes, warn
from ..pp._manifold import load_model
from ._compute import compute_options
from ._signal import read_signal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)


def fate_bias(
    adata: ad.AnnData,
    terminal_states: str | Sequence[str],
    *,
    groupby: str | None = None,
    genes: Sequence[str] | None = None,
    n_program_genes: int = 50,
    scale: int | None = None,
    beta: float = 3.0,
    fine_weight: float = 1.0,
    coarse_scale: int | None = None,
    layer: str | None = None,
    n_jobs: int | None = -1,
    key: str = _keys.UNS,
    copy: bool = False,
) -> ad.AnnData | None:
    """Fate probabilities from a Markov chain on the kNN graph tilted along the fates' gradient flow.

    1. **Fate programs.** For each terminal state ``f``, the genes most up in its cells against the other
       terminal cells (standardised mean difference), weighted by how far their gradient at ``scale`` rises
       above its noise (``1 - 1/SNR``): ``w_f``, summing to one.
    2. **Fate flows.** ``Phi_f = grad (F w_f)`` at ``scale``: the gradient of the program score, i.e.
       ``sum_g w_fg grad f_g`` (the operator is linear).
    3. **Tilted chain.** ``T_ij ∝ K_ij exp(beta cos(y_j - y_i, v_i))`` with ``v = sum_f Phi_f`` (towards
       maturation, whichever fate rises fastest locally), and absorption probabilities into the terminal cells
       (sparse LU, or preconditioned GMRES for large data).
    4. **Fine-scale evidence.** The chain moves between neighbours, so it cannot tell apart neighbouring
       progenitors whose fates differ only in a few genes. For each fate, among the genes up in its terminal
       cells, the fine-scale residuals ``f - P^t f`` (``t = coarse_scale``) of the progenitors are decomposed;
       their leading co-varying component is the fate's fine program, and ``z_f`` each progenitor's
       standardised score on it. Progenitors' probabilities are reweighted ``p_f exp(fine_weight z_f)`` and
       renormalised (``fine_weight=0``: the chain alone).

    The tilt makes the chain confident. Where two branches overlap in expression before their genes diverge,
    it follows whichever programs rise fastest there, and can be confidently wrong. In an exploratory check on
    the synthetic tree (not a benchmark), the
    first 0.4 of branch A (its switch genes still near zero) gave a median ``p(A)`` of 0.01-0.02 with
    ``beta=3``, 0.56 with ``beta=0``. In the fate benchmark (``benchmarks/RESULTS.md``) the tilt helped on
    paul15 and hurt on the Treutlein lung data. Compare with ``beta=0`` before trusting it.

    Parameters
    ----------
    adata
        Data with a log-normalised signal and the manifold of :func:`genegrad.pp.manifold`.
    terminal_states
        An ``obs`` key whose non-missing categories are the terminal states; or, with ``groupby``, a list of
        categories of ``obs[groupby]``.
    groupby
        ``obs`` key holding the categories named by ``terminal_states`` (a list).
    genes
        Candidate program genes; the highly variable genes by default, else all.
    n_program_genes
        Genes per fate program.
    scale
        Diffusion time of the flows; the smallest non-zero scale by default.
    beta
        Strength of the tilt (0: the plain diffusion on the graph).
    fine_weight
        Log-odds per standard deviation of fine-scale evidence (0: the chain's probabilities alone).
    coarse_scale
        Diffusion time separating fine from coarse; the largest scale by default.
    layer
        Layer holding the signal; ``X`` by default.
    n_jobs
        Threads over gene chunks (``-1``: every core); results do not depend on it.
    key
        Prefix under which :func:`genegrad.pp.manifold` stored the manifold.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with (for ``key='genegrad'``)

    - ``adata.obsm['genegrad_fate_probs']``: DataFrame, one column per fate, rows summing to one (NaN for cells
      that cannot reach any terminal state);
    - ``adata.obs['genegrad_fate_bias']``: with two fates, ``p(first) - p(second)`` in ``[-1, 1]``;
    - ``adata.obsp['genegrad_transitions']``: the tilted transition matrix (row-stochastic; see
      :func:`genegrad.tl.to_cellrank`);
    - ``adata.obsm['genegrad_fate_flow']``: ``(N, fates, d)`` tangent fate flows;
    - ``adata.uns['genegrad']['fate_bias']``: fates, terminal cells' labels, programs and parameters.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("tree", n_cells=800, n_genes=150, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=15)
    >>> gg.pp.manifold(adata, n_neighbors=20)
    >>> adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)  # late cells of each fate
    >>> gg.tl.fate_bias(adata, "terminal")
    >>> adata.obsm["genegrad_fate_probs"].columns.tolist()
    ['A', 'B', 'C']
    """
    check_unique_names(adata)
    check_range("n_program_genes", n_program_genes, 1, None, integer=True)
    check_range("beta", beta, 0.0, None)
    n_jobs = compute_options("numpy", None, n_jobs)["n_jobs"]
    model = load_model(adata, key)
    labels, fates = terminal_labels(adata, terminal_states, groupby=groupby)
    scale = _default_scale(model.scales_) if scale is None else scale
    check_scale(scale, model.scales_)
    if genes is None and "highly_variable" in adata.var:
        genes = list(adata.var_names[adata.var["highly_variable"].to_numpy(bool)])
    genes = resolve_genes(adata, genes)
    F = read_signal(adata, layer, adata.var_names.get_indexer(genes))
    programs = _fate.fate_programs(model, F, labels, n_fates=len(fates), scale=scale, n_genes=n_program_genes,
                                   n_jobs=n_jobs)
    flows = _fate.fate_flows(model, F, programs, scale=scale)  # (N, fates, d)
    rep = adata.uns[key]["params"]["use_rep"]
    require_key(adata, "obsm", rep, fix="run `genegrad.pp.manifold` again")
    Y = np.asarray(adata.obsm[rep], dtype=np.float64)
    v = model.to_ambient(flows.sum(axis=1)[:, None, :])[:, 0, :]
    K = adata.obsp[_keys.connectivities(key)]
    T = _fate.tilted_transitions(K, Y, v, beta=beta)
    chain = _fate.absorption_probabilities(T, labels, len(fates))
    stuck = int(np.isnan(chain[:, 0]).sum())
    if stuck:
        warn(f"{stuck} cells cannot reach any terminal state (a graph component without one); their fate "
             "probabilities are NaN. Add a terminal state there or analyse that component on its own.")
    coarse = model.scales_[-1] if coarse_scale is None else coarse_scale
    check_range("coarse_scale", coarse, 1, None, integer=True)
    z = _fate.fine_deviation(model, F, labels, n_fates=len(fates), coarse_scale=coarse)
    probs = chain.copy()
    if fine_weight > 0:
        prog = labels < 0
        w = chain[prog] * np.exp(fine_weight * np.clip(z[prog], -10, 10))
        probs[prog] = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)

    target = adata.copy() if copy else adata
    df = pd.DataFrame(probs, index=target.obs_names, columns=list(fates))
    target.obsm[f"{key}_fate_probs"] = df
    target.obsm[f"{key}_fate_probs_chain"] = pd.DataFrame(chain, index=target.obs_names, columns=list(fates))
    target.obsm[f"{key}_fate_deviation"] = pd.DataFrame(z, index=target.obs_names, columns=list(fates))
    if len(fates) == 2:
        target.obs[f"{key}_fate_bias"] = probs[:, 0] - probs[:, 1]
    elif f"{key}_fate_bias" in target.obs:
        del target.obs[f"{key}_fate_bias"]
    target.obsp[f"{key}_transitions"] = T.astype(np.float32)
    target.obsm[f"{key}_fate_flow"] = flows.astype(np.float32)
    target.uns[key]["fate_bias"] = {
        "fates": np.array(fates, dtype=object),
        "terminal": np.array([fates[i] if i >= 0 else "" for i in labels], dtype=object),
        "scale": int(scale), "beta": float(beta), "layer": layer or "X", "fine_weight": float(fine_weight),
        "coarse_scale": int(coarse),
        "programs": {f: {"genes": np.array(genes, dtype=object)[programs[j] > 0],
                         "weights": programs[j][programs[j] > 0]} for j, f in enumerate(fates)},
    }
    logger.info("added `adata.obsm['%s_fate_probs']`, `adata.obsp['%s_transitions']` and the fate flows",
                key, key)
    return target if copy else None


def terminal_labels(
    adata: ad.AnnData, terminal_states: str | Sequence[str], *, groupby: str | None
) -> tuple[NDArray[np.int64], list[str]]:
    """``(labels, fates)``: the fate index of each terminal cell (-1 elsewhere) and the fates' names."""
    if isinstance(terminal_states, str) and groupby is None:
        require_key(adata, "obs", terminal_states, fix="name an obs column whose non-missing values are the "
                                                       "terminal states, or pass `groupby` and a list")
        col = adata.obs[terminal_states]
        present = col.dropna()
        fates = (list(col.cat.categories[col.cat.categories.isin(present.unique())])
                 if isinstance(col.dtype, pd.CategoricalDtype) else sorted(present.astype(str).unique()))
        values = col.astype(object).where(col.notna(), None).astype(str).to_numpy()
        values[col.isna().to_numpy()] = ""
    else:
        if groupby is None:
            msg = "`terminal_states` is a list of categories: pass `groupby`, the obs column that holds them."
            raise ValueError(msg)
        require_key(adata, "obs", groupby, fix="pass an existing obs column as `groupby`")
        fates = [terminal_states] if isinstance(terminal_states, str) else list(terminal_states)
        values = adata.obs[groupby].astype(str).to_numpy()
        missing = [f for f in fates if not (values == str(f)).any()]
        if missing:
            msg = (f"Terminal states {missing} name no cells of `obs['{groupby}']` "
                   f"(categories: {sorted(set(values))[:20]}).")
            raise ValueError(msg)
    fates = [str(f) for f in fates]
    if len(fates) < 2:
        msg = f"Need at least two terminal states to compare fates, got {fates}."
        raise ValueError(msg)
    index = {f: i for i, f in enumerate(fates)}
    labels = np.array([index.get(v, -1) for v in values], dtype=np.int64)
    if (labels >= 0).all():
        msg = "Every cell is terminal: leave the progenitors' terminal state missing."
        raise ValueError(msg)
    return labels, fates


def _default_scale(scales: list[int]) -> int:
    positive = [t for t in scales if t > 0]
    return positive[0] if positive else scales[0]
