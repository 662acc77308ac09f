"""simulate_like: scDesign3's model fitted to counts whose truth is known, and the truth it reports."""

from __future__ import annotations

import os
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

import genegrad as gg
from genegrad.datasets import _like

if not os.environ.get("GENEGRAD_REQUIRE_OPTIONAL"):  # in CI the `sim` extra is installed: a skip would hide it
    pytest.importorskip("scdesigner")

N_CELLS, N_GENES = 800, 24


def linear_counts(seed: int = 0, *, two_lineages: bool = False, n_cells: int = N_CELLS):
    """Counts with log-means ``a_g + b_g z`` (opposite slopes in a second lineage), and ``a``, ``b``, ``z``."""
    gen = np.random.default_rng(seed)
    z = gen.uniform(0, 1, n_cells)
    a = np.log(gen.uniform(5, 40, N_GENES))
    b = np.linspace(-2, 2, N_GENES)
    lineage = np.where(gen.uniform(size=n_cells) < 0.5, "A", "B") if two_lineages else np.full(n_cells, "A")
    sign = np.where(lineage == "A", 1.0, -1.0)[:, None]
    mu = np.exp(a[None, :] + sign * b[None, :] * z[:, None])
    counts = gen.negative_binomial(20, 20 / (20 + mu)).astype(np.float32)
    adata = ad.AnnData(sparse.csr_matrix(counts), obs=pd.DataFrame({"z": z, "lineage": lineage},
                                                                     index=[f"c{i}" for i in range(n_cells)]),
                       var=pd.DataFrame(index=[f"g{j}" for j in range(N_GENES)]))
    return adata, a, b


