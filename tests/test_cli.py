"""The command line passes every option through to the function it names."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pytest

import genegrad as gg
from genegrad.cli import main


def test_run_passes_its_options_through(tmp_path):
    a = gg.datasets.synthetic("plane", n_cells=300, n_genes=40, rng=0)
    src, out, store = tmp_path / "in.h5ad", tmp_path / "out.h5ad", tmp_path / "my.zarr"
    a.write_h5ad(src)
    genes = [str(g) for g in a.var_names[[3, 1, 7]]]
    assert main(["run", str(src), "-o", str(out), "--scales", "0,3", "--n-dims", "1", "--n-neighbors", "12",
                 "--genes", ",".join(genes), "--store", "zarr", "--store-path", str(store), "--no-log-mean"]) == 0
    back = ad.read_h5ad(out)
    info = back.uns["genegrad"]
    assert info["gradients"]["log_mean"] is False  # preprocessed here, so it would be on by default
    assert [int(t) for t in info["scales"]] == [0, 3]
    assert int(info["n_dims"]) == 1
    assert int(info["params"]["n_neighbors"]) == 12
    assert [str(g) for g in info["gradients"]["genes"]] == genes
    assert info["gradients"]["path"] == str(store)
    assert (store / "genegrad-store.json").is_file()
    assert not (tmp_path / "out.h5ad.gradients.zarr").exists()
    g = gg.get.gradients(back, genes[:1], scale=3, basis="tangent")
    assert g.shape == (300, 1, 1)
    assert np.isfinite(g).all()


def test_run_onto_an_existing_output_needs_force(tmp_path, capsys):
    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=30, rng=0)
    src = tmp_path / "in.h5ad"
    a.write_h5ad(src)
    args = ["run", str(src), "-o", str(src), "--n-neighbors", "10", "--genes", str(a.var_names[0])]
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert "genegrad" not in ad.read_h5ad(src).uns
    assert main([*args, "--force", "-v"]) == 0  # -v after the command is accepted
    assert "genegrad" in ad.read_h5ad(src).uns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad"]  # no temporary file left


def test_terminal_groups_name_the_terminal_states(tmp_path):
    a = gg.datasets.synthetic("tree", n_cells=600, n_genes=60, rng=0)
    src, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    a.write_h5ad(src)
    assert main(["run", str(src), "-o", str(out), "--n-neighbors", "15", "--terminal-groups", "segment:1,3,4",
                 "--root", str(int(a.obs["pseudotime"].argmin()))]) == 0
    back = ad.read_h5ad(out)
    assert [str(f) for f in back.uns["genegrad"]["fate_bias"]["fates"]] == ["1", "3", "4"]
    states = back.obs["genegrad_terminal_states"].astype(object).fillna("").to_numpy()
    seg = a.obs["segment"].astype(str).to_numpy()
    np.testing.assert_array_equal(states, np.where(np.isin(seg, ["1", "3", "4"]), seg, ""))
    for bad in (["--terminal-groups", "segment:1"], ["--terminal-groups", "segment:1,9"],
                ["--terminal-groups", "nope:1,3"], ["--terminal-groups", "segment:1,3", "--terminal", "fate"]):
        assert main(["run", str(src), "-o", str(tmp_path / "bad.h5ad"), *bad]) == 2


def test_version_and_one_line_warnings(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"genegrad {gg.__version__}"
    a = gg.datasets.synthetic("plane", n_cells=200, n_genes=30, rng=0)
    gg.pp.preprocess(a, n_comps=8)
    a.X = a.layers["counts"]  # X_pca present, so no preprocessing: counts are differentiated, with a warning
    src = tmp_path / "in.h5ad"
    a.write_h5ad(src)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["run", str(src), "-o", str(tmp_path / "out.h5ad"), "--n-neighbors", "10"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "looks like raw counts" in line]
    assert lines
    assert lines[0].startswith("genegrad: warning: `adata.X` looks like raw counts")
    assert "warn(" not in err
    assert ".py:" not in err


def test_umap_step_lines_and_quiet(tmp_path, capsys):
    a = gg.datasets.synthetic("plane", n_cells=250, n_genes=30, rng=0)
    src = tmp_path / "in.h5ad"
    a.write_h5ad(src)
    base = ["run", str(src), "--n-neighbors", "10", "--genes", ",".join(a.var_names[:3])]
    assert main([*base, "-o", str(tmp_path / "a.h5ad")]) == 0
    err = capsys.readouterr().err
    steps = [line.split(" (")[0] for line in err.splitlines() if line.startswith("genegrad: ")]
    assert steps == ["genegrad: preprocess", "genegrad: manifold", "genegrad: gradients", "genegrad: UMAP",
                     "genegrad: write h5ad"]
    assert all(line.endswith(" s)") for line in err.splitlines() if line.startswith("genegrad: "))
    umap = ad.read_h5ad(tmp_path / "a.h5ad")
    assert umap.obsm["X_umap"].shape == (250, 2)
    assert "genegrad_umap_neighbors" not in umap.uns  # its own graph is not left behind
    assert not [k for k in umap.obsp if k.startswith("genegrad_umap")]
    # --no-umap computes none; an existing X_umap is kept as it is; --quiet prints only the file written
    assert main([*base, "-o", str(tmp_path / "b.h5ad"), "--no-umap", "-q"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.strip() == f"wrote {tmp_path / 'b.h5ad'}"
    assert "X_umap" not in ad.read_h5ad(tmp_path / "b.h5ad").obsm
    a.obsm["X_umap"] = np.arange(500, dtype=float).reshape(250, 2)
    a.write_h5ad(src)
    assert main([*base, "-o", str(tmp_path / "c.h5ad"), "-q"]) == 0
    np.testing.assert_array_equal(ad.read_h5ad(tmp_path / "c.h5ad").obsm["X_umap"], a.obsm["X_umap"])
