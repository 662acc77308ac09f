"""tl.fate_bias and tl.terminal_states on AnnData: orientation, the fine step, detection, options, bad inputs."""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import under_key
from scipy import sparse

import genegrad as gg
from genegrad._core import _fate
from genegrad.tl._fate import run_fate_bias


@pytest.fixture(scope="module")
def tree():
    adata = gg.datasets.synthetic("tree", n_cells=1500, n_genes=300, depth=2000, rng=2)
    gg.pp.preprocess(adata, n_comps=20)
    gg.pp.manifold(adata, n_neighbors=20)
    adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
    return adata


@pytest.fixture(scope="module")
def fated(tree):
    a = tree.copy()
    gg.tl.fate_bias(a, "terminal")
    gg.tl.fate_features(a)
    return a


def test_a_root_orients_the_chain_forward(tree):
    a = tree.copy()
    a.obs["terminal"] = gg.datasets.tree_terminal_states(a)
    root = int(a.obs["pseudotime"].argmin())
    run_fate_bias(a, "terminal", root=root, forward=0.0, fine_weight=0.0, beta=3.0)
    plain = a.obsp["genegrad_transitions"].astype(np.float64)
    b = tree.copy()
    b.obs["terminal"] = a.obs["terminal"]
    run_fate_bias(b, "terminal", fine_weight=0.0, beta=3.0)
    assert abs(plain - b.obsp["genegrad_transitions"]).max() == 0  # forward=0: the unoriented chain
    run_fate_bias(a, "terminal", root=root, fine_weight=0.0, beta=3.0)  # forward=10 by default
    oriented = a.obsp["genegrad_transitions"].astype(np.float64)
    tau = a.obs["genegrad_pseudotime"].to_numpy()
    ok = np.isfinite(tau)
    tau = np.where(ok, tau, 0.0)

    def mean_step(T):  # expected change of pseudotime in one step, per cell
        T = sparse.csr_matrix(T)
        rows = np.repeat(np.arange(T.shape[0]), np.diff(T.indptr))
        return np.bincount(rows, T.data * (tau[T.indices] - tau[rows]), minlength=T.shape[0])

    gain = (mean_step(oriented) - mean_step(plain))[ok]
    assert (gain >= -1e-9).all()  # no cell steps back more than before
    assert np.median(gain) > 0
    assert a.uns["genegrad"]["fate_bias"]["forward"] == pytest.approx(10.0)
    run_fate_bias(a, "terminal", root=root, fine_weight=0.0, beta=3.0, forward=0.5)  # a weak orientation is one
    weak = a.obsp["genegrad_transitions"].astype(np.float64)
    assert 0 < abs(weak - plain).max() < abs(oriented - plain).max()


@pytest.mark.parametrize("kwargs", [{"root": 0}, {}])
def test_the_chain_is_untilted_by_default(tree, kwargs):
    a = tree.copy()
    gg.tl.fate_bias(a, "terminal", fine_weight=0.0, **kwargs)
    assert a.uns["genegrad"]["fate_bias"]["beta"] == pytest.approx(0.0, abs=0.0)
    b = tree.copy()
    run_fate_bias(b, "terminal", fine_weight=0.0, beta=0.0, **kwargs)
    assert abs(a.obsp["genegrad_transitions"] - b.obsp["genegrad_transitions"]).max() == 0
    run_fate_bias(b, "terminal", fine_weight=0.0, beta=3.0, **kwargs)  # the tilt changes the chain
    assert abs(a.obsp["genegrad_transitions"] - b.obsp["genegrad_transitions"]).max() > 0.01


@pytest.mark.parametrize("fate", ["A", "C"])  # the first state (index 0) and another
def test_a_root_among_the_terminal_cells_is_flagged(tree, fate):
    a = tree.copy()
    root = int(np.flatnonzero((a.obs["terminal"] == fate).to_numpy())[0])
    with pytest.warns(gg.GenegradWarning, match=f"is a terminal cell of '{fate}'"):
        gg.tl.fate_bias(a, "terminal", root=root, fine_weight=0.0)
    assert "genegrad_fate_probs" in a.obsm  # a warning, not an error: the result is still written
    b = tree.copy()
    b.obs["t"] = b.obs["pseudotime"].to_numpy()
    gg.tl.fate_bias(b, "terminal", root=root, time_key="t", fine_weight=0.0)  # the time key orients: no warning


