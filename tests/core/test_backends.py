"""numpy, torch (CPU here, CUDA when present) and dask backends give the same gradients (to 1e-4)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from conftest import flat_plane, optional

from genegrad import GradientModel
from genegrad._core import _descriptors


@pytest.fixture(scope="module")
def model_and_signal():
    Z, Y, _ = flat_plane(n=1200, seed=7)
    model = GradientModel(n_neighbors=20, n_dims=2, quadratic=True).fit(Y)
    rng = np.random.default_rng(0)
    F = (np.sin(3 * Z[:, :1]) + 0.3 * rng.standard_normal((1200, 40))).astype(np.float32)
    ref = list(model.iter_gradients(F, chunk_size=16, with_signals=True))
    return model, F, ref


def _same(ref, other):
    for a, b in zip(ref, other, strict=True):
        assert (a.start, a.stop) == (b.start, b.stop)
        np.testing.assert_allclose(b.gradients, a.gradients, atol=1e-4)
        np.testing.assert_allclose(b.se, a.se, atol=1e-4)
        np.testing.assert_allclose(b.signals, a.signals, atol=1e-4)


def test_torch_cpu_matches_numpy(model_and_signal):
    optional("torch")
    model, F, ref = model_and_signal
    _same(ref, model.iter_gradients(F, chunk_size=16, with_signals=True, backend="torch", device="cpu"))
    # the log of the local mean, from a log1p signal
    pos = np.abs(F)
    _same(list(model.iter_gradients(pos, chunk_size=16, with_signals=True, log_mean=True)),
          model.iter_gradients(pos, chunk_size=16, with_signals=True, backend="torch", device="cpu", log_mean=True))


def test_dask_local_cluster_matches_numpy(model_and_signal):
    distributed = optional("distributed")
    model, F, ref = model_and_signal
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        out = list(model.iter_gradients(F, chunk_size=16, with_signals=True, backend="dask", client=client))
        assert len(client.nthreads()) == 2
        # descriptors reduced on the workers: only (g, descriptors, T) arrays come back
        reduce = _describer(model, F)
        remote = list(model.iter_gradients(F, chunk_size=16, with_signals=True, backend="dask", client=client,
                                           reduce=reduce))
        two = list(model.iter_gradients(F, chunk_size=16, backend="dask", client=client, scales=[1, 4]))
        logged = list(model.iter_gradients(np.abs(F), chunk_size=16, with_signals=True, backend="dask", client=client,
                                           log_mean=True))
    _same(list(model.iter_gradients(np.abs(F), chunk_size=16, with_signals=True, log_mean=True)), logged)
    _same(ref, out)
    cols = [model.scales_.index(1), model.scales_.index(4)]  # a subset of the scales, computed on the workers
    np.testing.assert_array_equal(np.concatenate([c.gradients for c in two], axis=1),
                                  np.concatenate([c.gradients[..., cols] for c in ref], axis=1))
    local = [reduce(model, c) for c in ref]
    assert [r.shape for r in remote] == [(16, len(_descriptors.DESCRIPTORS), len(model.scales_))] * 2 + [
        (8, len(_descriptors.DESCRIPTORS), len(model.scales_))]
    np.testing.assert_allclose(np.concatenate(remote), np.concatenate(local), rtol=1e-4, atol=1e-6)


def _describer(model, F):
    return partial(_descriptors.chunk_descriptors, length_scale=1.0, sd=F.std(axis=0),
                   to_intrinsic=_descriptors.synchronized_frames(model))


def test_threads_match_serial(model_and_signal):
    model, F, ref = model_and_signal
    _same(ref, model.iter_gradients(F, chunk_size=16, with_signals=True, n_jobs=2))
    reduce = _describer(model, F)
    threaded = model.iter_gradients(F, chunk_size=16, with_signals=True, n_jobs=2, reduce=reduce)
    np.testing.assert_array_equal(np.concatenate(list(threaded)), np.concatenate([reduce(model, c) for c in ref]))


def test_unknown_backend():
    Z, Y, _ = flat_plane(n=200)
    model = GradientModel(n_neighbors=10, n_dims=2).fit(Y)
    with pytest.raises(ValueError, match="Expected `backend`"):
        model.gradients(Y[:, :1], backend="jax")


def test_make_ops_backends_and_their_blocks(monkeypatch):
    """'dask' workers multiply with numpy; torch keeps float32 blocks on its device and matrices of their full
    shape (an empty last column included); without torch the error says how to install it."""
    from scipy import sparse as sp

    from genegrad._core import _backend

    M = sp.csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 3.0, 0.0]]))
    assert isinstance(_backend.make_ops({"M": M}, "dask"), _backend.NumpyOps)
    assert isinstance(_backend.make_ops({"M": M}, "numpy"), _backend.NumpyOps)
    with pytest.raises(ValueError, match="Expected `backend` in"):
        _backend.make_ops({"M": M}, "jax")
    torch = optional("torch")
    ops = _backend.make_ops({"M": M}, "torch", device="cpu")
    assert ops.device == torch.device("cpu")
    X = ops.put(np.ones((3, 2)))  # float64 in: float32 on the device
    assert X.dtype == torch.float32
    np.testing.assert_allclose(ops.get(ops.mm("M", X)), M.toarray() @ np.ones((3, 2)))
    assert tuple(ops.matrices["M"].shape) == (2, 3)
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(ImportError, match=r"^backend='torch' needs PyTorch: `pip install torch`\.$"):
        _backend.TorchOps({"M": M})
