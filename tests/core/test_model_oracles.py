"""GradientModel against independent oracles: dense products, known noise, replicate spreads, hand-built sums.

Small function-scoped models (300 cells) so that mutation testing can run these per mutant in seconds.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import flat_plane

from genegrad import GradientModel
from genegrad._core import _model, _threads

SIGMA = 0.5


def _plane_model(n: int = 300, **kw) -> tuple[np.ndarray, np.ndarray, GradientModel]:
    Z, Y, Q = flat_plane(n=n, seed=3)
    params = {"n_neighbors": 15, "n_dims": 2, "scales": (0, 1, 2, 4)} | kw
    return Z, Q, GradientModel(**params).fit(Y)


def _dense_power(model: GradientModel, X: np.ndarray, t: int) -> np.ndarray:
    P = model.diffusion_.toarray().astype(np.float64)
    out = np.asarray(X, dtype=np.float64)
    for _ in range(t):
        out = P @ out
    return out


def test_signals_and_gradients_are_the_dense_products():
    # chunk.signals[..., j] = P^t F and chunk.gradients[..., j] = D_t P^t F, in the cells' own order
    Z, _, model = _plane_model()
    rng = np.random.default_rng(0)
    F = np.column_stack([np.sin(3 * Z[:, 0]), Z[:, 0] * Z[:, 1], rng.normal(size=len(Z))])
    n, g, d = F.shape[0], F.shape[1], model.n_dims_
    chunk = model.gradients_chunk(F, with_signals=True, with_se=False)
    assert chunk.se is None
    assert (chunk.start, chunk.stop) == (0, g)
    for j, t in enumerate(model.scales_):
        S = _dense_power(model, F, t)
        np.testing.assert_allclose(chunk.signals[:, :, j], S, atol=1e-5 * np.abs(S).max())
        G = (model.operators_[t].toarray() @ S).reshape(n, d, g).transpose(0, 2, 1)
        np.testing.assert_allclose(chunk.gradients[:, :, :, j], G, atol=1e-4 * np.abs(G).max())
    np.testing.assert_allclose(model.smooth(F, 3), _dense_power(model, F, 3), atol=1e-5)
    np.testing.assert_array_equal(model.smooth(F, 0), F.astype(np.float32))
    # threads smooth blocks of columns: the same numbers; one signal as a vector keeps its shape
    np.testing.assert_array_equal(model.smooth(F, 3, n_jobs=2), model.smooth(F, 3))
    np.testing.assert_array_equal(model.smooth(F[:, 1], 3), model.smooth(F, 3)[:, 1])


def test_se_factors_are_the_rows_of_the_noise_propagator():
    # SE per unit noise SD at cell i: sqrt(sum_l |row_il(D_t P^t)|^2); exact at t = 0, from probes at t > 0
    # (2,000 probes: each cell's squared norm within sqrt(2 / 2000) = 3% relative SD; 5 SD allowed per cell,
    # 1% for the median over cells)
    _, _, model = _plane_model(n_probes=2000)
    n, d = model.frames_.shape[0], model.n_dims_
    P = model.diffusion_.toarray().astype(np.float64)
    for j, t in enumerate(model.scales_):
        M = model.operators_[t].toarray() @ np.linalg.matrix_power(P, t)
        exact = np.sqrt((M**2).sum(axis=1).reshape(n, d).sum(axis=1))
        ratio = model.se_factors_[:, j] / exact
        if t == 0:
            np.testing.assert_allclose(ratio, 1.0, rtol=1e-5)
        else:
            assert np.abs(ratio - 1).max() < 5 * np.sqrt(2 / 2000) / 2, (t, ratio.min(), ratio.max())
            assert abs(np.median(ratio) - 1) < 0.01


@pytest.mark.parametrize("quadratic", [False, True])
def test_noise_variance_recovers_a_known_sigma(quadratic):
    # a noise-free signal the design fits exactly (linear; quadratic with the quadratic design) plus Gaussian
    # noise of SD 0.5: E[RSS_i] = sigma^2 dof_i, so the pooled estimate averages to sigma^2. 300 cells x 200
    # genes, each cell's estimate pooled over ~30 neighbours of ~12 residual dof: relative SD of the mean well
    # under 1%; 3% allowed.
    Z, _, model = _plane_model(quadratic=quadratic, scales=(0,))
    rng = np.random.default_rng(1)
    f = 1.5 * Z[:, 0] - Z[:, 1] + (Z[:, 0] * Z[:, 1] if quadratic else 0.0)
    F = f[:, None] + SIGMA * rng.standard_normal((len(Z), 200))
    se = model.gradients_chunk(F).se[:, :, 0]
    sigma2 = (se / model.se_factors_[:, :1]) ** 2
    assert abs(sigma2.mean() / SIGMA**2 - 1) < 0.03, sigma2.mean()
    # no noise: no residual beyond float32 round-off (the products and the variance are float32)
    sigma0 = model.gradients_chunk(np.c_[f, 2 * f]).se[:, :, 0] / model.se_factors_[:, :1]
    assert sigma0.max() < 0.01 * SIGMA, sigma0.max()


def test_standard_errors_match_the_spread_over_replicates():
    # The same signal with 400 independent noise draws: the empirical variance of each gradient component over
    # the draws, summed over components, is the squared SE of the gradient's length. Per cell the empirical
    # variance has relative SD sqrt(2 / 400) = 7%; the median over 300 cells is within ~1%. Allowed: 6% for the
    # median (the SE uses the estimated noise variance and, at t > 0, 64 probes).
    Z, _, model = _plane_model()
    rng = np.random.default_rng(2)
    f = np.sin(2 * Z[:, 0]) + Z[:, 1]
    R = 400
    F = f[:, None] + SIGMA * rng.standard_normal((len(Z), R))
    chunk = model.gradients_chunk(F)
    emp = chunk.gradients.astype(np.float64).var(axis=1).sum(axis=1)  # (N, T)
    reported = (chunk.se.astype(np.float64) ** 2).mean(axis=1)  # (N, T)
    known = SIGMA**2 * model.se_factors_.astype(np.float64) ** 2
    for j in range(len(model.scales_)):
        assert abs(np.median(emp[:, j] / known[:, j]) - 1) < 0.06, (model.scales_[j], np.median(emp[:, j] / known[:, j]))
        assert abs(np.median(reported[:, j] / emp[:, j]) - 1) < 0.06, (model.scales_[j],)


def test_to_ambient_is_the_frame_times_the_tangent_vector():
    _, _, model = _plane_model()
    rng = np.random.default_rng(3)
    tangent = rng.normal(size=(model.frames_.shape[0], 4, model.n_dims_))
    out = model.to_ambient(tangent)
    U = model.frames_.astype(np.float64)
    for i in (0, 17, 299):
        for g in range(4):
            np.testing.assert_allclose(out[i, g], U[i] @ tangent[i, g], rtol=1e-6, atol=1e-6)


def test_a_model_rebuilt_from_its_arrays_gives_the_same_gradients():
    Z, _, model = _plane_model()
    F = np.column_stack([np.sin(3 * Z[:, 0]), Z[:, 1] ** 2])
    params = {"n_neighbors": 15, "n_dims": 2, "scales": [0, 1, 2, 4]}
    rebuilt = GradientModel.from_fitted(params=params, knn_indices=model.knn_indices_, diffusion=model.diffusion_,
                                        frames=model.frames_, fits=model.fits_, se_factors=model.se_factors_)
    a, b = model.gradients_chunk(F), rebuilt.gradients_chunk(F)
    np.testing.assert_allclose(b.gradients, a.gradients, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.se, a.se, rtol=1e-5)
    assert rebuilt.n_dims_ == 2


def test_streamed_chunks_reduced_in_threads_equal_one_pass():
    Z, _, model = _plane_model()
    rng = np.random.default_rng(4)
    F = rng.normal(size=(len(Z), 7)) + Z[:, :1]
    whole = model.gradients_chunk(F, with_signals=True)
    seen = []

    def reduce(m, chunk):
        assert m is model
        seen.append((chunk.start, chunk.stop))
        return chunk.signals

    parts = list(model.iter_gradients(F, chunk_size=2, n_jobs=2, reduce=reduce, with_signals=True))
    assert sorted(seen) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole.signals)


def test_dimension_estimated_on_a_sample_above_the_cell_limit(monkeypatch):
    # the sample branch (its own graph on DIMENSION_CELLS random cells): a plane is 2-D, a curve 1-D
    monkeypatch.setattr(_model, "DIMENSION_CELLS", 250)
    _, Y, _ = flat_plane(n=600, seed=5)
    assert GradientModel(n_neighbors=15, scales=(0,)).fit(Y).n_dims_ == 2
    s = np.random.default_rng(6).uniform(0, 1, 600)
    curve = np.c_[np.cos(3 * s), np.sin(3 * s), s, np.zeros((600, 3))]
    assert GradientModel(n_neighbors=15, scales=(0,)).fit(curve).n_dims_ == 1


def test_nbytes_counts_every_fitted_array_once():
    _, _, model = _plane_model()

    def sp(m):
        return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes

    fits = sum(f.coef.nbytes + f.gram.nbytes + f.ridge.nbytes + f.weights.nbytes + f.dof.nbytes
               for f in model.fits_.values())
    expected = (sp(model.diffusion_) + sp(model.connectivities_) + sp(model.weight_matrix_)
                + sum(sp(m) for m in model.operators_.values())  # operator_ is operators_[0]: counted once
                + model.knn_indices_.nbytes + model.knn_distances_.nbytes + model.coordinates_.nbytes
                + model.local_spectrum_.nbytes + model.local_variance_.nbytes + model.frames_.nbytes
                + model.se_factors_.nbytes + model._order.nbytes + model._inverse.nbytes + fits)
    assert model.nbytes == expected


def test_bounded_submission_keeps_order_and_limits_what_is_in_flight():
    lock = threading.Lock()
    state = {"open": 0, "most": 0}

    class Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            with lock:
                state["open"] -= 1
            return self.value

    def submit(fn, s):
        with lock:
            state["open"] += 1
            state["most"] = max(state["most"], state["open"])
        return Done(fn(s))

    out = list(_threads.bounded(submit, lambda s: s * 10, range(7), 3))
    assert out == [0, 10, 20, 30, 40, 50, 60]
    assert state["most"] == 3
    assert state["open"] == 0


def test_streaming_a_sparse_signal_at_some_scales_without_standard_errors():
    # iter_gradients passes its scales, with_se and a sparse input through to every chunk
    from scipy import sparse

    Z, _, model = _plane_model()
    F = np.column_stack([np.maximum(Z[:, 0], 0), np.maximum(-Z[:, 1], 0), np.zeros(len(Z)), Z[:, 0] > 0.5])
    want = model.gradients_chunk(F, with_se=False, scales=[1, 4])
    parts = list(model.iter_gradients(sparse.csr_matrix(F), chunk_size=3, with_se=False, scales=[1, 4]))
    assert [p.se for p in parts] == [None, None]
    assert [p.signals for p in parts] == [None, None]  # signals only when asked
    np.testing.assert_array_equal(np.concatenate([p.gradients for p in parts], axis=1), want.gradients)
    assert want.gradients.shape[3] == 2


def test_outputs_are_float32_and_the_input_precision_does_not_matter():
    # products run in float32 whatever the input: a float64 signal and its float32 copy give the same bits
    Z, _, model = _plane_model()
    F = np.column_stack([np.sin(3 * Z[:, 0]) / 3, np.exp(Z[:, 1])])
    a = model.gradients_chunk(F, with_signals=True)
    b = model.gradients_chunk(F.astype(np.float32), with_signals=True)
    for x, y in ((a.gradients, b.gradients), (a.se, b.se), (a.signals, b.signals)):
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x, y)
    assert model.gradients_chunk(F).signals is None  # only when asked
    for arr in (model.se_factors_, model.frames_, model.coordinates_, model.local_variance_):
        assert arr.dtype == np.float32


def test_documented_defaults_and_a_given_dimension_is_kept():
    m = GradientModel()
    assert (m.n_neighbors, m.n_dims, tuple(m.scales), m.n_smooth, m.frame_averaging, m.alpha, m.quadratic,
            m.ridge, m.knn_method, m.n_probes, m.random_state, m.n_jobs) == (30, None, (0, 1, 2, 4, 8), 3, 1, 1.0,
                                                                             False, 1e-6, "auto", 64, 0, -1)
    _, Y, _ = flat_plane(n=300, seed=3)
    model = GradientModel(n_neighbors=15, n_dims=1, scales=(0,)).fit(Y)  # a plane, but one dimension asked
    assert model.n_dims_ == 1
    assert model.frames_.shape == (300, Y.shape[1], 1)


def test_probes_are_seeded_by_random_state():
    _, Y, _ = flat_plane(n=300, seed=3)
    fit = [GradientModel(n_neighbors=15, n_dims=2, scales=(0, 2), random_state=r).fit(Y) for r in (0, 0, 1)]
    np.testing.assert_array_equal(fit[0].se_factors_, fit[1].se_factors_)
    assert not np.array_equal(fit[0].se_factors_[:, 1], fit[2].se_factors_[:, 1])  # t > 0: from the probes
    np.testing.assert_array_equal(fit[0].se_factors_[:, 0], fit[2].se_factors_[:, 0])  # t = 0: exact


def test_refitting_a_model_drops_the_products_of_the_earlier_fit_and_pickles_without_them():
    import pickle

    Z, Y, _ = flat_plane(n=300, seed=3)
    F = np.column_stack([Z[:, 0] ** 2, Z[:, 1]])
    model = GradientModel(n_neighbors=15, n_dims=2, scales=(0, 1)).fit(Y)
    model.gradients_chunk(F)  # builds the products of this fit
    assert "_ops_cache" in model.__dict__
    restored = pickle.loads(pickle.dumps(model))
    assert "_ops_cache" not in restored.__dict__
    np.testing.assert_array_equal(restored.gradients_chunk(F).gradients, model.gradients_chunk(F).gradients)
    Y2 = 2.0 * Y  # the same cells twice as far apart: gradients halve
    model.fit(Y2)
    fresh = GradientModel(n_neighbors=15, n_dims=2, scales=(0, 1)).fit(Y2)
    a, b = model.gradients_chunk(F), fresh.gradients_chunk(F)
    np.testing.assert_array_equal(a.gradients, b.gradients)
    np.testing.assert_array_equal(a.se, b.se)  # the noise variance's cached terms are the new fit's too


def test_the_ridge_shrinks_a_linear_gradient_by_one_over_one_plus_ridge():
    # the relative ridge adds ridge x mean(diag B^T W B) to the normal equations; on an isotropic neighbourhood
    # (B^T W B ~ m I) a linear gradient shrinks by 1 / (1 + ridge): one half at ridge = 1 (medians over cells,
    # the neighbourhoods are only roughly isotropic: 0.4-0.6 allowed)
    Z, Y, Q = flat_plane(n=600, seed=7)
    f = (Z @ np.array([1.0, 0.5]))[:, None]
    g = {r: GradientModel(n_neighbors=20, n_dims=2, scales=(0,), ridge=r).fit(Y).gradients(f, with_se=False)
         for r in (1e-6, 1.0)}
    ratio = np.linalg.norm(g[1.0].gradients[:, 0, :, 0], axis=1) / np.linalg.norm(g[1e-6].gradients[:, 0, :, 0], axis=1)
    assert 0.4 < np.median(ratio) < 0.6, np.median(ratio)


def test_a_given_graph_and_alpha_are_used_and_the_spectrum_is_the_median_local_one():
    from genegrad._core import _graph

    Z, Y, _ = flat_plane(n=300, seed=3)
    idx, dist = _graph.knn(Y, 15, method="exact")
    model = GradientModel(n_neighbors=15, n_dims=2, scales=(2,), alpha=0.5).fit(Y, neighbors=(idx, dist))
    np.testing.assert_array_equal(model.knn_indices_, idx)
    want = _graph.diffusion_graph(idx, dist, alpha=0.5)[2]
    np.testing.assert_allclose(model.diffusion_.toarray(), want.toarray(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(want.toarray(), _graph.diffusion_graph(idx, dist, alpha=1.0)[2].toarray())
    vals = model.local_variance_.astype(np.float64)
    np.testing.assert_allclose(model.local_spectrum_, np.median(vals / vals.sum(axis=1, keepdims=True), axis=0),
                               rtol=1e-5)
    # scales without 0: the scale-0 fit is still made (the noise variance needs it), the gradients at t = 2 are
    # those of a model that also has t = 0
    full = GradientModel(n_neighbors=15, n_dims=2, scales=(0, 2), alpha=0.5).fit(Y, neighbors=(idx, dist))
    F = np.column_stack([np.sin(3 * Z[:, 0]), Z[:, 1] ** 2])
    np.testing.assert_array_equal(model.gradients_chunk(F).gradients[..., 0], full.gradients_chunk(F).gradients[..., 1])
    np.testing.assert_array_equal(model.gradients_chunk(F).se[..., 0], full.gradients_chunk(F).se[..., 1])


@pytest.mark.parametrize("ridge", [1e-6, 0.5])
def test_noise_variance_is_the_pooled_residual_sum_of_squares_of_each_local_fit(ridge):
    # brute force, cell by cell: r_ij = (f_j - f_i) - a_ij . beta_i with a_ij = U_i^T (y_j - y_i), RSS_i =
    # sum_j W_ij r_ij^2, then sigma_i^2 = sum_k P_ik RSS_k / dof_k; the model's closed form (total - fit - twice
    # the ridge term) must agree for any ridge (float32 products: 1e-3 relative)
    Z, Y, _ = flat_plane(n=300, seed=3)
    model = GradientModel(n_neighbors=15, n_dims=2, scales=(0,), ridge=ridge).fit(Y)
    rng = np.random.default_rng(8)
    F = np.column_stack([np.sin(3 * Z[:, 0]), Z[:, 1]]) + 0.3 * rng.standard_normal((300, 2))
    chunk = model.gradients_chunk(F)
    fits = model.fits_[0]
    idx, U = model.knn_indices_, model.frames_.astype(np.float64)
    P = model.diffusion_.toarray().astype(np.float64)
    for g in range(2):
        beta = chunk.gradients[:, g, :, 0].astype(np.float64)
        rss = np.empty(300)
        for i in range(300):
            a = (Y[idx[i]] - Y[i]) @ U[i]  # (k, d)
            r = (F[idx[i], g] - F[i, g]) - a @ beta[i]
            rss[i] = fits.weights[i] @ r**2
        want = P @ (rss / fits.dof)
        got = (chunk.se[:, g, 0].astype(np.float64) / model.se_factors_[:, 0]) ** 2
        np.testing.assert_allclose(got, want, rtol=1e-3)


def test_gradients_of_all_columns_at_once_and_its_refusal_of_dask():
    Z, _, model = _plane_model()
    F = np.column_stack([np.sin(3 * Z[:, 0]), Z[:, 1]])
    res = model.gradients(F, with_se=False, scales=[1])
    assert res.se is None
    np.testing.assert_array_equal(res.gradients, model.gradients_chunk(F, with_se=False, scales=[1]).gradients)
    with pytest.raises(ValueError, match=r"backend='dask' streams chunks: use `iter_gradients\(\.\.\., backend='dask'\)`"):
        model.gradients(F, backend="dask")


def test_the_tangent_dimension_is_at_most_one_less_than_the_coordinates():
    # a solid 3-D cube in 4 coordinates is 3-D (the cap, p - 1 = 3, is not binding); a solid ball filling all 3
    # coordinates is capped at 2: a tangent space cannot be the whole space
    rng = np.random.default_rng(9)
    cube = np.c_[rng.uniform(-1, 1, (800, 3)), np.zeros(800)]
    assert GradientModel(n_neighbors=30, scales=(0,)).fit(cube).n_dims_ == 3
    ball = rng.normal(size=(800, 3))
    assert GradientModel(n_neighbors=30, scales=(0,)).fit(ball).n_dims_ <= 2


def test_the_sampled_dimension_estimate_is_seeded_and_uses_alpha(monkeypatch):
    # above DIMENSION_CELLS the spectrum comes from a seeded sample with its own graph, density-normalised with
    # the model's alpha: the same fit twice gives the same spectrum; another alpha, another spectrum
    monkeypatch.setattr(_model, "DIMENSION_CELLS", 250)
    Z, _, _ = flat_plane(n=600, seed=5)
    rng = np.random.default_rng(10)
    Y = np.c_[Z[:, 0], Z[:, 1] * np.exp(Z[:, 0]), 0.05 * rng.standard_normal((600, 3))]  # uneven density
    fits = [GradientModel(n_neighbors=15, scales=(0,), alpha=a).fit(Y) for a in (1.0, 1.0, 0.0)]
    np.testing.assert_array_equal(fits[0].local_spectrum_, fits[1].local_spectrum_)
    assert not np.array_equal(fits[0].local_spectrum_, fits[2].local_spectrum_)


def test_a_rebuilt_model_pickles_before_any_product():
    import pickle

    Z, _, model = _plane_model()
    rebuilt = GradientModel.from_fitted(params={"n_neighbors": 15, "n_dims": 2, "scales": [0, 1, 2, 4]},
                                        knn_indices=model.knn_indices_, diffusion=model.diffusion_,
                                        frames=model.frames_, fits=model.fits_, se_factors=model.se_factors_)
    assert "_ops_cache" not in rebuilt.__dict__
    F = np.column_stack([Z[:, 0] ** 2])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(rebuilt)).gradients_chunk(F).gradients,
                                  model.gradients_chunk(F).gradients)


def test_signals_stream_in_chunks_of_64_by_default():
    Z, _, model = _plane_model()
    F = np.tile(Z[:, :1], (1, 130))
    spans = list(model.iter_gradients(F, with_se=False, reduce=lambda m, chunk: (chunk.start, chunk.stop)))
    assert spans == [(0, 64), (64, 128), (128, 130)]
