"""What genegrad stores stays true after subsetting, reordering, re-running and saving; nothing of the user's is lost.

Each class of the integrity issue has its tests here: a stale manifold (subset, reorder, concatenate, a new
representation), stale genes, stores, files written atomically, counts, hangs and late errors, round trips, names.
An unreachable dask scheduler (a hang) is tested with the rest of `tl._compute`, in tests/tl/test_compute.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import genegrad as gg
from genegrad._store import StoreError

pytestmark = pytest.mark.filterwarnings("ignore:.*zarr.*:UserWarning")  # zarr v3 notes on string arrays


@pytest.fixture(scope="module")
def _done():
    a = gg.datasets.synthetic("tree", n_cells=500, n_genes=80, rng=0)
    gg.pp.preprocess(a, n_comps=10)
    gg.pp.manifold(a, n_neighbors=15)
    gg.tl.gradients(a, store="obsm")
    gg.tl.patterns(a, n_null=50)
    a.obs["terminal"] = gg.datasets.tree_terminal_states(a)
    gg.tl.fate_bias(a, "terminal", root=a.obs_names[int(a.obs["pseudotime"].argmin())])
    return a


@pytest.fixture
def done(_done):
    """A synthetic tree after every step: manifold, gradients, patterns, fate bias (a fresh copy per test)."""
    return _done.copy()


# ------------------------------------------------------------------------------------------- stale manifold
def test_reordered_cells_give_the_same_answers(done):
    order = np.random.default_rng(1).permutation(done.n_obs)
    b = done[order].copy()
    genes = list(done.var_names[:6])
    ref = gg.tl.gradients(done, genes, copy=True, store="obsm").obsm["genegrad_gradients"][order]
    out = gg.tl.gradients(b, genes, copy=True, store="obsm").obsm["genegrad_gradients"]
    # the same products in another cell order: float32 round-off only
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    emb = gg.get.gradients(b, genes[:2], scale=2, basis="X_pca")
    np.testing.assert_allclose(emb, gg.get.gradients(done, genes[:2], scale=2, basis="X_pca")[order], atol=1e-5)
    gg.tl.fate_bias(b, "terminal", root=done.uns["genegrad"]["fate_bias"]["root"])
    np.testing.assert_allclose(b.obsm["genegrad_fate_probs"].to_numpy(),
                               done.obsm["genegrad_fate_probs"].to_numpy()[order], atol=1e-6)


def test_a_subset_of_cells_is_refused_where_the_graph_is_used(done):
    sub = done[done.obs["segment"] != 3].copy()  # a branch removed: its neighbours' rows lose entries
    with pytest.raises(ValueError, match=r"built on other cells.*pp.manifold"):
        gg.tl.gradients(sub, list(sub.var_names[:3]))
    with pytest.raises(ValueError, match="built on other cells"):
        gg.tl.fate_bias(sub, "terminal", root=0)
    b = sub.copy()
    b.obsm["X_umap"] = b.obsm["X_pca"][:, :2]
    with pytest.raises(ValueError, match="built on other cells"):
        gg.get.gradients(b, [str(b.var_names[0])], scale=0, basis="X_umap")
    # per-cell gradients in tangent or PCA coordinates stay true for the cells kept
    keep = (done.obs["segment"] != 3).to_numpy()
    np.testing.assert_array_equal(gg.get.gradients(sub, [str(sub.var_names[0])], scale=1),
                                  gg.get.gradients(done, [str(done.var_names[0])], scale=1)[keep])
    # recomputed on the subset, it works
    gg.pp.manifold(sub, n_neighbors=15)
    gg.tl.gradients(sub, list(sub.var_names[:3]))


def test_a_recomputed_representation_is_refused(done):
    import scanpy as sc

    sc.pp.pca(done, n_comps=8)
    with pytest.raises(ValueError, match=r"obsm\['X_pca'\]` changed since"):
        gg.tl.gradients(done, list(done.var_names[:2]))
    with pytest.raises(ValueError, match="changed since"):
        gg.get.gradients(done, [str(done.var_names[0])], basis="X_pca")


def test_concatenated_objects_need_a_new_manifold(done):
    both = ad.concat([done[:250], done[250:]], pairwise=True)  # obsp kept block-wise, uns dropped
    with pytest.raises(KeyError, match=r"pp\.manifold"):
        gg.tl.gradients(both)


def test_a_scanpy_graph_reused_after_subsetting_is_refused():
    import scanpy as sc

    a = gg.datasets.synthetic("plane", n_cells=300, n_genes=40, rng=0)
    gg.pp.preprocess(a, n_comps=8)
    sc.pp.neighbors(a, n_neighbors=15, use_rep="X_pca")
    gg.pp.manifold(a, neighbors_key="neighbors")  # a whole graph: accepted, k = 14 (scanpy counts the cell)
    assert int(a.uns["genegrad"]["params"]["n_neighbors"]) == 14
    sub = a[a.obsm["X_pca"][:, 0] > np.median(a.obsm["X_pca"][:, 0])].copy()
    with pytest.raises(ValueError, match=r"fewer than 14 neighbours.*scanpy.pp.neighbors"):
        gg.pp.manifold(sub, neighbors_key="neighbors")


def test_rerunning_the_manifold_removes_the_old_results(done):
    gg.pp.manifold(done, n_neighbors=12)
    for slot, name in (("obsm", "genegrad_gradients"), ("obsm", "genegrad_fate_probs"), ("varm", "genegrad_descriptors"),
                       ("var", "genegrad_pattern"), ("obs", "genegrad_terminal_states"), ("obsp", "genegrad_transitions")):
        assert name not in getattr(done, slot), (slot, name)
    assert not {"gradients", "patterns", "fate_bias"} & set(done.uns["genegrad"])
    with pytest.raises(KeyError, match=r"tl\.fate_bias"):
        gg.get.fates(done)


# ------------------------------------------------------------------------------------------------ stale genes
def test_dropped_genes_never_take_another_genes_values(done):
    full = gg.get.descriptors(done)
    keep = done.var_names[5:]
    sub = done[:, keep].copy()
    desc = gg.get.descriptors(sub)
    assert list(desc.index) == [g for g in full.index if g in keep]
    pd.testing.assert_frame_equal(desc, full.loc[desc.index], check_categorical=False)


def test_fate_features_refuse_a_program_gene_that_was_dropped(done):
    table = gg.get.fate_programs(done)
    prog = list(table.loc[table["fate"] == "A", "gene"])
    sub = done[:, [g for g in done.var_names if g != prog[0]]].copy()
    with pytest.raises(KeyError, match=r"no longer in `adata.var_names`.*tl.fate_bias"):
        gg.tl.fate_features(sub)


@pytest.mark.parametrize("bad", [np.nan, "strings"])
def test_highly_variable_is_read_strictly(done, bad):
    hv = done.var["highly_variable"].to_numpy()
    done.var["highly_variable"] = (np.where(hv, "True", "False") if bad == "strings"
                                   else np.where(hv, 1.0, np.nan))
    with pytest.raises(TypeError, match="must hold booleans"):
        gg.tl.gradients(done)


# ------------------------------------------------------------------------------------------------------ stores
def test_a_store_refuses_a_folder_of_the_users_and_keeps_it(done, tmp_path):
    mine = tmp_path / "mine"
    (mine / "gradients").mkdir(parents=True)
    (mine / "gradients" / "notes.txt").write_text("mine")
    (mine / "se").mkdir()
    with pytest.raises(ValueError, match="not written by genegrad"):
        gg.tl.gradients(done, list(done.var_names[:3]), store="zarr", path=str(mine))
    assert (mine / "gradients" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left beside


def test_a_store_shared_by_two_objects_is_never_read_as_the_others(done, tmp_path):
    path = str(tmp_path / "g.zarr")
    a, b = done.copy(), done[::-1].copy()
    genes = list(done.var_names[:4])
    gg.tl.gradients(a, genes, store="zarr", path=path)
    ref = gg.get.gradients(a, genes[:2], scale=1)
    gg.tl.gradients(b, genes, store="zarr", path=path)  # replaces a's store (genegrad's own)
    with pytest.raises(StoreError, match="rewritten since"):
        gg.get.gradients(a, genes[:2], scale=1)
    np.testing.assert_allclose(gg.get.gradients(b, genes[:2], scale=1), ref[::-1], atol=1e-5 * np.abs(ref).max())


def test_an_interrupted_rerun_leaves_the_store_as_it_was(done, tmp_path, monkeypatch):
    from genegrad._core._model import GradientModel

    path = tmp_path / "g.zarr"
    genes = list(done.var_names[:4])
    gg.tl.gradients(done, genes, store="zarr", path=str(path))
    ref = gg.get.gradients(done, genes, scale=2)
    real = GradientModel.iter_gradients

    def dies(self, *args, **kwargs):
        it = real(self, *args, **kwargs)
        yield next(it)
        raise KeyboardInterrupt

    monkeypatch.setattr(GradientModel, "iter_gradients", dies)
    b = done.copy()
    with pytest.raises(KeyboardInterrupt):
        gg.tl.gradients(b, genes, store="zarr", path=str(path))
    np.testing.assert_array_equal(gg.get.gradients(b, genes, scale=2), ref)  # the old store, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.zarr"]


def test_a_store_of_another_type_or_shape_is_not_read(done, tmp_path):
    import zarr

    path = tmp_path / "g.zarr"
    genes = list(done.var_names[:3])
    gg.tl.gradients(done, genes, store="zarr", path=str(path))
    arr = zarr.open_array(str(path / "gradients"), mode="r")
    shape = arr.shape
    import shutil

    shutil.rmtree(path / "gradients")
    zarr.open_array(str(path / "gradients"), mode="w", shape=shape, dtype="float64")
    with pytest.raises(StoreError, match="not float32"):
        gg.get.gradients(done, genes[:1])
    meta = json.loads((path / "genegrad-store.json").read_text())
    meta["format"] = "something else"
    (path / "genegrad-store.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="not a valid genegrad store marker"):
        gg.get.gradients(done, genes[:1])


def test_a_store_follows_the_cells_by_name(done, tmp_path):
    genes = list(done.var_names[:3])
    gg.tl.gradients(done, genes, store="zarr", path=str(tmp_path / "g.zarr"))
    ref = gg.get.gradients(done, genes, scale=1)
    pick = np.random.default_rng(0).permutation(done.n_obs)[:100]
    np.testing.assert_array_equal(gg.get.gradients(done[pick].copy(), genes, scale=1), ref[pick])


# ------------------------------------------------------------------------------------------------------- files
_KILLED_WRITE = """
import os, signal, sys
import anndata as ad
from genegrad.cli import main

