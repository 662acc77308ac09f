"""Independent oracles: hand-computed cases and closed forms that fail when a number is wrong.

Two exact fixtures. On a line (a 1-D manifold, cells uniform in x), the fate chain without orientation is a
symmetric random walk, so the probability of reaching the right end before the left one is harmonic, i.e. linear
in x between the terminal stretches; genes rising towards one end have known gradient directions. On a flat plane
in R^8, linear genes have exact, constant gradients at every scale. Every expected value below is computed here
from the fixtures' definitions, not by genegrad.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import flat_plane

import genegrad as gg
from genegrad.tl._fate import run_fate_bias

LEFT, RIGHT = 0.08, 0.92  # the terminal stretches of the line: A below LEFT, B above RIGHT


def _line(n: int = 400, *, seed: int = 0, bias: float = 0.0) -> ad.AnnData:
    """Cells uniform on [0, 1] (a line rotated into R^5 with a little noise across it) and exact genes.

    ``upA`` rises towards A (slope -2), ``upB`` towards B (slope 4, so that the total fate flow points to B),
    ``noisyA`` is ``upA`` with noise, ``flat*`` are noise. With ``bias``, a random half of the progenitors carry
    ``+bias`` in five genes that also rise towards A (the fine-scale evidence of A: deviations from the trend);
    five more rise towards A with independent noise (candidates that carry no evidence).
    """
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 1, n))
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    Y = np.c_[x, 0.01 * rng.standard_normal((n, 4))] @ Q.T
    genes = {"upA": 2 * (1 - x), "upB": 4 * x, "noisyA": 2 * (1 - x) + 0.3 * rng.standard_normal(n)}
    for j in range(6):
        genes[f"flat{j}"] = 0.3 * rng.standard_normal(n)
    biased = (rng.uniform(size=n) < 0.5) & (x > LEFT) & (x < RIGHT)
    for j in range(5 if bias else 0):
        genes[f"fineA{j}"] = 1.5 * (1 - x) + bias * biased + 0.05 * rng.standard_normal(n)  # a trend, and the bias
        genes[f"trendA{j}"] = 1.5 * (1 - x) + 0.1 * rng.standard_normal(n)  # the trend alone: candidates too
    X = np.c_[tuple(genes.values())].astype(np.float32) + 3.0
    a = ad.AnnData(X, obs=pd.DataFrame({"x": x, "biased": biased}, index=[f"c{i}" for i in range(n)]),
                   var=pd.DataFrame(index=list(genes)))
    a.obsm["X_pca"] = Y.astype(np.float32)
    a.obs["terminal"] = pd.Categorical(np.where(x < LEFT, "A", np.where(x > RIGHT, "B", None)), categories=["A", "B"])
    a.uns["Q"] = Q
    gg.pp.manifold(a, n_dims=1, n_neighbors=20)
    return a


# Function-scoped fixtures (each under a second): computed inside every test, so that mutmut's test selection,
# which follows the calls a test makes, sees each test reach the code its fixture runs.
@pytest.fixture
def line_fates():
    a = _line()
    run_fate_bias(a, "terminal", fine_weight=0.0, n_program_genes=2)
    return a


def test_two_fates_on_a_line_are_harmonic(line_fates):
    # the unoriented chain is a symmetric walk: p(B) = (x - LEFT) / (RIGHT - LEFT) between the terminal stretches,
    # up to the discreteness of the graph at the stretches' edges (a few cells: 0.05)
    x = line_fates.obs["x"].to_numpy()
    prog = line_fates.obs["terminal"].isna().to_numpy()
    p = line_fates.obsm["genegrad_fate_probs"]
    expected = (x - LEFT) / (RIGHT - LEFT)
    np.testing.assert_allclose(p["B"].to_numpy()[prog], expected[prog], atol=0.05)
    np.testing.assert_allclose(p["A"].to_numpy()[prog], 1 - expected[prog], atol=0.05)
    # with two fates, obs['genegrad_fate_bias'] is p(first) - p(second) = p(A) - p(B)
    np.testing.assert_allclose(line_fates.obs["genegrad_fate_bias"].to_numpy()[prog], 1 - 2 * expected[prog],
                               atol=0.1)


def test_drivers_point_towards_their_fate(line_fates):
    d = gg.tl.drivers(line_fates, "A")
    assert d.index[0] == "upA"
    # upA rises towards A at every cell: alignment +1 with A's flow contrast; upB falls towards A: -1
    assert d.loc["upA", "alignment"] == pytest.approx(1.0, abs=0.01)
    assert d.loc["upB", "alignment"] == pytest.approx(-1.0, abs=0.01)
    assert d.loc["upA", "corr"] > 0.95
    assert d.loc["upB", "corr"] < -0.95
    assert gg.tl.drivers(line_fates, "B").index[0] == "upB"
    # corr: Pearson correlation over the early cells of the gene (smoothed) and p(A); both are linear in x
    assert d.loc["upA", "corr"] == pytest.approx(1.0, abs=0.01)
    assert d.loc["upB", "corr"] == pytest.approx(-1.0, abs=0.01)
    assert (d["corr"].abs() <= 1 + 1e-9).all()
    assert (d["alignment"].abs() <= 1 + 1e-9).all()
    # score = alignment x max(corr, 0): genes falling towards A score 0
    np.testing.assert_allclose(d["score"], d["alignment"] * d["corr"].clip(lower=0), atol=1e-12)
    assert d.loc["upB", "score"] == 0
    assert d.index.name == "gene"
    # genes and cells are passed through
    some = gg.tl.drivers(line_fates, "A", genes=["upB", "flat0"])
    assert sorted(some.index) == ["flat0", "upB"]
    x = line_fates.obs["x"].to_numpy()
    with pytest.raises(ValueError, match="at least 3 early cells"):
        gg.tl.drivers(line_fates, "A", cells=x < 0.001)
    left = gg.tl.drivers(line_fates, "A", cells=(x > 0.3) & (x < 0.5))
    assert left.loc["upA", "alignment"] == pytest.approx(1.0, abs=0.01)


def test_fate_flows_point_towards_their_fate(line_fates):
    from genegrad.pp._manifold import load_model

    model = load_model(line_fates)
    flows = model.to_ambient(line_fates.obsm["genegrad_fate_flow"])  # (N, fates, p)
    towards_b = line_fates.uns["Q"][:, 0]  # the direction of increasing x in the representation
    cos = flows @ towards_b / np.linalg.norm(flows, axis=2)
    prog = line_fates.obs["terminal"].isna().to_numpy()
    # A's program (upA, noisyA) rises towards x = 0 (noisyA's local noise turns a few cells: at most 5%)
    assert np.mean(cos[prog, 0] < -0.95) > 0.95
    assert np.all(cos[prog, 1] > 0.95)  # B's program is upB alone, noise-free
    # the programs are weighted means of genes of slopes -2 (A) and 4 (B): the flows' typical lengths
    assert np.median(np.linalg.norm(flows[prog, 0], axis=1)) == pytest.approx(2.0, rel=0.1)
    assert np.median(np.linalg.norm(flows[prog, 1], axis=1)) == pytest.approx(4.0, rel=0.05)


def test_fate_programs_are_weighted_by_gradient_significance(line_fates):
    # weights = effect (terminal means in SDs) x (1 - 1/SNR), normalised: computed here from the data and the
    # public gradients, by the documented formula
    table = gg.get.fate_programs(line_fates)  # read through the public accessor
    assert list(table["fate"].cat.categories) == [str(f) for f in line_fates.uns["genegrad"]["fate_bias"]["fates"]]
    mine = table[table["fate"] == "A"]
    assert (np.diff(mine["weight"].to_numpy()) <= 0).all()  # by decreasing weight
    weights = dict(zip(mine["gene"], mine["weight"], strict=True))
    assert set(weights) == {"upA", "noisyA"}
    assert "upB" in set(table.loc[table["fate"] == "B", "gene"])  # B's program is B's own, the gene rising to B
    X = line_fates.X
    term = line_fates.obs["terminal"].to_numpy()
    is_t = pd.notna(term)
    effect = {}
    for g in ("upA", "noisyA"):
        v = X[:, line_fates.var_names.get_loc(g)].astype(np.float64)[is_t]
        a_cells = term[is_t] == "A"
        effect[g] = (v[a_cells].mean() - v[~a_cells].mean()) / (v.std() + 1e-9)
    scale = int(line_fates.uns["genegrad"]["fate_bias"]["scale"])
    g = gg.tl.gradients(line_fates, ["upA", "noisyA"], copy=True, store="obsm")
    j = [int(t) for t in g.uns["genegrad"]["gradients"]["scales"]].index(scale)
    snr = ((g.obsm["genegrad_gradients"][:, :, :, j].astype(np.float64) ** 2).sum(axis=2)
           / g.obsm["genegrad_gradients_se"][:, :, j].astype(np.float64) ** 2).mean(axis=0)
    raw = {k: effect[k] * max(0.0, 1 - 1 / snr[i]) for i, k in enumerate(("upA", "noisyA"))}
    total = sum(raw.values())
    assert raw["noisyA"] / total < 0.45  # the noise lowers its significance: the weighting is not a no-op here
    for k in raw:
        assert weights[k] == pytest.approx(raw[k] / total, abs=0.02)


def test_fate_feature_signs(line_fates):
    gg.tl.fate_features(line_fates)
    ff = line_fates.obsm["genegrad_fate_features"]
    x = line_fates.obs["x"].to_numpy()
    inner = (x > 0.2) & (x < 0.8)
    # the total flow v = Phi_A + Phi_B points to B (upB is the steeper): A's flow is against it, B's along it
    # (but where noisyA's local noise turns A's flow: at most 5% of the cells)
    assert np.mean(ff["A_align"].to_numpy()[inner] < -0.99) > 0.95
    assert np.mean(ff["B_align"].to_numpy()[inner] > 0.99) > 0.95
    # at the ends the neighbourhood average lies inwards: cells near x = 0 sit on A's side of their neighbourhood
    near_a, near_b = x < 0.03, x > 0.97
    assert np.all(ff["A_displacement"].to_numpy()[near_a] > 0)
    assert np.all(ff["B_displacement"].to_numpy()[near_b] > 0)
    assert np.all(ff["A_displacement"].to_numpy()[near_b] < 0)
    # cosines are within [-1, 1]; the displacement is a projection on a unit vector: |d| <= |y - P^t y|
    assert (ff[["A_align", "B_align"]].abs().to_numpy() <= 1 + 1e-9).all()
    from genegrad.pp._manifold import load_model

    model = load_model(line_fates)
    Y = line_fates.obsm["X_pca"].astype(np.float64)
    Yc = Y.copy()
    for _ in range(model.scales_[-1]):  # the default neighbourhood: the largest scale
        Yc = model.diffusion_ @ Yc
    bound = np.linalg.norm(Y - Yc, axis=1) + 1e-9
    assert (ff["A_displacement"].abs().to_numpy() <= bound).all()
    # the flows' lengths: the programs' slopes, 2 towards A and 4 towards B
    assert np.median(ff["B_flow"]) == pytest.approx(4.0, rel=0.05)
    # a linear program equals its neighbourhood average inside the line
    assert np.abs(ff["B_program"].to_numpy()[inner]).max() < 0.05
    # A's program falls with x, so near x = 0 a cell's program level is above its inward neighbourhood's (on
    # average: noisyA's noise is in the program)
    assert ff["A_program"].to_numpy()[near_a].mean() > 0.03
    assert ff["B_program"].to_numpy()[near_b].mean() > 0.03


def test_evaluate_fate_features_reports_the_auroc_not_its_complement(line_fates):
    gg.tl.fate_features(line_fates)
    right = np.where(line_fates.obs["x"].to_numpy() > 0.5, "R", "L")
    res = gg.tl.evaluate_fate_features(line_fates, right).set_index("features")
    assert res.loc["expression", "auroc"] > 0.95  # the side of the line is read off the coordinates
    assert res.loc["both", "auroc"] > 0.95
    shuffled = np.random.default_rng(0).permutation(right)
    res = gg.tl.evaluate_fate_features(line_fates, shuffled).set_index("features")
    assert abs(res.loc["expression", "auroc"] - 0.5) < 0.15
    assert res["n_features"].to_dict() == {"expression": 5, "gradient features": 10, "both": 15}
    assert (res["auroc_sd"] >= 0).all()
    # three labels: one-vs-rest AUROC
    x = line_fates.obs["x"].to_numpy()
    thirds = np.where(x < 1 / 3, "L", np.where(x < 2 / 3, "M", "R"))
    res = gg.tl.evaluate_fate_features(line_fates, thirds).set_index("features")
    assert res.loc["expression", "auroc"] > 0.9
    # only the cells asked for: on the left half, "x < 0.25" is read off the coordinates; a label constant there
    # leaves one class, which is refused
    res = gg.tl.evaluate_fate_features(line_fates, np.where(x < 0.25, "a", "b"), cells=x < 0.5)
    assert res.set_index("features").loc["expression", "auroc"] > 0.95
    with pytest.raises(ValueError, match="at least two labels"):
        gg.tl.evaluate_fate_features(line_fates, right, cells=x < 0.5)


def test_the_fine_step_moves_progenitors_towards_their_evidence():
    a = _line(bias=0.4, seed=1)
    run_fate_bias(a, "terminal", fine_weight=1.0, min_fine_agreement=None, n_program_genes=2)
    probs = a.obsm["genegrad_fate_probs"]["A"].to_numpy()
    chain = a.obsm["genegrad_fate_probs_chain"]["A"].to_numpy()
    biased = a.obs["biased"].to_numpy()
    prog = a.obs["terminal"].isna().to_numpy()
    # the biased half carries A's fine-scale evidence: its p(A) rises above the chain's, the other half's falls
    assert (probs - chain)[biased & prog].mean() > 0.02
    assert (probs - chain)[~biased & prog].mean() < -0.02
    z = a.obsm["genegrad_fate_deviation"]["A"].to_numpy()
    assert z[biased & prog].mean() > 0.5 > z[~biased & prog].mean()
    # the five genes' residuals all carry the bias: the leading component is their common part, and the score is
    # the bias indicator standardised over the progenitors (up to the neighbourhood's share of biased cells,
    # which the residual subtracts: corr 0.97 and median difference 0.17 measured)
    b = biased[prog].astype(float)
    standardised = (b - b.mean()) / b.std()
    assert np.corrcoef(z[prog], b)[0, 1] > 0.95
    assert np.median(np.abs(z[prog] - standardised)) < 0.3
    assert z[prog].mean() == pytest.approx(0.0, abs=1e-9)
    assert z[prog].std() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(z[~prog], 0.0)  # terminal cells carry no fine evidence


def test_the_fine_program_does_not_depend_on_the_eigenvectors_sign(monkeypatch):
    from genegrad._core import _fate
    from genegrad.pp._manifold import load_model

    a = _line(bias=0.4, seed=1)
    model = load_model(a)
    labels = np.where(a.obs["terminal"].isna(), -1, (a.obs["terminal"] == "B").astype(int))
    F = np.asarray(a.X, dtype=np.float64)
    ref = _fate.fine_deviation(model, F, labels, n_fates=2, coarse_scale=2)
    eigh = np.linalg.eigh
    for sign in (1.0, -1.0):  # LAPACK returns either orientation: both must give the same program
        monkeypatch.setattr(_fate.np.linalg, "eigh", lambda C, s=sign: (eigh(C)[0], s * eigh(C)[1]))
        np.testing.assert_allclose(_fate.fine_deviation(model, F, labels, n_fates=2, coarse_scale=2), ref,
                                   atol=1e-6)


@pytest.mark.parametrize("csr", [False, True])
def test_the_fine_step_smooths_one_fates_candidates_at_a_time(monkeypatch, csr):
    from scipy import sparse

    from genegrad._core import _fate
    from genegrad.pp._manifold import load_model

    a = _line(bias=0.4, seed=1)
    model = load_model(a)
    labels = np.where(a.obs["terminal"].isna(), -1, (a.obs["terminal"] == "B").astype(int))
    F = np.asarray(a.X, dtype=np.float64)
    prog = labels < 0
    seen = []

    def spy(model, F, genes, prog, **kwargs):
        out = real(model, F, genes, prog, **kwargs)
        seen.append((genes.copy(), out))
        return out

    real = _fate._progenitor_residuals
    monkeypatch.setattr(_fate, "_progenitor_residuals", spy)
    monkeypatch.setattr(type(model), "chunk_size", lambda self, *args, **kwargs: 2)  # several blocks of genes
    _fate.fine_deviation(model, sparse.csr_matrix(F) if csr else F, labels, n_fates=2, coarse_scale=2,
                         n_candidates=4)  # a CSR signal is read in place
    effect = _fate.fate_effects(F, labels, n_fates=2)
    assert len(seen) == 2  # one fate's candidates at a time (memory), never their union
    smoothed = np.asarray(model.smooth(F.astype(np.float32), 2))  # every gene at once: the oracle
    for f, (genes, resid) in enumerate(seen):
        top = np.argsort(-effect[f])[:4]
        np.testing.assert_array_equal(genes, np.sort(top[effect[f, top] > 0]))
        np.testing.assert_allclose(resid, (F - smoothed)[prog][:, genes], atol=1e-5)


# ------------------------------------------------------------------------------------------------- the plane
@pytest.fixture
def plane():
    """Exact linear genes on a flat plane in R^8 (the representation is the plane itself)."""
    Z, Y, Q = flat_plane(n=800, p=8, seed=0)
    rng = np.random.default_rng(2)
    genes = {"z0": Z[:, 0], "neg_z0": -Z[:, 0], "twice_z0": 2 * Z[:, 0] + 1, "z1": Z[:, 1],
             "diag": Z[:, 0] + Z[:, 1]}
    for j in range(4):
        genes[f"z0_{j}"] = Z[:, 0] * (1 + 0.2 * j) + 0.02 * rng.standard_normal(len(Z))
        genes[f"z1_{j}"] = Z[:, 1] * (1 + 0.2 * j) + 0.02 * rng.standard_normal(len(Z))
    a = ad.AnnData(np.c_[tuple(genes.values())].astype(np.float32) + 5.0,
                   var=pd.DataFrame(index=list(genes)), obs=pd.DataFrame(index=[f"c{i}" for i in range(len(Z))]))
    a.obsm["X_pca"] = Y.astype(np.float32)
    gg.pp.manifold(a, n_dims=2, n_neighbors=20)
    return a, Z, Q


def test_gradient_similarity_of_known_pairs(plane):
    a, _, _ = plane
    S = gg.get.gradient_similarity(a, ["z0", "neg_z0", "twice_z0", "z1", "diag"], scale=1)
    assert S.loc["z0", "neg_z0"] == pytest.approx(-1.0, abs=1e-3)  # anti-aligned: -1, not +1
    assert S.loc["z0", "twice_z0"] == pytest.approx(1.0, abs=1e-3)
    assert S.loc["z0", "z1"] == pytest.approx(0.0, abs=1e-3)
    assert S.loc["z0", "diag"] == pytest.approx(np.sqrt(0.5), abs=1e-3)  # 45 degrees
    assert S.index.name == S.columns.name == "gene"
    b = a.copy()
    b.X = b.X.copy()
    b.X[:, b.var_names.get_loc("z1")] = 5.0  # a constant gene has no direction
    S = gg.get.gradient_similarity(b, ["z0", "z1"])
    assert S.loc["z1"].isna().all()
    assert S["z1"].isna().all()
    assert S.loc["z0", "z0"] == pytest.approx(1.0)


def test_gradients_of_linear_genes_in_the_representation(plane):
    a, _, Q = plane
    gg.tl.gradients(a, ["z0", "diag"])
    for scale in (0, 2, 8):
        g = gg.get.gradients(a, ["z0", "diag"], scale=scale, basis="X_pca")
        np.testing.assert_allclose(g[:, 0], np.broadcast_to(Q[:, 0], g[:, 0].shape), atol=1e-3)
        np.testing.assert_allclose(g[:, 1], np.broadcast_to(Q[:, 0] + Q[:, 1], g[:, 1].shape), atol=1e-3)


def test_descriptors_of_a_ramp_in_closed_form(plane):
    from genegrad._core._descriptors import DESCRIPTORS

    a, Z, _ = plane
    b = a.copy()
    gg.tl.patterns(b, n_null=20, holdout=False)
    desc = b.varm["genegrad_descriptors"][b.var_names.get_loc("z0")]  # (descriptors, scales)
    names = list(DESCRIPTORS)
    # |grad| = 1 everywhere; magnitude = mean |grad| x RMS spread of the representation / sd of the gene
    Zc = Z - Z.mean(axis=0)
    expected = 1.0 * np.sqrt((Zc**2).sum(axis=1).mean()) / Z[:, 0].std(ddof=0)
    np.testing.assert_allclose(desc[names.index("magnitude")], expected, rtol=0.01)
    np.testing.assert_allclose(desc[names.index("coherence")], 1.0, atol=0.01)  # one direction everywhere
    np.testing.assert_allclose(desc[names.index("decay")], 1.0, atol=0.01)  # diffusion keeps a linear slope


def test_snr_of_pure_noise_is_one():
    # E|beta|^2 = SE^2 for pure noise at t = 0: the SNR descriptor (mean |grad|^2 / SE^2) is 1 there; over 50
    # genes x 800 cells its sampling error is ~1%, and the pooled noise variance adds nu / (nu - 2) ~ 1.04
    Z, Y, _ = flat_plane(n=800, p=8, seed=0)
    rng = np.random.default_rng(3)
    a = ad.AnnData((0.3 * rng.standard_normal((800, 60)) + 5).astype(np.float32))
    a.obsm["X_pca"] = Y.astype(np.float32)
    gg.pp.manifold(a, n_dims=2, n_neighbors=20)
    gg.tl.patterns(a, n_null=20, holdout=False)
    snr = a.varm["genegrad_descriptors"][:, list(gg._core._descriptors.DESCRIPTORS).index("snr"), 0]
    assert np.mean(snr) == pytest.approx(1.0, abs=0.08)


def test_modules_group_co_directional_genes(plane):
    a, _, _ = plane
    b = a.copy()
    gg.tl.patterns(b, n_null=20, holdout=False)
    mod = b.var["genegrad_module"]
    z0 = mod[[f"z0_{j}" for j in range(4)] + ["z0", "twice_z0"]]
    z1 = mod[[f"z1_{j}" for j in range(4)] + ["z1"]]
    assert z0.nunique() == 1
    assert z0.notna().all()
    assert z1.nunique() == 1
    assert z1.notna().all()
    assert z0.iloc[0] != z1.iloc[0]
    assert mod["neg_z0"] != z0.iloc[0]  # anti-aligned is not co-directional


def test_standard_errors_match_the_spread_over_noise_replicates():
    # 400 replicates of one gene (a ramp plus Gaussian noise): at each cell the mean |beta|^2 around the
    # replicates' mean is the true squared SE. Per cell that estimate has relative sd ~ sqrt(2 / (d R)) = 5%;
    # over 800 cells the mean ratio is within 3% at t = 0 (where the SE is exact but for the estimated noise
    # variance) and 8% above (Gaussian probes estimate the propagation). SEs off by 10% give 0.83 or 1.21.
    from genegrad import GradientModel

    Z, Y, _ = flat_plane()
    model = GradientModel(n_neighbors=20, n_dims=2).fit(Y)
    rng = np.random.default_rng(5)
    R = 400
    F = 2 * Z[:, :1] + 0.3 * rng.standard_normal((len(Z), R))
    res = model.gradients(F)
    for j, t in enumerate(model.scales_):
        g = res.gradients[:, :, :, j].astype(np.float64)
        spread = ((g - g.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean(axis=1) * R / (R - 1)
        reported = (res.se[:, :, j].astype(np.float64) ** 2).mean(axis=1)
        ratio = float(np.mean(spread / reported))
        assert ratio == pytest.approx(1.0, abs=0.03 if t == 0 else 0.08), (t, ratio)


def test_stream_plots_follow_each_genes_gradient(plane):
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    a, Z, _ = plane
    b = a.copy()
    b.obsm["X_latent"] = Z.astype(np.float32)  # the plane's own coordinates: grad z0 = (1, 0), grad z1 = (0, 1)
    gg.tl.gradients(b, ["z0", "z1"])
    for gene, along in (("z0", 0), ("z1", 1)):
        ax = gg.pl.gradient_stream(b, gene, basis="X_latent", scale=1)
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert lines, "no streamlines drawn"
        seg = np.concatenate([s[1:] - s[:-1] for c in lines for s in c.get_segments()])
        length = np.linalg.norm(seg, axis=1)
        assert length.sum() > 5  # streamlines cover the plane ([-1, 1]^2), not a dot
        share = np.abs(seg[:, along]).sum() / length.sum()
        assert share > 0.99, (gene, share)  # every streamline runs along the gene's gradient
        plt.close(ax.figure)


def test_terminal_cells_are_certain_and_cells_without_a_way_out_are_nan():
    import warnings

    a = _line()
    # 30 cells far from the line, a graph component of their own without a terminal state
    rng = np.random.default_rng(7)
    far = ad.AnnData(np.full((30, a.n_vars), 3.0, dtype=np.float32), var=a.var.copy(),
                     obs=pd.DataFrame({"x": np.nan, "biased": False}, index=[f"far{i}" for i in range(30)]))
    far.obsm["X_pca"] = (50 + rng.standard_normal((30, 5))).astype(np.float32)
    b = ad.concat([a, far])
    b.obs["terminal"] = pd.Categorical(list(a.obs["terminal"]) + [None] * 30, categories=["A", "B"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gg.GenegradWarning)  # the two components, said twice
        gg.pp.manifold(b, n_dims=1, n_neighbors=20)
        run_fate_bias(b, "terminal", fine_weight=0.0, n_program_genes=2)
    p = b.obsm["genegrad_fate_probs"]
    term = b.obs["terminal"].to_numpy()
    for fate in ("A", "B"):
        np.testing.assert_array_equal(p.loc[term == fate, fate], 1.0)  # set exactly, not solved
        np.testing.assert_array_equal(p.loc[term == fate].drop(columns=fate), 0.0)
    assert p.iloc[-30:].isna().all().all()
    assert p.iloc[:-30].notna().all().all()


def test_the_multigrid_solver_agrees_with_the_direct_one(line_fates, monkeypatch):
    from genegrad._core import _fate

    monkeypatch.setattr(_fate, "DIRECT_MAX", 0)  # large data's path: GMRES preconditioned by multigrid
    b = line_fates.copy()
    run_fate_bias(b, "terminal", fine_weight=0.0, n_program_genes=2)
    np.testing.assert_allclose(b.obsm["genegrad_fate_probs"].to_numpy(),
                               line_fates.obsm["genegrad_fate_probs"].to_numpy(), atol=1e-7)


def test_fate_effects_by_hand():
    from genegrad._core._fate import fate_effects

    # 6 cells: two of fate 0, two of fate 1, two progenitors (ignored); gene 0 is 2 in fate 0 and 0 in fate 1
    F = np.array([[2.0, 1.0], [2.0, 3.0], [0.0, 1.0], [0.0, 3.0], [9.0, 9.0], [-9.0, 9.0]])
    labels = np.array([0, 0, 1, 1, -1, -1])
    eff = fate_effects(F, labels, n_fates=2)
    # gene 0 over the terminal cells: mean 1, sd 1; fate 0's mean 2, the others' 0: effect (2 - 0) / 1 = 2
    np.testing.assert_allclose(eff[:, 0], [2.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(eff[:, 1], [0.0, 0.0], atol=1e-6)  # gene 1 is the same in both fates
    from scipy import sparse

    np.testing.assert_allclose(fate_effects(sparse.csr_matrix(F), labels, n_fates=2), eff, atol=1e-12)


def test_a_fate_without_an_up_gene_is_refused():
    a = _line()
    b = a[:, ["upA", "noisyA"]].copy()  # nothing rises towards B
    with pytest.raises(ValueError, match="No gene is up in terminal state 1"):
        gg.tl.fate_bias(b, "terminal", fine_weight=0.0)


def test_tilted_transitions_in_closed_form():
    from scipy import sparse

    from genegrad._core._fate import tilted_transitions

    # three cells at x = 0, 1, 2, every pair linked with weight 1; the flow at the middle cell points to +x
    Y = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    K = sparse.csr_matrix(np.ones((3, 3)) - np.eye(3))
    v = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0]])
    beta = 0.7
    T = tilted_transitions(K, Y, v, beta=beta).toarray()
    e = np.exp(beta)
    np.testing.assert_allclose(T[1], [1 / e / (e + 1 / e), 0.0, e / (e + 1 / e)], rtol=1e-12)  # cos = -1, +1
    np.testing.assert_allclose(T[0], [0.0, 0.5, 0.5], rtol=1e-12)  # no flow: the plain diffusion step
    # a step at 60 degrees to the flow: cos = 1/2
    Y2 = np.array([[0.0, 0.0], [0.5, np.sqrt(3) / 2], [-1.0, 0.0]])
    T2 = tilted_transitions(sparse.csr_matrix([[0, 1.0, 1.0], [1, 0, 0], [1, 0, 0]]), Y2,
                            np.array([[1.0, 0.0], [0, 0], [0, 0]]), beta=beta).toarray()
    w = np.array([np.exp(beta / 2), np.exp(-beta)])
    np.testing.assert_allclose(T2[0, 1:], w / w.sum(), rtol=1e-12)


def test_forward_affinities_in_closed_form():
    from scipy import sparse

    from genegrad._core._fate import forward_affinities

    K = sparse.csr_matrix(np.array([[0, 2.0, 1.0, 1.0], [2.0, 0, 1.0, 0], [1.0, 1.0, 0, 0], [1.0, 0, 0, 0]]))
    tau = np.array([0.0, 0.5, 1.0, np.nan])  # the 99th percentile of the finite times is ~1: tau stays as it is
    top = np.percentile(tau[:3], 99)
    b = 10.0
    out = forward_affinities(K, tau, strength=b).toarray()

    def back(i, j):  # CellRank's soft scheme for a step from i back to j
        return 2.0 / (1.0 + np.exp(b * (tau[i] - tau[j]) / top)) ** 2

    expected = np.array([[0, 2.0, 1.0, 1.0],  # from the earliest cell every step is forward (or to no time)
                         [2.0 * back(1, 0), 0, 1.0, 0],
                         [back(2, 0), back(2, 1), 0, 0],
                         [1.0, 0, 0, 0]])  # a cell without a time keeps its edges
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_fine_agreement_is_the_spearman_correlation_over_progenitors():
    from genegrad._core._fate import fine_agreement

    labels = np.array([-1, -1, -1, -1, -1, 0, 1])
    chain = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6], [0.5, 0.5], [1, 0], [0, 1]])
    z = np.c_[[1.0, 2.0, 3.0, 5.0, 4.0, 99, -99], [0.0, 0.0, 0.0, 0.0, 0.0, 0, 0]]
    out = fine_agreement(z, chain, labels)
    # ranks of z[:, 0] over the progenitors: 1 2 3 5 4 against 1 2 3 4 5: rho = 1 - 6 * 2 / (5 * 24) = 0.9
    assert out[0] == pytest.approx(0.9)
    assert np.isnan(out[1])  # a constant score has no ranking
    assert np.isnan(fine_agreement(z[[0, 1, 5, 6]], chain[[0, 1, 5, 6]], labels[[0, 1, 5, 6]])).all()  # 2 cells


def test_a_root_orients_the_chain_away_from_it(line_fates):
    x = line_fates.obs["x"].to_numpy()
    root = int(np.flatnonzero(x > 0.1)[0])  # a progenitor next to A's terminal stretch
    b = line_fates.copy()
    run_fate_bias(b, "terminal", root=root, fine_weight=0.0, n_program_genes=2)
    mid = np.abs(x - 0.5) < 0.05
    harmonic = line_fates.obsm["genegrad_fate_probs"]["B"].to_numpy()[mid]
    oriented = b.obsm["genegrad_fate_probs"]["B"].to_numpy()[mid]
    assert harmonic.mean() == pytest.approx(0.5, abs=0.05)
    assert oriented.mean() > 0.8  # steps back towards the root (and A) are down-weighted
    t = b.obs["genegrad_pseudotime"].to_numpy()
    np.testing.assert_array_equal(t[root], 0.0)
    from scipy.stats import spearmanr

    assert spearmanr(np.abs(x - x[root]), t).statistic > 0.99  # the graph pseudotime is the distance along x


def test_pseudotime_is_the_distance_along_the_line():
    # cells on a line: the geodesic distance from the leftmost cell is x - x0 (edges join near neighbours on a
    # straight line, so the path length equals the span; the little noise across it and the smoothing of the
    # coordinates shorten or lengthen it by well under 5%)
    a = _line()
    gg.tl.pseudotime(a, root="c0")
    x = a.obs["x"].to_numpy()
    t = a.obs["genegrad_pseudotime"].to_numpy()
    assert t[0] == 0
    np.testing.assert_allclose(t, x - x[0], atol=0.05 * (x[-1] - x[0]))
    right = int(np.argmax(x))
    b = gg.tl.pseudotime(a, root=right, copy=True)
    np.testing.assert_allclose(b.obs["genegrad_pseudotime"].to_numpy(), x[right] - x, atol=0.05)
