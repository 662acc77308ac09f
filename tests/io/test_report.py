"""The report folder: what it writes equals what the tools and accessors return; the AnnData is only read."""

from __future__ import annotations

import html
import os
import re

import numpy as np
import pandas as pd
import pytest

import genegrad as gg


@pytest.fixture(scope="module")
def _tree():
    adata = gg.datasets.synthetic("tree", n_cells=600, n_genes=120, depth=2000, rng=0)
    gg.pp.preprocess(adata, n_comps=15)
    gg.pp.manifold(adata)
    gg.tl.gradients(adata, list(adata.var_names[:20]))
    gg.tl.patterns(adata, n_null=60)
    # fate names that are not safe in HTML nor in a file name
    names = {"A": "A<1>", "B": "B/2", "C": "C"}
    adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata).map(names)
    gg.tl.fate_bias(adata, "terminal", root=int(adata.obs["pseudotime"].argmin()))
    return adata


@pytest.fixture
def tree(_tree):
    return _tree.copy()


def _snapshot(adata):
    return (list(adata.obs.columns), list(adata.var.columns), sorted(adata.uns), sorted(adata.uns["genegrad"]),
            sorted(adata.obsm), sorted(adata.varm), sorted(adata.obsp), adata.X.toarray())


def test_report_writes_the_tools_results(tree, tmp_path):
    before = _snapshot(tree)
    index = gg.io.write_report(tree, tmp_path / "rep", n_genes=5)
    out = tmp_path / "rep"
    assert index == out / "index.html"
    after = _snapshot(tree)
    assert before[:-1] == after[:-1]
    np.testing.assert_array_equal(before[-1], after[-1])

    desc = pd.read_csv(out / "patterns.csv", index_col=0)
    ref = gg.get.descriptors(tree)
    assert list(desc.index) == list(ref.index)
    assert list(desc["pattern"].astype(str)) == list(ref["pattern"].astype(str))
    np.testing.assert_allclose(desc["coherence"], ref["coherence"], rtol=1e-6)
    # the recommended scale of the 20 differentiated genes, empty for the others
    np.testing.assert_array_equal(desc["recommended_scale"], tree.var.loc[desc.index, "genegrad_scale"])
    assert desc["recommended_scale"].notna().sum() == 20
    assert "recommended_scale" in (out / "index.html").read_text()

    probs = pd.read_csv(out / "fate_probs.csv", index_col=0)
    fates = ["A<1>", "B/2", "C"]
    assert list(probs.columns) == ["terminal_state", "pseudotime", *fates]
    np.testing.assert_allclose(probs["pseudotime"], tree.obs["genegrad_pseudotime"], rtol=1e-6)
    np.testing.assert_allclose(probs[fates].to_numpy(), tree.obsm["genegrad_fate_probs"][fates].to_numpy(),
                               rtol=1e-6)
    assert (probs["terminal_state"].fillna("") == tree.obs["terminal"].astype(object).fillna("")).all()

    drivers = pd.read_csv(out / "drivers.csv")
    assert drivers.groupby("fate").size().to_dict() == dict.fromkeys(fates, 5)
    for fate in fates:  # all fates scored in one pass over the genes: as each on its own
        ref = gg.tl.drivers(tree, fate, n_genes=5)
        got = drivers[drivers["fate"] == fate]
        assert list(got["gene"]) == list(ref.index)
        np.testing.assert_allclose(got[["score", "alignment", "corr"]], ref[["score", "alignment", "corr"]],
                                   rtol=1e-6)

    page = index.read_text()
    assert "A&lt;1&gt;" in page
    assert "A<1>" not in page
    for name in ("patterns.png", "fates.png", "drivers_A_1.png", "drivers_B_2.png", "drivers_C.png"):
        assert (out / name).stat().st_size > 5_000
        assert f"src='{name}'" in page
    for pattern in ref_patterns(tree):
        assert f"<td>{pattern}</td>" in page


def ref_patterns(adata):
    return sorted(set(adata.var["genegrad_pattern"].dropna().astype(str)))


def test_report_of_a_manifold_names_what_is_missing(tmp_path):
    adata = gg.datasets.synthetic("cycle", n_cells=300, n_genes=40, rng=0)
    gg.pp.preprocess(adata, n_comps=10)
    gg.pp.manifold(adata, n_neighbors=15)
    page = gg.io.write_report(adata, tmp_path).read_text()
    assert "genegrad.tl.patterns(adata)" in page
    assert "genegrad.tl.fate_bias(adata, ...)" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == [".genegrad-report", "index.html"]
    assert f"<td>{adata.uns['genegrad']['n_dims']}</td>" in page  # the intrinsic dimension


