"""tl.patterns on synthetic data with known pattern classes: keys, structure test, determinism, round trip."""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import genegrad as gg


@pytest.fixture(scope="module")
def patterned():
    adata = gg.datasets.synthetic("plane", n_cells=1500, n_genes=150, depth=2000, rng=4)
    gg.pp.preprocess(adata, n_comps=20)
    gg.pp.manifold(adata, n_neighbors=25)
    gg.tl.patterns(adata, genes=list(adata.var_names), n_null=150)
    return adata


def test_keys_and_shapes(patterned):
    adata = patterned
    assert adata.varm["genegrad_descriptors"].shape == (150, len(gg.get.descriptors(adata).columns) - 6, 5)
    assert adata.varm["genegrad_descriptors"].dtype == np.float32  # genes x descriptors x scales: half the bytes
    assert adata.var["genegrad_pattern"].dtype == "category"
    assert set(adata.var["genegrad_pattern"].cat.categories) >= {"P0", "noise"}
    df = gg.get.descriptors(adata)
    assert df.shape[0] == 150
    assert df["qval"].between(0, 1).all()
    assert adata.uns["genegrad"]["patterns"]["params"]["structure_test_cells"] == 1500  # under the sample size
    assert adata.uns["genegrad"]["patterns"]["params"]["layer"] == "X"
    assert adata.uns["genegrad"]["patterns"]["params"]["n_patterns"] == -1  # chosen from the data


def test_structure_score_rankspatterned_genes_above_noise(patterned):
    adata = patterned
    truth = adata.var["pattern"].to_numpy() != "noise"
    # 1,500 cells at 2,000 UMIs: amplitudes 1-2 on the log scale against NB noise; Moran's I on the same data
    # scores ~0.99, so 0.9 is a loose bar that a broken score (or a sign error) cannot pass
    assert roc_auc_score(truth, adata.var["genegrad_structured_score"]) > 0.9


def test_ramps_cluster_together(patterned):
    adata = patterned
    ramps = adata.var.loc[adata.var["pattern"] == "ramp", "genegrad_pattern"].astype(str)
    # the most common pattern of the true ramps holds most of them
    assert ramps.value_counts().iloc[0] / len(ramps) > 0.6


def test_deterministic_and_copy_leaves_input(patterned):
    adata = patterned
    base = adata.copy()
    for k in ("genegrad_descriptors",):
        del base.varm[k]
    before = base.copy()
    out = gg.tl.patterns(base, genes=list(base.var_names), n_null=150, copy=True)
    assert "genegrad_descriptors" not in base.varm
    assert before.var.equals(base.var)
    np.testing.assert_array_equal(out.varm["genegrad_descriptors"], adata.varm["genegrad_descriptors"])
    assert (out.var["genegrad_pattern"].astype(str) == adata.var["genegrad_pattern"].astype(str)).all()


def test_dask_backend_describes_on_the_workers(patterned):
    # the descriptors of each chunk are computed on the dask workers (only per-gene numbers come back) and
    # must equal the threaded numpy run to float32 round-off; the same genes are structured
    if not os.environ.get("GENEGRAD_REQUIRE_OPTIONAL"):
        pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    adata = patterned
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        out = gg.tl.patterns(adata, genes=list(adata.var_names), n_null=150, backend="dask", scheduler=client,
                             copy=True)
    np.testing.assert_allclose(out.varm["genegrad_descriptors"], adata.varm["genegrad_descriptors"], rtol=1e-3,
                               atol=1e-5)
    assert (out.var["genegrad_structured"] == adata.var["genegrad_structured"]).all()