def write_then_die(self, filename, *args, **kwargs):
    with open(filename, "wb") as f:
        f.write(b"half an h5ad")
        f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

ad.AnnData.write_h5ad = write_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_run_onto_its_own_input_killed_while_writing_leaves_the_input(tmp_path):
    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=30, rng=0)
    src = tmp_path / "in.h5ad"
    a.write_h5ad(src)
    before = src.read_bytes()
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITE, "run", str(src), "-o", str(src), "--force",
                           "--n-neighbors", "10", "--genes", ",".join(a.var_names[:3])],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed in the middle of writing
    assert src.read_bytes() == before
    ad.read_h5ad(src)  # readable


def test_a_report_refuses_a_folder_of_the_users_and_replaces_its_own(done, tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "paper.tex").write_text("mine")
    with pytest.raises(ValueError, match="not written by genegrad"):
        gg.io.write_report(done, mine)
    assert [p.name for p in mine.iterdir()] == ["paper.tex"]
    rep = tmp_path / "rep"
    gg.io.write_report(done, rep)
    (rep / "stale.png").write_text("from an older report")
    gg.io.write_report(done, rep, n_genes=2)
    assert not (rep / "stale.png").exists()  # the old report replaced as a whole, never mixed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep", "results"]


def test_a_report_that_fails_leaves_the_old_one(done, tmp_path, monkeypatch):
    rep = tmp_path / "rep"
    gg.io.write_report(done, rep)
    before = sorted(p.name for p in rep.iterdir())
    html = (rep / "index.html").read_text()
    from genegrad.io import _report

    def fails(*args, **kwargs):
        raise RuntimeError("a figure failed")

    monkeypatch.setattr(_report, "_fate_section", fails)
    with pytest.raises(RuntimeError, match="a figure failed"):
        gg.io.write_report(done, rep)
    assert sorted(p.name for p in rep.iterdir()) == before
    assert (rep / "index.html").read_text() == html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


