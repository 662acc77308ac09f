"""Gradients of every gene at every cell and scale, streamed over gene chunks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys
from .._core._scale import lepski_scales
from .._core._threads import n_threads
from .._store import GradientStore
from .._validation import check_range, check_unique_names, default_genes, gene_positions
from ..pp._manifold import load_model
from ._compute import compute_options, default_memory_gb
from ._signal import progress_bar, read_signal, signal_nbytes, signal_sums

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad

logger = logging.getLogger(__name__)

_GB = 1024**3
#: Genes per chunk: small enough that the dense block stays in cache during the sparse products.
CHUNK_SIZE = 64
#: Where :func:`gradients` can put its result.
STORES = ("recompute", "obsm", "zarr")


def gradients(
    adata: ad.AnnData,
    genes: Sequence[str] | None = None,
    *,
    layer: str | None = None,
    log_mean: bool | None = None,
    with_se: bool = True,
    store: str = "recompute",
    path: str | None = None,
    memory_gb: float | None = None,
    n_jobs: int | None = -1,
    backend: str = "numpy",
    scheduler: Any = None,
    key: str = _keys.UNS,
    progress: bool | None = None,
    copy: bool = False,
) -> ad.AnnData | None:
    """Gradient of each gene's expression on the manifold, at every cell and scale, with standard errors.

    For every scale ``t`` of :func:`genegrad.pp.manifold`, the gradient of ``P^t F`` is the gradient operator
    applied to it: sparse x dense products over chunks of genes sized so that the working memory stays within
    ``memory_gb``.

    Parameters
    ----------
    adata
        Data with a log-normalised signal in ``X`` (or ``layers[layer]``) and the manifold of
        :func:`genegrad.pp.manifold`.
    genes
        Genes to differentiate; by default the highly variable genes (``var['highly_variable']``), else all.
    layer
        Layer holding the signal; ``X`` by default.
    log_mean
        Differentiate the log of the local mean, ``log1p(P^t expm1(x))``, rather than the local mean of the log
        signal ``x``: the gradient of ``expm1(x)`` (the normalised counts) divided by ``1 +`` its smoothed value
        (delta method), the standard errors likewise. On sparse counts the mean of ``log1p`` is flatter than
        ``log1p`` of the mean, and only the latter is the log expression the standard errors can cover. Needs
        ``x = log1p`` of a non-negative signal, as :func:`genegrad.pp.preprocess` and
        :func:`genegrad.pp.preprocess_atac` write. ``None``: when the signal is ``X`` and ``adata`` records it as
        ``log1p`` (``uns['log1p']``, written by scanpy's and genegrad's preprocessing, or the TF-IDF of
        :func:`genegrad.pp.preprocess_atac`) and its values lie in ``[0, 50]``.
    with_se
        Also compute standard errors (noise variance of each local fit at scale 0, propagated to every scale).
    store
        Where the gradients go. ``'recompute'`` (default): nowhere; :func:`genegrad.get.gradients` and
        :func:`genegrad.get.gradients_se` recompute the genes they are asked for from the stored operator (the
        same numbers, in a fraction of a second per gene block), so the AnnData and its file stay small; a
        fingerprint of each gene's signal makes them refuse an expression changed since. ``'obsm'``: the tensor
        in ``adata.obsm``. ``'zarr'``: streamed to a chunked zarr store at ``path``, read lazily. Only
        ``'obsm'`` counts the result against ``memory_gb``.
    path
        Folder of the zarr store (``store='zarr'``): a new or empty folder, or a store genegrad wrote (replaced
        once the new one is complete). Any other folder is refused; the store is written beside it under a
        temporary name and renamed into place, so an interrupted call leaves ``path`` as it was.
    memory_gb
        Budget in GB (by default half of the memory available when the call starts, logged) for everything the
        call holds beyond the AnnData: the model rebuilt from it, a column-major
        copy of the selected genes' expression, the result (``store='obsm'``) and the gene chunks in flight
        (sized to fit). A budget too small for one gene per chunk raises (choose fewer ``genes``,
        ``store='zarr'``, or a larger budget).
    backend
        ``'numpy'`` (scipy.sparse), ``'torch'`` (CUDA when available, else CPU) or ``'dask'`` (gene chunks as
        tasks on ``scheduler``'s cluster); results agree to float32 round-off.
    scheduler
        With ``backend='dask'``: a ``dask.distributed.Client`` or a scheduler address; a two-worker
        ``LocalCluster`` when ``None``.
    n_jobs
        Threads computing gene chunks concurrently (``-1``: every core); the result does not depend on it.
    key
        Prefix under which :func:`genegrad.pp.manifold` stored the manifold.
    progress
        Show a progress bar; by default only when logging is at INFO level or below.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with (for ``key='genegrad'``)

    - with ``store='obsm'``, ``adata.obsm['genegrad_gradients']``: float32 ``(N, genes, d, scales)`` in tangent
      coordinates, and ``adata.obsm['genegrad_gradients_se']``: float32 ``(N, genes, scales)``, the standard error
      of each gradient's length (with ``with_se``). Whatever the store, read them in any basis with
      :func:`genegrad.get.gradients` and :func:`genegrad.get.gradients_se`;
    - ``adata.var['genegrad_scale']``: each gene's recommended scale (with ``with_se``; NaN for genes not
      differentiated): the coarsest scale whose gradients stay within the 95% balls of every finer scale's in
      80% of the cells (Lepski's rule; cells whose finer-scale standard error is zero do not count). Read them
      with ``genegrad.get.gradients(..., scale='auto')`` and their standard errors with
      :func:`genegrad.get.gradients_se`;
    - ``adata.uns['genegrad']['gradients']``: ``genes``, ``layer``, ``log_mean``, ``scales``, ``store`` and
      ``signal_sums`` (a fingerprint of each gene's signal, checked when the gradients are recomputed).

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("plane", n_cells=300, n_genes=100)
    >>> gg.pp.preprocess(adata, n_comps=10)
    >>> gg.pp.manifold(adata, n_dims=2, n_neighbors=20)
    >>> gg.tl.gradients(adata)
    >>> gg.get.gradients(adata, adata.var_names[:3], scale=2, basis="tangent").shape  # cells, genes, d
    (300, 3, 2)
    """
    check_unique_names(adata)
    if memory_gb is None:
        memory_gb = default_memory_gb()
        logger.info("memory budget: %.1f GB (half of the memory available; pass `memory_gb` to set it)", memory_gb)
    check_range("memory_gb", memory_gb, 1e-6, None)
    options = compute_options(backend, scheduler, n_jobs)
    if store not in STORES:
        msg = f"Expected `store` in {STORES}, got {store!r}."
        raise ValueError(msg)
    if store == "zarr" and path is None:
        msg = "`store='zarr'` needs `path`, the folder of the store (e.g. 'gradients.zarr')."
        raise ValueError(msg)
    model = load_model(adata, key)
    genes = default_genes(adata, genes)
    # row-major as stored: the chunks read it in place (all genes in order: no copy at all)
    Fsel = read_signal(adata, layer, gene_positions(adata, genes), by_column=False)
    log_mean = resolve_log_mean(adata, Fsel, layer, log_mean=log_mean)
    n, d, T, G = adata.n_obs, model.n_dims_, len(model.scales_), len(genes)
    # the budget counts everything this call holds: the model, a copy of the signal if one was made, the result
    # (in memory) and the chunks in flight
    stored = adata.X if layer is None else adata.layers[layer]
    held = model.nbytes + (0 if Fsel is stored else signal_nbytes(Fsel))
    out_bytes = n * G * 4 * (d * T + (T if with_se else 0)) if store == "obsm" else 0
    per_gene_work = n * 8 * (d * T + T + 8)  # float64 temporaries of one gene (scales, residuals)
    per_gene_work += n * 4 * (T + 1) if log_mean else 0  # float32 local means at every scale, one in flight
    in_flight = 2 * n_threads(n_jobs)  # chunks computed ahead of the consumer
    if held + out_bytes + per_gene_work * in_flight > memory_gb * _GB:
        msg = (f"The gradients of {G} genes over {n} cells, {d} dims and {T} scales need "
               f"{(held + out_bytes + per_gene_work * in_flight) / _GB:.2f} GB (model and signal "
               f"{held / _GB:.2f} GB, result {out_bytes / _GB:.2f} GB), over `memory_gb={memory_gb}`; pass fewer "
               "`genes`, raise `memory_gb`, or keep them out of memory with `store='recompute'` (the default) or "
               "`store='zarr'`.")
        raise MemoryError(msg)
    chunk = int(max(1, min(G, (memory_gb * _GB - held - out_bytes) // (per_gene_work * in_flight), CHUNK_SIZE)))
    logger.info("computing gradients of %d genes at %d scales (chunks of %d)", G, T, chunk)
    sink = None
    # with nothing to store and no recommended scale to choose, nothing is computed
    G_run = 0 if store == "recompute" and not with_se else G
    if store == "zarr":  # written beside `path` and moved into place when complete
        sink = GradientStore.create(path, cells=list(adata.obs_names), genes=genes, n_dims=d, n_scales=T,
                                    gene_chunk=chunk, with_se=with_se)
        grads = se = None
    elif store == "recompute":
        grads = se = None
    else:
        grads = np.empty((n, G, d, T), dtype=np.float32)
        se = np.empty((n, G, T), dtype=np.float32) if with_se else None
    choice = np.zeros(G, dtype=np.int64) if with_se else None  # each gene's recommended scale, by index
    bar = progress_bar(progress, total=G_run, desc="gradients")
    try:
        for part in model.iter_gradients(Fsel if G_run else Fsel[:, :0], chunk_size=chunk, with_se=with_se,
                                         log_mean=log_mean, **options):
            if sink is not None:
                sink.write(part.start, part.gradients, part.se)
            elif grads is not None:
                grads[:, part.start:part.stop] = part.gradients
                if se is not None:
                    se[:, part.start:part.stop] = part.se
            if choice is not None:
                choice[part.start:part.stop] = lepski_scales(part.gradients, part.se)
            bar.update(part.stop - part.start)
        if sink is not None:
            sink.commit()
    finally:
        bar.close()
        if sink is not None:
            sink.discard()  # after a failure: the half-written store goes, the folder at `path` is untouched

    target = adata.copy() if copy else adata
    for name in (_keys.gradients(key), _keys.gradients_se(key)):
        if name in target.obsm:  # never leave a previous call's tensor beside this one's
            del target.obsm[name]
    if grads is not None:
        target.obsm[_keys.gradients(key)] = grads
        logger.info("added `adata.obsm['%s']`", _keys.gradients(key))
    if se is not None:
        target.obsm[_keys.gradients_se(key)] = se
        logger.info("added `adata.obsm['%s']`", _keys.gradients_se(key))
    if choice is not None:
        scale = np.full(target.n_vars, np.nan)
        scale[gene_positions(target, genes)] = np.asarray(model.scales_)[choice]
        target.var[_keys.scale(key)] = scale
        logger.info("added `adata.var['%s']`", _keys.scale(key))
    elif _keys.scale(key) in target.var:  # no standard errors, no recommended scale: the old one would be stale
        del target.var[_keys.scale(key)]
    target.uns[key]["gradients"] = {
        "genes": np.array(genes, dtype=object), "layer": layer or "X", "log_mean": bool(log_mean),
        "scales": np.array(model.scales_, dtype=int), "with_se": bool(with_se), "store": store,
        "signal_sums": signal_sums(Fsel, adata.obs_names),
        **({"path": str(path), "store_id": sink.id} if sink is not None else {}),
    }
    logger.info("added `adata.uns['%s']['gradients']`", key)
    return target if copy else None


#: Largest value of a signal taken for ``log1p`` of normalised counts (``expm1`` of it is 5e21; float32 ends at 88).
LOG1P_MAX = 50.0


def resolve_log_mean(adata: ad.AnnData, F, layer: str | None, *, log_mean: bool | None) -> bool:
    """``log_mean`` as given, checked against the signal ``F``; ``None``: whether ``X`` is recorded as ``log1p``."""
    from scipy import sparse

    if log_mean is not None and not isinstance(log_mean, bool | np.bool_):
        msg = f"`log_mean` must be True, False or None (decided from the data), not {log_mean!r}."
        raise TypeError(msg)

    name = "adata.X" if layer is None else f"adata.layers['{layer}']"
    values = F.data if sparse.issparse(F) else np.asarray(F)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    fits = low >= 0 and high <= LOG1P_MAX
    if log_mean is None:
        recorded = "log1p" in adata.uns or adata.uns.get(_keys.PREPROCESS, {}).get("modality") == "atac"
        log_mean = layer is None and recorded and fits
        logger.info("differentiating the log of the local mean of `%s`: %s", name, log_mean)
        return log_mean
    if log_mean and not fits:
        msg = (f"`log_mean=True` needs `{name}` to be log1p of normalised counts (values in [0, {LOG1P_MAX:g}]), but "
               f"its values span [{low:.3g}, {high:.3g}] (scaled, centred or unlogged data?). Pass the "
               "log-normalised expression (`genegrad.pp.preprocess`), or `log_mean=False` to differentiate this "
               "signal as it is.")
        raise ValueError(msg)
    return bool(log_mean)
