"""Sphinx configuration: the API reference from the docstrings (numpydoc style, read by napoleon), offline."""

from __future__ import annotations

from importlib.metadata import version as _version

project = "genegrad"
author = "the genegrad developers"
release = _version("genegrad")
version = release
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon", "sphinx.ext.viewcode",
              "myst_parser"]  # the Markdown pages: tutorial, method, results, benchmarks, changelog
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
autosummary_generate = True
autodoc_typehints = "description"  # types from the annotations, beside each parameter
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["wrap.css"]  # code blocks wrap
html_title = f"genegrad {release}"
# genegrad's Returns sections are prose listing the keys a function writes, not "name : type" entries: render
# them as written, under their own heading
napoleon_custom_sections = [("Returns", "returns as prose")]
