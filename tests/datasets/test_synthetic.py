"""Synthetic manifolds: counts, labels, and exact truth checked by finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import genegrad as gg
from genegrad.datasets import _manifolds, _patterns, _synthetic


@pytest.mark.parametrize("kind", ["plane", "swissroll", "curved_sheet", "cycle", "tree", "cube"])
def test_shapes_counts_and_patterns(kind):
    adata = gg.datasets.synthetic(kind, n_cells=150, n_genes=70, depth=500, rng=0)
    assert adata.shape == (150, 70)
    assert np.all(adata.X.data >= 0)
    assert np.allclose(adata.X.data, np.round(adata.X.data))
    n_classes = adata.var["pattern"].nunique()
    assert n_classes == (6 if kind in ("tree", "cycle") else 7)
    assert adata.obsm["X_latent"].shape[1] == _manifolds.LATENT_DIM[kind]
    # mean library size near the requested depth (log-normal, sd 0.3: mean within 15% at 150 cells)
    assert abs(adata.obs["total_counts"].mean() / 500 - 1) < 0.15


def test_tree_has_three_fates_and_pseudotime():
    adata = gg.datasets.synthetic("tree", n_cells=300, n_genes=50, rng=1)
    assert set(adata.obs["fate"].cat.categories) == {"A", "B", "C"}
    terminal = adata.obs["segment"].astype(int).isin([1, 3, 4])
    expected = adata.obs["segment"].astype(int).map({1: "A", 3: "B", 4: "C"})
    assert (adata.obs["fate"][terminal].astype(str) == expected[terminal]).all()
    assert adata.obs["pseudotime"].between(0, _manifolds.TREE_T_MAX).all()


def test_same_seed_same_data():
    a = gg.datasets.synthetic("cycle", n_cells=100, n_genes=30, rng=7)
    b = gg.datasets.synthetic("cycle", n_cells=100, n_genes=30, rng=7)
    assert (a.X != b.X).nnz == 0


@pytest.mark.parametrize("kind", ["plane", "swissroll", "curved_sheet", "cycle", "tree", "cube"])
def test_pattern_gradients_match_finite_differences(kind):
    rng = np.random.default_rng(0)
    lat = _manifolds.sample_latent(kind, 200, rng)
    u, seg = lat["u"], lat.get("segment")
    w, Phi = _manifolds.embed(kind, u)
    params = _patterns.draw_genes(kind, 40, w, rng, seg)
    _, grad_w = _patterns.evaluate(kind, params, w, seg)
    grad_u = np.einsum("ngm,nmd->ngd", grad_w, Phi)
    eps = 1e-6
    for k in range(u.shape[1]):
        du = np.zeros_like(u)
        du[:, k] = eps
        hp, _ = _patterns.evaluate(kind, params, _manifolds.embed(kind, u + du)[0], seg)
        hm, _ = _patterns.evaluate(kind, params, _manifolds.embed(kind, u - du)[0], seg)
        fd = (hp - hm) / (2 * eps)
        np.testing.assert_allclose(grad_u[:, :, k], fd, atol=1e-4 * max(1, np.abs(fd).max()))


def test_true_gradients_in_pca_are_tangent_pushforwards():
    # The PCA truth J (J^T J)^-1 grad_u f satisfies J^T v = grad_u f: its directional derivatives along the
    # manifold's tangent directions reproduce the latent gradient.
    adata = gg.datasets.synthetic("plane", n_cells=200, n_genes=80, rng=2)
    gg.pp.preprocess(adata, n_comps=10)
    lat = gg.datasets.true_gradients(adata, basis="latent")
    pca = gg.datasets.true_gradients(adata, basis="X_pca")
    assert pca.shape == (200, 80, 10)
    # log1p truth is parallel to the log-mean truth
    l1p = gg.datasets.true_gradients(adata, basis="latent", signal="log1p")
    cos = (l1p * lat).sum(2) / np.maximum(np.linalg.norm(l1p, axis=2) * np.linalg.norm(lat, axis=2), 1e-300)
    big = np.linalg.norm(lat, axis=2) > 1e-3
    assert np.all(cos[big] > 1 - 1e-9)


def _noise_free_representation(adata, basis, u):
    """The representation ``basis`` of ``adata``'s noise-free signal at latent positions ``u``."""
    from genegrad.datasets._truth import _model, _scale

    b = adata.copy()
    b.obsm["X_latent"] = u
    model = _model(b)
    x = np.log1p(_scale(b, model, None)[None, :] * model["pi"])
    pos = {n: j for j, n in enumerate(model["names"])}
    x = x[:, [pos[g] for g in b.var_names]]
    if basis == "X_pca":
        return x @ b.varm["PCs"]  # (PCA's centring is a constant offset: it does not move the Jacobian)
    z = x @ b.varm["LSI"]
    return z / np.linalg.norm(z, axis=1, keepdims=True) if b.uns["lsi"]["normalize_rows"] else z