def composed(a, b, z, sign=1.0):
    """The oracle: ``grad log pi_g = b_g - sum_h pi_h b_h`` with ``pi`` the softmax of ``a + b z``."""
    eta = a[None, :] + sign * b[None, :] * z[:, None]
    pi = np.exp(eta - eta.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    return sign * b[None, :] - (pi * sign * b[None, :]).sum(axis=1, keepdims=True)


def test_linear_mean_gives_constant_log_mean_gradient():
    adata, a, b = linear_counts(n_cells=4000)
    sim = gg.datasets.simulate_like(adata, "z", n_flat=0, n_cells=1000, rng=1)
    spec = sim.uns["synthetic"]
    zs = (sim.obsm["X_latent"] - spec["loc"]) / spec["scale"]
    D, dD = _like._design(spec["basis"], zs, np.zeros(sim.n_obs, dtype=int))
    grad_eta = np.einsum("np,pg->ng", dD[:, :, 0], spec["beta"]) / spec["scale"][0]
    # the fitted log-means: within a few hundredths of a + b z
    assert np.median(np.abs(D @ spec["beta"] - (a + b * sim.obsm["X_latent"]))) < 0.03
    # their derivative is noisier (a 6-column spline's slope from 4,000 cells: median error ~0.07 measured at
    # 800 / 8,000 cells as 0.16 / 0.05, i.e. shrinking as 1/sqrt(n)), and constant up to that noise
    assert np.median(np.abs(grad_eta - b[None, :])) < 0.1
    assert np.all(np.abs(np.median(grad_eta, axis=0) - b) < 0.1)
    inner = (sim.obsm["X_latent"][:, 0] > 0.1) & (sim.obsm["X_latent"][:, 0] < 0.9)
    assert np.all(grad_eta[inner].std(axis=0) < 0.2)
    assert np.all(np.abs(np.diff(np.sort(b))) > 0.1)  # the slopes differ: a constant output would not pass


def test_truth_matches_the_composition_of_the_generating_slopes():
    adata, a, b = linear_counts(n_cells=4000)
    sim = gg.datasets.simulate_like(adata, "z", n_flat=0, n_cells=1000, rng=2)
    truth = gg.datasets.true_gradients(sim, basis="latent")[:, :, 0]
    oracle = composed(a, b, sim.obsm["X_latent"][:, 0])
    assert truth.shape == (sim.n_obs, N_GENES)
    assert np.median(np.abs(truth - oracle)) < 0.1
    assert np.corrcoef(truth.ravel(), oracle.ravel())[0, 1] > 0.99


def test_flat_genes_have_zero_truth_and_keep_their_share():
    adata, _, _ = linear_counts()
    sim = gg.datasets.simulate_like(adata, "z", n_flat=6, rng=3)
    flat = sim.var["flat"].to_numpy()
    assert flat.sum() == 6
    truth = gg.datasets.true_gradients(sim, basis="latent")
    assert np.all(truth[:, flat] == 0)
    assert np.all(np.abs(truth[:, ~flat]).max(axis=0) > 0.1)
    X = sim.X.toarray()
    share = X[:, flat].sum(axis=1) / X.sum(axis=1)
    # the flat genes hold, on average, the share of the real data's fitted means they were given (6 genes of
    # 24 with means 5-40: ~25% of the counts; sampling error over 800 cells is ~1% of it)
    given = sim.uns["synthetic"]["flat_share"]
    assert np.all(given[~flat] == 0)
    assert X[:, flat].sum() / X.sum() == pytest.approx(given.sum(), rel=0.05)
    assert 0.1 < given.sum() < 0.5
    z = sim.obsm["X_latent"][:, 0]
    # a fixed share: no trend along z (|rho| < 0.12 is ~3.4 standard errors at 800 cells) ...
    assert abs(stats.spearmanr(share, z)[0]) < 0.12
    # ... while the steepest structured genes follow it
    steep = ~flat & (np.abs(truth[:, :, 0]).mean(axis=0) > 1.0)
    for j in np.flatnonzero(steep):
        assert abs(stats.spearmanr(X[:, j] / X.sum(axis=1), z)[0]) > 0.3


def test_reproducible_and_leaves_the_input_alone():
    adata, _, _ = linear_counts()
    before = adata.copy()
    s1 = gg.datasets.simulate_like(adata, "z", n_cells=300, rng=5)
    s2 = gg.datasets.simulate_like(adata, "z", n_cells=300, rng=5)
    s3 = gg.datasets.simulate_like(adata, "z", n_cells=300, rng=6)
    assert s1.shape == (300, N_GENES)
    assert (s1.X != s2.X).nnz == 0
    assert np.array_equal(s1.obsm["X_latent"], s2.obsm["X_latent"])
    assert (s1.X != s3.X).nnz > 0
    assert (adata.X != before.X).nnz == 0
    assert adata.obs.equals(before.obs)
    # counts are integers, positions stay inside the data's range
    assert np.all(np.mod(s1.X.data, 1) == 0)
    assert s1.obsm["X_latent"].min() >= adata.obs["z"].min()
    assert s1.obsm["X_latent"].max() <= adata.obs["z"].max()


def test_two_dimensional_truth_is_the_derivative_of_the_model():
    gen = np.random.default_rng(7)
    adata, _, _ = linear_counts()
    u = gen.uniform(-1, 1, (N_CELLS, 2))
    eta = np.log(10) + np.sin(2 * u[:, :1]) * np.linspace(-1, 1, N_GENES) + u[:, 1:] ** 2
    adata.X = sparse.csr_matrix(gen.poisson(np.exp(eta)).astype(np.float32))
    adata.obsm["X_umap"] = u
    sim = gg.datasets.simulate_like(adata, "X_umap", n_flat=4, n_cells=200, rng=0)
    spec = sim.uns["synthetic"]
    z, codes = sim.obsm["X_latent"], np.zeros(sim.n_obs, dtype=int)
    truth = gg.datasets.true_gradients(sim, basis="latent")
    for d in range(2):
        step = np.zeros(2)
        step[d] = 1e-5
        fd = (np.log(_like._means(spec, z + step, codes)[1]) - np.log(_like._means(spec, z - step, codes)[1])) / 2e-5
        # central differences: O(h^2) truncation, O(eps / h) round-off
        np.testing.assert_allclose(truth[:, :, d], fd, atol=1e-5 * max(1.0, np.abs(fd).max()))
    # the fit found the sine along u0: the gene with the largest weight has the largest u0-gradient on average
    assert np.argmax(np.abs(truth[:, :, 0]).mean(axis=0)) in (0, N_GENES - 1)


def test_lineages_have_their_own_means():
    adata, a, b = linear_counts(two_lineages=True, n_cells=8000)
    sim = gg.datasets.simulate_like(adata, "z", lineage="lineage", n_flat=0, n_cells=1000, rng=8)
    assert list(sim.obs["lineage"].cat.categories) == ["A", "B"]
    truth = gg.datasets.true_gradients(sim, basis="latent")[:, :, 0]
    z = sim.obsm["X_latent"][:, 0]
    for name, sign in (("A", 1.0), ("B", -1.0)):
        rows = (sim.obs["lineage"] == name).to_numpy()
        oracle = composed(a, b, z[rows], sign)
        assert np.median(np.abs(truth[rows] - oracle)) < 0.1  # 4,000 cells a lineage: as in the test above


def test_pca_truth_after_preprocess():
    adata, _, _ = linear_counts()
    sim = gg.datasets.simulate_like(adata, "z", n_flat=4, n_cells=300, rng=9)
    gg.pp.preprocess(sim, n_top_genes=N_GENES, n_comps=5)
    truth = gg.datasets.true_gradients(sim, basis="X_pca")
    assert truth.shape == (sim.n_obs, sim.n_vars, 5)
    assert np.all(truth[:, sim.var["flat"].to_numpy()] == 0)
    # the oracle: J, the derivative of the noise-free PCA coordinates x(z) = log1p(1e4 pi(z)) @ PCs, by central
    # differences; the pushed-forward gradient v satisfies J^T v = the latent gradient
    spec, z = sim.uns["synthetic"], sim.obsm["X_latent"]
    codes = np.zeros(sim.n_obs, dtype=int)
    pcs = sim.varm["PCs"]
    J = (np.log1p(1e4 * _like._means(spec, z + 1e-6, codes)[1]) @ pcs
         - np.log1p(1e4 * _like._means(spec, z - 1e-6, codes)[1]) @ pcs) / 2e-6
    latent = gg.datasets.true_gradients(sim, basis="latent")[:, :, 0]
    np.testing.assert_allclose(np.einsum("np,ngp->ng", J, truth), latent, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"latent": "nope"}, KeyError, "neither an `obsm` key"),
    ({"latent": "X_three"}, ValueError, "one or two columns"),
    ({"latent": "X_three", "lineage": "lineage"}, ValueError, "one or two columns"),
    ({"latent": ["z", "w"], "lineage": "lineage"}, ValueError, "one-dimensional"),
    ({"latent": "z", "n_flat": N_GENES}, ValueError, "n_flat"),
    ({"latent": "z", "genes": ["g0", "zzz"]}, ValueError, r"not in `adata.var_names`: \['zzz'\]"),
    ({"latent": "z", "genes": ["g0", "g0"]}, ValueError, "distinct"),
    ({"latent": "lineage"}, ValueError, "must hold numbers"),
    ({"latent": "bad"}, ValueError, "missing or infinite"),
])
def test_bad_input(kwargs, error, match):
    adata, _, _ = linear_counts()
    adata.obsm["X_three"] = np.zeros((N_CELLS, 3))
    adata.obs["w"] = np.arange(N_CELLS, dtype=float)
    adata.obs["bad"] = np.where(np.arange(N_CELLS) == 3, np.nan, 1.0)
    with pytest.raises(error, match=match):
        gg.datasets.simulate_like(adata, **kwargs)


def test_non_integer_counts_refused():
    adata, _, _ = linear_counts()
    adata.X = adata.X * 0.5
    with pytest.raises(ValueError, match="counts"):
        gg.datasets.simulate_like(adata, "z")


def test_missing_scdesigner_says_how_to_install(monkeypatch):
    adata, _, _ = linear_counts()
    monkeypatch.setitem(sys.modules, "scdesigner", None)
    monkeypatch.setitem(sys.modules, "scdesigner.simulators", None)
    monkeypatch.setitem(sys.modules, "scdesigner.copulas.gaussian_copula_helpers", None)
    with pytest.raises(ImportError, match="pip install scdesigner torch"):
        gg.datasets.simulate_like(adata, "z")