def test_time_key_with_infinite_values_leaves_those_cells_unweighted(tree):
    # scanpy's DPT gives unreached cells an infinite pseudotime: they keep their steps, the others are oriented
    a = tree.copy()
    t = a.obs["pseudotime"].to_numpy().copy()
    t[:5], t[5:10] = np.inf, -np.inf
    a.obs["t"] = t
    gg.tl.fate_bias(a, "terminal", time_key="t", fine_weight=0.0)
    written = a.obs["genegrad_pseudotime"].to_numpy()
    assert np.isnan(written[:10]).all()
    finite = t[10:]
    np.testing.assert_allclose(written[10:], finite - finite.min())
    K = a.obsp["genegrad_connectivities"]
    expected = _fate.forward_affinities(K, np.where(np.isfinite(t), t - finite.min(), np.nan), strength=10.0)
    T = _fate.tilted_transitions(expected, np.asarray(a.obsm["X_pca"], dtype=np.float64),
                                 np.zeros_like(a.obsm["X_pca"], dtype=np.float64), beta=0.0)
    np.testing.assert_allclose(a.obsp["genegrad_transitions"].toarray(), T.toarray(), atol=1e-6)


def test_time_key_orients_the_chain_as_the_root_does(tree):
    # the graph pseudotime of a rooted run, given back as an obs column, must give the same chain without the root
    a = tree.copy()
    root = int(a.obs["pseudotime"].argmin())
    gg.tl.fate_bias(a, "terminal", root=root, fine_weight=0.0)
    b = tree.copy()
    b.obs["t"] = a.obs["genegrad_pseudotime"].to_numpy() + 5.0  # an offset: only the order and spread matter
    gg.tl.fate_bias(b, "terminal", time_key="t", fine_weight=0.0)
    assert abs(a.obsp["genegrad_transitions"] - b.obsp["genegrad_transitions"]).max() == 0
    np.testing.assert_array_equal(a.obsm["genegrad_fate_probs"], b.obsm["genegrad_fate_probs"])
    np.testing.assert_allclose(b.obs["genegrad_pseudotime"], a.obs["genegrad_pseudotime"], rtol=1e-12)
    info = b.uns["genegrad"]["fate_bias"]
    assert info["time_key"] == "t"
    assert info["root"] == ""
    assert info["forward"] == pytest.approx(10.0)


def test_time_key_overrides_the_root_in_the_chain_only(tree):
    # with both, the chain follows obs[time_key]: reversing that time reverses which steps are down-weighted
    a = tree.copy()
    root = int(a.obs["pseudotime"].argmin())
    a.obs["reversed"] = -a.obs["pseudotime"].to_numpy()
    run_fate_bias(a, "terminal", root=root, time_key="reversed", beta=0.0, fine_weight=0.0)
    T = sparse.csr_matrix(a.obsp["genegrad_transitions"].astype(np.float64))
    tau = a.obs["pseudotime"].to_numpy()
    rows = np.repeat(np.arange(T.shape[0]), np.diff(T.indptr))
    step = np.bincount(rows, T.data * (tau[T.indices] - tau[rows]), minlength=T.shape[0])
    assert np.median(step) < 0  # the chain walks towards the root
    assert a.obs["genegrad_pseudotime"].min() == pytest.approx(0.0, abs=0.0)
    assert np.argmax(a.obs["genegrad_pseudotime"].to_numpy()) == root


def test_fate_bias_writes_probabilities(fated):
    P = fated.obsm["genegrad_fate_probs"]
    assert isinstance(P, pd.DataFrame)
    assert list(P.columns) == ["A", "B", "C"]
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-8)
    term = fated.obs["terminal"]
    np.testing.assert_array_equal(P.loc[term == "A", "A"], 1.0)
    T = fated.obsp["genegrad_transitions"]
    np.testing.assert_allclose(np.asarray(T.sum(axis=1)).ravel(), 1.0, atol=1e-5)
    assert fated.uns["genegrad"]["fate_bias"]["coarse_scale"] == 2  # the default, on scales (0, 1, 2, 4, 8)
    assert [p["fate"] for p in fated.uns["genegrad"]["fate_bias"]["programs"].values()] == ["A", "B", "C"]
    for program in fated.uns["genegrad"]["fate_bias"]["programs"].values():  # 50 genes each by default
        assert len(program["genes"]) == 50
        assert program["weights"].sum() == pytest.approx(1.0)


