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
