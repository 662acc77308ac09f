"""Descriptors of gradient fields and the pattern statistics, on signals whose geometry is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import flat_plane

from genegrad import GradientModel
from genegrad._core import _descriptors, _patterns

D = _descriptors.DESCRIPTORS


@pytest.fixture(scope="module")
def plane():
    Z, Y, _ = flat_plane(n=1500, seed=2)
    model = GradientModel(n_neighbors=25, n_dims=2, scales=(0, 1, 2)).fit(Y)
    x, y = Z[:, 0], Z[:, 1]
    F = np.column_stack([
        2 * x + y,  # ramp
        np.exp(-(x**2 + y**2) / (2 * 0.3**2)),  # bump (peak) at the centre
        -np.exp(-(x**2 + y**2) / (2 * 0.3**2)),  # trough
        np.cos(3 * np.pi * x),  # periodic along x
        x * y,  # saddle
    ]).astype(np.float32)
    chunk = model.gradients_chunk(F, with_signals=True)
    length = float(np.sqrt(((Y - Y.mean(0)) ** 2).sum(1).mean()))
    to_intr = _descriptors.synchronized_frames(model)
    desc = _descriptors.chunk_descriptors(model, chunk, length_scale=length, sd=F.std(0), to_intrinsic=to_intr)
    return model, F, desc, Z


def test_synchronized_frames_are_parallel_on_a_plane():
    # frames of a flat plane come with arbitrary signs and rotations per cell; after synchronisation the global
    # frame vectors U_i R_i^T must be the same ambient vectors at every cell (up to estimation error)
    Z, Y, _ = flat_plane(n=1500, seed=4)
    model = GradientModel(n_neighbors=20, n_dims=2, scales=(0,)).fit(Y)
    R = _descriptors.synchronized_frames(model)
    glob = np.einsum("npd,nmd->npm", model.frames_, R)  # ambient coordinates of the global vectors
    spread = np.linalg.norm(glob - glob.mean(axis=0), axis=(1, 2))
    assert np.median(spread) < 0.05


def test_synchronized_frames_on_a_long_strip():
    # a 20 x 1 strip (where diffusion coordinates would all be harmonics of the long axis): a linear function of
    # the short axis still has coherent directions in the synchronised frame
    rng = np.random.default_rng(1)
    Z = rng.uniform([-10, -0.5], [10, 0.5], (3000, 2))
    model = GradientModel(n_neighbors=20, n_dims=2, scales=(0,)).fit(Z)
    R = _descriptors.synchronized_frames(model)
    chunk = model.gradients_chunk(Z[:, 1:].astype(np.float32), with_signals=True)
    desc = _descriptors.chunk_descriptors(model, chunk, length_scale=1.0, sd=Z[:, 1:].std(0), to_intrinsic=R)
    assert desc[0, D.index("coherence"), 0] > 0.95


def test_alignment_counts_the_first_two_ambient_coordinates_on_a_curve():
    """On a one-dimensional manifold (a line along (1, 1, 1) in 3-D) a gene rising along the line has its whole
    gradient along (1, 1, 1) / sqrt(3): its share on the first two representation coordinates is sqrt(2/3),
    whatever the manifold's intrinsic dimension (one coordinate would give 1/sqrt(3))."""
    rng = np.random.default_rng(2)
    s = np.sort(rng.uniform(-3, 3, 800))
    Y = np.outer(s, np.ones(3)) / np.sqrt(3) + 1e-3 * rng.normal(size=(800, 3))
    model = GradientModel(n_neighbors=15, n_dims=1, scales=(0, 2)).fit(Y)
    F = s[:, None].astype(np.float32)
    chunk = model.gradients_chunk(F, with_signals=True)
    desc = _descriptors.chunk_descriptors(model, chunk, length_scale=1.0, sd=F.std(0),
                                          to_intrinsic=_descriptors.synchronized_frames(model))
    np.testing.assert_allclose(desc[0, D.index("alignment")], np.sqrt(2 / 3), rtol=1e-3)


