"""Gene geometry: descriptors of every gene's gradient field, structured-gene test, patterns and modules."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from .. import _keys
from .._core import _columns, _descriptors, _holdout, _lsi, _patterns, _regions
from .._core._threads import n_threads
from .._validation import (
    as_rng,
    check_range,
    check_scale,
    check_unique_names,
    default_genes,
    gene_positions,
    highly_variable,
    warn,
)
from ..pp._manifold import load_model
from ._compute import compute_options
from ._signal import progress_bar, read_signal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

_GB = 1024**3
#: Genes per chunk at most (32-64 keep the dense block in cache during the sparse products).
CHUNK_SIZE = 64
#: Bytes of one chunk's gradients, standard errors and smoothed signals at most: fewer genes per chunk on large
#: data, so that memory stays bounded (2 chunks per thread in flight) whatever the number of cells.
CHUNK_BYTES = 256 * 1024**2
#: Genes a fold of the structure test's held-out graphs needs at least.
MIN_FOLD_GENES = 10
#: Cells (a fixed random sample; all cells below this) on which the held-out structure test runs: the sample,
#: and its size, of the descriptors measured on a sample (``_descriptors.SHAPE_SAMPLE``).
STRUCTURE_SAMPLE = _descriptors.SHAPE_SAMPLE


def _chunk_size(model) -> int:
    return model.chunk_size(max_bytes=CHUNK_BYTES, most=CHUNK_SIZE)


def patterns(
    adata: ad.AnnData,
    genes: Sequence[str] | None = None,
    *,
    n_patterns: int | None = None,
    scale: int | None = None,
    region_counts: bool | None = None,
    layer: str | None = None,
    fdr: float = 0.05,
    n_null: int = 500,
    depth_key: str | None = "total_counts",
    holdout: bool = True,
    n_module_genes: int = 300,
    module_threshold: float = 0.5,
    n_jobs: int | None = -1,
    backend: str = "numpy",
    scheduler: Any = None,
    random_state: int = 0,
    key: str = _keys.UNS,
    progress: bool | None = None,
    copy: bool = False,
) -> ad.AnnData | None:
    """Describe every gene's gradient field, separate structured genes from noise, and group them into patterns.

    Streams over gene chunks (the cells x genes x dims x scales tensor is never held): for each gene and scale,
    descriptors of its gradient field (see Notes); a permutation test of structure; Gaussian-mixture clusters of
    the structured genes on their shape descriptors (the patterns: the consensus of 20 random starts, each
    pattern then tested for a split on its own genes, see :func:`~genegrad._core._patterns.cluster_patterns`);
    and modules of co-directional genes from their gradient similarity.

    Parameters
    ----------
    adata
        Data with a log-normalised signal and the manifold of :func:`genegrad.pp.manifold`.
    genes
        Genes to describe; by default the highly variable genes, else all.
    n_patterns
        Number of patterns; chosen by BIC (1-10) in each start of the mixture fit when ``None``, and then by the
        split tests (at most 10 in all). A given number is kept exactly: no pattern is split.
    scale
        Diffusion time at which the shape descriptors are clustered and gradient similarity is measured; the
        largest scale by default (noise has died there, shape has not).
    region_counts
        Cluster on the numbers of peaks and troughs too (see Notes). By default only on a one-dimensional
        manifold (``d = 1``: curves, trees), where they pin down a function's shape: on a curve each high region
        is an interval around a maximum. On two-dimensional manifolds ridges and waves share their counts, so
        they are left out there.
    layer
        Layer holding the signal; ``X`` by default.
    fdr
        Genes with a q-value below ``fdr`` are structured.
    n_null
        Genes permuted over cells to form the null of the structure test (random, ``random_state``).
    depth_key
        ``obs`` column of sequencing depth; the test standardises each gene within its deciles, so that what
        depth does to a gene (shallow cells have more zeros, and may be neighbours) is not taken for structure.
        Computed from ``layers['counts']`` when the column is missing, skipped when neither exists or ``None``.
    holdout
        Test each gene on a graph it did not help build (see Notes): two extra kNN graphs, each from the PCA of
        half of the highly variable genes. ``False`` tests on the manifold's own graph: faster, but the genes
        that built it look smoother than they are, and the q-values are then anti-conservative on large data.
    n_module_genes
        The most structured genes grouped into modules (their pairwise similarity is ``n^2``).
    module_threshold
        Genes join a module when their average-linkage gradient similarity exceeds this.
    backend
        ``'numpy'`` (scipy.sparse), ``'torch'`` (CUDA when available, else CPU) or ``'dask'`` (gene chunks as
        tasks on ``scheduler``'s cluster); results agree to float32 round-off.
    scheduler
        With ``backend='dask'``: a ``dask.distributed.Client`` or a scheduler address; a two-worker
        ``LocalCluster`` when ``None``.
    n_jobs
        Threads over gene chunks (``-1``: every core); results do not depend on it.
    random_state
        Seed of the permutations and of the mixture fits.
    key
        Prefix under which :func:`genegrad.pp.manifold` stored the manifold.
    progress
        Show a progress bar; by default only when logging is at INFO level or below.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with (for ``key='genegrad'``)

    - ``adata.varm['genegrad_descriptors']``: float32 ``(n_vars, descriptors, scales)``, NaN for genes not
      described; names in ``adata.uns['genegrad']['patterns']['descriptors']`` (read them as a DataFrame with
      :func:`genegrad.get.descriptors`);
    - ``adata.var['genegrad_structured']`` (bool), ``['genegrad_structured_score']``,
      ``['genegrad_structured_pval']``, ``['genegrad_structured_qval']``;
    - ``adata.var['genegrad_pattern']``: categorical, ``'P0'``, ``'P1'``, ... by decreasing size, ``'noise'``
      for genes not structured, missing for genes not described; ``['genegrad_pattern_typicality']``, the
      posterior probability of the gene's own pattern;
    - ``adata.var['genegrad_module']``: categorical modules ``'M0'``, ... of co-directional genes;
    - ``adata.uns['genegrad']['patterns']``: parameters, descriptor names, scales, and the per-pattern mean of
      every descriptor (``summary``).

    Notes
    -----
    Descriptors, per gene and scale ``t`` (gradients of ``P^t f``):

    - ``magnitude``: mean length x the representation's RMS spread / the gene's standard deviation;
    - ``snr``: mean squared length over squared standard error (about 1 for noise);
    - ``coherence``: length of the magnitude-weighted mean gradient direction, with directions expressed in a
      frame synchronised over the whole manifold (vector diffusion maps) so that cells far apart can be
      compared: 1 for a ramp, about 0 for a bump, a ridge or a wave;
    - ``axiality``: share of the directions' (magnitude-weighted) second moment along its main axis: 1 when
      every gradient is parallel or anti-parallel (ramps, ridges, waves), ``1/d`` for a radial bump;
    - ``localisation``: Gini coefficient of the lengths over cells;
    - ``peakedness``: from the graph Laplacian at the gene's top and bottom deciles of cells, +1 for a peak,
      -1 for a trough, about 0 for a ramp, a saddle or a wave;
    - ``extrema``: share of cells that are strict local maxima or minima among their neighbours;
    - ``decay``: mean length relative to scale 0;
    - ``alignment``: share of the gradient along the first two coordinates of the representation (the main
      axes of variation);
    - ``smoothness``: share of the gene's variance left after ``t`` diffusion steps;
    - ``peaks`` and ``troughs``: how many separate high (low) regions ``P^t f`` has on the manifold: components
      of its superlevel (sublevel) sets holding at least 1% of the cells, averaged over eight levels from 20% to
      90% of its range, on a coarse graph of 300 landmark cells (each cell with its nearest landmark along the
      graph). 1 for a ramp, a bump or a plateau; 2 for two bumps, for a wave of two periods on a closed curve, or
      for the low sides of a ridge; on a tree, a ramp rising along pseudotime has one peak per branch tip.

    The patterns are clustered on ``coherence``, ``axiality``, ``localisation`` and ``peakedness`` at ``scale``,
    ``decay`` from the first smoothed scale to every later one (log; the decay from the raw signal, which the
    noise dominates, is left out) and, with ``region_counts``, the larger and the smaller of ``peaks`` and
    ``troughs`` at ``scale`` (log).

    ``localisation`` and ``peakedness`` are measured on a fixed random sample of 20,000 cells on larger data,
    ``extrema`` on 5,000 (the only steps not linear in N: a sort or a partition per gene).

    **Structure test.** A gene's statistic is its ``smoothness`` at each scale, computed on its values
    standardised within deciles of sequencing depth; the null is the same for permutations of such residuals of
    ``n_null`` random genes (same marginals, no geometry), and the score is the largest standardised statistic
    over scales. Each gene is tested on a graph it did not help build (``holdout``): the highly variable genes
    are split into two random halves, each half's PCA gives a kNN diffusion graph built like the manifold's,
    and every gene is tested on the other half's graph. On the manifold's own graph, a gene that shaped the
    neighbourhoods looks a little smoother than its permutations, and on many cells this small excess is
    significant: flat genes would be called structured. The held-out graphs keep the test near its nominal
    level (docs/results.md). Structure that follows depth itself (cell types of different size) is not
    counted: the test asks for structure beyond depth. On larger data the held-out graphs, built anew, join
    only the sample of 20,000 cells that ``localisation`` and ``peakedness`` use, so that the test's cost stops
    growing with N (the number tested: ``uns[key]['patterns']['params']['structure_test_cells']``).

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("plane", n_cells=400, n_genes=60, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=10)
    >>> gg.pp.manifold(adata, n_dims=2, n_neighbors=20)
    >>> gg.tl.patterns(adata, n_null=60)
    >>> adata.varm["genegrad_descriptors"].shape  # genes, descriptors, scales
    (60, 12, 5)
    """
    check_unique_names(adata)
    check_range("fdr", fdr, 0.0, 1.0)
    options = compute_options(backend, scheduler, n_jobs)
    check_range("n_null", n_null, 10, None, integer=True)
    if not isinstance(holdout, bool | np.bool_):
        msg = f"Expected `holdout` to be True or False, got {holdout!r}."
        raise TypeError(msg)
    if region_counts is not None and not isinstance(region_counts, bool | np.bool_):
        msg = (f"Expected `region_counts` to be True, False or None (None: on one-dimensional manifolds only), "
               f"got {region_counts!r}.")
        raise TypeError(msg)
    check_range("n_module_genes", n_module_genes, 2, None, integer=True)
    check_range("module_threshold", module_threshold, -1.0, 1.0)
    if n_patterns is not None:
        check_range("n_patterns", n_patterns, 1, None, integer=True)
    model = load_model(adata, key)
    scales = model.scales_
    if scale is None:
        scale = scales[-1]
    check_scale(scale, scales)
    genes = default_genes(adata, genes)
    # row-major as stored: chunks of genes are read in place (a column-major copy would double the signal)
    F = read_signal(adata, layer, gene_positions(adata, genes), by_column=False)
    if F.shape[1] < 2:
        msg = f"`genes` must name at least 2 genes to find patterns, got {len(genes)}."
        raise ValueError(msg)
    rep = adata.uns[key]["params"]["use_rep"]
    Y = np.asarray(adata.obsm[rep], dtype=np.float64)
    length = float(np.sqrt(((Y - Y.mean(axis=0)) ** 2).sum(axis=1).mean()))
    rng = as_rng(random_state)
    to_intrinsic = _descriptors.synchronized_frames(model, n_jobs=options["n_jobs"])

    desc = _describe(model, F, length=length, to_intrinsic=to_intrinsic, options=options, progress=progress)
    notes: list[str] = []  # the warnings of this run, kept with its results (the report shows them)
    score, pval, n_tested = _structure_test(adata, model, F, genes=genes, layer=layer, key=key,
                                            depth_key=depth_key, notes=notes, n_null=n_null, holdout=holdout,
                                            rng=rng, n_jobs=n_jobs, progress=progress)
    constant = ~np.isfinite(score)
    score[constant], pval[constant] = -np.inf, 1.0
    qval = _patterns.bh_qvalues(pval)
    structured = (qval < fdr) & ~constant

    t_idx = scales.index(scale)
    labels = np.full(len(genes), -1)
    typicality = np.full(len(genes), np.nan)
    if region_counts is None:
        region_counts = model.n_dims_ == 1
    if structured.sum() >= 2:
        feats = _patterns.shape_features(desc[structured], t_idx, scales=scales, regions=bool(region_counts))
        lab, typ = _patterns.cluster_patterns(feats, n_patterns=n_patterns, random_state=random_state,
                                              n_jobs=n_threads(options["n_jobs"]))
        labels[structured], typicality[structured] = lab, typ
    modules = _modules(model, F, genes=genes, score=score, structured=structured, scale=scale, n_genes=n_module_genes,
                       threshold=module_threshold, options=options)

    target = adata.copy() if copy else adata
    _write(target, key, genes=genes, desc=desc, score=score, pval=pval, qval=qval, structured=structured, labels=labels,
           typicality=typicality, modules=modules, scale=scale, scales=scales,
           params={"fdr": float(fdr), "n_null": int(n_null), "random_state": int(random_state),
                   "n_patterns": -1 if n_patterns is None else int(n_patterns), "layer": layer or "X",
                   "module_threshold": float(module_threshold), "region_counts": bool(region_counts),
                   "structure_test_cells": n_tested},
           notes=notes)
    return target if copy else None


def _describe(model, F, *, length: float, to_intrinsic, options, progress) -> NDArray[np.float64]:
    """Descriptors of every column of ``F``, each chunk reduced where it was computed (thread or dask worker)."""
    regions = _regions.coarsen(model.knn_indices_, random_state=model.random_state)
    reduce = partial(_descriptors.chunk_descriptors, length_scale=length, sd=_column_sd(F), to_intrinsic=to_intrinsic,
                     regions=regions)
    bar = progress_bar(progress, total=F.shape[1], desc="descriptors")
    parts = []
    for part in model.iter_gradients(F, chunk_size=_chunk_size(model), with_se=True, with_signals=True, reduce=reduce,
                                     **options):
        parts.append(part)
        bar.update(part.shape[0])
    bar.close()
    logger.info("described %d signals (backend %s)", F.shape[1], options["backend"])
    return np.concatenate(parts, axis=0)


def _structure_test(adata, model, F, *, genes, layer, key, depth_key, notes: list[str], n_null: int,
                    holdout: bool, rng: np.random.Generator, n_jobs: int | None,
                    progress) -> tuple[NDArray, NDArray, int]:
    """Score and permutation p-value of each gene's structure (see :func:`patterns`, Notes), and the cells tested.

    Each gene is tested on a graph it did not help build (``holdout``), or on the manifold's own graph, by
    :func:`genegrad._core._patterns.graph_structure_test`; gene chunks run in threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    fold_genes = _fold_pool(adata, genes, notes=notes) if holdout else None
    # held-out graphs are built anew, so on a sample of the cells as well; the manifold's own graph joins all
    cells = np.arange(adata.n_obs) if fold_genes is None else _descriptors.sample_cells(adata.n_obs, STRUCTURE_SAMPLE)
    if cells.size < adata.n_obs:
        logger.info("structure test on a random sample of %d of the %d cells", cells.size, adata.n_obs)
        F = F[cells]
    depth_strata = _depth_strata(adata, depth_key, cells=cells)
    graphs, fold = _test_graphs(adata, model, genes, pool=fold_genes, F=F, cells=cells, layer=layer, key=key, rng=rng)
    score = np.full(len(genes), np.nan)
    pval = np.ones(len(genes))
    bar = progress_bar(progress, total=len(genes), desc="structure test")
    with ThreadPoolExecutor(n_threads(n_jobs)) as pool:
        for h, P in enumerate(graphs):
            cols = np.flatnonzero(fold == h)
            if cols.size == 0:
                continue
            score[cols], pval[cols] = _patterns.graph_structure_test(
                F, cols, P, strata=depth_strata, scales=model.scales_, n_null=n_null, rng=rng, map_=pool.map,
                chunk_size=CHUNK_SIZE, on_chunk=bar.update)
    bar.close()
    return score, pval, int(cells.size)


def _fold_pool(adata, genes, *, notes: list[str]) -> NDArray[np.int64] | None:
    """Positions of the genes the held-out graphs are built from, or None when there are too few.

    They are the genes the representation is made of (the highly variable genes, else the genes described);
    fewer than two folds' worth gives None and a warning.
    """
    hvg = highly_variable(adata)
    pool = np.flatnonzero(hvg) if hvg is not None else gene_positions(adata, genes)
    if pool.size < 2 * MIN_FOLD_GENES:
        warn(f"The structure test needs at least {2 * MIN_FOLD_GENES} genes to build the graphs it holds out "
             f"(got {pool.size}); it tests on the manifold's own graph, where the q-values are anti-conservative.",
             into=notes)
        return None
    return pool


def _test_graphs(adata, model, genes, *, pool: NDArray[np.int64] | None, F, cells: NDArray[np.int64], layer, key,
                 rng) -> tuple[list, NDArray[np.int64]]:
    """The graphs the structure test runs on, and the graph of each gene.

    With a ``pool`` of genes (:func:`_fold_pool`), they are split in two folds; each fold's PCA gives a kNN
    diffusion graph of the ``cells`` built like the manifold's, and each gene is tested on the graph of the fold
    it is not in (genes in neither fold are spread over both). Without, every gene is tested on the manifold's
    own graph. ``F`` is the signal of ``genes`` at the ``cells``, already read: a fold's genes are taken from it
    when they are all there.
    """
    n_genes = len(genes)
    if pool is None:
        return [model.diffusion_], np.zeros(n_genes, dtype=np.int64)
    pool_fold = _holdout.split_genes(pool.size, rng)
    fold_of_var = np.full(adata.n_vars, -1)
    fold_of_var[pool] = pool_fold
    tested_on = 1 - fold_of_var[gene_positions(adata, genes)]  # 2 for genes in neither fold
    fold = np.where(tested_on < 2, tested_on, rng.integers(0, 2, size=n_genes))
    params = adata.uns[key]["params"]
    rep = params["use_rep"]
    n_comps = adata.obsm[rep].shape[1] if rep in adata.obsm else 50
    embed = _fold_lsi(adata, cells=cells, random_state=model.random_state)
    if embed is not None:
        n_comps += len(adata.uns["lsi"]["dropped"])  # the folds' LSIs drop their depth components too
    column_of_var = np.full(adata.n_vars, -1)
    column_of_var[gene_positions(adata, genes)] = np.arange(n_genes)
    graphs = []
    for h in range(2):
        logger.info("structure test: graph of gene fold %d of 2 (%d genes)", h + 1, int((pool_fold == h).sum()))
        cols = column_of_var[pool[pool_fold == h]]
        if (cols >= 0).all():
            X = F[:, cols]
        else:
            X = read_signal(adata, layer, pool[pool_fold == h], by_column=False)
            X = X[cells] if cells.size < adata.n_obs else X
        graphs.append(_holdout.fold_graph(X, n_comps=n_comps, n_neighbors=model.n_neighbors, alpha=model.alpha,
                                          knn_method=params.get("knn_method", "auto"),
                                          random_state=model.random_state, embed=embed))
    return graphs, fold


def _fold_lsi(adata: ad.AnnData, *, cells: NDArray[np.int64], random_state: int):
    """For data made by :func:`genegrad.pp.preprocess_atac`: the folds' representation, an LSI made the same way.

    It embeds the ``cells`` only (their depths).
    """
    prep = adata.uns.get(_keys.PREPROCESS, {})
    if prep.get("modality") != "atac" or "counts" not in adata.layers or "lsi" not in adata.uns:
        return None
    counts = adata.layers["counts"]
    depth = np.asarray((counts > 0).sum(axis=1) if prep.get("binarize", False) else counts.sum(axis=1),
                       dtype=np.float64).ravel()[cells]
    return partial(_lsi.lsi_scores, depth=depth, max_depth_corr=float(prep["max_depth_corr"]),
                   normalize_rows=bool(adata.uns["lsi"].get("normalize_rows", True)), random_state=random_state)


def _depth_strata(adata: ad.AnnData, depth_key: str | None, *, cells: NDArray[np.int64],
                  n_bins: int = 10) -> NDArray | None:
    """Decile of sequencing depth (among ``cells``) of each of the ``cells``."""
    if depth_key is None:
        return None
    if depth_key in adata.obs:
        depth = np.asarray(adata.obs[depth_key], dtype=np.float64)[cells]
    elif "counts" in adata.layers:
        counts = adata.layers["counts"]
        depth = np.asarray((counts if cells.size == adata.n_obs else counts[cells]).sum(axis=1),
                           dtype=np.float64).ravel()
    else:
        logger.info("no `obs['%s']` nor counts layer: the null permutes over all cells", depth_key)
        return None
    edges = np.quantile(depth, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, depth, side="right")


def _column_sd(F) -> NDArray[np.float64]:
    if sparse.issparse(F) and F.format == "csr":  # no squared copy of a large signal
        total, squares = _columns.column_moments(F)
        mean = total / F.shape[0]
        return np.sqrt(np.maximum(squares / F.shape[0] - mean**2, 0.0))
    if sparse.issparse(F):
        mean = np.asarray(F.mean(axis=0)).ravel()
        sq = np.asarray(F.multiply(F).mean(axis=0)).ravel()
        return np.sqrt(np.maximum(sq - mean**2, 0.0))
    return np.asarray(F, dtype=np.float64).std(axis=0)


def _modules(model, F, *, genes, score, structured, scale: int, n_genes: int, threshold: float,
             options) -> NDArray:
    """Modules among the ``n_genes`` most structured genes (see :func:`_patterns.co_directional_modules`)."""
    out = np.full(len(genes), -1)
    cand = np.flatnonzero(structured)
    cand = cand[np.argsort(-score[cand], kind="stable")][:n_genes]
    if cand.size < 2:
        return out
    reduce = partial(_gradients_at, scale_index=0)
    order = np.argsort(cand, kind="stable")  # streamed in increasing position: a CSR F is read in place
    parts = model.iter_gradients(F, columns=cand[order], chunk_size=_chunk_size(model), with_se=False, reduce=reduce,
                                 scales=[scale], **options)
    grads = np.empty((F.shape[0], cand.size, model.n_dims_), dtype=np.float32)
    done = 0
    for part in parts:  # back in the candidates' order (by score)
        grads[:, order[done:done + part.shape[1]]] = part
        done += part.shape[1]
    lab = _patterns.co_directional_modules(_patterns.gradient_similarity(grads), threshold=threshold)
    keep = lab >= 0
    out[cand[keep]] = lab[keep]
    return out


def _gradients_at(model, chunk, *, scale_index: int) -> NDArray[np.float32]:
    """``(N, g, d)``: a chunk's gradients at one scale (the rest is dropped where the chunk was computed)."""
    return np.ascontiguousarray(chunk.gradients[:, :, :, scale_index])


def _write(adata, key, *, genes, desc, score, pval, qval, structured, labels, typicality, modules, scale, scales,
           params, notes) -> None:
    names = list(_descriptors.DESCRIPTORS)
    rows = gene_positions(adata, genes)
    full = np.full((adata.n_vars, len(names), len(scales)), np.nan, dtype=np.float32)
    full[rows] = desc
    n_pat = int(labels.max()) + 1 if labels.size else 0
    cats = [f"P{i}" for i in range(n_pat)] + ["noise"]

    def column(values, fill, dtype) -> NDArray:
        col = np.full(adata.n_vars, fill, dtype=dtype)
        col[rows] = values
        return col

    pattern = np.array([cats[i] if i >= 0 else "noise" for i in labels], dtype=object)
    var_pattern = pd.Categorical(column(pattern, None, object), categories=cats)
    n_mod = int(modules.max()) + 1
    var_module = pd.Categorical(column(np.array([f"M{i}" if i >= 0 else None for i in modules], dtype=object),
                                       None, object), categories=[f"M{i}" for i in range(n_mod)])
    summary = {}
    for c in cats:
        sel = pattern == c
        summary[c] = {
            "n_genes": int(sel.sum()),
            **{n: float(np.nanmean(desc[sel, i, scales.index(scale)])) if sel.any() else float("nan")
               for i, n in enumerate(names)},
        }
    p = f"{key}_"
    adata.varm[f"{p}descriptors"] = full
    adata.var[f"{p}structured"] = column(structured, fill=False, dtype=bool)
    adata.var[f"{p}structured_score"] = column(score, np.nan, np.float64)
    adata.var[f"{p}structured_pval"] = column(pval, np.nan, np.float64)
    adata.var[f"{p}structured_qval"] = column(qval, np.nan, np.float64)
    adata.var[f"{p}pattern"] = var_pattern
    adata.var[f"{p}pattern_typicality"] = column(typicality, np.nan, np.float64)
    adata.var[f"{p}module"] = var_module
    adata.uns[key]["patterns"] = {
        "descriptors": np.array(names, dtype=object),
        "scales": np.array(scales, dtype=int),
        "scale": int(scale),
        "genes": np.array(genes, dtype=object),
        "params": params,
        "warnings": np.array(notes, dtype=str),
        "summary": pd.DataFrame(summary).T.to_dict(orient="list") | {"pattern": cats},
    }
    logger.info("added `adata.varm['%sdescriptors']`, `adata.var['%spattern']` and friends, "
                "`adata.uns['%s']['patterns']`", p, p, key)
