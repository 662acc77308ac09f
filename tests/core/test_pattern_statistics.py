"""The structure test on a graph, the clustering features and the gradient modules, against hand computations.

The graph is a path of cells (each linked to its two nearest on either side), whose diffusion operator is written
out densely here, so a gene's statistic (the smoothness of its depth residuals) is computed without the package.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from genegrad._core import _descriptors, _patterns, _regions

N = 240


def path_operator(n: int = N) -> np.ndarray:
    """Row-stochastic diffusion on a path: each cell with itself and its neighbours at distance 1 and 2."""
    A = np.zeros((n, n))
    for off in (-2, -1, 0, 1, 2):
        A += np.eye(n, k=off)
    return A / A.sum(axis=1, keepdims=True)


def residuals(x: np.ndarray, strata: np.ndarray | None) -> np.ndarray:
    """Hand-written depth residuals: centred and scaled within each stratum (constant: 0)."""
    strata = np.zeros(x.size, int) if strata is None else strata
    out = np.zeros(x.size)
    for s in np.unique(strata):
        v = x[strata == s]
        out[strata == s] = 0.0 if v.std() == 0 else (v - v.mean()) / v.std()
    return out


def log_smoothness(P: np.ndarray, r: np.ndarray, t: int) -> float:
    return float(np.log((np.linalg.matrix_power(P, t) @ r).var() / r.var()))


@pytest.fixture
def genes():
    rng = np.random.default_rng(0)
    s = np.linspace(0, 1, N)
    strata = (np.arange(N) * 7) % 3  # depth strata spread along the path
    F = np.column_stack([
        np.sin(2 * np.pi * s),  # one wave: smooth
        s + 0.3 * rng.standard_normal(N),  # a noisy ramp
        np.cos(6 * np.pi * s) + 0.5 * rng.standard_normal(N),  # a faster wave, noisier
        *rng.standard_normal((N, 60)).T,  # noise: the null's pool
    ]).astype(np.float32)
    return F, strata


@pytest.mark.parametrize("with_strata", [False, True])
def test_graph_structure_test_statistic_is_the_smoothness_of_depth_residuals(genes, with_strata):
    """With one usable scale the score is (log smoothness - null mean) / null SD, so differences of scores
    between genes are in a fixed ratio that does not depend on the random null: checked against a dense
    computation. t = 0 (smoothness 1 for every signal) is not usable and must be dropped."""
    F, strata = genes
    strata = strata if with_strata else None
    P = path_operator()
    cols = np.array([2, 0, 1])  # out of order: the results follow cols
    score, pval = _patterns.graph_structure_test(F, cols, sparse.csr_matrix(P), strata=strata, scales=(0, 3),
                                                 n_null=200, rng=np.random.default_rng(1), chunk_size=2)
    stat = [log_smoothness(P, residuals(F[:, c].astype(np.float64), strata), 3) for c in cols]
    expected = (stat[1] - stat[2]) / (stat[1] - stat[0])
    assert (score[1] - score[2]) / (score[1] - score[0]) == pytest.approx(expected, rel=1e-3)
    # all three carry structure the permuted residuals lack: the smallest p-value possible for the two waves
    assert np.all(score > 3)
    assert pval[1] == pytest.approx(1 / 201)
    assert pval[0] == pytest.approx(1 / 201)


def test_graph_structure_test_noise_genes_get_spread_p_values_and_sparse_input_agrees(genes):
    F, strata = genes
    P = sparse.csr_matrix(path_operator())
    cols = np.arange(3, 63)
    kw = {"strata": strata, "scales": (1, 2, 4), "n_null": 300, "chunk_size": 16}
    score, pval = _patterns.graph_structure_test(F, cols, P, rng=np.random.default_rng(2), **kw)
    # exchangeable with the null: p-values spread over (0, 1], mean 1/2 (SE ~ 0.04 for 60 genes; 3 SE)
    assert abs(pval.mean() - 0.5) < 0.12
    assert (pval < 0.05).mean() < 0.15
    again, p2 = _patterns.graph_structure_test(sparse.csc_matrix(F), cols, P, rng=np.random.default_rng(2), **kw)
    np.testing.assert_allclose(again, score, rtol=1e-6)
    np.testing.assert_array_equal(p2, pval)


def test_graph_structure_test_does_not_count_structure_that_only_follows_depth():
    """A gene whose values are its cell's depth stratum, and nothing else, has no residual left within strata:
    it is not structured with the strata (score -inf, p = 1), and it is without them, where the strata lie in blocks along the path."""
    rng = np.random.default_rng(3)
    strata = np.repeat(np.arange(4), N // 4)
    F = np.column_stack([strata * 1.0, *rng.standard_normal((N, 40)).T]).astype(np.float32)
    P = sparse.csr_matrix(path_operator())
    kw = {"scales": (1, 4), "n_null": 100, "rng": np.random.default_rng(0)}
    s_with, p_with = _patterns.graph_structure_test(F, np.array([0]), P, strata=strata, **kw)
    kw["rng"] = np.random.default_rng(0)
    s_without, p_without = _patterns.graph_structure_test(F, np.array([0]), P, strata=None, **kw)
    assert s_with[0] == -np.inf  # residuals all 0: smoothness 0, its log undefined
    assert p_with[0] == pytest.approx(1.0)
    assert p_without[0] == pytest.approx(1 / 101)
    assert s_without[0] > 5


def test_shape_features_hand_example():
    """The shape descriptors at the pattern scale, the log decay from the first smoothed scale to the later ones,
    and with ``regions`` the log of the larger and the smaller region count, floored at 1/len(LEVELS)."""
    D = _descriptors.DESCRIPTORS
    scales = (0, 2, 8)
    desc = np.full((2, len(D), 3), np.nan)
    for j, name in enumerate(_patterns.SHAPE_DESCRIPTORS):
        desc[:, D.index(name), :] = [[0.1 * (j + 1), 0.2 * (j + 1), 0.3 * (j + 1)],
                                     [-0.1 * (j + 1), -0.2 * (j + 1), np.nan]]
    desc[:, D.index("decay"), :] = [[1.0, 0.5, 0.125], [1.0, 0.8, 0.0]]
    desc[:, D.index("peaks"), :] = [[1.0, 2.0, 1.0], [1.0, 0.0, 3.0]]
    desc[:, D.index("troughs"), :] = [[1.0, 1.0, 4.0], [1.0, 1.0, 1.0]]
    f = _patterns.shape_features(desc, 2, scales=scales)
    # coherence, axiality, localisation, peakedness at t = 8 (NaN -> 0), then log(decay_8 / decay_2)
    np.testing.assert_allclose(f[0], [0.3, 0.6, 0.9, 1.2, np.log(0.125 / 0.5)])
    np.testing.assert_allclose(f[1], [0, 0, 0, 0, np.log(1e-6 / 0.8)])
    g = _patterns.shape_features(desc, 1, scales=scales, regions=True)
    floor = 1 / len(_regions.LEVELS)
    np.testing.assert_allclose(g[0], [0.2, 0.4, 0.6, 0.8, np.log(2.0), np.log(1.0), np.log(0.125 / 0.5)])
    np.testing.assert_allclose(g[1], [-0.2, -0.4, -0.6, -0.8, np.log(1.0), np.log(floor), np.log(1e-6 / 0.8)])
    # one smoothed scale only: no decay columns
    assert _patterns.shape_features(desc[:, :, :2], 1, scales=(0, 2)).shape == (2, 4)


def test_co_directional_modules_hand_example():
    """Two blocks of co-directional genes (similarity 0.9 within, 0.1 or NaN across) and a gene alike to none:
    modules numbered by decreasing size, the lone gene -1; a threshold above 0.9 leaves every gene alone."""
    S = np.full((6, 6), 0.1)
    S[np.ix_([1, 3], [1, 3])] = 0.9
    S[np.ix_([0, 2, 4], [0, 2, 4])] = 0.9
    S[5, :] = S[:, 5] = np.nan
    np.fill_diagonal(S, 1.0)
    mods = _patterns.co_directional_modules(S, threshold=0.5)
    np.testing.assert_array_equal(mods, [0, 1, 0, 1, 0, -1])
    np.testing.assert_array_equal(_patterns.co_directional_modules(S, threshold=0.95), -1)
    # average linkage: a gene at 0.9 to one member and 0.1 to the other (mean 0.5) joins only below 0.5
    T = np.array([[1.0, 0.95, 0.9], [0.95, 1.0, 0.1], [0.9, 0.1, 1.0]])
    np.testing.assert_array_equal(_patterns.co_directional_modules(T, threshold=0.45), [0, 0, 0])
    np.testing.assert_array_equal(_patterns.co_directional_modules(T, threshold=0.6), [0, 0, -1])
    assert _patterns.co_directional_modules(np.ones((1, 1)), threshold=0.5).tolist() == [-1]


def test_graph_structure_test_null_permutes_cells_and_reports_progress():
    """The null permutes each random gene over cells: with one smooth gene as the whole pool, its own permutations
    are noise and it scores the smallest p-value (a permutation across genes would leave it smooth); the
    progress callback receives every chunk's number of genes."""
    s = np.linspace(0, 1, N)
    F = np.column_stack([np.sin(2 * np.pi * s)] * 3).astype(np.float32)
    seen = []
    score, pval = _patterns.graph_structure_test(F, np.array([0, 1, 2]), sparse.csr_matrix(path_operator()),
                                                 strata=None, scales=(2,), n_null=50, rng=np.random.default_rng(0),
                                                 chunk_size=1, on_chunk=seen.append)
    np.testing.assert_allclose(pval, 1 / 51)
    assert sorted(seen) == [1, 1, 1]