# ------------------------------------------------------------------------------------------------------ counts
def test_preprocess_refuses_normalised_data_and_keeps_the_counts():
    import scanpy as sc

    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=40, rng=0)
    a.layers["counts"] = a.X.copy()
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    before = a.copy()
    with pytest.raises(ValueError, match=r"non-integers.*uns\['log1p'\].*layer='counts'"):
        gg.pp.preprocess(a)
    with pytest.raises(ValueError, match="non-integers"):
        gg.pp.preprocess_atac(a)
    assert (a.layers["counts"] != before.layers["counts"]).nnz == 0
    gg.pp.preprocess(a, layer="counts", n_comps=8)  # the fix the message gives works


def test_preprocess_refuses_to_overwrite_other_counts():
    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=40, rng=0)
    a.layers["counts"] = a.X * 2
    with pytest.raises(ValueError, match=r"layers\['counts'\]` exists and differs"):
        gg.pp.preprocess(a)


def test_preprocess_shares_no_memory_the_user_could_change_through_another_name():
    """The counts layer keeps X's memory only when X is replaced (no copy at a million cells); a copy, a view or
    another layer's counts are never shared."""
    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=40, rng=0)
    counts = a.X
    expected = counts.toarray()
    b = gg.pp.preprocess(a, n_comps=8, copy=True)
    assert not np.shares_memory(b.layers["counts"].data, counts.data)
    assert a.X is counts
    assert "counts" not in a.layers
    gg.pp.preprocess(a, n_comps=8)
    assert a.X is not counts
    assert not np.shares_memory(a.X.data, counts.data)
    assert not np.shares_memory(a.X.indices, a.layers["counts"].indices)  # shared while computed, not after
    np.testing.assert_array_equal(a.layers["counts"].toarray(), expected)
    np.testing.assert_array_equal(counts.toarray(), expected)  # the caller's matrix is untouched
    raw = gg.datasets.synthetic("plane", n_cells=200, n_genes=40, rng=0)
    raw.layers["raw"] = raw.X.copy()
    gg.pp.preprocess(raw, layer="raw", n_comps=8)
    assert not np.shares_memory(raw.layers["counts"].data, raw.layers["raw"].data)
    parent = gg.datasets.synthetic("plane", n_cells=200, n_genes=40, rng=0)
    view = parent[:150]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata: "initializing view as actual"
        gg.pp.preprocess(view, n_comps=8)
    assert not np.shares_memory(view.layers["counts"].data, parent.X.data)
    np.testing.assert_array_equal(parent.X.toarray()[:150], view.layers["counts"].toarray())


