"""The recommended scale per gene (Lepski's rule), scale='auto' and the widened standard errors."""

from __future__ import annotations

import numpy as np
import pytest

import genegrad as gg
from genegrad._core._scale import ball_factor, lepski_scales, widened_se


def test_ball_factor_closed_forms():
    # d = 1: the two-sided 95% normal quantile; d = 2: chi2 with 2 dof is exponential, so chi2_0.95(2) = -2 ln 0.05
    assert ball_factor(1) == pytest.approx(1.959964, abs=1e-6)
    assert ball_factor(2) == pytest.approx(np.sqrt(-np.log(0.05)), rel=1e-9)


def test_lepski_scales_by_hand():
    # 20 cells, d = 1 (ball radius 1.96 * se), scales 0, 1, 2; se 0.5 everywhere: radius 0.98
    n, T = 20, 3
    g = np.ones((n, 5, 1, T))
    se = np.full((n, 5, T), 0.5)
    # gene 0: the same gradient at every scale -> the coarsest scale
    # gene 1: scale 2 moves by 2 > 0.98 in every cell -> scale 1
    g[:, 1, 0, 2] = 3.0
    # gene 2: scale 2 moves in 1 cell of 20 (5% <= alpha = 20%) -> scale 2
    g[0, 2, 0, 2] = 3.0
    # gene 3: scale 2 moves in 5 cells of 20 (25% > 20%) -> scale 1
    g[:5, 3, 0, 2] = 3.0
    # gene 4: scale 1 moves everywhere, scale 2 is back at scale 0's value; a rejected scale ends the search -> 0
    g[:, 4, 0, 1] = 3.0
    np.testing.assert_array_equal(lepski_scales(g, se), [2, 1, 2, 1, 0])
    assert lepski_scales(g, se).dtype.kind == "i"  # indices
    # a wider tolerance (kappa = 3: radius 2.94 > 2) accepts every move
    np.testing.assert_array_equal(lepski_scales(g, se, kappa=3.0), [2, 2, 2, 2, 2])
    # the finer scales' se set the radius: a move of 0.5 at scale 2 is within 0.98, but not within scale 0's
    # ball once its se is 0.1 (radius 0.196): scale 1 (which did not move)
    g5 = np.ones((n, 1, 1, T))
    g5[:, 0, 0, 2] = 1.5
    se5 = np.full((n, 1, T), 0.5)
    assert lepski_scales(g5, se5)[0] == 2
    se5[:, :, 0] = 0.1
    assert lepski_scales(g5, se5)[0] == 1
    # edges: a share of exactly alpha (4 cells of 20) is allowed; a move of exactly the radius is inside the ball;
    # a move of 0.9 is inside d = 1's radius 0.98 (and would not be inside 3-D's 0.81)
    r = ball_factor(1) * 0.5
    e = np.zeros((n, 3, 1, T))
    e[:4, 0, 0, 2] = 3.0
    e[:, 1, 0, 2] = r
    e[:, 2, 0, 2] = 0.9
    np.testing.assert_array_equal(lepski_scales(e, np.full((n, 3, T), 0.5)), [2, 2, 2])


def test_cells_without_noise_at_the_finer_scale_do_not_vote():
    # 20 cells, d = 1, scales 0 and 1; at scale 0 ten cells have se 0 (a neighbourhood of one value): a ball of
    # one point, which any move leaves. Gene 0: only those ten move -> scale 1. Gene 1: 3 of the 10 voting cells
    # move (30% > 20%; 15% of all 20 cells would pass) -> scale 0. Gene 2: 2 of the 10 (20%) -> scale 1.
    n = 20
    g = np.zeros((n, 3, 1, 2))
    se = np.full((n, 3, 2), 0.5)
    se[10:, :, 0] = 0.0
    g[10:, 0, 0, 1] = 3.0
    g[:3, 1, 0, 1] = 3.0
    g[:2, 2, 0, 1] = 3.0
    np.testing.assert_array_equal(lepski_scales(g, se), [1, 0, 1])
    # a gene with no voting cell at all (constant around every cell) takes the coarsest scale
    np.testing.assert_array_equal(lepski_scales(np.ones((n, 1, 1, 2)), np.zeros((n, 1, 2))), [1])


def test_widened_se_by_hand():
    # d = 2: distance 5 between (3, 4) and the origin, c = sqrt(-ln 0.05) -> se + 5 / c
    out = widened_se(np.array([[3.0, 4.0]]), np.array([[0.0, 0.0]]), np.array([1.0]))
    assert out[0] == pytest.approx(1.0 + 5.0 / np.sqrt(-np.log(0.05)), rel=1e-6)
    assert out.dtype == np.float32
    # no move, no widening
    assert widened_se(np.array([[1.0, 2.0]]), np.array([[1.0, 2.0]]), np.array([0.3]))[0] == pytest.approx(0.3)


def test_recommended_scales_follow_the_patterns(plane_adata):
    a = plane_adata
    scale = a.var["genegrad_scale"]
    done = a.var["highly_variable"].to_numpy()
    assert np.isnan(scale[~done]).all()
    assert set(scale[done].astype(int)) <= {int(t) for t in a.uns["genegrad"]["scales"]}
    by = scale[done].groupby(a.var["pattern"][done].astype(str)).mean()
    # flat (noise) genes agree at every scale: the coarsest; periodic genes curve most: finer than the ramps
    assert by["noise"] > max(by.drop("noise"))
    assert by["periodic"] < by["ramp"]


