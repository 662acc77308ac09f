"""Structured-versus-noise test and pattern clustering on gradient descriptors; gradient similarity."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from . import _graph
from ._descriptors import DESCRIPTORS, column_variance, smoothness
from ._regions import LEVELS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from numpy.typing import NDArray

#: Descriptors the patterns are clustered on (amplitude-free shape descriptors, at the pattern scale).
SHAPE_DESCRIPTORS = ("coherence", "axiality", "localisation", "peakedness")


def structured_test(stat: NDArray, null: NDArray) -> tuple[NDArray, NDArray]:
    """Score and permutation p-value of each gene being structured.

    ``stat`` ``(G, T)`` is a per-scale statistic of each gene (``log smoothness`` in
    :func:`genegrad.tl.patterns`), ``null`` ``(G0, T)`` the same for genes whose values were permuted over cells
    (same marginals, no geometry). At each scale the statistic is standardised by the null's mean and standard
    deviation; a gene's score is its largest standardised value over scales (structure may be fine or coarse),
    and its p-value the share of null genes whose score, computed the same way, is at least as large:
    ``(1 + #{null >= score}) / (1 + G0)``.
    """
    mu = np.nanmean(null, axis=0)
    sd = np.nanstd(null, axis=0)
    usable = sd > 1e-9 * np.maximum(np.abs(mu), 1.0)  # a scale where every signal scores alike says nothing
    if not usable.any():
        msg = "The structure statistic does not vary over the null genes at any scale; use more scales."
        raise ValueError(msg)
    stat, null, mu, sd = stat[:, usable], null[:, usable], mu[usable], sd[usable]
    with np.errstate(invalid="ignore"):
        score = np.nanmax(np.where(np.isnan(stat), -np.inf, (stat - mu) / sd), axis=1)
    null_score = np.sort(np.nanmax(np.where(np.isnan(null), -np.inf, (null - mu) / sd), axis=1))
    n_ge = null_score.size - np.searchsorted(null_score, score, side="left")
    pval = (1 + n_ge) / (1 + null_score.size)
    return score, pval


def graph_structure_test(
    F, cols: NDArray, P: sparse.spmatrix, *, strata: NDArray | None, scales: Sequence[int], n_null: int,
    rng: np.random.Generator, map_: Callable[..., Iterable] = map, chunk_size: int = 64,
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`structured_test` of the genes ``cols`` of ``F`` (cells x genes, dense or sparse) on the graph ``P``.

    Each gene's statistic is the smoothness (:func:`~genegrad._core._descriptors.smoothness`) of its depth
    residuals (:func:`depth_residuals` within ``strata``); the null, that of permuted residuals of ``n_null``
    genes of ``F`` drawn at random. Products run in ``P``'s locality order (variances do not depend on it);
    gene chunks of ``chunk_size`` go through ``map_`` (e.g. a thread pool's ``map``), and ``on_chunk`` is
    called with each chunk's size as it is done.
    """
    order = _graph.locality_order(P)
    P = sparse.csr_matrix(P[order][:, order], dtype=np.float32)
    strata = None if strata is None else strata[order]
    null_cols = rng.choice(F.shape[1], size=n_null, replace=True)
    seeds = rng.integers(0, 2**63, size=max(1, n_null // chunk_size))

    def stat(genes: NDArray, seed: int | None = None) -> NDArray[np.float64]:
        X = F[:, genes]
        R = depth_residuals(np.asarray(X.toarray() if sparse.issparse(X) else X, dtype=np.float32)[order], strata)
        if seed is not None:  # the null: residuals of random genes, permuted over cells
            R = np.random.default_rng(seed).permuted(R, axis=0)
        return smoothness(P, R, scales)

    parts = []
    chunks = np.array_split(cols, max(1, cols.size // chunk_size))
    for c, part in zip(chunks, map_(stat, chunks), strict=True):
        parts.append(part)
        if on_chunk is not None:
            on_chunk(c.size)
    null = np.concatenate(list(map_(stat, np.array_split(null_cols, seeds.size), seeds)))
    return structured_test(_positive_log(np.concatenate(parts)), _positive_log(null))


def _positive_log(x: NDArray) -> NDArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.where(x > 0, x, np.nan))


def depth_residuals(X: NDArray, strata: NDArray | None) -> NDArray[np.float32]:
    """Columns of ``X`` centred and scaled within each stratum (e.g. deciles of sequencing depth) when given.

    What depth does to a gene (shallow cells have more zeros and smaller values, and the graph may reflect
    depth) is then gone from its mean and spread in every stratum, and the residuals of a gene without
    structure are exchangeable over cells: their permutations are its null. Constant columns give zeros.
    """
    X = np.asarray(X, dtype=np.float32)
    if strata is None:
        strata = np.zeros(X.shape[0], dtype=np.int64)
    out = np.empty(X.shape, dtype=np.float32)
    for s in np.unique(strata):
        rows = np.flatnonzero(strata == s)
        x = X[rows]
        mean = x.sum(axis=0, dtype=np.float64) / rows.size
        sd = np.sqrt(column_variance(x))
        out[rows] = (x - mean) / np.where(sd > 1e-12, sd, 1.0)
    return out


def bh_qvalues(pval: NDArray) -> NDArray[np.float64]:
    """Benjamini-Hochberg q-values."""
    p = np.asarray(pval, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def shape_features(desc: NDArray, scale_index: int, *, scales: Sequence[int],
                   regions: bool = False) -> NDArray[np.float64]:
    """``(G, F)`` clustering features.

    The shape descriptors at the pattern scale, and how each gene's gradient magnitude decays from the first
    smoothed scale (the smallest positive one in ``scales``) to every later scale (log): amplitude-free, so genes
    group by geometry rather than by expression level. The decay from the raw signal to the first smoothed scale
    is left out: there the noise the smoothing removes, so the gene's signal-to-noise ratio, dominates it (on
    held-out seeds 5-8 of the pattern benchmark's simulations it split ramps and switches by strength; without
    it the plane's ARI rose by 0.02-0.06 and the tree's by 0.01-0.05, the swiss roll's and the cycle's moved by
    -0.07 to +0.03). With ``regions``, also the numbers of separate high and low regions at the pattern scale
    (log), as the larger and the smaller of the two, so that a gene and its negative (a rising and a falling
    ramp) count alike.
    """
    cols = [DESCRIPTORS.index(name) for name in SHAPE_DESCRIPTORS]
    feats = desc[:, cols, scale_index]
    positive = [j for j, t in enumerate(scales) if t > 0]
    dec = np.maximum(desc[:, DESCRIPTORS.index("decay"), :], 1e-6)
    decay = (np.log(dec[:, positive[1:]] / dec[:, [positive[0]]]) if len(positive) > 1
             else np.zeros((desc.shape[0], 0)))
    if not regions:
        return np.nan_to_num(np.column_stack([feats, decay]))
    counts = desc[:, [DESCRIPTORS.index("peaks"), DESCRIPTORS.index("troughs")], scale_index]
    floor = 1.0 / len(LEVELS)  # the smallest non-zero mean count
    modality = np.log(np.maximum(np.column_stack([np.max(counts, axis=1), np.min(counts, axis=1)]), floor))
    return np.nan_to_num(np.column_stack([feats, modality, decay]))


#: Fewest genes on either side of a split pattern (:func:`split_patterns`).
MIN_SPLIT = 40


def cluster_patterns(
    features: NDArray, *, n_patterns: int | None = None, max_patterns: int = 10, n_runs: int = 20,
    random_state: int = 0, n_jobs: int = 1,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Cluster genes on their descriptors with Gaussian mixtures: the consensus of ``n_runs`` random starts.

    Features are standardised (median and inter-quartile range, robust to a few extreme genes). Each run fits
    mixtures from one random start and keeps the number of patterns with the lowest BIC (or ``n_patterns``);
    the partition returned is the runs' medoid, the one with the highest mean adjusted Rand index to the others.
    One EM run depends on its start (the chosen number of patterns too), and the fit with the best likelihood
    is not the most typical partition; the medoid is what most starts agree on, so ``random_state`` changes it
    much less. Without ``n_patterns``, each pattern of the medoid is then tested for a split
    (:func:`split_patterns`). Returns ``(labels, typicality)``: cluster labels ordered by decreasing size, and each
    gene's posterior probability of its own cluster under the medoid's mixture (times that of its side, for a
    split pattern; the most typical genes of a pattern have the highest). ``n_jobs`` processes run the starts
    (threads when called off the main thread); the result does not depend on it.
    """
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture

    X = np.asarray(features, dtype=np.float64)
    n = X.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.int64), np.ones(n)
    med = np.median(X, axis=0)
    iqr = np.subtract(*np.percentile(X, [75, 25], axis=0))
    X = (X - med) / np.where(iqr > 1e-9, iqr, 1.0)
    candidates = [min(int(n_patterns), n)] if n_patterns is not None else range(1, min(max_patterns, n - 1) + 1)

    def run(seed: int):
        best, best_bic = None, np.inf
        for k in candidates:
            gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=int(seed)).fit(X)
            bic = gm.bic(X)
            if bic < best_bic:
                best, best_bic = gm, bic
        return best.predict(X), best

    seeds = np.random.default_rng(random_state).integers(0, 2**31 - 1, size=max(int(n_runs), 1))
    runs = _map_starts(run, seeds, n_jobs=n_jobs)
    agreement = np.array([[adjusted_rand_score(a, b) for b, _ in runs] for a, _ in runs])
    labels, best = runs[int(np.argmax(agreement.sum(axis=1)))]
    typicality = best.predict_proba(X)[np.arange(n), labels]
    if n_patterns is None:
        labels, typicality = split_patterns(X, labels, typicality, max_patterns=max_patterns,
                                            random_state=int(seeds[0]))
    sizes = np.bincount(labels)
    order = np.argsort(-sizes, kind="stable")
    relabel = np.empty_like(order)
    relabel[order] = np.arange(order.size)
    return relabel[labels].astype(np.int64), typicality


def _map_starts(run: Callable, seeds: NDArray, *, n_jobs: int) -> list:
    """``[run(seed) for seed in seeds]`` on ``n_jobs`` workers.

    Mixture fits on a few thousand genes spend most of their time in Python, which threads share: worker
    processes (joblib's loky, reused between calls) run them in parallel. joblib runs loky only from the main
    thread; elsewhere threads run them.
    """
    import threading

    workers = min(max(int(n_jobs), 1), len(seeds))
    if workers == 1:
        return [run(seed) for seed in seeds]
    if threading.current_thread() is threading.main_thread():
        from joblib import Parallel, delayed

        return Parallel(n_jobs=workers, backend="loky")(delayed(run)(seed) for seed in seeds)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, seeds))


def split_patterns(
    X: NDArray, labels: NDArray, typicality: NDArray, *, max_patterns: int, random_state: int,
    min_size: int = MIN_SPLIT,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """One pass of split tests: each pattern, largest first, in two where its own genes ask for it.

    A pattern is split when a two-component Gaussian mixture of its genes (full covariance, 20 starts) has a lower
    BIC than one Gaussian and leaves at least ``min_size`` genes on each side; no more than ``max_patterns``
    patterns in all. The global fit weighs a split against every gene's features (its BIC penalty grows with
    the log of all genes), and can leave two shapes in one pattern when that pattern is a small part of the
    whole; tested on its own genes, the same split is kept. ``X`` standardised features, ``labels`` and
    ``typicality`` as from the global fit; a split side's genes get typicality times their posterior of that side.
    """
    from sklearn.mixture import GaussianMixture

    labels = np.asarray(labels).copy()
    typicality = np.asarray(typicality, dtype=np.float64).copy()
    sizes = np.bincount(labels)
    n_out = sizes.size
    for c in np.argsort(-sizes, kind="stable"):
        rows = np.flatnonzero(labels == c)
        if n_out >= max_patterns or rows.size < 2 * min_size:
            continue
        Xc = X[rows]
        one = GaussianMixture(1, covariance_type="full", reg_covar=1e-3).fit(Xc)
        two = GaussianMixture(2, covariance_type="full", reg_covar=1e-3, n_init=20, random_state=random_state)
        two.fit(Xc)
        side = two.predict(Xc)
        if two.bic(Xc) >= one.bic(Xc) or np.bincount(side, minlength=2).min() < min_size:
            continue
        typicality[rows] *= two.predict_proba(Xc)[np.arange(rows.size), side]
        labels[rows[side == 1]] = n_out
        n_out += 1
    return labels, typicality


def gradient_similarity(grads: NDArray, *, block: int = 16384) -> NDArray[np.float64]:
    """``(g, g)`` magnitude-weighted cosine of gradients, averaged over cells.

    ``grads`` ``(N, g, d)`` at one scale, all genes in the same (per-cell) frame:
    ``S_ab = sum_i <a_i, b_i> / sum_i |a_i| |b_i|``, i.e. the cosine at each cell weighted by
    ``|a_i| |b_i|``: 1 for genes rising in the same direction where they both change, -1 for opposite.
    """
    n, g, d = grads.shape
    num = np.zeros((g, g))
    den = np.zeros((g, g))
    for s in range(0, n, block):  # in float64, a block of cells at a time (memory: a block, not N x g x d)
        G = np.asarray(grads[s : s + block], dtype=np.float64)
        for j in range(d):
            num += G[:, :, j].T @ G[:, :, j]
        mag = np.sqrt(np.einsum("ngd,ngd->ng", G, G))
        den += mag.T @ mag
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, 0.0)


def co_directional_modules(S: NDArray, *, threshold: float) -> NDArray[np.int64]:
    """Average-linkage clusters on ``1 - S`` cut where the similarity falls below ``threshold``.

    ``S`` is a gradient-similarity matrix (:func:`gradient_similarity`). Returns a module per gene, numbered by
    decreasing size, and -1 for genes left alone (a singleton is no module).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = S.shape[0]
    if n < 2:
        return np.full(n, -1, dtype=np.int64)
    dist = np.clip(1.0 - np.nan_to_num(S), 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    lab = fcluster(linkage(squareform(dist, checks=False), method="average"), t=1.0 - threshold,
                   criterion="distance") - 1
    sizes = np.bincount(lab)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return np.where(sizes[lab] >= 2, rank[lab], -1).astype(np.int64)