def test_preprocess_normalises_in_row_blocks_with_the_same_numbers(monkeypatch):
    import functools

    from genegrad.pp import _preprocess

    a = gg.datasets.synthetic("tree", n_cells=600, n_genes=80, rng=1)
    b = a.copy()
    gg.pp.preprocess(a, n_comps=8)
    monkeypatch.setattr(_preprocess, "_normalise_log1p", functools.partial(_preprocess._normalise_log1p, block=97))
    gg.pp.preprocess(b, n_comps=8)
    np.testing.assert_array_equal(b.X.toarray(), a.X.toarray())
    np.testing.assert_array_equal(b.obsm["X_pca"], a.obsm["X_pca"])


def test_duplicate_sparse_entries_mean_their_sum_and_stay_in_the_callers_matrix():
    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=40, rng=0)
    dense = a.X.toarray()
    coo = sparse.coo_matrix(dense)
    # every stored count split into two entries at the same position: the same matrix
    half = np.floor(coo.data / 2)
    rows, cols, vals = np.r_[coo.row, coo.row], np.r_[coo.col, coo.col], np.r_[half, coo.data - half]
    order = np.lexsort((cols, rows))
    indptr = np.searchsorted(rows[order], np.arange(dense.shape[0] + 1))
    dup = sparse.csr_matrix((vals[order], cols[order], indptr), shape=dense.shape)
    assert not dup.has_canonical_format
    n_stored = dup.nnz
    b, c = a.copy(), a.copy()
    b.X, c.X = dense, dup
    gg.pp.preprocess(b, n_comps=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gg.pp.preprocess(c, n_comps=8)
    np.testing.assert_allclose(np.abs(c.obsm["X_pca"]), np.abs(b.obsm["X_pca"]), atol=1e-4)
    assert dup.nnz == n_stored  # the caller's matrix is untouched


def test_a_normalised_unlogged_signal_warns(done):
    import scanpy as sc

    done.X = done.layers["counts"].astype(np.float32)
    sc.pp.normalize_total(done, target_sum=1e4)
    with pytest.warns(gg.GenegradWarning, match="normalised but not log-transformed"):
        gg.tl.gradients(done, list(done.var_names[:2]))


def test_small_raw_counts_warn(done):
    X = done.layers["counts"].copy()
    X.data = np.minimum(X.data, 20)  # counts under 30 (shallow data) looked like a signal before
    done.X = X
    with pytest.warns(gg.GenegradWarning, match="looks like raw counts"):
        gg.tl.gradients(done, list(done.var_names[:2]))


# ------------------------------------------------------------------------------------------ hangs, late errors
def test_scales_are_bounded(done):
    with pytest.raises(ValueError, match="at most 256"):
        gg.pp.manifold(done, scales=(0, 10**8))


@pytest.fixture
def cli_input(tmp_path):
    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=30, rng=0)
    src = tmp_path / "in.h5ad"
    a.write_h5ad(src)
    return src