def test_h5ad_round_trip(patterned, tmp_path):
    path = tmp_path / "p.h5ad"
    patterned.write_h5ad(path)
    back = ad.read_h5ad(path)
    np.testing.assert_array_equal(back.varm["genegrad_descriptors"], patterned.varm["genegrad_descriptors"])
    assert gg.get.descriptors(back).equals(gg.get.descriptors(patterned))


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"fdr": 1.5}, ValueError, "fdr"),
    ({"scale": 3}, ValueError, "scale"),
    ({"genes": ["nope"]}, KeyError, "nope"),
    ({"n_patterns": 0}, ValueError, "n_patterns"),
    ({"n_patterns": 2.5}, TypeError, "`n_patterns` to be an int"),
    ({"n_null": 5}, ValueError, "`n_null` in"),
    ({"n_null": 20.5}, TypeError, "`n_null` to be an int"),
    ({"n_module_genes": 1}, ValueError, "`n_module_genes` in"),
    ({"module_threshold": 1.5}, ValueError, "`module_threshold` in"),
])
def test_bad_arguments_leave_adata_untouched(patterned, kwargs, exc, match):
    adata = patterned.copy()
    before = adata.copy()
    with pytest.raises(exc, match=match):
        gg.tl.patterns(adata, **kwargs)
    assert adata.var.equals(before.var)
    np.testing.assert_array_equal(adata.varm["genegrad_descriptors"], before.varm["genegrad_descriptors"])


def test_gradient_similarity_frame(patterned):
    genes = list(patterned.var_names[:4])
    S = gg.get.gradient_similarity(patterned, genes)
    assert list(S.index) == genes
    np.testing.assert_allclose(S.to_numpy(), S.to_numpy().T, atol=1e-12)
    assert np.nanmax(np.abs(S.to_numpy())) <= 1 + 1e-9


def test_structure_test_is_calibrated_on_flat_genes():
    # 90 of the 300 genes are flat (a fixed share of each cell's counts, so their log-normalised values carry
    # depth and sampling noise only). Their p-values must be uniform: the share below 0.05 is ~Binomial(90, 0.05)
    # / 90 (sd 0.023) and shares one null sample of 300 genes (sd of its 95th percentile ~0.013): 0.15 is over
    # 3 sd above 0.05. The median p is 0.5 +- 0.06 (3 sd). Testing on the manifold's own graph (holdout=False),
    # which the flat genes helped build, gives 41-48% below 0.05 and a median p of 0.09-0.14 on these data.
    adata = gg.datasets.synthetic("plane", n_cells=3000, n_genes=300, depth=2000, rng=0)
    gg.pp.preprocess(adata, n_top_genes=300, n_comps=20)
    gg.pp.manifold(adata, n_neighbors=25)
    gg.tl.patterns(adata, genes=list(adata.var_names), n_null=300)
    flat = adata.var["pattern"].to_numpy() == "noise"
    p = adata.var["genegrad_structured_pval"].to_numpy()[flat]
    assert (p < 0.05).mean() < 0.15
    assert 0.3 < np.median(p) < 0.7
    # and the structured genes are all still found
    q = adata.var["genegrad_structured_qval"].to_numpy()[~flat]
    assert (q < 0.05).mean() > 0.95


def test_too_few_genes_for_held_out_graphs_warns_and_tests_on_the_manifold(patterned, monkeypatch):
    import warnings

    import genegrad.tl._patterns as tp

    adata = patterned.copy()
    adata.var["highly_variable"] = False
    adata.var.iloc[:12, adata.var.columns.get_loc("highly_variable")] = True
    monkeypatch.setattr(tp, "STRUCTURE_SAMPLE", 700)  # the manifold's own graph joins all cells: no sample
    with pytest.warns(UserWarning, match="at least 20 genes"):
        out = gg.tl.patterns(adata, genes=list(adata.var_names), n_null=150, copy=True)
    assert np.isfinite(out.var["genegrad_structured_score"]).all()
    # the warning is kept with the results (the report lists them)
    assert any("at least 20 genes" in w for w in out.uns["genegrad"]["patterns"]["warnings"])
    # exactly 20 (two folds of 10) are enough: held-out graphs, no warning
    adata.var["highly_variable"] = np.arange(adata.n_vars) < 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gg.tl.patterns(adata, genes=list(adata.var_names), n_null=150, copy=True)
    # without highly variable genes the folds are drawn from the genes described: 12 of them here
    del adata.var["highly_variable"]
    with pytest.warns(UserWarning, match=r"at least 20 genes .*\(got 12\)"):
        gg.tl.patterns(adata, genes=list(adata.var_names[:12]), n_null=150, copy=True)