def test_report_draws_on_umap_when_there_is_one(tree, tmp_path, monkeypatch):
    seen = []
    real = gg.pl.fate_probs

    def spy(adata, **kwargs):
        seen.append(kwargs["basis"])
        return real(adata, **kwargs)

    monkeypatch.setattr(gg.pl, "fate_probs", spy)
    gg.io.write_report(tree, tmp_path / "pca")
    tree.obsm["X_umap"] = tree.obsm["X_pca"][:, [1, 0]]
    gg.io.write_report(tree, tmp_path / "umap")
    gg.io.write_report(tree, tmp_path / "asked", basis="X_pca")
    assert seen == ["X_pca", "X_umap", "X_pca"]


def test_report_bad_input(tree, tmp_path):
    with pytest.raises(KeyError, match=r"run `genegrad.pp.manifold`"):
        gg.io.write_report(gg.datasets.synthetic("cycle", n_cells=50, n_genes=10, rng=0), tmp_path)
    with pytest.raises(KeyError, match="X_umap"):
        gg.io.write_report(tree, tmp_path, basis="X_umap")
    with pytest.raises(ValueError, match="n_genes"):
        gg.io.write_report(tree, tmp_path, n_genes=0)
    assert not any(tmp_path.iterdir())  # nothing written before the checks


def test_cli_runs_fates_and_reports(tmp_path):
    from genegrad.cli import main

    adata = gg.datasets.synthetic("tree", n_cells=500, n_genes=80, depth=2000, rng=1)
    adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
    root = adata.obs_names[int(adata.obs["pseudotime"].argmin())]
    src = tmp_path / "in.h5ad"
    adata.write_h5ad(src)
    out = tmp_path / "out.h5ad"
    assert main(["run", str(src), "-o", str(out), "--terminal", "terminal", "--root", root,
                 "--report", str(tmp_path / "rep")]) == 0
    import anndata as ad

    back = ad.read_h5ad(out)
    assert list(back.obsm["genegrad_fate_probs"].columns) == ["A", "B", "C"]
    assert back.uns["genegrad"]["fate_bias"]["root"] == root
    assert (tmp_path / "rep" / "fates.png").exists()
    assert not (tmp_path / "rep" / "patterns.csv").exists()
    assert main(["report", str(out), "-o", str(tmp_path / "rep2"), "--n-genes", "3"]) == 0
    assert len(pd.read_csv(tmp_path / "rep2" / "drivers.csv")) == 9
    no_root = tmp_path / "no_root.h5ad"
    assert main(["run", str(src), "-o", str(no_root), "--terminal", "terminal"]) == 0
    assert main(["report", str(no_root), "-o", str(tmp_path / "rep3")]) == 0
    assert "without a <code>root</code>" in (tmp_path / "rep3" / "index.html").read_text()
    assert not list((tmp_path / "rep3").glob("drivers_*.png"))
    timed = tmp_path / "timed.h5ad"
    assert main(["run", str(src), "-o", str(timed), "--terminal", "terminal", "--time-key", "pseudotime",
                 "--report", str(tmp_path / "rep4")]) == 0
    back = ad.read_h5ad(timed)
    assert back.uns["genegrad"]["fate_bias"]["time_key"] == "pseudotime"
    np.testing.assert_allclose(back.obs["genegrad_pseudotime"], adata.obs["pseudotime"] - adata.obs["pseudotime"].min(),
                               rtol=1e-6)
    assert "oriented by <code>obs[&#x27;pseudotime&#x27;]</code>" in (tmp_path / "rep4" / "index.html").read_text()
    assert list((tmp_path / "rep4").glob("drivers_*.png"))  # the given time orders the heatmaps
    for bad in (["--terminal", "terminal", "--groupby", "fate"], ["--terminal", "fates"], ["--root", "nocell"],
                ["--root", "99999"], ["--time-key", "pseudotime"], ["--terminal", "terminal", "--time-key", "nope"],
                ["--terminal", "terminal", "--time-key", "fate"]):
        # refused before the manifold is built, with a usage error
        assert main(["run", str(src), "-o", str(tmp_path / "bad.h5ad"), *bad]) == 2
        assert not (tmp_path / "bad.h5ad").exists()


def test_report_explains_every_column(tree, tmp_path):
    import html as html_lib

    page = html_lib.unescape(gg.io.write_report(tree, tmp_path / "rep", n_genes=3).read_text())
    explained = set(re.findall(r"<li><b>([^<]+)</b>:", page))
    names = {n.strip() for entry in explained for n in entry.split(",")}
    desc = pd.read_csv(tmp_path / "rep" / "patterns.csv", index_col=0)
    assert set(desc.columns) <= names  # every descriptor and test column of patterns.csv
    assert {"score", "alignment", "corr"} <= names  # the driver tables'
    assert "mean over levels" in page  # peaks and troughs are means, hence fractional


def _chromium() -> str:
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("GENEGRAD_REQUIRE_OPTIONAL"):  # CI installs Debian's chromium: a skip would hide it
            pytest.fail("chromium not found: `apt-get install chromium` (what .ci/run does)")
        pytest.skip("chromium not installed (CI installs it)")
    return found


