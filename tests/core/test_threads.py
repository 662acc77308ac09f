"""Blocks of rows on threads: every row once, errors surfaced, and the same numbers as one thread."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from conftest import flat_plane

from genegrad._core import _frames, _graph, _operator, _threads


def test_thread_counts():
    cpus = os.cpu_count() or 1
    assert _threads.n_threads(None) == 1
    assert _threads.n_threads(3) == 3
    assert _threads.n_threads(0) == 1
    assert _threads.n_threads(-1) == cpus
    assert _threads.n_threads(-2) == max(1, cpus - 1)


@pytest.mark.parametrize("n_jobs", [1, 2, 5])
def test_every_row_in_exactly_one_block(n_jobs):
    seen = np.zeros(103, dtype=int)
    calls, lock = [], threading.Lock()

    def fn(s, e):
        with lock:
            calls.append((s, e))
        seen[s:e] += 1

    _threads.for_blocks(fn, 103, 10, n_jobs=n_jobs)
    assert (seen == 1).all()
    assert sorted(calls) == [(s, min(s + 10, 103)) for s in range(0, 103, 10)]


def test_a_block_error_is_raised():
    def fn(s, e):
        if s == 20:
            raise ArithmeticError("block 20")

    with pytest.raises(ArithmeticError, match="block 20"):
        _threads.for_blocks(fn, 50, 10, n_jobs=2)


def test_threaded_blocks_give_the_same_numbers_as_one_thread():
    _, Y, _ = flat_plane(n=500, seed=1)
    Y = Y + 0.01 * np.random.default_rng(0).standard_normal(Y.shape)
    idx, dist = _graph.knn(Y, 12, method="exact")
    w = _graph.diffusion_graph(idx, dist)[0]
    one = _frames.local_spectra(Y, idx, w, n_vecs=2, chunk_size=64, n_jobs=1)
    two = _frames.local_spectra(Y, idx, w, n_vecs=2, chunk_size=64, n_jobs=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    frames = one[1]
    np.testing.assert_array_equal(_frames.average_frames(frames, idx, w, chunk_size=64, n_jobs=1),
                                  _frames.average_frames(frames, idx, w, chunk_size=64, n_jobs=2))
    a = _operator.fit_local(Y, frames, idx, w, quadratic=True, chunk_size=64, n_jobs=1)
    b = _operator.fit_local(Y, frames, idx, w, quadratic=True, chunk_size=64, n_jobs=2)
    for field in ("coef", "gram", "ridge", "weights", "dof"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_synchronized_frames_the_same_on_one_thread():
    from genegrad import GradientModel
    from genegrad._core import _descriptors

    _, Y, _ = flat_plane(n=400, seed=2)
    model = GradientModel(n_neighbors=12, n_dims=2, scales=(0,)).fit(Y)
    two = _descriptors.synchronized_frames(model, cell_block=64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_threads, "n_threads", lambda n_jobs: 1)
        one = _descriptors.synchronized_frames(model, cell_block=64)
    np.testing.assert_array_equal(one, two)


def test_an_unknown_core_count_means_one_thread(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # os.cpu_count may not know
    assert _threads.n_threads(-1) == 1
    assert _threads.n_threads(-3) == 1


def test_blocks_run_concurrently_with_the_blas_on_one_thread():
    # two blocks must be in fn at once (a barrier two threads must reach), and inside them the BLAS libraries
    # report one thread each
    from threadpoolctl import threadpool_info

    barrier = threading.Barrier(2, timeout=10)
    blas_threads = []

    def fn(s, e):
        barrier.wait()
        blas_threads.extend(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")

    _threads.for_blocks(fn, 20, 10, n_jobs=2)
    assert blas_threads
    assert set(blas_threads) == {1}


def test_a_model_fitted_on_one_thread_is_the_same_to_the_bit_and_uses_one_thread(monkeypatch):
    from genegrad import GradientModel

    _, Y, _ = flat_plane(n=400, seed=2)
    Y = Y + 0.02 * np.random.default_rng(1).standard_normal(Y.shape)
    many = GradientModel(n_neighbors=12, scales=(0, 2), quadratic=True).fit(Y)
    threads_asked = []
    real = _threads.for_blocks

    def spy(fn, n, block, *, n_jobs=-1):
        threads_asked.append(n_jobs)
        real(fn, n, block, n_jobs=n_jobs)

    monkeypatch.setattr(_frames, "for_blocks", spy)
    monkeypatch.setattr(_operator, "for_blocks", spy)
    one = GradientModel(n_neighbors=12, scales=(0, 2), quadratic=True, n_jobs=1).fit(Y)
    assert len(threads_asked) >= 4  # local PCA (dimension and frames), frame averaging, the local fits
    assert set(threads_asked) == {1}  # each got the model's n_jobs
    for a, b in ((many.frames_, one.frames_), (many.se_factors_, one.se_factors_), (many.local_spectrum_,
                                                                                      one.local_spectrum_)):
        np.testing.assert_array_equal(a, b)
    for t in (0, 2):
        np.testing.assert_array_equal(many.fits_[t].coef, one.fits_[t].coef)
