"""The README's quickstart runs as written (it is the first thing a newcomer copies)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import matplotlib as mpl
import pytest

mpl.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs():
    text = README.read_text()
    block = re.search(r"## Quickstart\s+```python\n(.*?)```", text, re.S)
    assert block, "README.md lost its Quickstart python block"
    code = block.group(1)
    if importlib.util.find_spec("cellrank") is None:
        # the optional peer is not a dependency: its line must then fail with a clear message
        code = code.replace("kernel = gg.tl.to_cellrank(adata)",
                            "import pytest\nwith pytest.raises(ImportError, match='pip install cellrank'):\n"
                            "    gg.tl.to_cellrank(adata)")
    exec(compile(code, str(README), "exec"), {"pytest": pytest})


def test_atac_block_runs():
    text = README.read_text()
    block = re.search(r"### scATAC-seq and multiome\s+```python\n(.*?)```", text, re.S)
    assert block, "README.md lost its scATAC-seq python block"
    scope = {}
    exec(compile(block.group(1), str(README), "exec"), scope)
    assert scope["rna"].uns["genegrad"]["params"]["use_rep"] == "X_lsi"
    assert scope["rna"].obsm["genegrad_gradients"].shape[:2] == (1500, 300)
