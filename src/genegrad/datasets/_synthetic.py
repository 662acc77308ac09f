"""Single-cell-like counts on manifolds with exact ground-truth gradients."""

from __future__ import annotations

import logging
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .._validation import as_rng, check_range
from . import _manifolds, _patterns

logger = logging.getLogger(__name__)

Kind = Literal["plane", "swissroll", "curved_sheet", "cycle", "tree", "cube"]


#: Cells simulated at once (the counts of larger data are drawn block after block, bounding memory).
CELL_BLOCK = 20_000


def synthetic(
    kind: Kind = "tree",
    n_cells: int = 3000,
    n_genes: int = 1000,
    *,
    depth: float = 1000.0,
    library_sd: float = 0.3,
    dispersion: float = 10.0,
    fate_bias: float = 0.0,
    n_bias_genes: int = 0,
    rng: int | np.random.Generator | None = 0,
) -> ad.AnnData:
    """Simulate counts on a manifold whose every gene has a known gradient.

    Each cell has latent coordinates ``u`` on the manifold ``kind``; each gene a log-mean
    ``eta_g(u) = base_g + h_g(phi(u))`` from one of seven pattern classes (linear ramp, radial bump, saddle,
    periodic, branch switch, transient, noise; saddles only on two- and three-dimensional manifolds). Counts are
    negative binomial with mean ``L_i pi_ig`` and a log-normal library size ``L_i`` around ``depth``. The noise
    genes keep a fixed share of ``pi_i`` (split by their ``exp(base_g)``); the other genes share the rest by
    ``softmax(eta(u_i))``. So noise genes are flat after total-count normalisation: with one softmax over every
    gene, the structured genes' rises took counts from them, and they all shared one real gradient.

    Parameters
    ----------
    kind
        ``'plane'``, ``'swissroll'``, ``'curved_sheet'`` (2-D); ``'cycle'``, ``'tree'`` (1-D, the tree with
        three fates A, B, C); ``'cube'`` (3-D).
    n_cells, n_genes
        Size of the data.
    depth
        Mean UMIs per cell.
    library_sd
        Standard deviation of the log library sizes (0.3 is typical of RNA; scATAC-seq varies more, ~0.6).
    dispersion
        Negative-binomial size (smaller is noisier); gene-wise values scatter log-normally around it.
    fate_bias
        Tree only: log-fold change, in ``n_bias_genes`` otherwise flat genes, that marks each progenitor's future
        fate before it shows in the geometry. Gene ``g`` (target fate ``f_g``) gets
        ``eta += fate_bias * min(pseudotime, 1)`` in the cells whose ``obs['fate']`` is ``f_g``: a weak,
        fine-grained bias that grows along the trunk and is carried by a few genes, not by the main axes.
    n_bias_genes
        Number of such genes (taken from the noise genes, recorded in ``var['bias_fate']``; their exact
        gradients in :func:`true_gradients` ignore the fate shift, which is not a function of position).
    rng
        Seed or generator.

    Returns
    -------
    AnnData with raw counts in ``X`` (CSR, float32) and

    - ``obsm['X_latent']``: latent coordinates ``u``; ``obs['total_counts']``;
    - ``var['pattern']``: the true pattern class of each gene;
    - for the tree, ``obs['segment']``, ``obs['pseudotime']`` and ``obs['fate']`` (progenitors get the fate
      their descendants are drawn to, uniformly among the reachable ones);
    - ``uns['synthetic']``: the manifold and every gene's parameters, from which
      :func:`genegrad.datasets.true_gradients` computes the exact gradients.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("plane", n_cells=200, n_genes=50)
    >>> adata.shape
    (200, 50)
    """
    if kind not in _manifolds.LATENT_DIM:
        msg = f"Expected `kind` in {sorted(_manifolds.LATENT_DIM)}, got {kind!r}."
        raise ValueError(msg)
    check_range("n_cells", n_cells, 10, None)
    check_range("n_genes", n_genes, 7, None)
    check_range("depth", depth, 1.0, None)
    check_range("library_sd", library_sd, 0.0, 3.0)
    check_range("dispersion", dispersion, 1e-3, None)
    gen = as_rng(rng)
    logger.info("simulating %d cells x %d genes on a %s", n_cells, n_genes, kind)
    lat = _manifolds.sample_latent(kind, n_cells, gen)
    u, segment = lat["u"], lat.get("segment")
    w, _ = _manifolds.embed(kind, u)
    params = _patterns.draw_genes(kind, n_genes, w, gen, segment)
    # cells in blocks (memory: a block holds a few block x G float64 arrays, never N x G); up to CELL_BLOCK cells
    blocks = [slice(s, min(s + CELL_BLOCK, n_cells)) for s in range(0, n_cells, CELL_BLOCK)]
    bias_fate = np.full(n_genes, None, dtype=object)
    fate = None
    cols = ramp = None
    if n_bias_genes or fate_bias:
        if kind != "tree":
            msg = f"`fate_bias` and `n_bias_genes` need kind='tree', got kind={kind!r}."
            raise ValueError(msg)
        noise = np.flatnonzero(params["pattern"] == "noise")
        check_range("n_bias_genes", n_bias_genes, 1, len(noise), integer=True)
        fate = np.array([gen.choice(_manifolds.tree_fates(int(s))) for s in segment])
        cols = noise[:n_bias_genes]
        bias_fate[cols] = gen.choice(_manifolds.TREE_FATES, len(cols))
        ramp = np.clip(u[:, 0] / _manifolds.TREE_SEGMENTS[0][2], 0.0, 1.0)

    def log_means(b: slice) -> np.ndarray:
        seg = None if segment is None else segment[b]
        eta = params["base"][None, :] + _patterns.evaluate(kind, params, w[b], seg)[0]
        if cols is not None:
            eta[:, cols] += fate_bias * ramp[b, None] * (fate[b, None] == bias_fate[cols][None, :])
        return eta

    # noise genes without a fate bias keep a fixed share of the counts (see `_patterns.proportions`)
    params["flat"] = (params["pattern"] == "noise") & np.array([b is None for b in bias_fate])
    lib = depth * np.exp(gen.normal(0.0, library_sd, n_cells) - library_sd**2 / 2)
    size = dispersion * np.exp(gen.normal(0.0, 0.3, n_genes))
    parts = []
    for b in blocks:
        pi = _patterns.proportions(log_means(b), params)
        mu = lib[b, None] * pi
        counts = gen.negative_binomial(size[None, :], size[None, :] / (size[None, :] + mu))
        parts.append(sparse.csr_matrix(counts.astype(np.float32)))
    X = _stack_rows(parts, n_genes)

    obs = pd.DataFrame(index=pd.Index([f"cell{i}" for i in range(n_cells)]))
    obs["total_counts"] = np.asarray(X.sum(axis=1)).ravel()
    var = pd.DataFrame(index=pd.Index(_patterns.gene_names(params["pattern"])))
    var["pattern"] = pd.Categorical(params["pattern"], categories=_patterns.PATTERNS)
    var["dispersion"] = size
    if n_bias_genes:
        var["bias_fate"] = pd.Categorical(bias_fate, categories=list(_manifolds.TREE_FATES))
    if kind == "tree":
        obs["segment"] = pd.Categorical(segment)
        obs["pseudotime"] = u[:, 0]
        if fate is None:  # drawn here when no bias was simulated: the same stream as before the option existed
            fate = [gen.choice(_manifolds.tree_fates(int(s))) for s in segment]
        obs["fate"] = pd.Categorical(fate, categories=list(_manifolds.TREE_FATES))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.obsm["X_latent"] = u.astype(np.float64)
    adata.uns["synthetic"] = {
        "kind": kind,
        "depth": float(depth),
        "library_sd": float(library_sd),
        "dispersion": float(dispersion),
        "genes": {k: (v.astype(str) if v.dtype == object else v) for k, v in params.items()},
    }
    return adata