def test_structured_test_scales_that_say_nothing_and_missing_values():
    """A scale where the null hardly varies relative to its size (1e-9 of a large mean) is dropped; a NaN
    statistic at one scale leaves the gene's score to the other scales, in the gene and in the null; with no
    usable scale the error says so."""
    rng = np.random.default_rng(0)
    null = np.column_stack([1e6 + 1e-5 * rng.standard_normal(300), 1.5e-9 * rng.standard_normal(300) + 0.5,
                            rng.standard_normal(300)])
    null[:5, 2] = np.nan
    stat = np.array([[1e6 + 1.0, 0.5, 0.0], [1e6, np.nan, np.nan], [1e6, np.nan, 2.0]])
    score, p = _patterns.structured_test(stat, null)
    # the first scale is swamped by its mean (unusable); the second is usable, its SD 1.5e-9 just above the floor
    # of 1e-9 x max(|mean|, 1); NaN counts as -inf
    z = (stat[:, 1:] - np.nanmean(null[:, 1:], axis=0)) / np.nanstd(null[:, 1:], axis=0)
    assert score[0] == pytest.approx(max(z[0]))
    assert score[1] == -np.inf
    assert p[1] == pytest.approx(1.0)
    assert score[2] == pytest.approx(z[2, 1])
    zn = (null[:, 1:] - np.nanmean(null[:, 1:], axis=0)) / np.nanstd(null[:, 1:], axis=0)
    null_scores = np.nanmax(np.where(np.isnan(zn), -np.inf, zn), axis=1)
    assert p[2] == pytest.approx((1 + (null_scores >= score[2]).sum()) / 301)
    assert p[0] == pytest.approx((1 + (null_scores >= score[0]).sum()) / 301)
    with pytest.raises(ValueError, match="The structure statistic does not vary over the null genes"):
        _patterns.structured_test(stat[:, :1], np.full((10, 1), 3.0))