def test_gini_extremes():
    # all equal -> 0; all mass in one of N entries -> 1 - 1/N (definition of the Gini coefficient)
    assert _descriptors.gini(np.ones((50, 1)))[0] == pytest.approx(0.0, abs=1e-12)
    x = np.zeros((50, 1))
    x[7] = 3.0
    assert _descriptors.gini(x)[0] == pytest.approx(1 - 1 / 50)


def test_ramp_is_coherent_axial_and_spread(plane):
    _, _, desc, _ = plane
    ramp = desc[0, :, 0]
    # a linear function on a flat plane has one constant gradient: both ratios are 1 up to the fit's error
    assert ramp[D.index("coherence")] > 0.99
    assert ramp[D.index("axiality")] > 0.99
    assert ramp[D.index("localisation")] < 0.1  # same length everywhere (edge cells fit a little worse)
    assert abs(ramp[D.index("peakedness")]) < 0.3  # harmonic: the Laplacian is only boundary error


def test_bump_and_trough_have_opposite_peakedness(plane):
    _, _, desc, _ = plane
    j = D.index("peakedness")
    assert desc[1, j, 1] > 0.5
    assert desc[2, j, 1] < -0.5
    # a radial field points every way: its mean direction nearly cancels
    assert desc[1, D.index("coherence"), 1] < 0.3
    assert desc[1, D.index("axiality"), 1] < 0.7


def test_periodic_gradients_are_axial_not_coherent(plane):
    _, _, desc, _ = plane
    assert desc[3, D.index("axiality"), 1] > 0.95  # every gradient along +-x
    assert desc[3, D.index("coherence"), 1] < 0.3  # signs alternate over 1.5 periods


def test_saddle_has_no_peak(plane):
    _, _, desc, _ = plane
    assert abs(desc[4, D.index("peakedness"), 1]) < 0.35  # x*y is harmonic
    assert desc[4, D.index("coherence"), 1] < 0.3


def test_smoothness_of_smooth_signals_and_noise(plane):
    model, F, desc, Z = plane
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((F.shape[0], 1)).astype(np.float32)
    chunk = model.gradients_chunk(noise, with_signals=True)
    dn = _descriptors.chunk_descriptors(model, chunk, length_scale=1.0, sd=noise.std(0),
                                       to_intrinsic=_descriptors.synchronized_frames(model))
    j = D.index("smoothness")
    # diffusion barely shrinks a smooth signal, and shrinks white noise by about the neighbourhood size
    assert desc[0, j, 2] > 0.9
    assert dn[0, j, 2] < 0.1
    assert desc[0, j, 0] == pytest.approx(1.0, rel=1e-5)  # t = 0: the signal itself


def test_gradient_similarity_signs(plane):
    model, F, _, _ = plane
    G = model.gradients(np.column_stack([F[:, 0], 3 * F[:, 0], -F[:, 0]]), with_se=False).gradients[..., 0]
    S = _patterns.gradient_similarity(G)
    np.testing.assert_allclose(S, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-5)


def test_structured_test_uniform_under_null_and_small_for_outliers():
    rng = np.random.default_rng(0)
    null = rng.standard_normal((400, 3))
    same = rng.standard_normal((2000, 3))
    _, p = _patterns.structured_test(same, null)
    # exchangeable with the null: p is uniform on {1/401, ..., 1}, mean 1/2
    # p-values share one null sample: SE of their mean ~ sqrt(1/12/400 + 1/12/2000) = 0.016; 3 SE
    assert abs(p.mean() - 0.5) < 0.05
    score, p_out = _patterns.structured_test(np.full((1, 3), 10.0), null)
    assert p_out[0] == pytest.approx(1 / 401)
    assert score[0] > 5