def test_auto_reads_each_gene_at_its_scale(plane_adata):
    a = plane_adata
    genes = list(a.var_names[a.var["highly_variable"]][:12])
    auto = gg.get.gradients(a, genes, scale="auto")
    se_auto = gg.get.gradients_se(a, genes, scale="auto")
    d = a.uns["genegrad"]["n_dims"]
    for j, g in enumerate(genes):
        t = int(a.var.loc[g, "genegrad_scale"])
        np.testing.assert_array_equal(auto[:, j], gg.get.gradients(a, [g], scale=t)[:, 0])
        tangent_t = gg.get.gradients(a, [g], scale=t, basis="tangent")[:, 0].astype(np.float64)
        tangent_0 = gg.get.gradients(a, [g], scale=0, basis="tangent")[:, 0].astype(np.float64)
        # the finest scale's standard error (scale 0), not the one at t
        se_0 = a.obsm["genegrad_gradients_se"][:, list(a.var_names[a.var["highly_variable"]]).index(g), 0]
        c = np.sqrt(-np.log(0.05)) if d == 2 else None
        np.testing.assert_allclose(se_auto[:, j], se_0 + np.linalg.norm(tangent_t - tangent_0, axis=1) / c,
                                   rtol=1e-5, atol=1e-7)
    assert se_auto.dtype == np.float32
    # a fixed scale (0 by default) reads the stored standard errors as they are
    np.testing.assert_array_equal(gg.get.gradients_se(a, genes), a.obsm["genegrad_gradients_se"][:, :12, 0])
    i2 = [int(s) for s in a.uns["genegrad"]["scales"]].index(2)
    np.testing.assert_array_equal(gg.get.gradients_se(a, genes, scale=2), a.obsm["genegrad_gradients_se"][:, :12, i2])


def test_auto_intervals_cover_the_truth(plane_adata):
    # The 95% balls at a fixed coarse scale cover the noise-free gradient far less often than 95% (smoothing bias:
    # measured 0.33 at t = 2 on these data, 0.90 at t = 0). The balls at the recommended scales contain the finest
    # scale's: they cover every pair that one covers (exact up to float32 rounding), 0.99 here. With the
    # coarse scale's own standard error in place of the finest one's they covered 0.84 and missed 9,602 of the 68,017
    # pairs that the finest scale's balls cover.
    a = plane_adata
    genes = list(a.var_names[a.var["highly_variable"] & (a.var["pattern"] != "noise")])
    true = gg.datasets.true_gradients(a, genes, basis="X_pca", signal="log1p")
    nt = np.linalg.norm(true, axis=2)
    mask = nt >= 0.1 * np.percentile(nt, 95, axis=0)
    c = np.sqrt(-np.log(0.05))  # d = 2
    assert a.uns["genegrad"]["n_dims"] == 2

    def covered(scale, slack=1.0):
        est, se = gg.get.gradients(a, genes, scale=scale), gg.get.gradients_se(a, genes, scale=scale)
        return (np.linalg.norm(est - true, axis=2) <= slack * c * se)[mask]

    finest, auto = covered(0), covered("auto", slack=1 + 1e-5)
    assert not (finest & ~auto).any()
    assert auto.mean() >= 0.95
    assert covered(2).mean() < 0.6


def test_auto_needs_standard_errors_and_says_so(plane_adata):
    a = plane_adata
    genes = list(a.var_names[a.var["highly_variable"]][:3])
    with pytest.raises(ValueError, match="'auto'"):
        gg.get.gradients(a, genes, scale="Auto")
    with pytest.raises(ValueError, match="'auto'"):
        gg.get.gradients_se(a, genes, scale="coarse")
    gg.tl.gradients(a, genes, with_se=False)
    assert "genegrad_scale" not in a.var  # no stale recommendation beside gradients without standard errors
    with pytest.raises(KeyError, match="with_se=True"):
        gg.get.gradients(a, genes, scale="auto")
    with pytest.raises(KeyError, match="with_se=True"):
        gg.get.gradients_se(a, genes, scale=0)
    gg.tl.gradients(a, genes[:2])
    with pytest.raises(KeyError, match=r"No gradients for \['" + genes[2]):
        gg.get.gradients(a, genes, scale="auto")


def test_auto_from_a_zarr_store(plane_adata, tmp_path):
    a = plane_adata
    genes = list(a.var_names[a.var["highly_variable"]][:6])
    ref = a.copy()
    gg.tl.gradients(ref, genes)
    gg.tl.gradients(a, genes, store="zarr", path=tmp_path / "g.zarr")
    np.testing.assert_array_equal(a.var["genegrad_scale"], ref.var["genegrad_scale"])
    np.testing.assert_allclose(gg.get.gradients_se(a, genes, scale="auto"),
                               gg.get.gradients_se(ref, genes, scale="auto"), rtol=1e-6)
    np.testing.assert_allclose(gg.get.gradients(a, genes, scale="auto"),
                               gg.get.gradients(ref, genes, scale="auto"), rtol=1e-6)