def test_shape_features_decay_starts_at_the_first_smoothed_scale():
    D = _descriptors.DESCRIPTORS
    desc = np.zeros((1, len(D), 4))
    desc[0, D.index("decay")] = [1.0, 0.5, 0.25, 0.2]
    f = _patterns.shape_features(desc, 3, scales=(0, 1, 2, 4))
    np.testing.assert_allclose(f[0, 4:], [np.log(0.25 / 0.5), np.log(0.2 / 0.5)])


def test_split_patterns_largest_first_within_the_budget_and_new_labels_in_turn():
    """Two patterns that each hold two groups: both split with room (labels 0..3, all distinct); with room for one
    more pattern only the larger splits, even when it is listed second; a pattern of exactly 2 x min_size genes
    with min_size on each side splits; a single Gaussian pattern ahead of a splittable one does not stop it."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(100, 3)) + 8.0 * np.eye(3)[np.repeat([0, 1], 50)]
    b = rng.normal(size=(150, 3)) - 30.0 + 8.0 * np.eye(3)[np.repeat([0, 2], 75)]
    X = np.vstack([a, b])
    labels = np.repeat([0, 1], [100, 150])
    typ = np.ones(250)
    out, _ = _patterns.split_patterns(X, labels, typ, max_patterns=10, random_state=0, min_size=40)
    assert sorted(np.unique(out)) == [0, 1, 2, 3]
    assert sorted(np.bincount(out)) == [50, 50, 75, 75]  # each split along its two groups
    one, _ = _patterns.split_patterns(X, labels, typ, max_patterns=3, random_state=0, min_size=40)
    assert np.array_equal(one[:100], labels[:100])  # the smaller pattern is not split
    assert len(np.unique(one[100:])) == 2
    edge = rng.normal(size=(80, 3)) + 8.0 * np.eye(3)[np.repeat([0, 1], 40)]
    out, _ = _patterns.split_patterns(edge, np.zeros(80, int), np.ones(80), max_patterns=10, random_state=0,
                                      min_size=40)
    assert np.bincount(out).tolist() == [40, 40]
    single = rng.normal(size=(200, 3)) + 50.0
    X2 = np.vstack([single, a])
    out, _ = _patterns.split_patterns(X2, np.repeat([0, 1], [200, 100]), np.ones(300), max_patterns=10,
                                      random_state=0, min_size=40)
    assert (out[:200] == 0).all()
    assert len(np.unique(out[200:])) == 2


def test_cluster_patterns_standardises_each_feature_and_honours_the_number_asked():
    """Three groups on two features of size 1e-4 (and a constant feature): found once each feature is scaled by
    its inter-quartile range (the mixtures' covariance floor of 1e-3 would hide them otherwise). A given number of
    patterns is kept exactly (no split); max_patterns bounds the choice; one Gaussian blob is one pattern; 0, 1
    and 3 genes work."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), [90, 70, 60])
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.9]])
    X = np.column_stack([1e-4 * (corners[truth] + 0.05 * rng.normal(size=(truth.size, 2))) + 3.0,
                         np.full(truth.size, 7.0)])
    labels, _ = _patterns.cluster_patterns(X, n_patterns=3, random_state=0, n_runs=3)
    assert adjusted_rand_score(truth, labels) > 0.99
    assert labels.dtype == np.int64
    two, _ = _patterns.cluster_patterns(X, n_patterns=2, random_state=0, n_runs=3)
    assert len(np.unique(two)) == 2
    # four groups too small to be split (30 genes < 2 x MIN_SPLIT): max_patterns decides how many are found
    four = np.repeat(np.arange(4), 30)
    Y = rng.normal(size=(120, 2)) + 20.0 * np.array([[0, 0], [1, 0], [0, 1], [1, 1]])[four]
    found, _ = _patterns.cluster_patterns(Y, max_patterns=4, random_state=0, n_runs=3)
    assert adjusted_rand_score(four, found) > 0.99
    capped, _ = _patterns.cluster_patterns(Y, max_patterns=3, random_state=0, n_runs=3)
    assert len(np.unique(capped)) <= 3
    blob, _ = _patterns.cluster_patterns(rng.normal(size=(200, 3)), max_patterns=3, random_state=0, n_runs=3)
    assert (blob == 0).all()
    for n in (0, 1):
        lab, typ = _patterns.cluster_patterns(np.ones((n, 3)))
        assert lab.shape == typ.shape == (n,)
        assert lab.dtype == np.int64
    lab, _ = _patterns.cluster_patterns(rng.normal(size=(3, 2)), random_state=0, n_runs=2)
    assert lab.shape == (3,)