def test_without_highly_variable_genes_the_folds_are_drawn_from_the_described_genes(patterned):
    from genegrad.tl._patterns import _fold_pool

    adata = patterned.copy()
    del adata.var["highly_variable"]
    genes = list(adata.var_names[10:60])
    np.testing.assert_array_equal(_fold_pool(adata, genes, notes=[]), np.arange(10, 60))
    adata.var["highly_variable"] = np.arange(adata.n_vars) % 3 == 0  # given, they are the pool
    np.testing.assert_array_equal(_fold_pool(adata, genes, notes=[]), np.arange(0, adata.n_vars, 3))


def test_region_counts_on_a_cycle():
    # on a circle a bump and a ramp (the first harmonic) have one high region, a transient (a Gaussian along a
    # projection of the circle, cut twice by the projection's level line) two, the 2nd/3rd harmonics two or three
    adata = gg.datasets.synthetic("cycle", n_cells=2000, n_genes=120, depth=2000, rng=3)
    gg.pp.preprocess(adata, n_comps=20)
    gg.pp.manifold(adata, n_neighbors=25)
    gg.tl.patterns(adata, genes=list(adata.var_names), n_null=100)
    assert adata.uns["genegrad"]["patterns"]["params"]["region_counts"]  # d = 1: on by default
    df = gg.get.descriptors(adata)
    peaks = df.groupby(adata.var["pattern"].astype(str).to_numpy())["peaks"].median()
    # the count averages 8 levels from 20% to 90% of the range; at 2,000 cells the lowest levels sit in the
    # baseline's noise, which joins a transient's two peaks there: two peaks at most levels, not all
    assert peaks["bump"] == pytest.approx(1, abs=0.2)
    assert peaks["ramp"] == pytest.approx(1, abs=0.2)
    assert 1.5 <= peaks["transient"] <= 2.1
    assert peaks["periodic"] >= 1.7
    # the transients and the bumps fall in different patterns
    pat = adata.var["genegrad_pattern"].astype(str)
    top = {c: pat[adata.var["pattern"] == c].value_counts().index[0] for c in ("bump", "transient")}
    assert top["bump"] != top["transient"]


def test_region_counts_off_by_default_on_a_plane(patterned):
    assert not patterned.uns["genegrad"]["patterns"]["params"]["region_counts"]


def test_each_gene_is_tested_on_the_graph_it_did_not_build(patterned, monkeypatch):
    """The held-out graphs: the highly variable genes split into two folds, each fold builds one graph, and each
    of its genes is tested on the other fold's graph; genes in neither fold are spread over both graphs."""
    from scipy import sparse

    from genegrad._core import _holdout
    from genegrad.pp._manifold import load_model
    from genegrad.tl import _patterns as tp
    from genegrad.tl._signal import read_signal

    adata = patterned.copy()
    outside = np.arange(40)  # 40 genes left out of the highly variable ones: in neither fold
    adata.var.iloc[outside, adata.var.columns.get_loc("highly_variable")] = False
    genes = list(adata.var_names)
    F = read_signal(adata, None, np.arange(adata.n_vars))
    Fd = F.toarray() if sparse.issparse(F) else np.asarray(F)
    column_of = {Fd[:, j].tobytes(): j for j in range(Fd.shape[1])}
    assert len(column_of) == Fd.shape[1]  # every gene's column is its own
    built = []

    options = []

    def record(X, **kwargs):  # the graph stands for the genes that built it
        X = X.toarray() if sparse.issparse(X) else np.asarray(X)
        built.append({column_of[X[:, c].tobytes()] for c in range(X.shape[1])})
        options.append(kwargs)
        return len(built) - 1

    monkeypatch.setattr(_holdout, "fold_graph", record)
    adata.uns["genegrad"]["params"]["knn_method"] = "exact"  # as if the manifold's search had been exact
    model = load_model(adata)
    pool = tp._fold_pool(adata, genes, notes=[])
    graphs, fold = tp._test_graphs(adata, model, genes, pool=pool, F=F, cells=np.arange(adata.n_obs), layer=None,
                                   key="genegrad", rng=np.random.default_rng(0))
    assert graphs == [0, 1]
    # each fold's graph is built like the manifold's
    assert options[0] == options[1] == {"n_comps": adata.obsm["X_pca"].shape[1], "n_neighbors": 25,
                                        "alpha": model.alpha, "knn_method": "exact",
                                        "random_state": model.random_state, "embed": None}
    hvg = set(np.flatnonzero(adata.var["highly_variable"].to_numpy()))
    assert not built[0] & built[1]
    assert built[0] | built[1] == hvg
    assert abs(len(built[0]) - len(built[1])) <= 1  # two halves
    for h in range(2):
        assert (fold[sorted(built[h])] == 1 - h).all()
    assert set(fold[outside]) == {0, 1}


