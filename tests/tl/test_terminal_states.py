"""tl.terminal_states, and the detection behind tl.fate_bias without named states: branch ends found by
persistence, named by their majority group, the pseudotime from the root, bad inputs, what is logged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import genegrad as gg
from genegrad.tl._fate import run_fate_bias


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
