"""Fate bias from gene-gradient geometry: fate programs, fate flows, a time-oriented (optionally tilted) chain."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._core import _fate, _terminal
from .._validation import (
    check_range,
    check_scale,
    check_unique_names,
    default_genes,
    gene_positions,
    require_key,
    warn,
)
from ..pp._manifold import load_model
from . import _pseudotime
from ._compute import compute_options
from ._signal import read_signal
from ._terminal_states import detect_terminal_states

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from numpy.typing import NDArray
    from scipy import sparse

logger = logging.getLogger(__name__)

#: Default weight of the fine-scale evidence (log-odds per standard deviation): see the changelog.
FINE_WEIGHT = 0.1


def fate_bias(
    adata: ad.AnnData,
    terminal_states: str | Sequence[str] | None = None,
    *,
    groupby: str | None = None,
    root: str | int | None = None,
    time_key: str | None = None,
    fine_weight: float = FINE_WEIGHT,
    genes: Sequence[str] | None = None,
    layer: str | None = None,
    n_jobs: int | None = -1,
    key: str = _keys.UNS,
    copy: bool = False,
) -> ad.AnnData | None:
    """Fate probabilities: a Markov chain on the kNN graph oriented in time, refined by fine-scale gene evidence.

    1. **Chain.** A random walk on the manifold's graph, absorbed in the terminal cells (CellRank-style absorption
       probabilities). With ``root`` (or ``time_key``), steps back in the graph pseudotime from the root (or in
       ``obs[time_key]``) are down-weighted, as by CellRank's ``PseudotimeKernel`` (soft scheme, ``b = 10``).
    2. **Fine-scale evidence.** The chain moves between neighbours, so it cannot tell apart neighbouring
       progenitors whose fates differ in a few genes only. For each fate, the progenitors' fine-scale residuals
       (``f - P^2 f``) of the genes up in its terminal cells give a fine program and a standardised score ``z_f``
       per progenitor; their probabilities are reweighted ``p_f exp(fine_weight z_f)``. Where any fate's scores
       rank the progenitors against the chain (a negative Spearman correlation: no fate signal the chain can
       confirm), the step is skipped (logged; ``uns['genegrad']['fate_bias']['fine_step']`` records it).
    3. **Fate flows.** For each fate, its program (the 50 genes most up in its terminal cells, weighted by how far
       their gradients rise above noise) and the gradient of the program's score: the flows
       :func:`genegrad.pl.fate_probs` draws and :func:`genegrad.tl.drivers` reads.

    Give ``root`` whenever you know where the process starts. Name the terminal states when you know them; else
    :func:`genegrad.tl.terminal_states` detects them (``fate_bias(adata, root=...)`` does it with its defaults).

    Parameters
    ----------
    adata
        Data with a log-normalised signal and the manifold of :func:`genegrad.pp.manifold`.
    terminal_states
        An ``obs`` key whose non-missing categories are the terminal states (e.g.
        ``'genegrad_terminal_states'`` after :func:`genegrad.tl.terminal_states`); or, with ``groupby``, a list
        of categories of ``obs[groupby]``; or ``None``: detected from ``root`` by
        :func:`genegrad.tl.terminal_states`.
    groupby
        ``obs`` key holding the categories ``terminal_states`` lists; with detected terminal states, the key
        whose majority category names each.
    root
        A cell of the starting population, by obs name or position: orients the chain along the graph pseudotime
        from it (written to ``obs['genegrad_pseudotime']``), and is needed to detect terminal states.
    time_key
        An ``obs`` column holding a pseudotime (e.g. scanpy's ``'dpt_pseudotime'``, or a known time) that orients
        the chain instead of the graph pseudotime from ``root``. Cells where it is missing or infinite keep their
        steps unweighted.
    fine_weight
        Log-odds per standard deviation of fine-scale evidence (default 0.1: it breaks the chain's near-ties; 0:
        the chain alone).
    genes
        Candidate program genes; the highly variable genes by default, else all.
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
      that cannot reach any terminal state); ``obsm['genegrad_fate_probs_chain']`` the chain's alone;
    - ``adata.obs['genegrad_fate_bias']``: with two fates, ``p(first) - p(second)`` in ``[-1, 1]``;
    - ``adata.obsp['genegrad_transitions']``: the chain's transition matrix (see :func:`genegrad.tl.to_cellrank`);
    - ``adata.obsm['genegrad_fate_flow']``: ``(N, fates, d)`` tangent fate flows;
    - with ``root`` or ``time_key``: ``adata.obs['genegrad_pseudotime']``, the pseudotime orienting the chain;
    - ``adata.obs['genegrad_terminal_states']``: the terminal states used (categorical, missing elsewhere);
    - ``adata.uns['genegrad']['fate_bias']``: fates, programs, the root's name and parameters.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("tree", n_cells=800, n_genes=150, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=15)
    >>> gg.pp.manifold(adata, n_neighbors=20)
    >>> adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)  # late cells of each fate
    >>> gg.tl.fate_bias(adata, "terminal", root=int(adata.obs["pseudotime"].argmin()))
    >>> adata.obsm["genegrad_fate_probs"].columns.tolist()
    ['A', 'B', 'C']
    """
    return run_fate_bias(adata, terminal_states, groupby=groupby, root=root, time_key=time_key,
                         fine_weight=fine_weight, genes=genes, layer=layer, n_jobs=n_jobs, key=key, copy=copy)


def run_fate_bias(
    adata: ad.AnnData,
    terminal_states: str | Sequence[str] | None = None,
    *,
    groupby: str | None = None,
    root: str | int | None = None,
    time_key: str | None = None,
    orientation: str = "graph",
    n_terminal: int | None = None,
    min_persistence: float = 0.05,
    genes: Sequence[str] | None = None,
    n_program_genes: int = 50,
    scale: int | None = None,
    beta: float = 0.0,
    flow_mix: float = 0.0,
    forward: float = 10.0,
    fine_weight: float = FINE_WEIGHT,
    coarse_scale: int | None = None,
    min_fine_agreement: float | None = 0.0,
    layer: str | None = None,
    n_jobs: int | None = -1,
    key: str = _keys.UNS,
    copy: bool = False,
) -> ad.AnnData | None:
    """:func:`fate_bias` with every option, for the benchmarks and tests that vary the ones it fixes.

    The fixed options, at the defaults the fate benchmarks chose (``benchmarks/fate.py``, ``fate_like.py``):

    orientation
        The pseudotime from ``root`` that orients the chain (without ``time_key``): ``'graph'``, the geodesic
        graph pseudotime of :func:`genegrad.tl.pseudotime`; ``'diffusion'``, the diffusion pseudotime on the
        manifold's own affinities (:func:`genegrad._core._terminal.diffusion_pseudotime`).
    n_terminal, min_persistence
        Detection of the terminal states when ``terminal_states`` is ``None`` (see
        :func:`genegrad.tl.terminal_states`).
    n_program_genes
        Genes per fate program.
    scale
        Diffusion time of the fate flows and programs' SNR; the smallest non-zero scale by default.
    beta
        Tilt of the chain along the fate flows, ``T_ij ∝ K_ij exp(beta cos(y_j - y_i, v_i))`` with
        ``v = sum_f Phi_f``; 0 (no tilt): the tilted chain was confidently wrong where branches overlap.
    flow_mix
        Weight of a flow kernel mixed into the chain, CellRank-style (as its velocity and connectivity kernels):
        ``T = (1 - flow_mix) T_chain + flow_mix T_flow``, ``T_flow`` the symmetric affinities tilted sharply
        along the fate flows (:func:`genegrad._core._fate.flow_mixed_transitions`); 0: no flow kernel.
    forward
        ``b`` of CellRank's soft scheme: steps back in pseudotime ``tau`` (scaled by its 99th percentile) are
        weighted ``2 / (1 + exp(forward (tau_i - tau_j)))^2``; 0 turns the orientation off.
    coarse_scale
        The fine-scale residuals are ``f - P^t f`` at ``t = coarse_scale``; by default the manifold's smallest
        scale from 2 up, else its largest.
    min_fine_agreement
        Lowest Spearman correlation, over the progenitors, between any fate's fine scores and its chain
        probabilities for the fine-scale step to run; ``None`` runs it regardless.
    """
    warned: list[str] = []  # the warnings of this run, kept with its results (the report shows them)
    check_unique_names(adata)
    if orientation not in ("graph", "diffusion"):
        msg = f"Expected `orientation` to be 'graph' or 'diffusion', got {orientation!r}."
        raise ValueError(msg)
    check_range("n_program_genes", n_program_genes, 1, None, integer=True)
    check_range("beta", beta, 0.0, None)
    check_range("flow_mix", flow_mix, 0.0, 1.0)
    check_range("forward", forward, 0.0, None)
    check_range("fine_weight", fine_weight, 0.0, None)
    if min_fine_agreement is not None:
        check_range("min_fine_agreement", min_fine_agreement, -1.0, 1.0)
    n_jobs = compute_options("numpy", None, n_jobs)["n_jobs"]
    model = load_model(adata, key)
    check_range("min_persistence", min_persistence, 0.0, 1.0)
    coarse = _default_coarse_scale(model.scales_) if coarse_scale is None else coarse_scale
    check_range("coarse_scale", coarse, 1, None, integer=True)
    scale = _default_scale(model.scales_) if scale is None else scale
    check_scale(scale, model.scales_)
    if n_terminal is not None:
        check_range("n_terminal", n_terminal, 2, None, integer=True)
    if terminal_states is None and root is None:
        msg = ("`terminal_states` is None and no `root` was given: pass `root` (a cell of the starting "
               "population, by obs name or position) to detect the branch tips, or name the terminal states.")
        raise ValueError(msg)
    root_cell = None if root is None else _pseudotime.root_index(adata, root)
    rep = adata.uns[key]["params"]["use_rep"]
    require_key(adata, "obsm", rep, fix="run `genegrad.pp.manifold` again")
    Y = np.asarray(adata.obsm[rep], dtype=np.float64)
    K = adata.obsp[_keys.connectivities(key)]
    pseudotime = None
    if time_key is not None:
        pseudotime = time_from_obs(adata, time_key)
    detected = terminal_states is None
    if root is not None and (detected or time_key is None):  # the graph pseudotime is used: it is computed
        K_snn, graph_time = _pseudotime.graph_time(adata, model, root_cell, key=key)
        pseudotime = graph_time if time_key is None else pseudotime
    diffusion = root is not None and time_key is None and orientation == "diffusion"
    if diffusion:  # cells the root cannot reach along the graph keep no time (as in the graph pseudotime)
        pseudotime = np.where(np.isfinite(graph_time), _terminal.diffusion_pseudotime(K, root_cell), np.inf)
    if detected:
        labels, fates, tips = detect_terminal_states(adata, K_snn, graph_time, groupby=groupby, n_terminal=n_terminal,
                                                     min_persistence=min_persistence)
    else:
        labels, fates = terminal_labels(adata, terminal_states, groupby=groupby)
    if root_cell is not None and time_key is None and labels[root_cell] >= 0:  # the root orients the chain
        warn(f"The root cell {adata.obs_names[root_cell]!r} is a terminal cell of {fates[labels[root_cell]]!r}: the "
             "pseudotime runs from that fate outwards, and the chain's time orientation with it. Pass a root in the "
             "starting population (e.g. a progenitor cluster's cell), or `time_key` with a pseudotime you trust.",
             into=warned)
    genes = default_genes(adata, genes)
    F = read_signal(adata, layer, gene_positions(adata, genes), by_column=False)  # rows and columns are taken
    effect = _fate.fate_effects(F, labels, n_fates=len(fates))  # one pass for the programs and the fine step
    oriented = forward > 0 and pseudotime is not None
    if forward > 0 and pseudotime is None:
        logger.info("no `root`: the chain is not oriented in time; pass `root` (a cell of the starting population) "
                    "or `time_key` (an obs pseudotime) to down-weight steps back in pseudotime")
    K_chain = _fate.forward_affinities(K, pseudotime, strength=forward) if oriented else K

    def solve(v: NDArray | None) -> tuple[sparse.csr_matrix, NDArray]:
        T = _fate.tilted_transitions(K_chain, Y, v, beta=beta)
        if flow_mix > 0:
            T = _fate.flow_mixed_transitions(T, K, Y, v, weight=flow_mix)
        return T, _fate.absorption_probabilities(T, labels, len(fates))

    # the chain is solved on a thread of its own (mostly single-threaded sparse work) while the gene evidence is
    # computed: from the start without a tilt, which leaves the flows out of the chain
    with ThreadPoolExecutor(1) as pool:
        solving = pool.submit(solve, None) if beta == 0 and flow_mix == 0 else None
        programs = _fate.fate_programs(model, F, labels, n_fates=len(fates), scale=scale, n_genes=n_program_genes,
                                       n_jobs=n_jobs, effect=effect)
        flows = _fate.fate_flows(model, F, programs, scale=scale)  # (N, fates, d)
        if solving is None:
            solving = pool.submit(solve, model.to_ambient(flows.sum(axis=1)[:, None, :])[:, 0, :])
        z = _fate.fine_deviation(model, F, labels, n_fates=len(fates), coarse_scale=coarse, effect=effect,
                                 n_jobs=n_jobs)
        T, chain = solving.result()
    stuck = int(np.isnan(chain[:, 0]).sum())
    if stuck:
        warn(f"{stuck} cells cannot reach any terminal state (a graph component without one); their fate "
             "probabilities are NaN. Add a terminal state there or analyse that component on its own.",
             into=warned)
    agreement = _fate.fine_agreement(z, chain, labels)
    use_fine = fine_weight > 0
    if use_fine and min_fine_agreement is not None:
        against = np.flatnonzero(agreement < min_fine_agreement)
        if against.size:
            said = ", ".join(f"{fates[f]} ({agreement[f]:.2f})" for f in against)
            # a routine outcome (most data carry no fate signal outside the manifold's trends): logged, not warned;
            # uns records it (fine_step, fine_agreement) and the report says it
            logger.info("the fine-scale evidence of %s ranks the progenitors against the chain's probabilities "
                        "(Spearman correlation below %g), as when no gene outside the manifold's trends carries the "
                        "fate or progenitors border the fate's terminal cells: the fine-scale step is skipped, and "
                        "the fate probabilities are the chain's (as with `fine_weight=0`)", said, min_fine_agreement)
            use_fine = False
    probs = chain.copy()
    if use_fine:
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
    if pseudotime is not None:
        target.obs[f"{key}_pseudotime"] = np.where(np.isfinite(pseudotime), pseudotime, np.nan)
    elif f"{key}_pseudotime" in target.obs:  # from an earlier run with a root: not this chain's orientation
        del target.obs[f"{key}_pseudotime"]
    # per-cell results live on the cell axis (obs, obsm), where AnnData subsets and reorders them with the cells
    target.obs[f"{key}_terminal_states"] = pd.Categorical(
        np.array([fates[i] if i >= 0 else None for i in labels], dtype=object), categories=fates)
    target.uns[key]["fate_bias"] = {
        "fates": np.array(fates, dtype=object),
        "scale": int(scale), "beta": float(beta), "flow_mix": float(flow_mix),
        "forward": float(forward) if oriented else 0.0, "layer": layer or "X", "fine_weight": float(fine_weight),
        "coarse_scale": int(coarse), "fine_agreement": agreement, "fine_step": bool(use_fine),
        "min_fine_agreement": np.nan if min_fine_agreement is None else float(min_fine_agreement),
        "root": "" if root_cell is None else str(adata.obs_names[root_cell]),  # a name: positions go stale
        "time_key": "" if time_key is None else str(time_key),
        "orientation": "" if pseudotime is None else "time_key" if time_key is not None else orientation,
        "detected": detected,
        "warnings": np.array(warned, dtype=str),
        **({"persistence": np.array([t.persistence for t in tips]), "min_persistence": float(min_persistence)}
           if detected else {}),
        # keyed by position: a fate's name may hold '/', which HDF5 would read as a path
        "programs": {str(j): {"fate": f, "genes": np.array(genes, dtype=object)[programs[j] > 0],
                         "weights": programs[j][programs[j] > 0]} for j, f in enumerate(fates)},
    }
    logger.info("added `adata.obsm['%s_fate_probs']`, `adata.obsp['%s_transitions']` and the fate flows",
                key, key)
    return target if copy else None


def time_from_obs(adata: ad.AnnData, time_key: str) -> NDArray[np.float64]:
    """``obs[time_key]`` as a pseudotime starting at 0 (NaN where missing or infinite), after checking it is one."""
    require_key(adata, "obs", time_key, fix="pass an obs column holding a pseudotime (e.g. scanpy's 'dpt_pseudotime')")
    col = adata.obs[time_key]
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        msg = f"`obs[{time_key!r}]` must hold numbers (a pseudotime), got dtype {col.dtype}."
        raise TypeError(msg)
    t = col.to_numpy(dtype=np.float64)
    finite = t[np.isfinite(t)]
    if finite.size == 0 or finite.max() <= finite.min():
        msg = f"`obs[{time_key!r}]` is constant or has no finite value: it cannot orient the chain."
        raise ValueError(msg)
    return np.where(np.isfinite(t), t - finite.min(), np.nan)  # infinite (unreached) cells: no time


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


def _default_coarse_scale(scales: Sequence[int]) -> int:
    """The smallest scale from 2 up, else the largest."""
    return next((int(t) for t in scales if t >= 2), int(scales[-1]))


def _default_scale(scales: list[int]) -> int:
    positive = [t for t in scales if t > 0]
    return positive[0] if positive else scales[0]
