"""The README's quickstart (and the pages it points to) run as written: they are what a newcomer copies."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pytest

import genegrad as gg

mpl.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"


def _run_block(path: Path, heading: str) -> dict:
    block = re.search(heading + r"\s+```python\n(.*?)```", path.read_text(), re.S)
    assert block, f"{path.name} lost its {heading!r} python block"
    code = block.group(1)
    if importlib.util.find_spec("cellrank") is None:
        # the optional peer is not a dependency: its line must then fail with a clear message
        code = code.replace("kernel = gg.tl.to_cellrank(adata)",
                            "import pytest\nwith pytest.raises(ImportError, match='pip install cellrank'):\n"
                            "    gg.tl.to_cellrank(adata)")
    ns = {"pytest": pytest}
    exec(compile(code, str(path), "exec"), ns)
    return ns


def test_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it writes report/ into the working directory
    ns = _run_block(README, "## Quickstart")
    adata, g, fates, drivers = ns["adata"], ns["g"], ns["fates"], ns["drivers"]
    assert g.shape == (adata.n_obs, 1, adata.obsm["X_pca"].shape[1])
    assert ns["patterns"]["structured"].any()
    # the detected states are named by their majority fate and the probabilities are a distribution
    assert set(adata.obs["genegrad_terminal_states"].dropna().unique()) == {"A", "B", "C"}
    np.testing.assert_allclose(fates[["A", "B", "C"]].sum(axis=1), 1.0, atol=1e-6)
    # the simulated lineages: the cells of fate A's branch (beyond the first split) lean towards A
    late = adata.obs["pseudotime"].to_numpy() > np.quantile(adata.obs["pseudotime"], 0.5)
    in_a = (adata.obs["fate"].to_numpy() == "A") & late
    assert fates["A"].to_numpy()[in_a].mean() > fates["A"].to_numpy()[~in_a & late].mean() + 0.2
    assert len(drivers) > 0
    assert (Path("report") / "index.html").is_file()


def test_walkthrough_runs():
    ns = _run_block(README.parent / "docs" / "quickstart.md", "## Gradients, patterns, fates")
    # what the walkthrough says it computes, checked against the synthetic truth it uses
    adata, g, truth = ns["adata"], ns["g"], ns["truth"]
    assert g.shape == truth.shape == (adata.n_obs, 1, adata.obsm["X_pca"].shape[1])
    nt = np.linalg.norm(truth[:, 0], axis=1)
    strong = nt > 0.5 * np.percentile(nt, 95)  # where the switch changes (elsewhere it is flat, its truth ~0)
    cos = (g[:, 0] * truth[:, 0]).sum(1) / np.maximum(np.linalg.norm(g[:, 0], axis=1) * nt, 1e-12)
    # the branch switch's gradient points the true way (d = 1: cosines are about +-1; measured at its recommended
    # scale, t = 8: mean 0.82, 7% of the cells the wrong way; at t = 2 0.64 and 17%; one gene at 1,000 UMIs/cell)
    assert np.mean(cos[strong]) > 0.5
    assert np.mean(cos[strong] < 0) < 0.25
    fates = ns["gg"].get.fates(adata)
    assert sorted(fates.columns[-3:]) == ["A", "B", "C"]
    np.testing.assert_allclose(fates[["A", "B", "C"]].sum(axis=1), 1.0, atol=1e-6)
    assert ns["gg"].get.descriptors(adata)["structured"].any()


def test_atac_block_runs():
    atac = README.parent / "docs" / "atac.md"
    assert "docs/atac.md" in README.read_text(), "README.md no longer points to docs/atac.md"
    block = re.search(r"# scATAC-seq and multiome\s+```python\n(.*?)```", atac.read_text(), re.S)
    assert block, "docs/atac.md lost its scATAC-seq python block"
    scope = {}
    exec(compile(block.group(1), str(atac), "exec"), scope)
    assert scope["rna"].uns["genegrad"]["params"]["use_rep"] == "X_lsi"
    assert len(scope["rna"].uns["genegrad"]["gradients"]["genes"]) == 300
    assert gg.get.gradients(scope["rna"], list(scope["rna"].var_names[:2]), basis="tangent").shape[:2] == (1500, 2)
