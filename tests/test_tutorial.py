"""The paul15 tutorial (docs/tutorial_paul15.md) runs as written, and its results are what the page says."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial_paul15.md"


def test_paul15_tutorial_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", TUTORIAL.read_text(), re.S)
    assert block, "docs/tutorial_paul15.md lost its python block"
    from genegrad.datasets._real import data_dirs

    data = next(d for d in data_dirs() if (d / "paul15").is_dir())  # found from the checkout, before leaving it
    monkeypatch.setenv("GENEGRAD_DATA", str(data))
    monkeypatch.chdir(tmp_path)
    scope = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(block.group(1), str(TUTORIAL), "exec"), scope)
    said = [str(w.message) for w in caught if "genegrad" in type(w.message).__module__ or "GenegradWarning" in
            type(w.message).__name__]
    # the page names the one warning it expects
    assert all("fine-scale evidence of Mk" in s for s in said), said
    adata = scope["adata"]
    assert adata.uns["genegrad"]["fate_bias"]["time_key"] == "dpt_pseudotime"
    means = scope["by_cluster"]
    assert means.loc["7MEP", "Ery"] > means.loc["10GMP", "Ery"] + 0.3  # MEPs lean erythroid
    assert means.loc["10GMP", "Mo"] + means.loc["10GMP", "Neu"] > 0.6  # GMPs myeloid
    top = set(scope["drivers"].index)
    assert top & {"Klf1", "Gata1", "Car2", "Car1", "Blvrb", "Hba-a2", "Hbb-b1", "Rhd", "Epor"}  # erythroid genes
    for name in ("patterns.png", "fates.png", "drivers_ery.png", "paul15_report/index.html"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert np.isfinite(adata.obsm["genegrad_fate_probs"].to_numpy()).all()