def test_fine_evidence_against_the_chain_falls_back_to_the_chain(tree):
    a = tree.copy()
    run_fate_bias(a, "terminal", min_fine_agreement=None)
    info = a.uns["genegrad"]["fate_bias"]
    chain = a.obsm["genegrad_fate_probs_chain"].to_numpy()
    z = a.obsm["genegrad_fate_deviation"].to_numpy()
    labels = np.where(a.obs["genegrad_terminal_states"].isna().to_numpy(), -1, 0)
    np.testing.assert_allclose(info["fine_agreement"], _fate.fine_agreement(z, chain, labels))
    assert not np.allclose(a.obsm["genegrad_fate_probs"].to_numpy(), chain)  # the fine step moved them
    assert info["fine_step"]
    assert np.isnan(info["min_fine_agreement"])  # no bar, recorded as NaN
    # a bar no fate clears (agreement < 1 unless the ranks coincide): the step is skipped
    b = tree.copy()
    with pytest.warns(gg.GenegradWarning, match="ranks the progenitors against"):
        run_fate_bias(b, "terminal", min_fine_agreement=1.0)
    np.testing.assert_allclose(b.obsm["genegrad_fate_probs"].to_numpy(), chain, atol=1e-12)
    np.testing.assert_array_equal(b.obsm["genegrad_fate_deviation"].to_numpy(), z)  # the evidence is still stored
    assert not b.uns["genegrad"]["fate_bias"]["fine_step"]
    assert b.uns["genegrad"]["fate_bias"]["min_fine_agreement"] == pytest.approx(1.0, abs=0.0)


def test_branch_cells_lean_to_their_branch(fated):
    # cells well into branch A (pseudotime 1.5-1.75, past the stretch where A's switch genes are still near
    # zero and its cells overlap segment 2's): most of their probability is A's
    seg = fated.obs["segment"].astype(int).to_numpy()
    tau = fated.obs["pseudotime"].to_numpy()
    mid = (seg == 1) & (tau > 1.5) & fated.obs["terminal"].isna().to_numpy()
    assert np.median(fated.obsm["genegrad_fate_probs"]["A"].to_numpy()[mid]) > 0.6


def test_h5ad_round_trip(fated, tmp_path):
    fated.write_h5ad(tmp_path / "f.h5ad")
    back = ad.read_h5ad(tmp_path / "f.h5ad")
    pd.testing.assert_frame_equal(back.obsm["genegrad_fate_probs"], fated.obsm["genegrad_fate_probs"])
    assert back.uns["genegrad"]["fate_bias"]["beta"] == fated.uns["genegrad"]["fate_bias"]["beta"]


def test_drivers_are_structured_genes(fated):
    d = gg.tl.drivers(fated, "A", n_genes=10)
    assert list(d.columns) == ["score", "alignment", "corr"]
    # a gene without geometry (noise) has no alignment with the fate flow: none belongs in the top 10
    assert (fated.var.loc[d.index, "pattern"] != "noise").all()


def test_evaluate_fate_features(fated):
    seg = fated.obs["segment"].astype(int).to_numpy()
    early = np.isin(seg, [0, 1, 2])
    y = np.where(fated.obs["fate"] == "A", "A", "BC")
    out = gg.tl.evaluate_fate_features(fated, y, cells=early)
    assert list(out["features"]) == ["expression", "gradient features", "both"]
    assert out["auroc"].between(0, 1).all()


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"terminal_states": "nope"}, KeyError, "nope"),
    ({"terminal_states": ["A", "Z"], "groupby": "fate"}, ValueError, r"\['Z'\] name no cells"),
    ({"terminal_states": ["A", "B"]}, ValueError, "pass `groupby`"),
    ({"terminal_states": ["A"], "groupby": "fate"}, ValueError, "at least two"),
    ({"terminal_states": "fate"}, ValueError, "Every cell is terminal"),
    ({"terminal_states": "terminal", "beta": -1}, ValueError, "`beta` in"),
    ({"terminal_states": "terminal", "forward": -1}, ValueError, "`forward` in"),
    ({"terminal_states": "terminal", "coarse_scale": 0}, ValueError, "`coarse_scale` in"),
    ({"terminal_states": "terminal", "coarse_scale": 1.5}, TypeError, "`coarse_scale` to be an int"),
    ({"terminal_states": "terminal", "n_program_genes": 0}, ValueError, "`n_program_genes` in"),
    ({"terminal_states": "terminal", "n_program_genes": 2.5}, TypeError, "`n_program_genes` to be an int"),
    ({"terminal_states": "terminal", "fine_weight": -1}, ValueError, "`fine_weight` in"),
    ({"terminal_states": "terminal", "min_fine_agreement": 2.0}, ValueError, "`min_fine_agreement` in"),
    ({"terminal_states": "terminal", "scale": 3}, ValueError, "scale"),
    ({"terminal_states": "terminal", "time_key": "nope"}, KeyError, "dpt_pseudotime"),
    ({"terminal_states": "terminal", "time_key": "fate"}, TypeError, "must hold numbers"),
    ({"terminal_states": "terminal", "time_key": "const"}, ValueError, "constant"),
])
def test_bad_inputs_leave_adata_untouched(tree, kwargs, exc, match):
    a = tree.copy()
    a.obs["const"] = 1.0
    before = a.copy()
    with pytest.raises(exc, match=match):
        run_fate_bias(a, **kwargs)
    assert set(a.obsm) == set(before.obsm)
    assert set(a.obsp) == set(before.obsp)
    assert "fate_bias" not in a.uns["genegrad"]


