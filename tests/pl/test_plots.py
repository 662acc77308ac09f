"""Plots draw what the tools wrote, on the Agg backend: the right panels, titles and streamlines."""

from __future__ import annotations

import matplotlib as mpl

mpl.use("Agg")

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import genegrad as gg


@pytest.fixture(scope="module")
def described():
    adata = gg.datasets.synthetic("plane", n_cells=800, n_genes=80, depth=2000, rng=5)
    gg.pp.preprocess(adata, n_comps=15)
    gg.pp.manifold(adata, n_neighbors=20)
    gg.tl.patterns(adata, genes=list(adata.var_names), n_null=80)
    gg.tl.gradients(adata, genes=list(adata.var_names[:2]))
    return adata


def _streamlines(ax) -> np.ndarray:
    from matplotlib.collections import LineCollection

    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1, "expected one set of streamlines beside the scatter"
    return np.concatenate([np.asarray(s) for s in lines[0].get_segments()])


def test_gradient_stream_draws_streamlines(described):
    from scipy import sparse

    gene, other = described.var_names[0], described.var_names[1]
    ax = gg.pl.gradient_stream(described, gene, scale=2)
    assert ax.get_title() == f"{gene}  (t=2)"
    segments = _streamlines(ax)
    # coloured by the signal whose gradient is drawn: the gene smoothed by two diffusion steps, 1st-99th percentile
    P = sparse.csr_matrix(described.obsp["genegrad_diffusion"], dtype=np.float64)
    x = described[:, gene].X
    f = P @ (P @ np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64).ravel())
    scatter = ax.collections[0]
    np.testing.assert_allclose(scatter.get_array(), f, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scatter.get_clim(), np.percentile(f, [1, 99]), rtol=1e-4)
    assert not any(s.get_visible() for s in ax.spines.values())  # frameless
    plt.close(ax.figure)
    # another gene, another field: its streamlines are not the first gene's
    ax2 = gg.pl.gradient_stream(described, other, scale=2)
    other_segments = _streamlines(ax2)
    assert segments.shape != other_segments.shape or not np.allclose(segments, other_segments)
    plt.close(ax2.figure)


def test_patterns_gallery_has_one_row_per_pattern(described):
    cats = [c for c in described.var["genegrad_pattern"].cat.categories if c != "noise"]
    fig = gg.pl.patterns(described, n_genes=2)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2 * len(cats)
    assert len(fig.axes) == 2 * len(panels)  # one colour bar per panel: one colour scale per gene
    assert all(ax.get_title().split(":")[0] in cats for ax in panels)
    for ax in panels:
        _streamlines(ax)
    # each row's first panel says how many genes the pattern holds and its median peaks and troughs
    sizes = described.var["genegrad_pattern"].value_counts()
    labels = [panels[2 * r].get_ylabel() for r in range(len(cats))]
    assert [int(lab.split(" genes")[0]) for lab in labels] == [int(sizes[c]) for c in cats]
    assert all("peaks" in lab and "troughs" in lab for lab in labels)
    plt.close(fig)


def test_patterns_gallery_rejects_unknown_pattern(described):
    with pytest.raises(ValueError, match="Unknown patterns"):
        gg.pl.patterns(described, patterns=["P99"])


@pytest.fixture(scope="module")
def fated():
    adata = gg.datasets.synthetic("tree", n_cells=800, n_genes=120, depth=2000, rng=6)
    gg.pp.preprocess(adata, n_comps=15)
    gg.pp.manifold(adata, n_neighbors=20)
    adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
    gg.tl.fate_bias(adata, "terminal")
    return adata