def test_cluster_patterns_is_deterministic_where_starts_disagree():
    """On structureless features the mixture fits depend on their starts: the same random_state gives the same
    partition and typicality (every start is seeded)."""
    X = np.random.default_rng(1).normal(size=(150, 4))
    a = _patterns.cluster_patterns(X, n_patterns=4, random_state=3, n_runs=3)
    b = _patterns.cluster_patterns(X, n_patterns=4, random_state=3, n_runs=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    free = [_patterns.cluster_patterns(X, max_patterns=4, random_state=3, n_runs=3)[0] for _ in range(2)]
    np.testing.assert_array_equal(free[0], free[1])


def test_gradient_similarity_in_blocks_and_for_flat_or_faint_genes():
    """Blocks of cells give the full sums; a gene with no gradient anywhere has similarity 0; genes with tiny
    gradients (products far below 1) keep their cosine."""
    rng = np.random.default_rng(0)
    G = rng.normal(size=(20, 4, 2))
    G[:, 1] = 1e-3 * G[:, 0]  # faint, co-directional with gene 0
    G[:, 2] = 0.0
    full = _patterns.gradient_similarity(G)
    np.testing.assert_allclose(_patterns.gradient_similarity(G, block=7), full, rtol=1e-12)
    np.testing.assert_allclose(full[0, 1], 1.0)
    np.testing.assert_array_equal(full[2], 0.0)
    # genes 0 and 3 by hand: sum_i <a_i, b_i> / sum_i |a_i| |b_i|
    a, b = G[:, 0], G[:, 3]
    expected = (a * b).sum() / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).sum()
    assert full[0, 3] == pytest.approx(expected, rel=1e-12)
    assert abs(expected) < 0.9  # not a trivial +-1