def test_to_cellrank_without_cellrank(fated, monkeypatch):
    monkeypatch.setitem(sys.modules, "cellrank", None)
    monkeypatch.setitem(sys.modules, "cellrank.kernels", None)
    with pytest.raises(ImportError, match="pip install cellrank"):
        gg.tl.to_cellrank(fated)


def test_to_cellrank_hands_over_the_chain(fated, monkeypatch):
    """The working path without CellRank installed (it is not a test dependency): a stand-in for
    ``cellrank.kernels.PrecomputedKernel`` that, like CellRank's, reads ``adata.obsp[key]``. Absorbing the kernel's
    matrix in the terminal cells, solved densely here, must give the chain's probabilities that fate_bias wrote."""
    import types

    class PrecomputedKernel:
        def __init__(self, obsp_key, adata):
            self.transition_matrix = sparse.csr_matrix(adata.obsp[obsp_key], dtype=np.float64)

    module = types.ModuleType("cellrank.kernels")
    module.PrecomputedKernel = PrecomputedKernel
    monkeypatch.setitem(sys.modules, "cellrank", types.ModuleType("cellrank"))
    monkeypatch.setitem(sys.modules, "cellrank.kernels", module)
    kernel = gg.tl.to_cellrank(fated)
    T = kernel.transition_matrix.toarray()
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-5)  # a transition matrix (float32 as stored)
    chain = fated.obsm["genegrad_fate_probs_chain"]
    terminal = fated.obs["terminal"]
    absorbing = terminal.notna().to_numpy()
    trans = np.flatnonzero(~absorbing)
    R = np.stack([T[np.ix_(trans, np.flatnonzero((terminal == f).to_numpy()))].sum(axis=1) for f in chain.columns],
                 axis=1)
    X = np.linalg.solve(np.eye(trans.size) - T[np.ix_(trans, trans)], R)
    # float32 storage moves the entries by ~1e-7 relative; the solve amplifies it by the chain's mixing time
    np.testing.assert_allclose(X, chain.to_numpy()[trans], atol=1e-3)
    assert np.abs(X - X.mean(axis=0)).max() > 0.3  # the fates differ between cells: not a uniform answer


@pytest.fixture(scope="module")
def detected():
    adata = gg.datasets.synthetic("tree", n_cells=3000, n_genes=300, depth=2000, rng=1)
    gg.pp.preprocess(adata, n_comps=20)
    gg.pp.manifold(adata)
    root = int(adata.obs["pseudotime"].argmin())
    gg.tl.fate_bias(adata, root=root, groupby="fate")
    return adata


def test_detected_terminal_states_are_the_branch_ends(detected):
    states = detected.obs["genegrad_terminal_states"]
    assert list(detected.obsm["genegrad_fate_probs"].columns) == list(states.cat.categories)
    assert sorted(states.cat.categories) == ["A", "B", "C"]
    seg = detected.obs["segment"].astype(int).to_numpy()
    tau = detected.obs["pseudotime"].to_numpy()
    ends = {"A": 1, "B": 3, "C": 4}  # the terminal segment of each fate
    for fate, s in ends.items():
        cells = (states == fate).to_numpy()
        assert cells.sum() >= 30
        assert (seg[cells] == s).mean() >= 0.95  # one branch each
        end = {1: 2.0, 3: 2.5, 4: 2.5}[s]
        assert np.median(tau[cells]) > end - 0.5  # its last stretch
    info = detected.uns["genegrad"]["fate_bias"]
    assert info["detected"]
    persistence = np.asarray(info["persistence"], dtype=float)  # of the detected states, in their order
    assert persistence.shape == (3,)
    assert (np.diff(persistence) <= 0).all()
    assert persistence[0] == np.inf  # the farthest tip
    assert info["root"] == detected.obs_names[int(detected.obs["pseudotime"].argmin())]


