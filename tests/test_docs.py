"""The documentation builds with no warning (every docstring renders, every cross-reference resolves)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


# Sphinx's own napoleon uses an interface Sphinx 9 deprecates: not ours to act on (the build's warnings are, -W)
@pytest.mark.filterwarnings("ignore:The mapping interface for autodoc options")
@pytest.mark.filterwarnings("ignore:'sphinx.environment.BuildEnvironment.app' is deprecated")  # myst-parser's
@pytest.mark.filterwarnings("ignore:'myst_parser.sphinx_ext.myst_refs.MystReferenceResolver.app' is deprecated")
def test_docs_build_without_warnings(tmp_path):
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns("_build", "generated"))  # autosummary writes here
    # the pages that include the changelog and the benchmark tables find them where they are in the checkout
    shutil.copy(DOCS.parent / "CHANGELOG.md", tmp_path)
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(DOCS.parent / "benchmarks" / "RESULTS.md", tmp_path / "benchmarks")
    out = tmp_path / "html"
    assert build_main(["-W", "--keep-going", "-q", "-b", "html", str(src), str(out)]) == 0
    api = (out / "api.html").read_text()
    import genegrad as gg

    for module in ("pp", "tl", "get", "pl", "io"):  # every public function has its page, linked from the API page
        for name in getattr(gg, module).__all__:
            page = out / "generated" / f"genegrad.{module}.{name}.html"
            assert page.exists(), f"no page for genegrad.{module}.{name}: add it to docs/api.rst"
            assert f"generated/genegrad.{module}.{name}.html" in api
    page = (out / "generated" / "genegrad.tl.patterns.html").read_text()
    assert "genegrad_pattern" in page  # the Returns section, with the keys written


def test_first_analysis_runs(tmp_path, monkeypatch):
    # the index page's code is what a reader copies: it runs as written (in a temporary folder: it writes report/)
    import re

    text = (DOCS / "index.rst").read_text()
    block = re.search(r"A first analysis\n-+\n\n\.\. code-block:: python\n\n(.*?)\n\n\S", text, re.S)
    assert block, "docs/index.rst lost its 'A first analysis' code block"
    code = "\n".join(line[3:] for line in block.group(1).splitlines())
    code = code.replace('n_cells=3000', 'n_cells=800')  # the same calls on a smaller tree
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOCS / "index.rst"), "exec"), {})
    assert (tmp_path / "report" / "index.html").exists()