#: A page that opens the report in a frame and, once it has loaded, writes what a reader would see of it.
_PROBE = """<html><body><iframe id="r" src="{src}" width="1200" height="3000"></iframe><pre id="out">pending</pre>
<script>
document.getElementById("r").onload = function () {{
  var d = this.contentDocument;
  var imgs = Array.prototype.slice.call(d.images);
  var broken = imgs.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }})
                   .map(function (i) {{ return i.getAttribute("src"); }});
  document.getElementById("out").textContent = JSON.stringify(
    {{images: imgs.length, broken: broken, text: d.body.innerText.length, tables: d.querySelectorAll("table").length}});
}};
</script></body></html>"""


def test_report_renders_in_a_browser(tree, tmp_path):
    # headless Chromium loads the page as a reader's browser would: every image decodes, text and tables show,
    # and the screenshot is not blank
    import json
    import re
    import subprocess

    import matplotlib.image as mpimg

    chromium = _chromium()
    index = gg.io.write_report(tree, tmp_path / "rep", n_genes=5)
    probe = tmp_path / "probe.html"
    probe.write_text(_PROBE.format(src=index.relative_to(tmp_path).as_posix()))
    flags = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--allow-file-access-from-files", "--virtual-time-budget=20000"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    seen = json.loads(re.search(r'<pre id="out">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    pngs = sorted(p.name for p in index.parent.glob("*.png"))
    assert seen["images"] == len(pngs) >= 3
    assert seen["broken"] == []
    assert seen["tables"] >= 3
    assert seen["text"] > 1000
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,1600", index.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not a blank page
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.01  # dark text and figure ink


def test_the_report_repeats_the_fate_warnings(tree, tmp_path):
    # a root among terminal cells: tl.fate_bias warns, keeps the warning with its results, and the report says it
    import anndata as ad

    root = int(np.flatnonzero(tree.obs["terminal"].notna().to_numpy())[0])
    with pytest.warns(gg.GenegradWarning, match="is a terminal cell"):
        gg.tl.fate_bias(tree, "terminal", root=root)
    kept = [str(w) for w in tree.uns["genegrad"]["fate_bias"]["warnings"]]
    assert any("is a terminal cell" in w for w in kept)
    page = gg.io.write_report(tree, tmp_path / "rep", n_genes=3).read_text()
    assert "Warning: The root cell" in page
    # a run without warnings (the chain alone: no agreement check) keeps an empty list; both survive the h5ad
    # round trip, fate names with "/" too
    gg.tl.fate_bias(tree, "terminal", fine_weight=0)
    assert len(tree.uns["genegrad"]["fate_bias"]["warnings"]) == 0
    tree.write_h5ad(tmp_path / "t.h5ad")
    assert len(ad.read_h5ad(tmp_path / "t.h5ad").uns["genegrad"]["fate_bias"]["warnings"]) == 0


def test_the_report_says_why_the_fine_step_did_not_run(tree, tmp_path):
    from genegrad.tl._fate import run_fate_bias

    a = tree.copy()
    run_fate_bias(a, "terminal", min_fine_agreement=1.0)  # a bar no fate clears: skipped
    page = gg.io.write_report(a, tmp_path / "skipped", n_genes=3).read_text()
    fates = [str(f) for f in a.uns["genegrad"]["fate_bias"]["fates"]]
    assert "the fine-scale step was skipped: the fine-scale evidence of " in page
    assert all(f"{html.escape(f)} (" in page for f in fates)  # every fate is below a bar of 1
    assert "below 1)" in page
    run_fate_bias(a, "terminal", fine_weight=0)
    page = gg.io.write_report(a, tmp_path / "off", n_genes=3).read_text()
    assert "the fine-scale step was off (<code>fine_weight=0</code>)" in page
    run_fate_bias(a, "terminal", min_fine_agreement=None)
    page = gg.io.write_report(a, tmp_path / "ran", n_genes=3).read_text()
    assert "the fine-scale step ran." in page


def test_the_report_repeats_the_pattern_warnings(tmp_path):
    # too few genes to hold out graphs: tl.patterns warns, keeps the warning, and the report says it
    a = gg.datasets.synthetic("plane", n_cells=300, n_genes=15, rng=0)
    gg.pp.preprocess(a, n_comps=8)
    gg.pp.manifold(a, n_neighbors=15)
    with pytest.warns(gg.GenegradWarning, match="needs at least 20 genes"):
        gg.tl.patterns(a, n_null=20)
    assert any("needs at least 20 genes" in str(w) for w in a.uns["genegrad"]["patterns"]["warnings"])
    page = gg.io.write_report(a, tmp_path / "rep", n_genes=3).read_text()
    assert "Warning: The structure test needs at least 20 genes" in page