def test_pseudotime_from_the_root_orders_the_cells(detected):
    from scipy.stats import spearmanr

    pt = detected.obs["genegrad_pseudotime"].to_numpy()
    assert pt[detected.obs_names.get_loc(detected.uns["genegrad"]["fate_bias"]["root"])] == pytest.approx(0.0)
    assert spearmanr(pt, detected.obs["pseudotime"]).statistic > 0.95


def test_named_states_with_a_root_write_the_pseudotime_only(detected):
    a = detected.copy()
    a.obs["terminal"] = gg.datasets.tree_terminal_states(a)
    gg.tl.fate_bias(a, "terminal", root=a.obs_names[0])
    # the earlier detection's labels are replaced by the states given
    given = a.obs["terminal"].astype(object).where(a.obs["terminal"].notna(), None)
    now = a.obs["genegrad_terminal_states"].astype(object).where(a.obs["genegrad_terminal_states"].notna(), None)
    assert (given.to_numpy() == now.to_numpy()).all()
    assert a.obs["genegrad_pseudotime"].iloc[0] == pytest.approx(0.0)
    assert not a.uns["genegrad"]["fate_bias"]["detected"]


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({}, ValueError, "pass `root`"),
    ({"root": "nope"}, KeyError, "not an obs name"),
    ({"root": 10**6}, ValueError, r"expected it in \[0, 1499\]"),
    ({"root": 1.5}, TypeError, "obs name or an integer"),
    ({"root": 0, "min_persistence": 0.99}, ValueError, "Lower `min_persistence`"),
    ({"root": 0, "min_persistence": 2.0}, ValueError, "min_persistence"),
    ({"root": 0, "min_persistence": -0.1}, ValueError, r"`min_persistence` in \[0\.0, 1\.0\]"),
    ({"root": 0, "n_terminal": 1}, ValueError, "n_terminal"),
    ({"root": 0, "n_terminal": 2.5}, TypeError, "`n_terminal` to be an int"),
    ({"root": 0, "groupby": "nope"}, KeyError, "nope"),
])
def test_bad_detection_inputs_leave_adata_untouched(tree, kwargs, exc, match):
    a = tree.copy()
    with pytest.raises(exc, match=match):
        run_fate_bias(a, **kwargs)
    assert "fate_bias" not in a.uns["genegrad"]
    assert "genegrad_pseudotime" not in a.obs
    assert "genegrad_terminal_states" not in a.obs
    if "root" in kwargs:  # the detection tool refuses the same, and writes nothing either
        with pytest.raises(exc, match=match):
            gg.tl.terminal_states(a, **kwargs)
        assert "terminal_states" not in a.uns["genegrad"]
        assert "genegrad_terminal_states" not in a.obs


def test_terminal_states_then_fate_bias_is_fate_bias_from_a_root(detected):
    # detection as its own step (as CellRank separates terminal states from fate probabilities) gives the states
    # and the probabilities of the one-call form, bit for bit
    a = detected.copy()
    for col in ("genegrad_terminal_states", "genegrad_pseudotime"):
        del a.obs[col]
    del a.uns["genegrad"]["fate_bias"]
    root = detected.uns["genegrad"]["fate_bias"]["root"]
    gg.tl.terminal_states(a, root, groupby="fate")
    info = a.uns["genegrad"]["terminal_states"]
    assert info["root"] == root
    assert list(info["states"]) == list(detected.obs["genegrad_terminal_states"].cat.categories)
    assert (np.diff(info["persistence"]) <= 0).all()  # named in order of persistence
    pd.testing.assert_series_equal(a.obs["genegrad_terminal_states"], detected.obs["genegrad_terminal_states"])
    np.testing.assert_array_equal(a.obs["genegrad_pseudotime"], detected.obs["genegrad_pseudotime"])
    gg.tl.fate_bias(a, "genegrad_terminal_states", root=root)
    pd.testing.assert_frame_equal(a.obsm["genegrad_fate_probs"], detected.obsm["genegrad_fate_probs"])


