"""Property tests (hypothesis): what must hold for any input, checked on many drawn ones.

Each property is exact math of the estimator, so tolerances are float32 round-off scaled by the data, not
statistical slack: the local fits are exact for functions linear in the coordinates, the operator is linear
and translation-invariant, rotations of the representation rotate ambient gradients, and absorption
probabilities of an absorbing chain sum to one.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from genegrad import GradientModel
from genegrad._core import _fate

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flat(seed: int, n: int = 300, p: int = 5):
    rng = np.random.default_rng(seed)
    Z = rng.uniform(-1, 1, (n, 2))
    Q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    return Z, np.c_[Z, np.zeros((n, p - 2))] @ Q.T, Q


_models: dict[int, tuple] = {}


def model_for(seed: int):
    if seed not in _models:
        Z, Y, Q = flat(seed)
        _models[seed] = (Z, Y, Q, GradientModel(n_neighbors=15, n_dims=2, scales=(0, 1, 3)).fit(Y))
    return _models[seed]


seeds = st.integers(0, 3)
coef = st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=2)


@SETTINGS
@given(seed=seeds, c=coef, b=st.floats(-100, 100, allow_nan=False))
def test_linear_functions_recovered_exactly(seed, c, b):
    Z, _, Q, model = model_for(seed)
    f = Z @ np.array(c) + b
    grads = model.gradients(f[:, None].astype(np.float32), with_se=False).gradients
    true = Q[:, :2] @ np.array(c)
    tol = 2e-4 * (np.linalg.norm(c) + abs(b) + 1)  # float32 storage of f and of the operator
    for j in range(grads.shape[3]):
        np.testing.assert_allclose(model.to_ambient(grads[:, 0, :, j]), np.broadcast_to(true, (len(Z), 5)),
                                   atol=tol)


@SETTINGS
@given(seed=seeds, shift=st.floats(-50, 50, allow_nan=False), data_seed=st.integers(0, 100))
def test_adding_a_constant_changes_nothing(seed, shift, data_seed):
    Z, _, _, model = model_for(seed)
    f = np.random.default_rng(data_seed).standard_normal((len(Z), 2)).astype(np.float32)
    g0 = model.gradients(f, with_se=False).gradients
    g1 = model.gradients(f + np.float32(shift), with_se=False).gradients
    # f + shift is rounded to float32 (relative 6e-8, absolute 6e-8 |shift|); a gradient divides differences
    # by neighbour distances (~0.1 here) and sums over ~15 neighbours: 6e-8 x 10 x 15 ~ 1e-5 per unit of shift
    np.testing.assert_allclose(g1, g0, atol=2e-5 * (abs(shift) + 1))


@SETTINGS
@given(seed=seeds, a=st.floats(-3, 3, allow_nan=False), b=st.floats(-3, 3, allow_nan=False),
       data_seed=st.integers(0, 100))
def test_linear_in_the_signal(seed, a, b, data_seed):
    Z, _, _, model = model_for(seed)
    rng = np.random.default_rng(data_seed)
    f, h = rng.standard_normal((2, len(Z))).astype(np.float32)
    G = model.gradients(np.column_stack([f, h, a * f + b * h]), with_se=False).gradients
    np.testing.assert_allclose(G[:, 2], a * G[:, 0] + b * G[:, 1], atol=1e-4 * (abs(a) + abs(b) + 1))


@settings(max_examples=8, deadline=None)
@given(seed=seeds, rot_seed=st.integers(0, 1000), t=st.lists(st.floats(-10, 10, allow_nan=False), min_size=5,
                                                              max_size=5))
def test_rotation_and_translation_equivariance(seed, rot_seed, t):
    Z, Y, _, model = model_for(seed)
    R, _ = np.linalg.qr(np.random.default_rng(rot_seed).standard_normal((5, 5)))
    moved = GradientModel(n_neighbors=15, n_dims=2, scales=(0, 1, 3)).fit(Y @ R.T + np.array(t))
    f = (np.sin(2 * Z[:, 0]) + Z[:, 1] ** 2).astype(np.float32)[:, None]
    a = model.to_ambient(model.gradients(f, with_se=False).gradients[:, 0, :, 1])
    b = moved.to_ambient(moved.gradients(f, with_se=False).gradients[:, 0, :, 1])
    np.testing.assert_allclose(b, a @ R.T, atol=1e-3 * np.abs(a).max())


@SETTINGS
@given(n=st.integers(5, 60), density=st.floats(0.05, 0.5), seed=st.integers(0, 1000), n_fates=st.integers(2, 4))
def test_absorption_probabilities_sum_to_one(n, density, seed, n_fates):
    rng = np.random.default_rng(seed)
    K = sparse.random(n, n, density=density, random_state=seed, format="csr")
    chain = sparse.diags(np.ones(n - 1), 1, shape=(n, n))
    K = K + K.T + chain + chain.T  # connected
    T = sparse.diags(1 / np.asarray(K.sum(1)).ravel()) @ K
    terminal = np.full(n, -1)
    cells = rng.choice(n, n_fates, replace=False)
    terminal[cells] = np.arange(n_fates)
    P = _fate.absorption_probabilities(T, terminal, n_fates)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    assert (P >= 0).all()