@pytest.mark.parametrize(("basis", "paired"), [("X_pca", False), ("X_lsi", False), ("X_lsi", True)])
def test_pushed_forward_truth_has_the_latent_derivatives(basis, paired):
    # v = J (J^T J)^-1 grad_u f satisfies J^T v = grad_u f, with J the Jacobian of the noise-free representation,
    # here by central differences of that representation (LSI rows scaled to unit length included); with
    # `embedding`, RNA genes are pushed into the LSI of the ATAC data simulated on the same cells
    rna = gg.datasets.synthetic("plane", n_cells=150, n_genes=60, rng=2)
    atac = gg.datasets.synthetic("plane", n_cells=150, n_genes=300, depth=300, library_sd=0.6, rng=2)
    gg.pp.preprocess(rna, n_comps=8)
    gg.pp.preprocess_atac(atac, n_comps=8, min_cells=1)
    data = rna if paired or basis == "X_pca" else atac
    emb = atac if paired else data
    v = gg.datasets.true_gradients(data, basis=basis, embedding=atac if paired else None)
    lat = gg.datasets.true_gradients(data, basis="latent")
    u = emb.obsm["X_latent"]
    eps = 1e-5
    J = np.stack([(_noise_free_representation(emb, basis, u + eps * e) -
                   _noise_free_representation(emb, basis, u - eps * e)) / (2 * eps) for e in np.eye(2)], axis=2)
    np.testing.assert_allclose(np.einsum("npd,ngp->ngd", J, v), lat, atol=1e-5 * np.abs(lat).max())


def test_embedding_must_be_the_same_cells():
    rna = gg.datasets.synthetic("plane", n_cells=150, n_genes=60, rng=2)
    other = gg.datasets.synthetic("plane", n_cells=150, n_genes=300, depth=300, rng=3)  # other latent positions
    gg.pp.preprocess_atac(other, n_comps=8, min_cells=1)
    with pytest.raises(ValueError, match="same cells"):
        gg.datasets.true_gradients(rna, basis="X_lsi", embedding=other)


@pytest.mark.parametrize("kind", ["plane", "tree"])
def test_blocks_of_cells_give_the_same_counts(kind, monkeypatch):
    # large data is simulated block after block to bound memory; the negative binomial draws run in the same
    # (row-major) order, so the counts must be identical to drawing all cells at once
    whole = gg.datasets.synthetic(kind, n_cells=1000, n_genes=50, rng=5)
    monkeypatch.setattr(_synthetic, "CELL_BLOCK", 300)
    blocked = gg.datasets.synthetic(kind, n_cells=1000, n_genes=50, rng=5)
    assert (whole.X != blocked.X).nnz == 0
    np.testing.assert_array_equal(whole.obs["total_counts"], blocked.obs["total_counts"])


@pytest.mark.parametrize("kind", ["plane", "tree"])
def test_true_log_mean_gradients_match_finite_differences_of_the_proportions(kind):
    # the exported truth (pattern gradients plus the composition term) is the gradient of log pi, where pi is
    # exactly what the counts are drawn from; noise genes keep a fixed share, so their truth is exactly zero
    adata = gg.datasets.synthetic(kind, n_cells=150, n_genes=60, rng=3)
    truth = gg.datasets.true_gradients(adata, basis="latent")
    params = {k: np.asarray(v) for k, v in adata.uns["synthetic"]["genes"].items()}
    seg = adata.obs["segment"].astype(int).to_numpy() if kind == "tree" else None
    u = adata.obsm["X_latent"]

    def log_pi(uu):
        h, _ = _patterns.evaluate(kind, params, _manifolds.embed(kind, uu)[0], seg)
        return np.log(_patterns.proportions(params["base"][None, :] + h, params))

    eps = 1e-6
    for k in range(u.shape[1]):
        du = np.zeros_like(u)
        du[:, k] = eps
        fd = (log_pi(u + du) - log_pi(u - du)) / (2 * eps)
        np.testing.assert_allclose(truth[:, :, k], fd, atol=1e-5 * max(1, np.abs(fd).max()))
    noise = (adata.var["pattern"] == "noise").to_numpy()
    assert noise.any()
    assert np.all(truth[:, noise] == 0)
    pi = np.exp(log_pi(u))
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, rtol=1e-12)
    assert np.ptp(pi[:, noise], axis=0).max() < 1e-15  # the same share in every cell


def test_manifold_volumes_match_closed_forms_and_the_sampler():
    """Plane, cube, cycle and tree: exact; the swiss roll against its arc length, 2/s (F(4.5 pi) - F(1.5 pi)) with
    F(t) = (t sqrt(t^2 + 1) + asinh t) / 2, to 1% (Monte Carlo over 200,000 draws of a smooth integrand varying
    by a factor of 3: relative error near 1e-3). The sampler stays inside the boxes the volumes assume."""
    assert _manifolds.volume("plane") == pytest.approx(4.0)
    assert _manifolds.volume("cube") == pytest.approx(8.0)
    assert _manifolds.volume("cycle") == pytest.approx(2 * np.pi)
    assert _manifolds.volume("tree") == pytest.approx(4.5)
    s = 4.5 * np.pi

    def F(t):
        return (t * np.sqrt(t * t + 1) + np.arcsinh(t)) / 2

    assert _manifolds.volume("swissroll") == pytest.approx(2 / s * (F(4.5 * np.pi) - F(1.5 * np.pi)), rel=1e-2)
    rng = np.random.default_rng(1)
    for kind, box in (("plane", [(-1, 1)] * 2), ("swissroll", [(1.5 * np.pi, 4.5 * np.pi), (-1, 1)]),
                      ("cycle", [(0, 2 * np.pi)])):
        u = _manifolds.sample_latent(kind, 20_000, rng)["u"]
        width = np.prod([hi - lo for lo, hi in box])
        assert width == pytest.approx(_manifolds.LATENT_VOLUME[kind])
        for j, (lo, hi) in enumerate(box):
            assert u[:, j].min() >= lo
            assert u[:, j].max() <= hi
            assert u[:, j].min() < lo + 0.01 * (hi - lo)
            assert u[:, j].max() > hi - 0.01 * (hi - lo)
