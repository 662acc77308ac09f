"""tl.fate_bias on AnnData: orientation, the fine step, programs, options, bad inputs (detection:
test_terminal_states.py)."""

from __future__ import annotations

import logging
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


def test_fine_evidence_against_the_chain_falls_back_to_the_chain(tree, caplog):
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
    # a bar no fate clears (agreement < 1 unless the ranks coincide): the step is skipped, and the log says why
    b = tree.copy()
    with caplog.at_level(logging.INFO, logger="genegrad"):
        run_fate_bias(b, "terminal", min_fine_agreement=1.0)
    assert "ranks the progenitors against" in caplog.text
    np.testing.assert_allclose(b.obsm["genegrad_fate_probs"].to_numpy(), chain, atol=1e-12)
    np.testing.assert_array_equal(b.obsm["genegrad_fate_deviation"].to_numpy(), z)  # the evidence is still stored
    assert not b.uns["genegrad"]["fate_bias"]["fine_step"]
    assert b.uns["genegrad"]["fate_bias"]["min_fine_agreement"] == pytest.approx(1.0, abs=0.0)


def test_the_fine_step_runs_by_default_only_where_every_fate_agrees_with_the_chain(tree):
    # the bar is 0: any negative agreement skips the step (this tree carries no fate signal outside its trends, and
    # one fate's agreement is slightly negative: a bar of -0.2 would have let the step run)
    a = tree.copy()
    run_fate_bias(a, "terminal", min_fine_agreement=None)
    agreement = a.uns["genegrad"]["fate_bias"]["fine_agreement"]
    assert -0.2 < agreement.min() < 0
    gg.tl.fate_bias(a, "terminal")
    info = a.uns["genegrad"]["fate_bias"]
    assert info["min_fine_agreement"] == pytest.approx(0.0, abs=0.0)
    assert not info["fine_step"]
    np.testing.assert_array_equal(a.obsm["genegrad_fate_probs"].to_numpy(),
                                  a.obsm["genegrad_fate_probs_chain"].to_numpy())
    np.testing.assert_allclose(info["fine_agreement"], agreement)


def test_a_flow_kernel_mixes_into_the_chain_linearly(tree):
    # T(w) = (1 - w) T(0) + w T(1): the flows do not depend on the weight, so the mixture is exact
    a = tree.copy()
    root = int(np.argmin(a.obs["pseudotime"].to_numpy()))
    T = {}
    for w in (0.0, 0.25, 1.0):
        run_fate_bias(a, "terminal", root=root, flow_mix=w, fine_weight=0)
        T[w] = a.obsp["genegrad_transitions"].astype(np.float64).toarray()
        assert a.uns["genegrad"]["fate_bias"]["flow_mix"] == pytest.approx(w, abs=0.0)
    np.testing.assert_allclose(T[0.25], 0.75 * T[0.0] + 0.25 * T[1.0], atol=1e-6)
    np.testing.assert_allclose(T[1.0].sum(axis=1), 1.0, atol=1e-5)
    # T(1) is the flow kernel: the symmetric affinities tilted by exp(FLOW_BETA cos) along the summed fate flows
    from genegrad.pp._manifold import load_model

    flows = a.obsm["genegrad_fate_flow"].astype(np.float64)  # stored as float32: cosines off by ~1e-7
    v = load_model(a).to_ambient(flows.sum(axis=1)[:, None, :])[:, 0, :]
    Y = np.asarray(a.obsm[a.uns["genegrad"]["params"]["use_rep"]], dtype=np.float64)
    expected = _fate.tilted_transitions(a.obsp["genegrad_connectivities"], Y, v, beta=_fate.FLOW_BETA).toarray()
    np.testing.assert_allclose(T[1.0], expected, atol=1e-4)
    assert np.abs(T[1.0] - T[0.0]).max() > 0.1  # another chain than the time-oriented one
    with pytest.raises(ValueError, match="flow_mix"):
        run_fate_bias(a, "terminal", root=root, flow_mix=1.5)


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


def test_fate_bias_keeps_ten_options():
    import inspect

    params = [p for p in inspect.signature(gg.tl.fate_bias).parameters if p != "adata"]
    assert len(params) == 10
    assert not {"beta", "forward", "coarse_scale", "min_fine_agreement", "n_program_genes"} & set(params)


def test_one_named_state_is_not_two(tree):
    """A single state name with `groupby` is one state (not the letters of its name): refused, as fewer than two."""
    a = tree.copy()
    a.obs["lineage"] = "line" + a.obs["fate"].astype(str)
    with pytest.raises(ValueError, match=r"at least two terminal states to compare fates, got \['lineA'\]"):
        run_fate_bias(a, "lineA", groupby="lineage")


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
