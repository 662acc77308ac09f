"""Build the manifold once: kNN graph, diffusion operator, tangent frames and the gradient operator."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from .. import _keys
from .._core import _graph, _operator
from .._core._model import GradientModel
from .._validation import check_finite, check_n_jobs, check_range, check_scales, require_key, warn

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad

logger = logging.getLogger(__name__)


def manifold(
    adata: ad.AnnData,
    *,
    use_rep: str = "X_pca",
    n_neighbors: int = 30,
    n_dims: int | None = None,
    scales: Sequence[int] = (0, 1, 2, 4, 8),
    n_smooth: int = 3,
    frame_averaging: int = 1,
    alpha: float = 1.0,
    quadratic: bool = False,
    neighbors_key: str | None = None,
    knn_method: str = "auto",
    random_state: int = 0,
    n_jobs: int | None = -1,
    key_added: str = _keys.UNS,
    copy: bool = False,
) -> ad.AnnData | None:
    """Fit the cell-state manifold and the gradient operator.

    A kNN graph on ``adata.obsm[use_rep]`` (exact up to 50,000 cells, approximate above, or the one
    ``scanpy.pp.neighbors`` stored), adaptive Gaussian affinities, the diffusion operator ``P``, tangent frames
    by weighted local PCA of coordinates smoothed by ``n_smooth`` diffusion steps (then averaged over each cell's
    neighbours, ``frame_averaging`` times), and, per cell, the weighted
    least-squares fit that makes the gradient a sparse linear operator, built once.

    Parameters
    ----------
    adata
        Annotated data with a representation in ``obsm[use_rep]`` (run :func:`genegrad.pp.preprocess`).
    use_rep
        Representation: an ``obsm`` key, or ``'X'``.
    n_neighbors
        Neighbours per cell (30 or more recommended; more cells support more neighbours).
    n_dims
        Tangent dimension; estimated from the data when ``None`` (the largest gap in the median local PCA
        spectrum of coordinates smoothed by sixteen diffusion steps, on a seeded sample of at most 10,000 cells
        with its own graph, so that it does not drift with the number of cells). Set it when you know the intrinsic
        dimension: too large a value costs accuracy.
    scales
        Diffusion times ``t``: gradients are computed for ``P^t F``.
    n_smooth
        Diffusion steps smoothing the coordinates before the local PCA.
    frame_averaging
        Passes of neighbourhood averaging of the tangent frames: each cell's frame becomes the ``d`` leading
        eigenvectors of the mean projector onto its own and its neighbours' frames. One pass corrects the
        frames of cells whose neighbourhood is one-sided (at the manifold's boundary); ``0`` keeps the raw
        local PCA.
    alpha
        Density normalisation of ``P`` (1 removes the effect of sampling density).
    quadratic
        Local-quadratic fits (less bias on curved manifolds, more variance).
    neighbors_key
        Reuse the graph of ``scanpy.pp.neighbors(adata, key_added=neighbors_key)`` (``'neighbors'`` for the
        default) instead of searching neighbours.
    knn_method
        ``'auto'`` (exact up to 50,000 cells, ``'partition'`` above), ``'exact'``, ``'partition'`` (an
        inverted-file search: scikit-learn k-means partitions of ~1,000 cells, each cell's three nearest searched
        exactly; 99.9% of the exact neighbours on 100,000 synthetic cells, linear in N) or ``'pynndescent'``.
    random_state
        Seed for the approximate kNN searches and the noise probes.
    n_jobs
        Threads for the per-cell local PCA and fits (``-1``: every core, ``None``: one); results do not depend
        on it.
    key_added
        Prefix of the keys written.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with (for the default ``key_added='genegrad'``)

    - ``adata.obsp['genegrad_connectivities']``: symmetric affinities;
    - ``adata.obsp['genegrad_diffusion']``: the diffusion operator ``P``;
    - ``adata.obsp['genegrad_neighbors']``: the directed kNN graph (each neighbour's rank);
    - ``adata.obsm['genegrad_frames']``: tangent frames ``(N, p, d)``;
    - ``adata.obsm['genegrad_operator']``, ``['genegrad_gram']``,
      ``['genegrad_ridge']``, ``['genegrad_weights']``, ``['genegrad_dof']``, ``['genegrad_se_factors']``: the
      local fits at every scale (the gradient operators) and what their standard errors need;
    - ``adata.uns['genegrad']``: ``params``, ``scales``, ``n_dims``, ``local_spectrum``.

    Examples
    --------
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("plane", n_cells=300, n_genes=100)
    >>> gg.pp.preprocess(adata, n_comps=10)
    >>> gg.pp.manifold(adata, n_dims=2, n_neighbors=20)
    >>> adata.obsm["genegrad_frames"].shape
    (300, 10, 2)
    """
    check_range("n_neighbors", n_neighbors, 2, None, integer=True)
    if n_dims is not None:
        check_range("n_dims", n_dims, 1, None, integer=True)
    check_range("n_smooth", n_smooth, 0, 10, integer=True)
    check_range("frame_averaging", frame_averaging, 0, 5, integer=True)
    check_range("alpha", alpha, 0.0, 1.0)
    check_n_jobs(n_jobs)
    scales = check_scales(scales)
    Y = _representation(adata, use_rep)
    n, p = Y.shape
    if n_dims is not None and n_dims > p:
        msg = f"Expected `n_dims` in [1, {p}] (the dimension of `{use_rep}`), got {n_dims}."
        raise ValueError(msg)
    neighbors = None
    if neighbors_key is not None:
        require_key(adata, "uns", neighbors_key,
                    fix="run `scanpy.pp.neighbors` first or pass `neighbors_key=None`")
        dkey = adata.uns[neighbors_key].get("distances_key", "distances")
        require_key(adata, "obsp", dkey, fix="run `scanpy.pp.neighbors` first")
        k_sc = adata.uns[neighbors_key].get("params", {}).get("n_neighbors")  # scanpy counts the cell itself
        neighbors = _graph.knn_from_distances(adata.obsp[dkey], None if k_sc is None else int(k_sc) - 1)
        n_neighbors = neighbors[0].shape[1]
    elif n <= n_neighbors:
        msg = (f"Expected more cells than `n_neighbors`: got {n} cells and n_neighbors={n_neighbors}; "
               f"use n_neighbors <= {n - 1}.")
        raise ValueError(msg)

    logger.info("computing the manifold of %d cells from `%s` (k=%d)", n, use_rep, n_neighbors)
    model = GradientModel(
        n_neighbors=n_neighbors, n_dims=n_dims, scales=scales, n_smooth=n_smooth,
        frame_averaging=frame_averaging, alpha=alpha,
        quadratic=quadratic, knn_method=knn_method, random_state=random_state, n_jobs=n_jobs,
    ).fit(Y, neighbors=neighbors)
    n_comp, _ = _graph.n_components(model.connectivities_)
    if n_comp > 1:
        warn(f"The kNN graph has {n_comp} connected components; gradients and diffusion stay within each "
             "component. Increase `n_neighbors` or check the representation if this is unexpected.")

    target = adata.copy() if copy else adata
    removed = clear_results(target, key_added)
    if removed:
        logger.info("removed the results of the previous manifold under '%s': %s", key_added, ", ".join(removed))
    _store(target, model, key_added=key_added, use_rep=use_rep, n_components=n_comp, checksum=rep_checksum(Y))
    return target if copy else None


def _representation(adata: ad.AnnData, use_rep: str) -> np.ndarray:
    if use_rep == "X":
        Y = adata.X
    else:
        require_key(adata, "obsm", use_rep,
                    fix="run `genegrad.pp.preprocess` (or `scanpy.pp.pca`) first, or pass another `use_rep`")
        Y = adata.obsm[use_rep]
    Y = Y.toarray() if sparse.issparse(Y) else np.asarray(Y)
    if Y.ndim != 2:
        msg = f"Expected `{use_rep}` to be a 2-D (cells x dims) array, got shape {Y.shape}."
        raise ValueError(msg)
    check_finite(use_rep, Y)
    return Y.astype(np.float64)


def rep_checksum(Y) -> np.ndarray:
    """``(N, 2)``: each cell's sum and sum of squares of its coordinates (float64), to tell a changed representation.

    Sparse ``Y`` (``use_rep='X'``) is summed as it is, never made dense.
    """
    if sparse.issparse(Y):
        Y = sparse.csr_matrix(Y, dtype=np.float64)
        return np.column_stack([np.asarray(Y.sum(axis=1)).ravel(), np.asarray(Y.multiply(Y).sum(axis=1)).ravel()])
    Y = np.asarray(Y, dtype=np.float64)
    return np.stack([Y.sum(axis=1), (Y * Y).sum(axis=1)], axis=1)


def clear_results(adata: ad.AnnData, key: str) -> list[str]:
    """Remove what the tools computed from the manifold under ``key`` (it is being rebuilt); the keys removed."""
    removed = []
    for slot, names in _keys.RESULTS.items():
        mapping = getattr(adata, slot)
        for name in names:
            full = f"{key}_{name}"
            if full in mapping:
                del mapping[full]
                removed.append(f"{slot}['{full}']")
    if isinstance(adata.uns.get(key), dict) and "params" in adata.uns[key]:
        removed += [f"uns['{key}']['{k}']" for k in ("gradients", "patterns", "fate_bias") if k in adata.uns[key]]
    return removed


def _store(adata: ad.AnnData, model: GradientModel, *, key_added: str, use_rep: str, n_components: int,
           checksum: np.ndarray) -> None:
    ts = sorted(model.fits_)
    fits = [model.fits_[t] for t in ts]
    writes = {
        ("obsp", _keys.connectivities(key_added)): sparse.csr_matrix(model.connectivities_, dtype=np.float32),
        ("obsp", _keys.diffusion(key_added)): model.diffusion_,
        ("obsm", _keys.frames(key_added)): model.frames_,
        ("obsp", _keys.neighbors(key_added)): _graph.rank_matrix(model.knn_indices_),
        ("obsm", _keys.rep_checksum(key_added)): checksum,
        ("obsm", _keys.operator(key_added)): np.stack([f.coef for f in fits], axis=1),
        ("obsm", _keys.gram(key_added)): np.stack([f.gram for f in fits], axis=1),
        ("obsm", _keys.ridge(key_added)): np.stack([f.ridge for f in fits], axis=1),
        ("obsm", _keys.weights(key_added)): fits[0].weights,
        ("obsm", _keys.se_factors(key_added)): model.se_factors_,
        ("obsm", _keys.dof(key_added)): np.stack([f.dof for f in fits], axis=1),
    }
    for (slot, key), value in writes.items():
        getattr(adata, slot)[key] = value
        logger.info("added `adata.%s['%s']`", slot, key)
    adata.uns[key_added] = {
        "params": {
            "use_rep": use_rep, "n_neighbors": int(model.n_neighbors), "n_smooth": int(model.n_smooth),
            "frame_averaging": int(model.frame_averaging),
            "alpha": float(model.alpha), "quadratic": bool(model.quadratic), "ridge": float(model.ridge),
            "knn_method": model.knn_method, "random_state": int(model.random_state),
            "n_probes": int(model.n_probes),
        },
        "scales": np.array(model.scales_, dtype=int),
        "fit_scales": np.array(ts, dtype=int),
        "n_dims": int(model.n_dims_),
        "local_spectrum": np.asarray(model.local_spectrum_[:10], dtype=float),
        "n_components": int(n_components),
    }
    logger.info("added `adata.uns['%s']`", key_added)


def load_model(adata: ad.AnnData, key: str = _keys.UNS) -> GradientModel:
    """The fitted :class:`GradientModel` stored by :func:`manifold` under ``key``, checked against the cells."""
    info = manifold_info(adata, key)
    knn = manifold_neighbors(adata, key)
    p = info["params"]
    fits = {}
    for j, t in enumerate(np.asarray(info["fit_scales"]).astype(int)):
        fits[int(t)] = _operator.LocalFits(
            coef=np.asarray(adata.obsm[_keys.operator(key)][:, j], dtype=np.float32),
            gram=np.asarray(adata.obsm[_keys.gram(key)][:, j], dtype=np.float64),
            ridge=np.asarray(adata.obsm[_keys.ridge(key)][:, j], dtype=np.float64),
            weights=np.asarray(adata.obsm[_keys.weights(key)], dtype=np.float64),
            dof=np.asarray(adata.obsm[_keys.dof(key)][:, j], dtype=np.float64),
        )
    params = {
        "n_neighbors": int(p["n_neighbors"]), "n_dims": int(info["n_dims"]),
        "scales": tuple(int(t) for t in info["scales"]), "n_smooth": int(p["n_smooth"]),
        "frame_averaging": int(p.get("frame_averaging", 0)),  # stores written before the option: none
        "alpha": float(p["alpha"]), "quadratic": bool(p["quadratic"]), "ridge": float(p["ridge"]),
        "knn_method": str(p["knn_method"]), "random_state": int(p["random_state"]),
        "n_probes": int(p["n_probes"]),
    }
    return GradientModel.from_fitted(
        params=params,
        knn_indices=knn,
        diffusion=adata.obsp[_keys.diffusion(key)],
        frames=adata.obsm[_keys.frames(key)],
        fits=fits,
        se_factors=adata.obsm[_keys.se_factors(key)],
    )


def manifold_info(adata: ad.AnnData, key: str = _keys.UNS) -> dict:
    """``adata.uns[key]`` after checking that every array of the manifold is there."""
    fix = "run `genegrad.pp.manifold` first"
    require_key(adata, "uns", key, fix=fix)
    info = adata.uns[key]
    if not isinstance(info, dict) or "params" not in info:
        msg = f"`adata.uns['{key}']` holds no manifold; {fix}."
        raise KeyError(msg)
    for slot, fns in (("obsm", _keys.MANIFOLD_OBSM), ("obsp", _keys.MANIFOLD_OBSP)):
        for fn in fns:
            if fn(key) not in getattr(adata, slot):
                msg = (f"`adata.{slot}['{fn(key)}']` not found: the manifold under '{key}' is incomplete (written by "
                       f"an older genegrad, or a key was removed); rerun `genegrad.pp.manifold`.")
                raise KeyError(msg)
    return info


def manifold_neighbors(adata: ad.AnnData, key: str = _keys.UNS) -> np.ndarray:
    """Neighbour positions ``(N, k)`` of the manifold, after :func:`check_manifold`."""
    info = check_manifold(adata, key)
    knn = _graph.knn_from_ranks(adata.obsp[_keys.neighbors(key)], int(info["params"]["n_neighbors"]))
    if knn is None:
        raise ValueError(_stale_cells(key))
    return knn


def check_manifold(adata: ad.AnnData, key: str = _keys.UNS, *, whole: bool = True) -> dict:
    """``adata.uns[key]``, after checking that the manifold there is complete and still fits ``adata``.

    The graph lives in ``obsp``, so it follows any reordering of the cells; a subset that removed some cells'
    neighbours (or cells a diffusion step reaches), or a representation recomputed since, makes the manifold
    stale, and that raises, naming the step to rerun. With ``whole=False`` only the per-cell parts are needed
    (each cell's frame in an unchanged representation), and a subset of the cells is fine.
    """
    info = manifold_info(adata, key)
    k = int(info["params"]["n_neighbors"])
    R = adata.obsp[_keys.neighbors(key)]
    counts = np.diff(sparse.csr_matrix(R).indptr)
    rowsum = np.asarray(adata.obsp[_keys.diffusion(key)].sum(axis=1)).ravel()
    if whole and (np.any(counts != k) or not np.allclose(rowsum, 1.0, atol=1e-3)):
        raise ValueError(_stale_cells(key))
    rep = str(info["params"]["use_rep"])
    Y = adata.X if rep == "X" else adata.obsm.get(rep)
    stored = np.asarray(adata.obsm[_keys.rep_checksum(key)])
    if Y is None or Y.shape[0] != adata.n_obs or not np.allclose(
            rep_checksum(Y), stored, rtol=1e-6, atol=1e-9):
        msg = (f"`adata.{'X' if rep == 'X' else f'obsm[{rep!r}]'}` changed since `genegrad.pp.manifold` built the "
               f"manifold under '{key}' on it (recomputed, e.g. by a new PCA, or removed). Rerun "
               "`genegrad.pp.manifold` (and the tools after it).")
        raise ValueError(msg)
    return info


def _stale_cells(key: str) -> str:
    return (f"The manifold under '{key}' was built on other cells: cells were removed since `genegrad.pp.manifold` "
            "(some cells lost neighbours), or its graph was edited. Rerun `genegrad.pp.manifold` on this AnnData "
            "(and the tools after it).")