def _stack_rows(parts: list[sparse.csr_matrix], n_cols: int) -> sparse.csr_matrix:
    """``sparse.vstack(parts)``, holding about one copy of the result: each part is freed (popped) once copied."""
    nnz = sum(p.nnz for p in parts)
    n_rows = sum(p.shape[0] for p in parts)
    index = np.int32 if max(nnz, n_cols) < 2**31 else np.int64
    data = np.empty(nnz, dtype=np.float32)
    indices = np.empty(nnz, dtype=index)
    indptr = np.zeros(n_rows + 1, dtype=index)
    pos = row = 0
    while parts:
        p = parts.pop(0)
        data[pos:pos + p.nnz] = p.data
        indices[pos:pos + p.nnz] = p.indices
        indptr[row + 1:row + 1 + p.shape[0]] = p.indptr[1:] + pos
        pos, row = pos + p.nnz, row + p.shape[0]
    return sparse.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))


def tree_terminal_states(adata: ad.AnnData, *, tail: float = 0.25) -> pd.Series:
    """Terminal states of a synthetic tree: each fate's cells within ``tail`` of their branch's end.

    Returns a categorical Series (fates ``A``, ``B``, ``C``; missing elsewhere) for
    :func:`genegrad.tl.fate_bias`, e.g. ``adata.obs['terminal'] = gg.datasets.tree_terminal_states(adata)``.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("tree", n_cells=500, n_genes=20)
    >>> sorted(gg.datasets.tree_terminal_states(adata).dropna().unique())
    ['A', 'B', 'C']
    """
    check_range("tail", tail, 0.0, None)
    if "segment" not in adata.obs or "pseudotime" not in adata.obs:
        msg = "Expected a synthetic tree (`obs['segment']`, `obs['pseudotime']`): `synthetic('tree', ...)`."
        raise KeyError(msg)
    seg = adata.obs["segment"].astype(int).to_numpy()
    tau = adata.obs["pseudotime"].to_numpy()
    end = np.array([_manifolds.TREE_SEGMENTS[s][2] for s in seg])
    terminal = np.array([_manifolds.TREE_SEGMENTS[s][3] is not None for s in seg])
    late = terminal & (end - tau < tail)
    return adata.obs["fate"].where(late)