def test_on_many_cells_the_structure_test_runs_on_a_sample_of_them(patterned, monkeypatch, caplog):
    """Above STRUCTURE_SAMPLE cells, the held-out test is the test of the AnnData cut to a fixed random sample
    of cells: the same scores and p-values (graphs, depth deciles and signal of the sampled cells alone)."""
    import logging

    import genegrad.tl._patterns as tp
    from genegrad._core._descriptors import sample_cells
    from genegrad.pp._manifold import load_model
    from genegrad.tl._signal import read_signal

    adata = patterned
    model = load_model(adata)

    def test(a, F, genes):
        return tp._structure_test(a, model, F, genes=genes, layer=None, key="genegrad", depth_key="total_counts",
                                  notes=[], n_null=100, holdout=True, rng=np.random.default_rng(1), n_jobs=1,
                                  progress=False)

    cells = sample_cells(adata.n_obs, 700)
    assert cells.size == 700
    assert np.unique(cells).size == 700
    genes = list(adata.var_names)
    F = read_signal(adata, None, np.arange(adata.n_vars))
    full = test(adata[cells].copy(), F[cells], genes)
    # 40 genes: the folds' other genes are read from the AnnData, at the sampled cells too
    some = list(adata.var_names[:40])
    F_some = read_signal(adata, None, np.arange(40))
    full_some = test(adata[cells].copy(), F_some[cells], some)
    monkeypatch.setattr(tp, "STRUCTURE_SAMPLE", 700)
    with caplog.at_level(logging.INFO, logger="genegrad.tl._patterns"):
        sampled = test(adata, F, genes)
    for got, want in zip(test(adata, F_some, some), full_some, strict=True):
        np.testing.assert_array_equal(got, want)
    assert sampled[2] == 700
    assert "structure test on a random sample of 700 of the 1500 cells" in caplog.messages
    np.testing.assert_array_equal(sampled[0], full[0])
    np.testing.assert_array_equal(sampled[1], full[1])
    # and they are not the scores of all cells (the sample is used, not ignored)
    monkeypatch.setattr(tp, "STRUCTURE_SAMPLE", adata.n_obs)
    assert not np.allclose(test(adata, F, genes)[0], sampled[0])