def test_terminal_states_copy_names_and_parameters(detected):
    """copy=True leaves the input and returns the states; without groupby they are T1, T2, ... by persistence,
    the same cells; the parameters are recorded."""
    a = detected.copy()
    for col in ("genegrad_terminal_states", "genegrad_pseudotime"):
        del a.obs[col]
    del a.uns["genegrad"]["fate_bias"]
    root = detected.uns["genegrad"]["fate_bias"]["root"]
    out = gg.tl.terminal_states(a, root, copy=True)
    assert "genegrad_terminal_states" not in a.obs
    assert "terminal_states" not in a.uns["genegrad"]
    states = out.obs["genegrad_terminal_states"]
    named = detected.obs["genegrad_terminal_states"]
    assert list(states.cat.categories) == [f"T{j + 1}" for j in range(len(named.cat.categories))]
    relabel = dict(zip(states.cat.categories, named.cat.categories, strict=True))  # both in persistence order
    np.testing.assert_array_equal(states.astype(object).map(relabel).fillna("").to_numpy(),
                                  named.astype(object).fillna("").to_numpy())
    info = out.uns["genegrad"]["terminal_states"]
    assert (info["n_terminal"], info["groupby"], info["min_persistence"]) == (-1, "", 0.05)
    two = gg.tl.terminal_states(a, root, n_terminal=2, min_persistence=0.01, copy=True)
    info = two.uns["genegrad"]["terminal_states"]
    assert (info["n_terminal"], info["min_persistence"]) == (2, 0.01)
    assert len(two.obs["genegrad_terminal_states"].cat.categories) == 2


def test_fate_bias_keeps_ten_options():
    import inspect

    params = [p for p in inspect.signature(gg.tl.fate_bias).parameters if p != "adata"]
    assert len(params) == 10
    assert not {"beta", "forward", "coarse_scale", "min_fine_agreement", "n_program_genes"} & set(params)


def test_a_lone_spike_is_not_a_terminal_state(tree):
    from genegrad._core._terminal import shared_neighbor_graph
    from genegrad.pp._manifold import manifold_neighbors
    from genegrad.tl._terminal_states import MIN_TERMINAL_CELLS, detect_terminal_states

    # the true pseudotime with one trunk cell pushed above every branch end (2.0, 2.5): a persistent maximum whose
    # state would be that one cell. Dropped, it leaves the detection as it was without it
    f = tree.obs["pseudotime"].to_numpy().copy()
    K = shared_neighbor_graph(manifold_neighbors(tree), tree.obsp["genegrad_connectivities"])
    ref_labels, ref_names, _ = detect_terminal_states(tree, K, f, groupby="fate", n_terminal=None,
                                                      min_persistence=0.05)
    spike = int(np.flatnonzero((tree.obs["segment"] == 0).to_numpy() & (np.abs(f - 0.6) < 0.05))[0])
    f[spike] = 3.0
    labels, names, tips = detect_terminal_states(tree, K, f, groupby="fate", n_terminal=None, min_persistence=0.05)
    assert spike not in {t.cell for t in tips}
    assert labels[spike] == -1
    assert np.bincount(labels[labels >= 0]).min() >= MIN_TERMINAL_CELLS
    assert names == ref_names
    np.testing.assert_array_equal(labels, ref_labels)


def test_one_named_state_is_not_two(tree):
    """A single state name with `groupby` is one state (not the letters of its name): refused, as fewer than two."""
    a = tree.copy()
    a.obs["lineage"] = "line" + a.obs["fate"].astype(str)
    with pytest.raises(ValueError, match=r"at least two terminal states to compare fates, got \['lineA'\]"):
        run_fate_bias(a, "lineA", groupby="lineage")


def test_detected_states_sharing_a_group_are_numbered_and_a_failure_shows_relative_persistences(tree):
    """States are named after the group most of their cells are in, the second of a name `name_2` (then `name_3`);
    a detection that keeps too few lists the tips' persistences relative to the 99th percentile of the
    pseudotime (the unit `min_persistence` is in), those under the bar included."""
    import re

    from genegrad._core._terminal import persistent_maxima, shared_neighbor_graph
    from genegrad.pp._manifold import manifold_neighbors
    from genegrad.tl._terminal_states import detect_terminal_states

    a = tree.copy()
    a.obs["one"] = "stem"
    a.obs.loc[a.obs_names[::7], "one"] = "aaa"  # a minority in every state, first in alphabetical order
    f = 0.1 * a.obs["pseudotime"].to_numpy()  # in tenths: relative persistences differ from absolute ones
    K = shared_neighbor_graph(manifold_neighbors(a), a.obsp["genegrad_connectivities"])
    labels, names, tips = detect_terminal_states(a, K, f, groupby="one", n_terminal=None, min_persistence=0.05)
    assert names == ["stem", "stem_2"]  # this tree's two persistent tips (relative persistence inf and 0.24)
    with pytest.raises(ValueError, match=r"need 2; .* relative persistence") as err:
        detect_terminal_states(a, K, f, groupby=None, n_terminal=None, min_persistence=0.5)
    listed = [float(x) for x in re.search(r"relative persistence (.+?)\. Lower", str(err.value)).group(1)
              .split(", ")]
    # the tips under the bar are listed too (the user sees how far to lower it), the farthest tip (inf) is not
    persistences = [t.persistence for t in persistent_maxima(K, f) if np.isfinite(t.persistence)]
    np.testing.assert_allclose(listed, np.array(persistences[:5]) / np.percentile(f, 99), atol=5e-4)  # 3 decimals
    assert 0.1 < listed[0] < 0.5  # the second branch: what `min_persistence` must go under