def test_bh_qvalues_hand_example():
    # p sorted: .01 .02 .03 .5 -> p * m / rank = .04 .04 .04 .5, then the running minimum from the top
    q = _patterns.bh_qvalues(np.array([0.03, 0.5, 0.01, 0.02]))
    np.testing.assert_allclose(q, [0.04, 0.5, 0.04, 0.04])


def test_depth_residuals_standardise_each_stratum():
    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1, 2], 50)
    # a depth effect on the mean and the spread of every stratum, plus one constant column
    X = np.column_stack([rng.standard_normal(150) * (1 + strata) + 5 * strata, np.full(150, 2.0)])
    R = _patterns.depth_residuals(X, strata)
    for s in range(3):
        np.testing.assert_allclose(R[strata == s, 0].mean(), 0, atol=1e-6)
        np.testing.assert_allclose(R[strata == s, 0].std(), 1, atol=1e-6)
    np.testing.assert_array_equal(R[:, 1], 0)
    # order within a stratum is kept: the residual is an increasing function of the value there
    rows = strata == 1
    assert (np.argsort(R[rows, 0]) == np.argsort(X[rows, 0])).all()


def test_cluster_patterns_recovers_separated_groups_and_its_number():
    """Three Gaussian groups 10 standard deviations apart in 4-D: every start finds them (ARI 1), BIC picks 3,
    labels are numbered by decreasing size, and threads do not change the result."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    sizes = (120, 80, 50)
    truth = np.repeat(np.arange(3), sizes)
    X = rng.normal(size=(truth.size, 4)) + 10.0 * np.eye(3, 4)[truth]
    labels, typicality = _patterns.cluster_patterns(X, random_state=1, n_runs=6)
    assert adjusted_rand_score(truth, labels) > 1 - 1e-12
    assert np.array_equal(np.bincount(labels), sizes)
    assert typicality.min() > 0.99
    again, _ = _patterns.cluster_patterns(X, random_state=1, n_runs=6, n_jobs=2)
    assert np.array_equal(labels, again)


def test_the_mixture_starts_run_alike_in_processes_threads_or_one_worker():
    """Without clear groups the starts disagree and the medoid depends on every start's result: it is the same
    whether the starts run in one worker, in worker processes (from the main thread) or in threads (elsewhere)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    X = np.random.default_rng(5).normal(size=(300, 3))
    kwargs = {"n_patterns": 4, "random_state": 2, "n_runs": 6}  # four patterns in one Gaussian: starts differ
    one = _patterns.cluster_patterns(X, **kwargs, n_jobs=1)
    procs = _patterns.cluster_patterns(X, **kwargs, n_jobs=2)
    with ThreadPoolExecutor(1) as pool:
        threads = pool.submit(_patterns.cluster_patterns, X, **kwargs, n_jobs=2).result()
        pids = pool.submit(_patterns._map_starts, lambda seed: os.getpid(), np.arange(4), n_jobs=2).result()
    assert len(set(one[0])) == 4
    for labels, typicality in (procs, threads):
        np.testing.assert_array_equal(labels, one[0])
        np.testing.assert_array_equal(typicality, one[1])
    assert set(pids) == {os.getpid()}  # off the main thread: threads of this process
    assert os.getpid() not in _patterns._map_starts(lambda seed: os.getpid(), np.arange(4), n_jobs=2)
    assert _patterns._map_starts(lambda seed: os.getpid(), np.arange(4), n_jobs=1) == [os.getpid()] * 4


