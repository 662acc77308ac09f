"""Bad input: the exception and message each public function gives, and an AnnData left exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
from anndata.tests.helpers import assert_equal

import genegrad as gg


@pytest.fixture(scope="module")
def _prepped():
    adata = gg.datasets.synthetic("cycle", n_cells=120, n_genes=40, rng=0)
    gg.pp.preprocess(adata, n_comps=8)
    return adata


@pytest.fixture
def prepped(_prepped):
    return _prepped.copy()


@pytest.fixture
def fitted(prepped):
    gg.pp.manifold(prepped, n_neighbors=10)
    return prepped


def _nan_x(a):
    a.X = a.X.toarray()
    a.X[0, 0] = np.nan
    return a


def _dup_var(a):
    a.var_names = ["same"] * a.n_vars
    return a


CASES = [
    # (name, setup on a preprocessed AnnData, call, exception, message)
    ("missing representation", lambda a: a, lambda a: gg.pp.manifold(a, use_rep="X_umap"), KeyError,
     r"adata.obsm\['X_umap'\]` not found .*run `genegrad.pp.preprocess`"),
    ("more neighbours than cells", lambda a: a, lambda a: gg.pp.manifold(a, n_neighbors=500), ValueError,
     r"more cells than `n_neighbors`: got 120 cells"),
    ("n_neighbors too small", lambda a: a, lambda a: gg.pp.manifold(a, n_neighbors=1), ValueError,
     r"Expected `n_neighbors` in \[2, inf\], got 1"),
    ("manifold: zero threads", lambda a: a, lambda a: gg.pp.manifold(a, n_jobs=0), ValueError,
     r"Expected `n_jobs` to be a non-zero integer \(-1: every core\) or None \(1 thread\), got 0"),
    ("negative frame averaging", lambda a: a, lambda a: gg.pp.manifold(a, frame_averaging=-1), ValueError,
     r"Expected `frame_averaging` in \[0, 5\], got -1"),
    ("empty scales", lambda a: a, lambda a: gg.pp.manifold(a, scales=()), ValueError, r"at least one scale"),
    ("negative scale", lambda a: a, lambda a: gg.pp.manifold(a, scales=(0, -1)), ValueError, r"non-negative"),
    ("fractional scale", lambda a: a, lambda a: gg.pp.manifold(a, scales=(0, 1.5)), ValueError, r"non-negative integers"),
    ("n_dims above p", lambda a: a, lambda a: gg.pp.manifold(a, n_dims=50), ValueError, r"Expected `n_dims` in \[1, 8\]"),
    ("NaN in representation", lambda a: a.obsm.__setitem__("X_pca", np.full_like(a.obsm["X_pca"], np.nan)) or a,
     lambda a: gg.pp.manifold(a), ValueError, r"`X_pca` contains \d+ NaN or infinite"),
    ("no manifold yet", lambda a: a, lambda a: gg.tl.gradients(a), KeyError, r"run `genegrad.pp.manifold` first"),
    ("missing scanpy graph", lambda a: a, lambda a: gg.pp.manifold(a, neighbors_key="neighbors"), KeyError,
     r"run `scanpy.pp.neighbors` first"),
    ("bad rng type", lambda a: a, lambda a: gg.datasets.synthetic("plane", rng="x"), TypeError, r"Expected `rng`"),
    ("unknown manifold", lambda a: a, lambda a: gg.datasets.synthetic("torus"), ValueError, r"Expected `kind` in"),
]


@pytest.mark.parametrize(("name", "setup", "call", "exc", "match"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_and_leaves_adata_untouched(prepped, name, setup, call, exc, match):
    a = setup(prepped)
    before = a.copy()
    with pytest.raises(exc, match=match):
        call(a)
    assert_equal(a, before)


FITTED_CASES = [
    ("genes not found", lambda a: gg.tl.gradients(a, ["nope", "nada"]), KeyError,
     r"Genes not found in `adata.var_names`: \['nope', 'nada'\]"),
    ("empty gene list", lambda a: gg.tl.gradients(a, []), ValueError, r"at least one gene"),
    ("missing layer", lambda a: gg.tl.gradients(a, layer="spliced"), KeyError, r"layers\['spliced'\]` not found"),
    ("NaN signal", lambda a: gg.tl.gradients(_nan_x(a)), ValueError, r"`adata.X` contains 1 NaN"),
    ("duplicated genes", lambda a: gg.tl.gradients(_dup_var(a)), ValueError, r"var_names_make_unique"),
    ("memory budget", lambda a: gg.tl.gradients(a, memory_gb=1e-5), MemoryError, r"pass fewer `genes`"),
    ("gradients not computed", lambda a: gg.get.gradients(a, a.var_names[:1]), KeyError, r"run `genegrad.tl.gradients`"),
    ("unknown backend", lambda a: gg.tl.gradients(a, backend="jax"), ValueError, r"Expected `backend` in"),
    ("scheduler without dask", lambda a: gg.tl.gradients(a, scheduler="tcp://x:1"), ValueError,
     r"`scheduler` is for backend='dask'"),
    ("patterns: fdr out of range", lambda a: gg.tl.patterns(a, fdr=2), ValueError, r"Expected `fdr` in \[0.0, 1.0\]"),
    ("patterns: one gene", lambda a: gg.tl.patterns(a, genes=[a.var_names[0]]), ValueError, r"at least 2 genes"),
    ("patterns: unknown scale", lambda a: gg.tl.patterns(a, scale=3), ValueError, r"Expected `scale` in"),
    ("patterns: holdout as text", lambda a: gg.tl.patterns(a, holdout="no"), TypeError,
     r"Expected `holdout` to be True or False"),
    ("patterns: region counts as text", lambda a: gg.tl.patterns(a, region_counts="yes"), TypeError,
     r"Expected `region_counts` to be True, False or None"),
    ("descriptors not computed", lambda a: gg.get.descriptors(a), KeyError, r"run `genegrad.tl.patterns` first"),
    ("fate: missing obs key", lambda a: gg.tl.fate_bias(a, "nope"), KeyError, r"adata.obs\['nope'\]"),
    ("fate: zero threads", lambda a: gg.tl.fate_bias(a, "nope", n_jobs=0), ValueError, r"non-zero integer"),
    ("patterns: threads as text", lambda a: gg.tl.patterns(a, n_jobs="all"), ValueError, r"Expected `n_jobs`"),
    ("fate: states naming no cells", lambda a: gg.tl.fate_bias(a, ["X", "Y"], groupby="total_counts"), ValueError,
     r"Terminal states \['X', 'Y'\] name no cells"),
    ("fate: unknown groupby", lambda a: gg.tl.fate_bias(a, ["X", "Y"], groupby="nope"), KeyError, r"nope"),
    ("drivers before fate_bias", lambda a: gg.tl.drivers(a, "A"), KeyError, r"run `genegrad.tl.fate_bias` first"),
    ("fate features before fate_bias", lambda a: gg.tl.fate_features(a), KeyError,
     r"run `genegrad.tl.fate_bias` first"),
    ("to_cellrank before fate_bias", lambda a: gg.tl.to_cellrank(a), KeyError, r"run `genegrad.tl.fate_bias` first"),
]


@pytest.mark.parametrize(("name", "call", "exc", "match"), FITTED_CASES, ids=[c[0] for c in FITTED_CASES])
def test_bad_input_after_manifold(fitted, name, call, exc, match):
    before = fitted.copy()
    with pytest.raises(exc, match=match):
        call(fitted)
    if name not in ("NaN signal", "duplicated genes"):  # these cases altered the data themselves
        assert_equal(fitted, before)


def test_get_unknown_scale_and_basis(fitted):
    gg.tl.gradients(fitted, list(fitted.var_names[:2]))
    with pytest.raises(ValueError, match=r"Expected `scale` in \[0, 1, 2, 4, 8\], got 3"):
        gg.get.gradients(fitted, fitted.var_names[:1], scale=3)
    with pytest.raises(KeyError, match=r"No gradients for \['" + fitted.var_names[5]):
        gg.get.gradients(fitted, [fitted.var_names[5]])
    with pytest.raises(KeyError, match=r"obsm\['X_umap'\]` not found"):
        gg.get.gradients(fitted, fitted.var_names[:1], basis="X_umap")


def test_preprocess_rejects_bad_counts():
    a = gg.datasets.synthetic("plane", n_cells=50, n_genes=20, rng=0)
    neg = a.copy()
    neg.X = neg.X.toarray()
    neg.X[0, 0] = -1
    with pytest.raises(ValueError, match="non-negative counts"):
        gg.pp.preprocess(neg)
    empty = a.copy()
    empty.X = empty.X.toarray()
    empty.X[3] = 0
    before = empty.copy()
    with pytest.raises(ValueError, match=r"1 cells have no counts in `adata.X`; .*filter_cells"):
        gg.pp.preprocess(empty)
    assert_equal(empty, before)


def test_raw_counts_warn(prepped):
    gg.pp.manifold(prepped, n_neighbors=10)
    prepped.X = prepped.layers["counts"] * 100
    with pytest.warns(gg.GenegradWarning, match="looks like raw counts"):
        gg.tl.gradients(prepped, list(prepped.var_names[:2]))


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc", "float64", "int"])
def test_input_formats_accepted(prepped, fmt):
    from scipy import sparse

    gg.pp.manifold(prepped, n_neighbors=10)
    # the int case compares a doubled signal: linear only for the gradient of the signal itself
    kw = {"log_mean": False} if fmt == "int" else {}
    ref = gg.tl.gradients(prepped, list(prepped.var_names[:5]), copy=True, store="obsm", **kw).obsm["genegrad_gradients"]
    X = prepped.X.toarray()
    conv = {"dense": X, "csr": sparse.csr_matrix(X), "csc": sparse.csc_matrix(X),
            "float64": X.astype(np.float64), "int": np.rint(X * 2).astype(np.int64)}[fmt]
    prepped.X = conv
    if fmt == "int":  # accepted, with the warning that integers up to 17 look like counts
        with pytest.warns(gg.GenegradWarning, match="looks like raw counts"):
            out = gg.tl.gradients(prepped, list(prepped.var_names[:5]), copy=True, store="obsm",
                                  **kw).obsm["genegrad_gradients"]
    else:
        out = gg.tl.gradients(prepped, list(prepped.var_names[:5]), copy=True, store="obsm").obsm["genegrad_gradients"]
    scale = 2.0 if fmt == "int" else 1.0
    tol = 0.3 if fmt == "int" else 1e-5  # rounding to halves perturbs the signal by <= 0.25
    np.testing.assert_allclose(out / scale, ref, atol=tol * np.abs(ref).max())


def test_core_accepts_coo(fitted):
    from scipy import sparse

    from genegrad.pp._manifold import load_model

    model = load_model(fitted)
    X = fitted.X.toarray()[:, :6]
    ref = model.gradients(X).gradients
    out = np.concatenate([c.gradients for c in model.iter_gradients(sparse.coo_matrix(X), chunk_size=4)], axis=1)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)


def test_constant_and_all_zero_genes_have_no_geometry(fitted):
    # a constant (here all-zero) gene has a zero gradient everywhere and cannot be called structured
    fitted.X = fitted.X.toarray()
    fitted.X[:, 0] = 0.0
    fitted.X[:, 1] = 3.0
    gg.tl.gradients(fitted, list(fitted.var_names[:3]), store="obsm")
    # the coefficients sum to zero exactly in float64; stored in float32 they leave ~1e-7 per unit of level
    np.testing.assert_allclose(fitted.obsm["genegrad_gradients"][:, :2], 0.0, atol=1e-5)
    gg.tl.patterns(fitted, n_null=40)
    assert not fitted.var["genegrad_structured"].iloc[:2].any()
    assert (fitted.var["genegrad_pattern"].iloc[:2] == "noise").all()


def test_all_zero_cell_is_accepted(prepped):
    # a cell with no expression after preprocessing still has neighbours and gets finite gradients
    prepped.X = prepped.X.toarray()
    prepped.X[3] = 0.0
    gg.pp.manifold(prepped, n_neighbors=10)
    gg.tl.gradients(prepped, list(prepped.var_names[:4]), store="obsm")
    assert np.isfinite(prepped.obsm["genegrad_gradients"]).all()


def test_disconnected_graph_warns_and_stays_finite():
    # two far-apart clouds: the graph has two components; gradients are computed within each, and fate
    # probabilities are NaN (with a warning) where no terminal state can be reached
    import anndata as ad

    rng = np.random.default_rng(0)
    Y = np.vstack([rng.normal(0, 1, (150, 5)), rng.normal(100, 1, (150, 5))])
    a = ad.AnnData(X=np.abs(rng.normal(1, 0.3, (300, 20))).astype(np.float32))
    a.obsm["X_pca"] = Y
    with pytest.warns(gg.GenegradWarning, match="2 connected components"):
        gg.pp.manifold(a, n_neighbors=10, n_dims=2)
    gg.tl.gradients(a, store="obsm")
    assert np.isfinite(a.obsm["genegrad_gradients"]).all()
    term = np.full(300, None, dtype=object)
    term[:5], term[5:10] = "A", "B"
    a.obs["terminal"] = term
    with pytest.warns(gg.GenegradWarning, match="150 cells cannot reach any terminal state"):
        gg.tl.fate_bias(a, "terminal", genes=list(a.var_names))
    P = a.obsm["genegrad_fate_probs"].to_numpy()
    assert np.isnan(P[150:]).all()
    np.testing.assert_allclose(P[:150].sum(axis=1), 1.0, atol=1e-8)
    # a root in the first cloud: the second has no pseudotime, with a warning
    with pytest.warns(gg.GenegradWarning) as caught:
        gg.tl.fate_bias(a, "terminal", root=0, genes=list(a.var_names))
    assert any("150 cells cannot be reached from the root" in str(w.message) for w in caught)
    pt = a.obs["genegrad_pseudotime"].to_numpy()
    assert np.isfinite(pt[:150]).all()
    assert np.isnan(pt[150:]).all()


def test_h5ad_has_no_pickled_objects(fitted, tmp_path):
    # everything genegrad writes must be plain HDF5 types: no opaque (pickled) datasets or attributes
    import h5py

    fitted.obs["terminal"] = None
    fitted.obs.iloc[:10, fitted.obs.columns.get_loc("terminal")] = "A"
    fitted.obs.iloc[60:70, fitted.obs.columns.get_loc("terminal")] = "B"
    gg.tl.gradients(fitted)
    gg.tl.patterns(fitted, n_null=40)
    gg.tl.fate_bias(fitted, "terminal")
    gg.tl.fate_features(fitted)
    path = tmp_path / "all.h5ad"
    fitted.write_h5ad(path)
    bad = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "V":
            bad.append(name)
        for k, v in obj.attrs.items():
            if isinstance(v, np.void):
                bad.append(f"{name}@{k}")

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    assert bad == []


def test_cell_masks_are_checked(fitted):
    fitted.obs["terminal"] = None
    fitted.obs.iloc[:10, fitted.obs.columns.get_loc("terminal")] = "A"
    fitted.obs.iloc[60:70, fitted.obs.columns.get_loc("terminal")] = "B"
    gg.tl.fate_bias(fitted, "terminal")
    gg.tl.fate_features(fitted)
    with pytest.raises(ValueError, match="boolean mask of length 120"):
        gg.tl.drivers(fitted, "A", cells=[True, False])
    with pytest.raises(ValueError, match="boolean mask of length 120"):
        gg.tl.evaluate_fate_features(fitted, "terminal", cells=np.arange(120))


def test_preprocessing_names_a_missing_counts_layer():
    a = gg.datasets.synthetic("plane", n_cells=50, n_genes=20, rng=0)
    before = a.copy()
    for fn in (gg.pp.preprocess, gg.pp.preprocess_atac):
        with pytest.raises(KeyError, match=r"layers\['raw'\]` not found"):
            fn(a, layer="raw")
    assert_equal(a, before)
