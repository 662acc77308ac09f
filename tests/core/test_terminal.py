"""Terminal-state detection: persistence of maxima on graphs with exact answers, populations, the SNN pruning."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from genegrad._core import _terminal


def path(n):
    off = np.ones(n - 1)
    return sparse.diags([off, off], [-1, 1], format="csr")


def test_persistence_on_a_path_is_exact():
    # peaks 3 (node 2) and 6 (node 6) separated by a valley of 0.5 (node 4): the lower peak dies at 0.5
    f = np.array([0, 1, 3, 1, 0.5, 2, 6, 2, 0])
    tips = _terminal.persistent_maxima(path(9), f)
    assert [(t.cell, t.value) for t in tips] == [(6, 6.0), (2, 3.0)]
    assert tips[0].persistence == np.inf
    assert tips[1].death == pytest.approx(0.5)
    assert tips[1].persistence == pytest.approx(2.5)


def test_persistence_ignores_unreached_cells():
    f = np.array([0, 1, 2, np.inf, 5])  # node 3 unreachable: nodes 4 and 2 are separate components' maxima
    tips = _terminal.persistent_maxima(path(5), f)
    assert sorted(t.cell for t in tips) == [2, 4]
    assert all(t.persistence == np.inf for t in tips)


def star(arm):
    """A root arm 0..arm-1 into a centre, then two arms of ``arm`` nodes each; f = hops from node 0."""
    n = 3 * arm + 1
    c = arm
    edges = [(i, i + 1) for i in range(arm)]  # root arm into the centre
    for b in range(2):
        first = arm + 1 + b * arm
        edges += [(c, first)] + [(first + i, first + i + 1) for i in range(arm - 1)]
    r, s = np.array(edges).T
    A = sparse.csr_matrix((np.ones(len(edges)), (r, s)), shape=(n, n))
    A = (A + A.T).tocsr()
    f = np.concatenate([np.arange(arm + 1), np.arange(arm + 1, 2 * arm + 1), np.arange(arm + 1, 2 * arm + 1)])
    return A, f.astype(float)


def test_two_branch_tips_and_their_populations():
    A, f = star(10)  # both tips at 20, the branch point at 10
    tips = _terminal.persistent_maxima(A, f)
    assert len(tips) == 2
    assert {t.cell for t in tips} == {20, 30}
    assert tips[1].persistence == pytest.approx(10.0)  # 20 - f(centre)
    np.testing.assert_allclose(_terminal.separation_levels(A, f, [t.cell for t in tips]), [10.0, 10.0])
    labels = _terminal.tip_populations(A, f, tips, tail=0.3)
    # each tip keeps its arm's cells with f >= 20 - 0.3 * 10 = 17: f = 17, 18, 19, 20
    for j, tip in enumerate(tips):
        cells = np.flatnonzero(labels == j)
        assert len(cells) == 4
        assert set(f[cells]) == {17.0, 18.0, 19.0, 20.0}
        assert tip.cell in cells
    assert (labels >= 0).sum() == 8  # disjoint, nothing else labelled
    assert set(labels[labels < 0]) == {-1}


def test_shared_neighbour_pruning_cuts_a_lone_bridge():
    # two cliques of 10; cell 0 lists cell 10 among its neighbours instead of cell 9: a bridge with one shared
    # neighbour (Jaccard 1/19 < 1/15), while clique edges share all ten (Jaccard 1)
    idx = np.array([[j for j in range(10 * (i // 10), 10 * (i // 10) + 10) if j != i] for i in range(20)])
    idx[0, -1] = 10
    rows = np.repeat(np.arange(20), 9)
    K = sparse.csr_matrix((np.ones(idx.size), (rows, idx.ravel())), shape=(20, 20))
    K = K.maximum(K.T).tocsr()
    S = _terminal.shared_neighbor_graph(idx, K)
    assert S[0, 10] == 0
    assert S[10, 0] == 0
    block = np.zeros((20, 20), dtype=bool)
    block[:10, :10] = block[10:, 10:] = True
    dense = S.toarray() > 0
    assert not (dense & ~block).any()
    # every clique edge of K is kept (0-9 is in 9's list, so it is an edge of K too)
    np.testing.assert_array_equal(dense, (K.toarray() > 0) & block)


def test_graph_pseudotime_is_path_length():
    A = path(5)
    Y = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    np.testing.assert_allclose(_terminal.graph_pseudotime(A, Y, root=2), [3, 2, 0, 3, 7])


def test_shared_neighbour_jaccard_by_hand():
    # k = 2; with each cell itself the sets are {0,1,2} for cells 0-2 and {3,0,1} for cell 3: Jaccard 3/3 = 1 in
    # the triangle, 2/4 = 0.5 between cell 3 and the others (|A & B| / (2 (k + 1) - |A & B|))
    idx = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    K = sparse.csr_matrix(np.ones((4, 4)) - np.eye(4))
    triangle = np.zeros((4, 4), dtype=bool)
    triangle[:3, :3] = True
    np.fill_diagonal(triangle, False)
    at_half = _terminal.shared_neighbor_graph(idx, K, min_jaccard=0.5).toarray() > 0
    np.testing.assert_array_equal(at_half, K.toarray() > 0)  # 0.5 >= 0.5: every edge stays
    above = _terminal.shared_neighbor_graph(idx, K, min_jaccard=0.51).toarray() > 0
    np.testing.assert_array_equal(above, triangle)
    # a chunk smaller than the cells gives the same graph
    np.testing.assert_array_equal(_terminal.shared_neighbor_graph(idx, K, min_jaccard=0.51, chunk_size=3).toarray() > 0,
                                  triangle)


def test_graph_pseudotime_keeps_short_edges_short():
    Y = np.array([[0.0], [0.1], [0.3], [0.3]])  # the last edge has length 0: kept, at a negligible length
    np.testing.assert_allclose(_terminal.graph_pseudotime(path(4), Y, root=0), [0, 0.1, 0.3, 0.3], atol=1e-9)


def test_the_higher_maximum_survives_whatever_its_index():
    # the higher peak (10) at the larger index: the lower one (cell 0, 8) dies where they meet (level 1)
    tips = _terminal.persistent_maxima(path(3), np.array([8.0, 1.0, 10.0]))
    assert [(t.cell, t.death) for t in tips] == [(2, -np.inf), (0, 1.0)]


def test_equally_persistent_tips_are_ordered_by_height():
    # peaks 6 (cell 0) and 5 (cell 4) both persist 5 (6 - 1 and 5 - 0): the higher comes first
    tips = _terminal.persistent_maxima(path(5), np.array([6.0, 1.0, 10.0, 0.0, 5.0]))
    assert [t.cell for t in tips] == [2, 0, 4]
    assert tips[1].persistence == pytest.approx(5.0)
    assert tips[2].persistence == pytest.approx(5.0)


def test_separation_levels_follow_the_elder_component():
    # peaks 8 (cell 0), 10 (cell 2) and 5 (cell 4) on a path: 0 and 2 meet at level 1, then 4 joins them at 0
    f = np.array([8.0, 1.0, 10.0, 0.0, 5.0])
    np.testing.assert_allclose(_terminal.separation_levels(path(5), f, [2, 0, 4]), [1.0, 1.0, 0.0])
    # only among the given cells: 2 and 4 share a component from level 0 on (0 joining 2 at level 1 does not count)
    np.testing.assert_allclose(_terminal.separation_levels(path(5), f, [2, 4]), [0.0, 0.0])


def test_diffusion_pseudotime_against_a_dense_computation_on_a_path():
    """Haghverdi's DPT, written out with a dense eigendecomposition: K density-normalised, symmetrically
    normalised, the stationary pair dropped, each coordinate weighted lambda / (1 - lambda); on a path it grows
    away from the root at one end (monotonically away from the path's two ends, where the slowest mode is flat)."""
    n = 60
    A = np.zeros((n, n))
    for off in (1, 2):
        A += np.eye(n, k=off) + np.eye(n, k=-off)
    A *= np.exp(-0.1 * np.add.outer(np.arange(n), np.arange(n)) / n)  # uneven affinities
    t = _terminal.diffusion_pseudotime(sparse.csr_matrix(A), 0, n_comps=6)
    deg = A.sum(1)
    A1 = A / np.outer(deg, deg)
    d = np.sqrt(A1.sum(1))
    S = A1 / np.outer(d, d)
    vals, vecs = np.linalg.eigh(S)
    vals, vecs = vals[::-1][1:7], vecs[:, ::-1][:, 1:7]
    w = vals / (1 - vals)
    expected = np.sqrt((((vecs - vecs[0]) * w) ** 2).sum(1))
    np.testing.assert_allclose(t, expected, rtol=1e-6, atol=1e-9)
    assert t[0] == pytest.approx(0.0, abs=1e-12)
    assert (np.diff(t[3:-3]) > 0).all()
    assert t[-5:].min() > t[:n // 2].max()


def test_diffusion_pseudotime_drops_the_stationary_pairs_of_other_components():
    """Two disconnected paths (of different lengths): eigenvalue 1 twice; both are dropped and every time is
    finite. (Which mixture of the two components' eigenvectors the solver returns is not fixed, so nothing
    more is asserted of the times.)"""
    P1 = np.eye(20, k=1) + np.eye(20, k=-1)
    P2 = np.eye(27, k=1) + np.eye(27, k=-1)
    A = np.block([[P1, np.zeros((20, 27))], [np.zeros((27, 20)), P2]])
    t = _terminal.diffusion_pseudotime(sparse.csr_matrix(A), 0, n_comps=5)
    assert np.isfinite(t).all()
    assert t[0] == pytest.approx(0.0, abs=1e-12)
    assert (t >= 0).all()


def _hand_tree():
    """49 cells with a hand-set pseudotime: a trunk 0..9 (f = 0..9) forking at cell 9 into branch A (cells
    10..29, f = 10..29) and branch B (cells 30..44, f = 10..24); a spur C (cell 45, f = 21.5) on cell 20; a
    bump behind the root (cell 46, f = 2.5) on cell 1; an outlying spike (cell 47, f = 40) on cell 15; cell 48
    unreached (f = inf, no edge)."""
    f = np.concatenate([np.arange(30.0), np.arange(10.0, 25.0), [21.5, 2.5, 40.0, np.inf]])
    edges = [(i, i + 1) for i in range(29)] + [(9, 30)] + [(i, i + 1) for i in range(30, 44)]
    edges += [(20, 45), (1, 46), (15, 47)]
    r, c = np.array(edges).T
    A = sparse.csr_matrix((np.ones(r.size), (r, c)), shape=(49, 49))
    return A + A.T, f


@pytest.mark.parametrize("n_tips", [None, 2, 3])
def test_detect_tips_by_hand(n_tips):
    """Persistences: the spike never dies, B dies at 9 (15), A at 15 where the spike's component meets it (14),
    C at 20 (1.5), the bump behind the root at 1 (1.5). With min_persistence 0.05 of the 99th percentile of the
    finite f (34.83, so 1.74): the bump joins the rest below 1.74 (behind the root: out), C is not persistent
    enough (out, unless n_tips asks for more tips). The spike's population, above 40 - (40 - 15) / 2, is itself
    alone (1 cell < 3): dropped, and the populations recomputed without it: B above 24 - (24 - 9) / 2 = 16.5
    (cells 37..44), A above 29 - (29 - 9) / 2 = 19 (cells 19..29 and C's 45). With n_tips=3, C's own
    population (above 20.75) is one cell: dropped too."""
    A, f = _hand_tree()
    span = float(np.percentile(f[:48], 99))
    assert 1.5 < 0.05 * span < 9  # between C's persistence and B's death (and above the bump's death, 1)
    found = _terminal.detect_tips(A, f, n_tips=n_tips, min_persistence=0.05, tail=0.5, min_cells=3)
    assert found.span == span
    assert [t.cell for t in found.kept] == [44, 29]  # B first: the more persistent
    expected = np.full(49, -1)
    expected[37:45] = 0
    expected[19:30] = 1
    expected[45] = 1
    np.testing.assert_array_equal(found.labels, expected)
    candidates = [47, 44, 29] + ([45] if n_tips is not None else [])
    assert [t.cell for t in found.candidates] == candidates
    assert [t.death for t in found.candidates[1:]] == [9.0, 15.0, 20.0][: len(candidates) - 1]
    assert found.n_small == (2 if n_tips == 3 else 1)
    # every maximum, most persistent first, whatever the bars: the spike, B, A, then C and the bump behind the
    # root (both 1.5, the higher first)
    assert [t.cell for t in found.maxima] == [47, 44, 29, 45, 46]


def test_detect_tips_at_its_thresholds():
    """A death or a persistence equal to the threshold passes it; a population of exactly ``min_cells`` is kept."""
    A, f = _hand_tree()
    span = float(np.percentile(f[:48], 99))
    np.testing.assert_array_equal([(1.0 / span) * span, (1.5 / span) * span], [1.0, 1.5])  # exact thresholds
    # the bump's death is 1: at a threshold of 1 it is in front of the root, and as persistent as C (1.5)
    found = _terminal.detect_tips(A, f, n_tips=None, min_persistence=1.0 / span, tail=0.5, min_cells=3)
    assert [t.cell for t in found.candidates] == [47, 44, 29, 45, 46]  # C before the bump: higher
    assert [t.cell for t in found.kept] == [44, 29]
    assert found.n_small == 3  # the spike, C and the bump: one cell each
    # C's persistence is 1.5: a candidate at a threshold of 1.5 (where the bump, dead at 1, is behind the root)
    found = _terminal.detect_tips(A, f, n_tips=None, min_persistence=1.5 / span, tail=0.5, min_cells=3)
    assert [t.cell for t in found.candidates] == [47, 44, 29, 45]
    # beside the spike, B's and A's populations hold 8 cells each (A above 29 - (29 - 15) / 2 = 22): both kept
    # with min_cells 8, and B's 8 and A's 12 once the spike is gone; with 9, all three are dropped at once
    found = _terminal.detect_tips(A, f, n_tips=None, min_persistence=0.05, tail=0.5, min_cells=8)
    assert [t.cell for t in found.kept] == [44, 29]
    found = _terminal.detect_tips(A, f, n_tips=None, min_persistence=0.05, tail=0.5, min_cells=9)
    assert found.kept == []
    assert found.n_small == 3


def test_detect_tips_needs_two_tips_to_place_populations():
    A, f = _hand_tree()
    found = _terminal.detect_tips(A, f, n_tips=1, min_persistence=0.05, tail=0.5, min_cells=3)
    assert [t.cell for t in found.kept] == [47]
    assert found.labels.dtype == np.int64
    assert (found.labels == -1).all()
    assert found.n_small == 0
    # a larger tail reaches lower: A's population from 29 - 0.9 (29 - 9) = 11 holds cells 11..29, C and the spike
    wide = _terminal.detect_tips(A, f, n_tips=None, min_persistence=0.05, tail=0.9, min_cells=3)
    assert np.flatnonzero(wide.labels == 1).tolist() == [*range(11, 30), 45, 47]  # cell 15 joins the spike
    # min_cells 1 keeps the spike: three tips, the spike's population itself
    spiky = _terminal.detect_tips(A, f, n_tips=None, min_persistence=0.05, tail=0.5, min_cells=1)
    assert [t.cell for t in spiky.kept] == [47, 44, 29]
    assert np.flatnonzero(spiky.labels == 0).tolist() == [47]