def test_split_patterns_splits_two_shapes_kept_together_and_only_them():
    """A pattern holding two groups 8 SDs apart is split along them; one Gaussian group is not; a side smaller
    than ``min_size`` and a full budget of patterns stop a split."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(3)
    two = np.repeat([0, 1], 60)
    X = np.vstack([rng.normal(size=(120, 3)) + 8.0 * np.eye(3)[two], rng.normal(size=(100, 3)) - 20.0])
    labels = np.repeat([0, 1], [120, 100])  # the global fit kept the two groups in pattern 0
    typ = np.full(220, 0.9)
    out, out_typ = _patterns.split_patterns(X, labels, typ, max_patterns=10, random_state=0)
    assert len(np.unique(out)) == 3
    assert adjusted_rand_score(two, out[:120]) > 1 - 1e-12  # split along the two groups
    assert np.array_equal(out[120:], labels[120:])  # the single Gaussian group stays whole
    assert (out_typ[:120] > 0.85).all()
    assert (out_typ[:120] <= 0.9).all()
    np.testing.assert_array_equal(out_typ[120:], 0.9)
    # a side below min_size, or no room for another pattern: no split
    small = np.repeat([0, 1], [30, 90])
    Xs = rng.normal(size=(120, 3)) + 8.0 * np.eye(3)[small]
    kept, _ = _patterns.split_patterns(Xs, np.zeros(120, int), np.ones(120), max_patterns=10, random_state=0)
    assert (kept == 0).all()
    full, _ = _patterns.split_patterns(X, labels, typ, max_patterns=2, random_state=0)
    assert np.array_equal(full, labels)


def test_gini_closed_forms():
    # columns: all equal -> 0; all in one of 4 -> 1 - 1/4; 1, 2, 3, 4 -> 2 (1 + 4 + 9 + 16) / (4 x 10) - 5/4 = 0.25;
    # the same shape at a total below 1 -> 0.25 again; no mass -> undefined
    x = np.array([[1.0, 0.0, 4.0, 0.1, 0.0],
                  [1.0, 0.0, 2.0, 0.1, 0.0],
                  [1.0, 1.0, 3.0, 0.3, 0.0],
                  [1.0, 0.0, 1.0, 0.1, 0.0]])
    g = _descriptors.gini(x)
    np.testing.assert_allclose(g[:4], [0.0, 0.75, 0.25, 0.25], atol=1e-12)
    assert np.isnan(g[4])
    assert g.dtype == np.float64
    # integer input is not truncated: 2 (1 x 1 + 2 x 3) / (2 x 4) - 3/2 = 0.25
    np.testing.assert_allclose(_descriptors.gini(np.array([[3], [1]])), [0.25])


def test_smoothness_closed_form():
    # a 3-cell path, P = [[1/2, 1/2, 0], [1/4, 1/2, 1/4], [0, 1/2, 1/2]]: x = (1, 0, -1) has variance 2/3, P x =
    # (1/2, 0, -1/2) 1/6, P^2 x = (1/4, 0, -1/4) 1/24: ratios 1, 1/4, 1/16; the same signal scaled by 1e-3 too
    from scipy import sparse

    P = sparse.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]]))
    x = np.array([1.0, 0.0, -1.0])
    X = np.c_[x, 1e-3 * x, 2.0 + x]
    np.testing.assert_allclose(_descriptors.smoothness(P, X, [0, 1, 2]), [[1, 0.25, 1 / 16]] * 3, rtol=1e-5)
    np.testing.assert_allclose(_descriptors.smoothness(P, X, [2]), [[1 / 16]] * 3, rtol=1e-5)
    np.testing.assert_allclose(_descriptors.smoothness(P, X, [1, 2]), [[0.25, 1 / 16]] * 3, rtol=1e-5)


def test_sample_of_cells_is_all_or_a_fixed_subset():
    np.testing.assert_array_equal(_descriptors.sample_cells(10, 20), np.arange(10))
    s = _descriptors.sample_cells(1000, 500)
    assert s.size == 500
    assert np.unique(s).size == 500  # without replacement
    assert (np.diff(s) > 0).all()  # sorted
    assert s[0] >= 0
    assert s[-1] < 1000
    np.testing.assert_array_equal(_descriptors.sample_cells(1000, 500), s)  # the same cells every call


def _path_walk(n: int):
    """The lazy random walk on a path of ``n`` cells: 1/2 stay, 1/4 to each neighbour (1/2 to the one at an end)."""
    from scipy import sparse

    P = np.zeros((n, n))
    for i in range(n):
        P[i, i] = 0.5
        if 0 < i < n - 1:
            P[i, i - 1] = P[i, i + 1] = 0.25
    P[0, 1] = P[n - 1, n - 2] = 0.5
    return sparse.csr_matrix(P)


def test_peakedness_closed_forms():
    # 10 cells, top and bottom decile one cell each. A bump (peak 9 at cell 5, lowest 0 at cell 0): L s = -2.5 at
    # the peak, +0.5 at cell 0 -> -(-2.5 + 0.5) / (2.5 + 0.5) = 2/3; the trough (-s) -> -2/3; a ramp -> 0 (the two
    # ends cancel); a constant -> undefined
    from types import SimpleNamespace

    model = SimpleNamespace(diffusion_=_path_walk(10))
    bump = np.array([0.0, 1, 2, 3, 4, 9, 4, 3, 2, 1])
    s = np.stack([bump, -bump, np.arange(10.0), np.full(10, 2.0)], axis=1)[:, :, None]  # (cells, signals, scales)
    out = _descriptors.peakedness(model, s)
    np.testing.assert_allclose(out[:3, 0], [2 / 3, -2 / 3, 0.0], atol=1e-12)
    assert np.isnan(out[3, 0])
    assert out.shape == (4, 1)
    # on a sample of the cells (cell 3 left out): the deciles are the sample's, the Laplacian still the graph's
    sample = np.array([0, 1, 2, 4, 5, 6, 7, 8, 9])
    np.testing.assert_allclose(_descriptors.peakedness(model, s, cells=sample)[:3, 0], [2 / 3, -2 / 3, 0.0],
                               atol=1e-12)


def test_peakedness_matches_its_formula_on_random_signals():
    # the documented formula written out directly (dense Laplacian, full sort): 60 cells, deciles of 6 cells
    from types import SimpleNamespace

    n = 60
    P = _path_walk(n)
    rng = np.random.default_rng(3)
    s = rng.standard_normal((n, 4, 2)).cumsum(axis=0)
    got = _descriptors.peakedness(SimpleNamespace(diffusion_=P), s)
    lap = np.einsum("ij,jgt->igt", P.toarray(), s) - s
    m = 6
    for g in range(4):
        for t in range(2):
            order = np.argsort(s[:, g, t])
            top, bottom = lap[order[-m:], g, t], lap[order[:m], g, t]
            want = -(top.mean() + bottom.mean()) / (np.abs(top).mean() + np.abs(bottom).mean())
            assert got[g, t] == pytest.approx(want, abs=1e-12)


def test_chunk_descriptors_are_their_definitions_in_any_blocking():
    # each descriptor written out from its definition (MEANINGS) on one small chunk, all cells at once; then the
    # same chunk in blocks of 64 cells (the sums accumulate over blocks) gives the same numbers
    Z, Y, _ = flat_plane(n=300, seed=5)
    model = GradientModel(n_neighbors=15, n_dims=2, scales=(0, 1, 2)).fit(Y)
    x, y = Z[:, 0], Z[:, 1]
    F = np.column_stack([2 * x + y, np.exp(-(x**2 + y**2) / 0.18), np.cos(3 * np.pi * x), x * y]).astype(np.float32)
    F += 0.05 * np.random.default_rng(0).standard_normal(F.shape).astype(np.float32)
    # and a ramp too small for any guard of 1 to hide, a plateau (cells tied with all their neighbours are no
    # strict extrema), and a gene with no expression (no geometry)
    F = np.c_[F, 1e-4 * (2 * x + y), np.maximum(x, 0), np.zeros_like(x)].astype(np.float32)
    chunk = model.gradients_chunk(F, with_signals=True)
    length = float(np.sqrt(((Y - Y.mean(0)) ** 2).sum(1).mean()))
    R = _descriptors.synchronized_frames(model)
    sd = F.std(0)
    args = {"length_scale": length, "sd": sd, "to_intrinsic": R}
    whole = _descriptors.chunk_descriptors(model, chunk, **args)
    blocked = _descriptors.chunk_descriptors(model, chunk, block_bytes=1, **args)  # 64-cell blocks
    np.testing.assert_allclose(blocked, whole, rtol=1e-10, atol=1e-12)

    flat = whole[-1]
    assert (flat[0] == 0).all()  # magnitude 0, everything else undefined
    assert np.isnan(flat[1:]).all()
    whole, blocked = whole[:-1], blocked[:-1]
    b = chunk.gradients[:, :-1].astype(np.float64)  # (N, g, d, T)
    s = chunk.signals[:, :-1].astype(np.float64)  # (N, g, T)
    sd = sd[:-1]
    mag = np.linalg.norm(b, axis=2)  # (N, g, T)
    want = {"magnitude": mag.mean(0) * length / sd[:, None],
            "snr": (mag**2 / np.maximum(chunk.se[:, :-1].astype(np.float64) ** 2, 1e-24)).mean(0),  # 0/0 on the plateau
            "localisation": _descriptors.gini(mag),  # each checked on its own above: here, that they are wired in
            "peakedness": _descriptors.peakedness(model, chunk.signals[:, :-1]),
            "decay": mag.mean(0) / mag.mean(0)[:, :1],
            "smoothness": s.var(0) / sd[:, None].astype(np.float64) ** 2}
    lead = np.einsum("nad,ngdt->ngta", model.frames_[:, :2], b)  # the gradient's first two ambient coordinates
    want["alignment"] = np.linalg.norm(lead, axis=3).sum(0) / mag.sum(0)
    c = np.einsum("nmd,ngdt->ngtm", R, b)  # intrinsic coordinates: unit directions weighted by |b|
    norm = np.linalg.norm(c, axis=3, keepdims=True)
    u = np.divide(c * mag[..., None], norm, out=np.zeros_like(c), where=norm > 0)  # no direction where flat
    want["coherence"] = np.linalg.norm(u.sum(0), axis=2) / mag.sum(0)
    e = np.divide(u, mag[..., None], out=np.zeros_like(u), where=mag[..., None] > 0)
    outer = np.einsum("ngtm,ngtk->gtmk", u, e)
    eig = np.linalg.eigvalsh(outer)
    want["axiality"] = eig[..., -1] / eig.sum(-1)
    nb = s[model.knn_indices_]  # (N, k, g, T)
    want["extrema"] = ((s[:, None] > nb).all(1) | (s[:, None] < nb).all(1)).mean(0)
    assert want["extrema"][:, 0].max() > 0.01  # the noisy signals have strict extrema at t = 0: the test has teeth
    for name, value in want.items():
        np.testing.assert_allclose(whole[:, D.index(name)], value, rtol=1e-6, atol=1e-9, err_msg=name)


def test_chunk_descriptors_need_the_signals_and_leave_snr_undefined_without_se():
    Z, Y, _ = flat_plane(n=200, seed=6)
    model = GradientModel(n_neighbors=15, n_dims=2, scales=(0, 1)).fit(Y)
    F = np.c_[Z[:, 0], Z[:, 1] ** 2].astype(np.float32)
    args = {"length_scale": 1.0, "sd": F.std(0), "to_intrinsic": _descriptors.synchronized_frames(model)}
    with pytest.raises(ValueError, match=r"needs the smoothed signals: compute the chunk with `with_signals=True`"):
        _descriptors.chunk_descriptors(model, model.gradients_chunk(F), **args)
    out = _descriptors.chunk_descriptors(model, model.gradients_chunk(F, with_se=False, with_signals=True), **args)
    assert np.isnan(out[:, D.index("snr")]).all()
    assert np.isfinite(out[:, D.index("coherence")]).all()