def test_new_terminal_states_remove_the_fates_of_other_states(detected):
    # probabilities computed from the named states would sit beside other, detected ones: they are removed
    a = detected.copy()
    a.obs["terminal"] = gg.datasets.tree_terminal_states(a)
    root = a.uns["genegrad"]["fate_bias"]["root"]
    gg.tl.fate_bias(a, "terminal", root=root)
    with pytest.warns(UserWarning, match=r"came from other terminal states: they were removed \(with the fate flows, "
                      r"features and transitions\)\. Run `genegrad\.tl\.fate_bias\(adata, "
                      r"'genegrad_terminal_states', root=\.\.\.\)` on the states detected now"):
        gg.tl.terminal_states(a, root, groupby="fate")
    assert "fate_bias" not in a.uns["genegrad"]
    assert not {"genegrad_fate_probs", "genegrad_fate_flow"} & set(a.obsm)
    assert "genegrad_transitions" not in a.obsp
    with pytest.raises(KeyError, match=r"tl\.fate_bias"):
        gg.get.fates(a)
    # the same states again: the fates computed from them stay
    gg.tl.fate_bias(a, "genegrad_terminal_states", root=root)
    gg.tl.terminal_states(a, root, groupby="fate")
    assert "genegrad_fate_probs" in a.obsm


def test_diffusion_orientation_stores_the_time_it_used_and_refuses_unknown_ones(tree):
    """orientation='diffusion': obs['genegrad_pseudotime'] is the diffusion pseudotime from the root (0 there,
    rising with the simulated pseudotime) and uns records which orientation ran; an unknown orientation is
    refused before anything is written."""
    from scipy.stats import spearmanr

    from genegrad._core import _terminal

    a = tree.copy()
    root = int(a.obs["pseudotime"].argmin())
    run_fate_bias(a, "terminal", root=root, orientation="diffusion", fine_weight=0.0)
    t = a.obs["genegrad_pseudotime"].to_numpy()
    np.testing.assert_allclose(t, _terminal.diffusion_pseudotime(a.obsp["genegrad_connectivities"], root))
    assert t[root] == pytest.approx(0.0, abs=1e-12)
    assert spearmanr(t, a.obs["pseudotime"]).correlation > 0.9
    assert a.uns["genegrad"]["fate_bias"]["orientation"] == "diffusion"
    b = tree.copy()
    run_fate_bias(b, "terminal", root=root, fine_weight=0.0)
    assert b.uns["genegrad"]["fate_bias"]["orientation"] == "graph"
    assert b.uns["genegrad"]["fate_bias"]["time_key"] == ""  # no time_key given: recorded as empty
    c = tree.copy()
    before = set(c.uns["genegrad"]), set(c.obs.columns)
    with pytest.raises(ValueError, match="Expected `orientation` to be 'graph' or 'diffusion'"):
        run_fate_bias(c, "terminal", root=root, orientation="dpt")
    assert (set(c.uns["genegrad"]), set(c.obs.columns)) == before