def test_co_directional_modules_two_genes_and_round_off_above_one():
    np.testing.assert_array_equal(_patterns.co_directional_modules(np.array([[1.0, 0.8], [0.8, 1.0]]),
                                                                   threshold=0.5), [0, 0])
    S = np.array([[1.0, 1.0 + 1e-9, 0.2], [1.0 + 1e-9, 1.0, 0.2], [0.2, 0.2, 1.0]])
    np.testing.assert_array_equal(_patterns.co_directional_modules(S, threshold=0.5), [0, 0, -1])


def test_column_variance_and_depth_residuals_against_float64_numpy():
    # the one-pass variance loses about (mean / SD)^2 float64 ulps: a column with mean 1,000 and SD 0.1 (a ratio of
    # 1e4, far above any centred signal's) is still within 1e-6 of numpy's two-pass variance
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(0, 1, 5000), rng.normal(1000, 0.1, 5000), np.full(5000, 3.0),
                         rng.exponential(2.0, 5000)]).astype(np.float32)
    want = X.astype(np.float64).var(axis=0)
    got = _descriptors.column_variance(X)
    np.testing.assert_allclose(got[[0, 3]], want[[0, 3]], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    np.testing.assert_array_equal(got[2], 0.0)  # a constant column: exactly zero, never negative
    strata = rng.integers(0, 4, 5000)
    R = _patterns.depth_residuals(X, strata)
    for s in range(4):
        rows = strata == s
        x = X[rows].astype(np.float64)
        sd = x.std(axis=0)
        want = (x - x.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
        np.testing.assert_allclose(R[rows][:, [0, 3]], want[:, [0, 3]], rtol=1e-5, atol=1e-5)
        assert (R[rows][:, 2] == 0).all()  # constant within the stratum: zeros