def test_depth_strata_are_deciles_of_the_depth():
    """The structure test's strata: deciles of obs[depth_key], else of the counts layer's totals; none without."""
    from scipy import sparse

    from genegrad.tl._patterns import _depth_strata

    depth = np.random.default_rng(0).permutation(100).astype(float) + 1.0
    a = ad.AnnData(X=np.zeros((100, 2), dtype=np.float32))
    a.obs["total_counts"] = depth
    every = np.arange(100)
    strata = _depth_strata(a, "total_counts", cells=every)
    np.testing.assert_array_equal(strata, (depth - 1) // 10)  # ten strata of ten cells, by depth
    # on a sample of cells, the deciles are the sample's: the 50 deepest cells make ten strata of five
    deep = np.flatnonzero(depth > 50)
    np.testing.assert_array_equal(_depth_strata(a, "total_counts", cells=deep), (depth[deep] - 51) // 5)
    counts = np.zeros((100, 2), dtype=np.float32)
    counts[:, 0] = depth
    a.layers["counts"] = sparse.csr_matrix(counts)
    np.testing.assert_array_equal(_depth_strata(a, "nope", cells=every), strata)  # no such column: the counts'
    np.testing.assert_array_equal(_depth_strata(a, "nope", cells=deep), (depth[deep] - 51) // 5)  # totals
    assert _depth_strata(a, None, cells=every) is None
    del a.layers["counts"]
    assert _depth_strata(a, "nope", cells=every) is None


def test_the_summary_and_the_modules_follow_the_genes(patterned):
    """uns summary: each pattern's number of genes and mean descriptors at the clustering scale, from var and
    varm; modules only among the n_module_genes most structured genes; constant genes score -inf with p = 1."""
    import pandas as pd

    adata = patterned
    info = adata.uns["genegrad"]["patterns"]
    summary = pd.DataFrame({k: v for k, v in info["summary"].items() if k != "pattern"}, index=info["summary"]["pattern"])
    t = list(info["scales"]).index(info["scale"])
    assert t == len(info["scales"]) - 1  # the largest scale by default
    pattern = adata.var["genegrad_pattern"].astype(str).to_numpy()
    names = list(info["descriptors"])
    for c in summary.index:
        sel = pattern == c
        assert summary.loc[c, "n_genes"] == sel.sum()
        for i in (0, names.index("peakedness"), len(names) - 1):
            assert summary.loc[c, names[i]] == pytest.approx(np.nanmean(adata.varm["genegrad_descriptors"][sel, i, t]))
    typ = adata.var["genegrad_pattern_typicality"].to_numpy()
    structured = adata.var["genegrad_structured"].to_numpy()
    assert np.isnan(typ[~structured]).all()
    assert (typ[structured] > 0).all()
    assert (typ[structured] <= 1).all()

    a = adata.copy()
    a.X = a.X.toarray()
    a.X[:, 0] = 2.0  # constant: no structure to test
    out = gg.tl.patterns(a, genes=list(a.var_names), n_null=150, n_module_genes=10, copy=True)
    assert out.var["genegrad_structured_score"].iloc[0] == -np.inf
    assert out.var["genegrad_structured_pval"].iloc[0] == pytest.approx(1.0, abs=0.0)
    assert not out.var["genegrad_structured"].iloc[0]
    score = out.var["genegrad_structured_score"].where(out.var["genegrad_structured"])
    top = set(score.sort_values(ascending=False).index[:10])
    in_module = set(out.var_names[out.var["genegrad_module"].notna().to_numpy()])
    assert len(in_module) >= 2
    assert in_module <= top


def test_column_sd_is_the_population_sd_sparse_or_dense():
    from scipy import sparse

    from genegrad.tl._patterns import _column_sd

    X = np.random.default_rng(0).poisson(1.0, size=(50, 4)).astype(float)
    np.testing.assert_allclose(_column_sd(sparse.csc_matrix(X)), X.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(_column_sd(sparse.csr_matrix(X)), X.std(axis=0), rtol=1e-12)  # read in place
    np.testing.assert_allclose(_column_sd(X), X.std(axis=0), rtol=1e-12)


def test_options_reach_the_patterns(patterned, capsys, caplog):
    """n_patterns, key and progress are used: a given number of patterns is kept, a manifold under another key
    is read, and the progress bars and the log say what runs."""
    import logging

    from conftest import under_key

    a = under_key(patterned, "gx")
    with caplog.at_level(logging.INFO, logger="genegrad"):  # at INFO the bars show unless told not to
        gg.tl.patterns(a, genes=list(a.var_names), n_null=150, n_patterns=2, key="gx", progress=False)
    pattern = a.var["gx_pattern"].astype(str)
    assert sorted(set(pattern[a.var["gx_structured"].to_numpy()])) == ["P0", "P1"]
    assert a.uns["gx"]["patterns"]["params"]["n_patterns"] == 2
    n_hvg = int(a.var["highly_variable"].sum())
    assert f"structure test: graph of gene fold 1 of 2 ({(n_hvg + 1) // 2} genes)" in caplog.messages
    assert "descriptors" not in capsys.readouterr().err
    with caplog.at_level(logging.WARNING, logger="genegrad"):  # and at WARNING they show when asked
        gg.tl.patterns(a, genes=list(a.var_names), n_null=150, key="gx", progress=True)
    err = capsys.readouterr().err
    assert "descriptors: 100%" in err
    assert "structure test: 100%" in err


def test_two_structured_genes_are_enough_for_a_pattern(patterned, monkeypatch):
    """Patterns and modules are formed as soon as two genes are structured: both get one, the others are noise."""
    import genegrad.tl._patterns as tp

    genes = list(patterned.var_names[:30])
    a = patterned.copy()
    X = a.X.tolil()
    X[:, 17] = X[:, 3]  # the two structured genes are one signal: one module of two
    a.X = X.tocsr()

    def two_structured(adata, model, F, *, genes, **kwargs):
        pval = np.ones(len(genes))
        pval[[3, 17]] = 1e-6
        return np.linspace(1.0, 2.0, len(genes)), pval, adata.n_obs

    monkeypatch.setattr(tp, "_structure_test", two_structured)
    out = gg.tl.patterns(a, genes=genes, n_null=20, copy=True)
    pattern = out.var.loc[genes, "genegrad_pattern"].astype(str).to_numpy()
    assert list(np.flatnonzero(pattern != "noise")) == [3, 17]
    module = out.var.loc[genes, "genegrad_module"]
    assert list(np.flatnonzero(module.notna().to_numpy())) == [3, 17]
    assert module.iloc[3] == module.iloc[17]


def test_every_gradient_pass_of_patterns_runs_where_it_was_asked(patterned, monkeypatch):
    """The descriptors' and the modules' passes over the genes get the backend and threads asked for."""
    from genegrad._core._model import GradientModel

    seen = []
    original = GradientModel.iter_gradients

    def spy(self, F, **kwargs):
        seen.append((kwargs.get("backend"), kwargs.get("n_jobs")))
        return original(self, F, **kwargs)

    monkeypatch.setattr(GradientModel, "iter_gradients", spy)
    out = gg.tl.patterns(patterned, genes=list(patterned.var_names), n_null=150, n_jobs=1, copy=True)
    assert (out.var["genegrad_module"].notna()).sum() >= 2  # modules were formed: their pass ran too
    assert len(seen) == 2  # the descriptors, then the modules
    assert set(seen) == {("numpy", 1)}


def test_without_a_depth_the_log_says_the_null_permutes_over_all_cells(patterned, caplog):
    import logging

    a = patterned.copy()
    del a.layers["counts"]
    with caplog.at_level(logging.INFO, logger="genegrad"):
        gg.tl.patterns(a, genes=list(a.var_names[:30]), n_null=20, depth_key="nope", copy=True)
    assert "no `obs['nope']` nor counts layer: the null permutes over all cells" in caplog.messages


def test_patterns_read_the_layer_asked_for(patterned):
    genes = list(patterned.var_names[:30])
    a = patterned.copy()
    a.layers["alt"] = a.X[np.random.default_rng(0).permutation(a.n_obs)]  # the cells shuffled: no structure
    on_layer = gg.tl.patterns(a, genes=genes, layer="alt", n_null=20, copy=True)
    b = patterned.copy()
    b.X = a.layers["alt"]
    on_x = gg.tl.patterns(b, genes=genes, n_null=20, copy=True)
    np.testing.assert_array_equal(on_layer.varm["genegrad_descriptors"], on_x.varm["genegrad_descriptors"])
    np.testing.assert_array_equal(on_layer.var["genegrad_structured_score"], on_x.var["genegrad_structured_score"])
    assert on_layer.uns["genegrad"]["patterns"]["params"]["layer"] == "alt"