def test_fate_bias_passes_its_options_on(tree):
    """The public call hands genes, layer, fine_weight, key and copy to the computation: it equals the full form
    given the same options, each option shows in what is written, and together they change the result."""
    base = tree.copy()
    rng = np.random.default_rng(0)
    X = base.X.toarray() if sparse.issparse(base.X) else np.asarray(base.X)
    base.layers["alt"] = X[rng.permutation(base.n_obs)]  # another signal: its cells shuffled
    genes = list(base.var_names[::2])
    root = int(base.obs["pseudotime"].argmin())
    opts = {"genes": genes, "layer": "alt", "fine_weight": 0.3, "root": root, "key": "gx"}
    a = under_key(base, "gx")
    out = gg.tl.fate_bias(a, "terminal", copy=True, **opts)
    assert "fate_bias" not in a.uns["gx"]  # copy=True leaves the input as it was
    assert "gx_fate_probs" not in a.obsm
    ref = under_key(base, "gx")
    run_fate_bias(ref, "terminal", **opts)
    pd.testing.assert_frame_equal(out.obsm["gx_fate_probs"], ref.obsm["gx_fate_probs"])
    info = out.uns["gx"]["fate_bias"]
    assert info["layer"] == "alt"
    assert info["fine_weight"] == pytest.approx(0.3, abs=0.0)
    assert set().union(*(set(p["genes"]) for p in info["programs"].values())) <= set(genes)
    plain = under_key(base, "gx")
    run_fate_bias(plain, "terminal", root=root, key="gx")
    assert np.abs(plain.obsm["gx_fate_probs"].to_numpy() - out.obsm["gx_fate_probs"].to_numpy()).max() > 1e-3


def test_the_fine_step_reweights_progenitors_by_their_bounded_evidence(tree, monkeypatch):
    """Closed form of the fine step: p_f proportional to chain_f exp(fine_weight clip(z_f, -10, 10)) for each
    progenitor, terminal cells keep the chain's probabilities. The evidence is replaced by a known one, wide enough
    that the clip binds."""
    a = tree.copy()
    z = np.random.default_rng(1).normal(scale=15.0, size=(a.n_obs, 3))
    monkeypatch.setattr(_fate, "fine_deviation", lambda *args, **kwargs: z.copy())
    run_fate_bias(a, "terminal", fine_weight=0.5, min_fine_agreement=None)
    chain = a.obsm["genegrad_fate_probs_chain"].to_numpy()
    probs = a.obsm["genegrad_fate_probs"].to_numpy()
    prog = a.obs["terminal"].isna().to_numpy()
    w = chain * np.exp(0.5 * np.clip(z, -10.0, 10.0))
    np.testing.assert_allclose(probs[prog], (w / w.sum(axis=1, keepdims=True))[prog], rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(probs[~prog], chain[~prog])
    np.testing.assert_array_equal(a.obsm["genegrad_fate_deviation"].to_numpy(), z)


def test_detection_says_what_it_found(tree, caplog):
    """The log names each detected state with its number of cells, as written to obs."""
    import logging

    a = tree.copy()
    with caplog.at_level(logging.INFO, logger="genegrad"):
        gg.tl.terminal_states(a, int(a.obs["pseudotime"].argmin()), groupby="fate")
    counts = a.obs["genegrad_terminal_states"].value_counts()
    said = ", ".join(f"{s} ({counts[s]} cells)" for s in a.obs["genegrad_terminal_states"].cat.categories)
    assert f"detected {len(counts)} terminal states: {said}" in caplog.messages
    assert "added `adata.obs['genegrad_terminal_states']`" in caplog.messages


def test_the_default_coarse_scale_is_the_first_from_two_else_the_largest():
    from genegrad.tl._fate import _default_coarse_scale

    assert _default_coarse_scale((0, 1, 2, 4, 8)) == 2
    assert _default_coarse_scale((0, 4, 8)) == 4
    assert _default_coarse_scale((0, 1)) == 1


def test_without_a_root_the_log_says_the_chain_is_not_oriented(tree, caplog):
    """Any orientation strength asked for (here 0.5) without a root or a time is said to be unused, and recorded
    as 0."""
    import logging

    a = tree.copy()
    with caplog.at_level(logging.INFO, logger="genegrad"):
        run_fate_bias(a, "terminal", forward=0.5, fine_weight=0.0)
    hint = ("no `root`: the chain is not oriented in time; pass `root` (a cell of the starting population) or "
            "`time_key` (an obs pseudotime) to down-weight steps back in pseudotime")
    assert hint in caplog.messages
    assert a.uns["genegrad"]["fate_bias"]["forward"] == pytest.approx(0.0, abs=0.0)  # recorded as what ran: no orientation
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="genegrad"):  # forward=0 asks for none: nothing to say
        run_fate_bias(a, "terminal", forward=0.0, fine_weight=0.0)
    assert hint not in caplog.messages


def test_a_program_of_one_gene_is_allowed(tree):
    a = tree.copy()
    run_fate_bias(a, "terminal", n_program_genes=1, fine_weight=0.0)
    assert all(len(p["genes"]) == 1 for p in a.uns["genegrad"]["fate_bias"]["programs"].values())