def _no_heavy_step(monkeypatch):
    def heavy(*args, **kwargs):
        raise AssertionError("a heavy step ran before the arguments were checked")

    for mod, name in ((gg.pp, "preprocess"), (gg.pp, "manifold"), (gg.tl, "gradients")):
        monkeypatch.setattr(mod, name, heavy)


@pytest.mark.parametrize(("extra", "match"), [
    (["--scales", "0,a"], "--scales"),
    (["--scales", "0,100000000"], "at most 256"),
    (["--genes", "g0_nope"], "--genes"),
    (["--memory", "0"], "--memory"),
    (["--memory", "-2"], "--memory"),
    (["--n-dims", "0"], "--n-dims"),
    (["--n-neighbors", "1000"], "only 200 cells"),
    (["--store-path", "x"], "--store zarr"),
    (["--backend", "numpy", "--scheduler", "tcp://h:1"], "--backend dask"),
])
def test_cli_bad_arguments_fail_before_any_heavy_step(cli_input, tmp_path, monkeypatch, capsys, extra, match):
    from genegrad.cli import main

    _no_heavy_step(monkeypatch)
    assert main(["run", str(cli_input), "-o", str(tmp_path / "out.h5ad"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert re.search(match, err), err
    assert not (tmp_path / "out.h5ad").exists()


def test_cli_bad_paths_fail_before_any_heavy_step(cli_input, tmp_path, monkeypatch, capsys):
    from genegrad.cli import main

    _no_heavy_step(monkeypatch)
    out = str(tmp_path / "out.h5ad")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    trunc = tmp_path / "trunc.h5ad"
    trunc.write_bytes(cli_input.read_bytes()[:2000])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    cases = [
        (["run", str(tmp_path / "nope.h5ad"), "-o", out], "does not exist"),
        (["run", str(tmp_path / "notes.csv"), "-o", out], "cannot read"),
        (["run", str(trunc), "-o", out], "cannot read"),
        (["run", str(cli_input), "-o", str(tmp_path / "no" / "such" / "out.h5ad")], "does not exist"),
        (["run", str(cli_input), "-o", str(tmp_path / "out.csv")], ".h5ad"),
        (["run", str(cli_input), "-o", str(cli_input)], "--force"),
        (["run", str(cli_input), "-o", out, "--store", "zarr", "--store-path", str(mine), "--force"], "not written"),
        (["run", str(cli_input), "-o", out, "--report", str(mine), "--force"], "not written"),
        (["report", str(cli_input), "-o", str(mine)], "not written"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1, (argv, err)
        assert match in err, (argv, err)
    assert (mine / "keep.txt").read_text() == "mine"
    assert not os.path.exists(out)


def test_cli_errors_from_the_library_are_one_line(tmp_path, capsys):
    from genegrad.cli import main

    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=30, rng=0)
    a.X = a.X.astype(np.float32) * 0.5  # not counts
    src = tmp_path / "in.h5ad"
    a.write_h5ad(src)
    assert main(["run", str(src), "-o", str(tmp_path / "out.h5ad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "raw counts" in err


# ------------------------------------------------------------------------------------------- round trips, names
@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_round_trips_keep_every_reader_working(done, tmp_path, fmt):
    path = tmp_path / f"a.{fmt}"
    getattr(done, f"write_{fmt}")(path)
    back = getattr(ad, f"read_{fmt}")(path)
    pd.testing.assert_frame_equal(gg.get.fates(back), gg.get.fates(done))
    pd.testing.assert_frame_equal(gg.get.descriptors(back), gg.get.descriptors(done))
    genes = [str(g) for g in done.var_names[:2]]
    np.testing.assert_array_equal(gg.get.gradients(back, genes, scale=1), gg.get.gradients(done, genes, scale=1))
    gg.io.write_report(back, tmp_path / "rep")
    assert (tmp_path / "rep" / "patterns.png").exists()


def test_names_are_drawn_literally_and_csv_formulas_neutralised(tmp_path):
    a = gg.datasets.synthetic("tree", n_cells=400, n_genes=60, rng=0)
    # '$\\nope' is not valid mathtext: parsed, it raises when drawn
    a.var_names = [f"$\\nope{i}$" if i % 3 == 0 else (f"=cmd|{i}" if i % 3 == 1 else f"@{i}") for i in range(a.n_vars)]
    gg.pp.preprocess(a, n_comps=10)
    gg.pp.manifold(a, n_neighbors=15)
    gg.tl.gradients(a)
    gg.tl.patterns(a, n_null=50)
    a.obs["terminal"] = gg.datasets.tree_terminal_states(a).map({"A": "$\\nopeA$", "B": "=B", "C": "+C"})
    gg.tl.fate_bias(a, "terminal", root=int(a.obs["pseudotime"].argmin()))
    rep = tmp_path / "rep"
    gg.io.write_report(a, rep)  # every figure drawn and saved
    fig = gg.pl.drivers(a, "$\\nopeA$", n_genes=60, pseudotime="genegrad_pseudotime")
    fig.savefig(tmp_path / "drivers.png")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any(t.startswith("\\$") for t in labels)
    assert not [t for t in labels if t.startswith("$")]
    gene = str(a.var_names[0])
    ax = gg.pl.gradient_stream(a, gene, basis="X_pca", scale=1)
    ax.figure.savefig(tmp_path / "stream.png")
    for name in ("patterns.csv", "drivers.csv", "fate_probs.csv"):
        table = pd.read_csv(rep / name, dtype=str, keep_default_na=False)
        cells = [*table.columns, *table.to_numpy().ravel()]
        assert not [c for c in cells if c[:1] in ("=", "+", "@")], name
        assert any(c.startswith("'") for c in cells), name


def test_a_manifold_on_sparse_x_is_checked_without_densifying():
    from scipy import sparse as sp

    a = gg.datasets.synthetic("plane", n_cells=300, n_genes=40, rng=0)
    gg.pp.preprocess(a, n_comps=8)
    a.X = sp.csr_matrix(a.X)
    gg.pp.manifold(a, use_rep="X", n_neighbors=15, n_dims=2)
    gg.tl.gradients(a, list(a.var_names[:2]))  # the checksum of a sparse X matches its stored one
    a.X = a.X * 2.0
    with pytest.raises(ValueError, match=r"`adata\.X` changed since"):
        gg.tl.gradients(a, list(a.var_names[:2]))