def test_fate_probs_one_panel_per_fate(fated):
    fig = gg.pl.fate_probs(fated, fates=["A", "B"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["p(A) and its fate flow", "p(B) and its fate flow"]
    plt.close(fig)


def test_fate_panels_show_every_cell_and_mark_the_root(fated):
    a = fated.copy()
    root = int(a.obs["pseudotime"].argmin())
    gg.tl.fate_bias(a, "terminal", root=root)
    fig = gg.pl.fate_probs(a, fates=["A"])
    ax = fig.axes[0]
    E = a.obsm["X_pca"][:, :2]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < E[:, 0].min()
    assert E[:, 0].max() < x1
    assert y0 < E[:, 1].min()
    assert E[:, 1].max() < y1  # no cell at or beyond the frame
    stars = [c for c in ax.collections if c.get_label() == "root"]
    assert len(stars) == 1
    np.testing.assert_allclose(stars[0].get_offsets()[0], E[root])
    plt.close(fig)
    fig = gg.pl.fate_probs(fated, fates=["A"])  # without a root: none marked
    assert not [c for c in fig.axes[0].collections if c.get_label() == "root"]
    plt.close(fig)


def test_fate_panels_circle_the_terminal_cells(fated):
    fig = gg.pl.fate_probs(fated, fates=["B"])
    circled = [c for c in fig.axes[0].collections if c.get_label() == "terminal cells"]
    assert len(circled) == 1
    assert len(circled[0].get_offsets()) == int((fated.obs["terminal"] == "B").sum())
    plt.close(fig)
    fig = gg.pl.fate_probs(fated, fates=["B"], show_terminal=False)
    assert not [c for c in fig.axes[0].collections if c.get_label() == "terminal cells"]
    plt.close(fig)
    with pytest.raises(TypeError, match="`show_terminal` to be True or False"):
        gg.pl.fate_probs(fated, fates=["B"], show_terminal="no")  # a non-empty string would read as True


def test_driver_heatmap_rows_are_the_drivers(fated):
    fig = gg.pl.drivers(fated, "A", pseudotime="pseudotime", n_genes=8)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(gg.tl.drivers(fated, "A", n_genes=8).index)
    plt.close(fig)


def test_driver_heatmap_bins_hold_equal_shares_of_the_fate_in_pseudotime_units(fated):
    from matplotlib.collections import QuadMesh

    a = fated.copy()
    t = a.obs["pseudotime"].to_numpy()
    late = t > np.quantile(t, 0.8)
    probs = a.obsm["genegrad_fate_probs"].copy()
    probs.loc[late, "A"] = 0.0  # the last fifth of the cells carry none of A's probability
    a.obsm["genegrad_fate_probs"] = probs
    fig = gg.pl.drivers(a, "A", pseudotime="pseudotime", n_genes=5, n_bins=10)
    ax = fig.axes[0]
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    M = np.asarray(mesh.get_array()).reshape(5, -1)
    assert M.shape[1] == 10
    assert np.isfinite(M).all()  # no empty bin
    np.testing.assert_allclose(M.min(axis=1), 0.0)  # each row scaled to [0, 1]
    np.testing.assert_allclose(M.max(axis=1), 1.0)
    # the x axis is the pseudotime: it spans 99% of A's probability, and not the late fifth
    x0, x1 = ax.get_xlim()
    w = probs["A"].to_numpy()
    with_a = t[w > 0]
    assert with_a.min() <= x0 < x1 <= with_a.max()
    inside = (t >= x0) & (t <= x1)
    assert w[inside].sum() >= 0.98 * w.sum()
    # equal shares: each bin's cells carry about a tenth of A's probability (up to one cell at each border, and
    # the 0.5% tails cut from the outer bins' drawn width)
    edges = mesh.get_coordinates()[0, :, 0]
    shares = [w[(t >= lo) & (t < hi)].sum() for lo, hi in itertools.pairwise(edges)]
    np.testing.assert_allclose(shares, w.sum() / 10, atol=1.0 + 0.005 * w.sum())
    plt.close(fig)


def test_driver_heatmap_defaults_to_the_root_pseudotime(fated):
    with pytest.raises(KeyError, match=r"fate_bias\(\.\.\., root=\.\.\.\)"):
        gg.pl.drivers(fated, "A")  # fate_bias ran without a root: no pseudotime of its own
    a = fated.copy()
    a.obs["genegrad_pseudotime"] = a.obs["pseudotime"].to_numpy()
    a.obs.iloc[:5, a.obs.columns.get_loc("genegrad_pseudotime")] = np.nan  # unreachable cells are left out
    fig = gg.pl.drivers(a, "A", n_genes=5)
    assert fig.axes[0].get_xlabel().startswith("genegrad_pseudotime")
    plt.close(fig)


def test_pattern_profile_without_region_counts():
    # data described by an older genegrad has no peaks or troughs: the row label shows what there is
    from genegrad.pl._patterns import _profile

    rows = pd.DataFrame({"coherence": [0.1, 0.3, 0.5], "localisation": [0.2, 0.2, 0.4]})
    assert _profile(rows).split("\n") == ["3 genes", "coherence 0.30, localisation 0.20"]


def test_stream_grid_matches_the_untruncated_kernel():
    # the grid bins the cells on a lattice 8x finer than the grid and cuts the Gaussian at 4h. Against every cell
    # weighed at its own position at every grid point: the cut moves an average by at most (weight cut) / (weight
    # kept) x the vectors' range (a cell beyond 4h weighs < exp(-8) ~ 3e-4; a drawn grid point keeps > exp(-2/9)
    # ~ 0.8 from its nearest cell alone), and the binning moves each cell by <= 0.06h, changing its weight by a
    # factor exp(+-0.06 d / h): weights of near cells barely change, far cells weigh little, a few thousandths here
    from genegrad.pl._gradients import _grid

    rng = np.random.default_rng(0)
    t = rng.uniform(0, 3, 4000)
    xy = np.column_stack([t * np.cos(t), t * np.sin(t)]) + rng.normal(0, 0.1, (4000, 2))
    v = np.column_stack([np.cos(t), np.sin(3 * t)]) + rng.normal(0, 0.3, (4000, 2))
    gx, gy, U, W = _grid(xy, v, 25)
    X, Y = np.meshgrid(gx, gy)
    h = np.mean((xy.max(0) - xy.min(0)) / 25) * 1.5
    d2 = (X.ravel()[:, None] - xy[None, :, 0]) ** 2 + (Y.ravel()[:, None] - xy[None, :, 1]) ** 2
    k = np.exp(-d2 / (2 * h * h))
    ref = (k @ v) / k.sum(axis=1, keepdims=True)
    empty = np.sqrt(d2.min(axis=1)) > h / 1.5
    np.testing.assert_array_equal(np.isnan(U.ravel()), empty)
    np.testing.assert_array_equal(np.isnan(W.ravel()), empty)
    assert 0 < empty.sum() < empty.size  # the spiral leaves empty grid points, and fills others
    np.testing.assert_allclose(U.ravel()[~empty], ref[~empty, 0], atol=5e-3)
    np.testing.assert_allclose(W.ravel()[~empty], ref[~empty, 1], atol=5e-3)


def test_streamlines_only_where_the_field_is_steep(described):
    # a field that vanishes on the left half of the embedding and is weak (10% of the right's) on a middle band:
    # streamlines stay on the right, past the grid's smoothing (1.5 grid steps)
    from genegrad.pl._gradients import draw_stream

    xy = np.asarray(described.obsm["X_pca"][:, :2], dtype=np.float64)
    x = xy[:, 0]
    lo, hi = np.percentile(x, [50, 70])
    V = np.zeros_like(xy)
    V[:, 1] = np.where(x > hi, 1.0, np.where(x > lo, 0.1, 0.0))
    fig, ax = plt.subplots()
    draw_stream(described, V, x, basis="X_pca", components=(0, 1), grid_size=30, ax=ax, scatter_kwargs=None,
                title="field")
    segments = _streamlines(ax)
    step = (x.max() - x.min()) / 29
    assert segments[:, 0].min() > hi - 3 * step
    plt.close(fig)
