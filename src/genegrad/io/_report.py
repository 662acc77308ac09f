"""A report folder of what genegrad computed: an HTML page with its tables and figures, and the tables as CSV."""

from __future__ import annotations

import html
import logging
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._core import _descriptors
from .._files import OwnedFolder
from .._validation import check_range, require_key

if TYPE_CHECKING:
    from pathlib import Path

    import anndata as ad
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

#: The marker file of a report folder: genegrad replaces only folders that hold it (or empty ones).
REPORT_MARKER = ".genegrad-report"
#: First characters that make a spreadsheet read a CSV cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}"
        "img{max-width:100%;border:1px solid #eee}code{background:#f3f3f3;padding:0 3px}.note{color:#666}"
        ".warn{color:#8a4b00}")


def write_report(
    adata: ad.AnnData,
    outdir: str | Path,
    *,
    basis: str | None = None,
    n_genes: int = 10,
    key: str = _keys.UNS,
) -> Path:
    """Write what genegrad computed on ``adata`` to a folder: ``index.html``, its figures and CSV tables.

    Each part is written when the tool behind it ran: the manifold (:func:`genegrad.pp.manifold`) always; gene
    patterns after :func:`genegrad.tl.patterns`; fate probabilities and driver genes after
    :func:`genegrad.tl.fate_bias`. A part that is missing is named on the page with the call that adds it.
    ``adata`` is only read.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.pp.manifold` (and possibly the tools) ran.
    outdir
        Folder to write to: a new or empty folder, or a report genegrad wrote (replaced). Any other folder is
        refused. The report is built beside it under a temporary name and moved into place when complete.
    basis
        ``obsm`` embedding of the figures; by default ``'X_umap'`` when there is one (scanpy's ``tl.umap``), else
        the representation the manifold was built on.
    n_genes
        Genes listed per pattern and per fate.
    key
        Prefix of the keys genegrad wrote.

    Returns
    -------
    The path of ``index.html``. Next to it, as available: ``patterns.csv`` (every described gene's descriptors,
    pattern, structure test and module: :func:`genegrad.get.descriptors`), ``patterns.png``
    (:func:`genegrad.pl.patterns`), ``fate_probs.csv`` (:func:`genegrad.get.fates`: each cell's terminal state,
    pseudotime and fate probabilities), ``fates.png`` (:func:`genegrad.pl.fate_probs`), ``drivers.csv``
    (:func:`genegrad.tl.drivers` of every fate) and ``drivers_<fate>.png`` (:func:`genegrad.pl.drivers`, when a
    pseudotime is stored).

    Examples
    --------
    >>> import tempfile
    >>> import genegrad as gg
    >>> adata = gg.datasets.synthetic("cycle", n_cells=300, n_genes=40, rng=0)
    >>> gg.pp.preprocess(adata, n_comps=10)
    >>> gg.pp.manifold(adata, n_neighbors=15)
    >>> gg.io.write_report(adata, tempfile.mkdtemp()).name
    'index.html'
    """
    check_range("n_genes", n_genes, 1, None, integer=True)
    require_key(adata, "uns", key, fix="run `genegrad.pp.manifold` (or `genegrad run` on the command line) first")
    info = adata.uns[key]
    if basis is None:
        from ..get._gradients import default_basis

        basis = "X_umap" if "X_umap" in adata.obsm else default_basis(adata, key)
    require_key(adata, "obsm", basis, fix="pass `basis`, an obsm embedding such as 'X_umap'")
    folder = OwnedFolder(outdir, REPORT_MARKER, "report")  # built beside `outdir`, moved into place when complete
    try:
        _write(adata, folder.path, info, basis=basis, n_genes=n_genes, key=key)
        target = folder.commit()
    finally:
        folder.discard()
    logger.info("wrote %s", target / "index.html")
    return target / "index.html"


def _write(adata: ad.AnnData, out: Path, info, *, basis: str, n_genes: int, key: str) -> None:
    logger.info("writing a report of `adata.uns['%s']` to %s", key, out)
    body = [f"<h1>genegrad report</h1><p>{adata.n_obs:,} cells &times; {adata.n_vars:,} features.</p>",
            _manifold_section(info)]
    body.append(_patterns_section(adata, out, basis=basis, n_genes=n_genes, key=key)
                if "patterns" in info else _missing("Gene patterns", "genegrad.tl.patterns(adata)", "--patterns"))
    body.append(_fate_section(adata, out, basis=basis, n_genes=n_genes, key=key)
                if "fate_bias" in info else _missing("Fate bias", "genegrad.tl.fate_bias(adata, ...)",
                                                     "--terminal KEY or --root CELL"))
    from .. import __version__

    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>genegrad report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}"
            f"<p class='note'>Written by genegrad {html.escape(__version__)}.</p></body></html>\n")
    (out / "index.html").write_text(page, encoding="utf-8")


def _to_csv(df: pd.DataFrame, path: Path, **kwargs) -> None:
    """``df.to_csv`` with text cells that a spreadsheet would run as a formula neutralised (a leading ``'``)."""
    def safe(values):
        return [f"'{v}" if isinstance(v, str) and v[:1] in _FORMULA_START else v for v in values]

    df = df.copy()
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            df[col] = safe(df[col].astype(object))
    df.index = pd.Index(safe(df.index), name=df.index.name)
    df.columns = safe(df.columns)
    df.to_csv(path, **kwargs)


#: The columns of the driver tables (:func:`genegrad.tl.drivers`), in plain words.
DRIVER_COLUMNS = {
    "alignment": "over the early (non-terminal) cells, the magnitude-weighted cosine between the gene's gradient "
                 "and the fate's flow contrast (its flow minus the other fates' mean): +1 when the gene rises "
                 "towards the fate wherever it changes",
    "corr": "over the early cells, the correlation between the gene (smoothed) and the fate's probability",
    "score": "alignment x max(corr, 0): both say the gene rises towards the fate",
}


def _glossary(title: str, entries: dict[str, str]) -> str:
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in entries.items())
    return f"<details><summary>{html.escape(title)}</summary><ul class='note'>{items}</ul></details>"


def _missing(title: str, call: str, flag: str) -> str:
    return (f"<h2>{title}</h2><p class='note'>Not computed: run <code>{html.escape(call)}</code> (on the command "
            f"line, <code>genegrad run</code> with <code>{html.escape(flag)}</code>).</p>")


def _table(df: pd.DataFrame, **kwargs) -> str:
    return df.to_html(border=0, escape=True, float_format=lambda x: f"{x:.3g}", **kwargs)


def _figure(fig: Figure, path: Path, alt: str) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f"<p><img src='{html.escape(path.name)}' alt='{html.escape(alt)}'></p>"


def _manifold_section(info) -> str:
    params = info.get("params", {})
    rows = {
        "representation": params.get("use_rep"),
        "neighbours (k)": params.get("n_neighbors"),
        "intrinsic dimension (d)": info.get("n_dims"),
        "diffusion scales (t)": ", ".join(str(int(t)) for t in np.asarray(info.get("scales", []))),
        "local-quadratic fits": params.get("quadratic"),
    }
    grads = info.get("gradients")
    if grads is not None:
        store = str(grads["store"])
        where = {"recompute": "recomputed when read: genegrad.get.gradients", "obsm": "stored in obsm",
                 "zarr": f"stored in the zarr store {grads.get('path', '')}"}.get(store, store)
        rows["genes with gradients"] = f"{len(grads['genes']):,} ({where})"
    table = pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))
    return f"<h2>Manifold</h2>{_table(table, header=False)}"


def _patterns_section(adata: ad.AnnData, out: Path, *, basis: str, n_genes: int, key: str) -> str:
    from .. import get, pl

    desc = get.descriptors(adata, key=key)
    scale_col = _keys.scale(key)
    if scale_col in adata.var:  # each differentiated gene's recommended scale (NaN for the others)
        desc["recommended_scale"] = adata.var.loc[desc.index, scale_col].to_numpy()
    _to_csv(desc, out / "patterns.csv")
    structured = desc["structured"].astype(bool)
    parts = [f"<h2>Gene patterns</h2><p>{int(structured.sum()):,} of {len(desc):,} described genes are "
             f"structured (q &lt; {adata.uns[key]['patterns']['params']['fdr']:g}); every gene's descriptors, "
             "pattern, structure test and module: <a href='patterns.csv'>patterns.csv</a>.</p>"]
    # the warnings tl.patterns gave (absent in results written before it kept them)
    parts += [f"<p class='warn'>Warning: {html.escape(str(w))}</p>"
              for w in adata.uns[key]["patterns"].get("warnings", [])]
    rows = []
    for name, group in desc.groupby("pattern", observed=True):
        typical = group.sort_values(["typicality", "score"], ascending=False).index[:n_genes]
        medians = {f"median {c}": group[c].median() for c in ("peaks", "troughs", "coherence", "localisation")
                   if c in group}
        rows.append({"pattern": name, "genes": len(group), **medians, "typical genes": ", ".join(typical)})
    parts.append(_table(pd.DataFrame(rows), index=False))
    parts.append(_glossary("The columns", {
        "median ...": "the median over the pattern's genes of each gene's descriptor (below)",
        "typical genes": "the genes nearest the pattern's centre (highest typicality, then structure score)",
    }) + _glossary("Every descriptor in patterns.csv (one scale, the pattern scale)", {
        **_descriptors.MEANINGS,
        "pattern, typicality": "the gene's pattern (noise: not structured) and how central it sits in it (0-1)",
        "structured, score, qval": "the structure test: the share of variance that survives diffusion, against "
                                   "permutations (q-value, Benjamini-Hochberg)",
        "module": "co-directional genes: average-linkage clusters of gradient similarity",
        **({"recommended_scale": "the scale at which genegrad.get.gradients(..., scale='auto') reads the gene: the "
                                 "coarsest whose gradients agree with every finer scale's (empty: its gradients "
                                 "were not computed)"} if "recommended_scale" in desc else {}),
    }))
    modules = desc["module"].dropna().astype(str)
    if len(modules):
        sizes = modules.value_counts()
        parts.append(f"<p>{len(sizes)} modules of co-directional genes (largest: {int(sizes.iloc[0])} genes).</p>")
    if (desc["pattern"].astype(str) != "noise").any():
        parts.append(_figure(pl.patterns(adata, basis=basis, key=key), out / "patterns.png", "pattern gallery"))
    return "".join(parts)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "fate"


def _skipped_step(info) -> str:
    """Why the fine-scale step did not run, from ``uns[key]['fate_bias']`` (results of older runs may lack keys)."""
    if float(info.get("fine_weight", 1.0)) <= 0:
        return "was off (<code>fine_weight=0</code>)"
    bar = float(info.get("min_fine_agreement", np.nan))
    agreement = np.asarray(info.get("fine_agreement", []), dtype=float)
    fates = [str(f) for f in info["fates"]]
    against = [f"{html.escape(f)} ({a:.2f})" for f, a in zip(fates, agreement, strict=False) if a < bar]
    if not against:
        return "was skipped"
    return (f"was skipped: the fine-scale evidence of {', '.join(against)} ranks the progenitors against the "
            f"chain (Spearman correlation below {bar:g})")


def _fate_section(adata: ad.AnnData, out: Path, *, basis: str, n_genes: int, key: str) -> str:
    from .. import get, pl
    from ..pl._fate import driver_heatmap
    from ..tl._drivers import driver_scores

    info = adata.uns[key]["fate_bias"]
    fates = [str(f) for f in info["fates"]]
    table = get.fates(adata, key=key)
    _to_csv(table, out / "fate_probs.csv", index_label="cell")
    terminal, probs, timed = table["terminal_state"], table[fates], "pseudotime" in table
    progenitor = terminal.isna().to_numpy()
    summary = pd.DataFrame({
        "terminal cells": [int((terminal == f).sum()) for f in fates],
        "mean probability (other cells)": [float(np.nanmean(probs[f].to_numpy()[progenitor]))
                                           if progenitor.any() else np.nan for f in fates],
    }, index=pd.Index(fates, name="fate"))
    how = "detected from the root" if bool(info["detected"]) else "given"
    root = str(info["root"])  # the root cell's name ('' without one)
    step = "ran" if bool(info["fine_step"]) else _skipped_step(info)
    time_key = str(info.get("time_key", ""))  # absent in results written before time_key existed
    if time_key:
        oriented = f"the chain oriented by <code>obs[{html.escape(repr(time_key))}]</code>"
    else:
        oriented = ("the chain oriented by the graph pseudotime from it" if root
                    else "the chain not oriented in time")
    parts = [f"<h2>Fate bias</h2><p>Terminal states {how}; root: "
             f"{html.escape(root) if root else 'none'}; {oriented}; "
             f"tilt beta = {float(info['beta']):g}; the fine-scale step {step}. Per cell: "
             "<a href='fate_probs.csv'>fate_probs.csv</a>.</p>"]
    # the warnings tl.fate_bias gave (absent in results written before it kept them)
    parts += [f"<p class='warn'>Warning: {html.escape(str(w))}</p>" for w in info.get("warnings", [])]
    parts.append(_table(summary))
    parts.append(_figure(pl.fate_probs(adata, basis=basis, key=key), out / "fates.png", "fate probabilities"))
    tables, names = [], set()
    scores = driver_scores(adata, fates, key=key)  # every fate in one pass over the genes' gradients
    for fate in fates:
        d = scores[fate].head(n_genes).reset_index()
        tables.append(d.assign(fate=fate))
        parts.append(f"<h3>Drivers of {html.escape(fate)}</h3>{_table(d, index=False)}")
        if len(tables) == 1:
            parts.append(_glossary("The columns", DRIVER_COLUMNS))
        if timed:
            name = f"drivers_{_slug(fate)}"
            name = name if name not in names else f"{name}_{len(names)}"  # two fates of the same slug
            names.add(name)
            fig = driver_heatmap(adata, fate, list(d["gene"]), pseudotime=f"{key}_pseudotime", n_bins=50, key=key)
            parts.append(_figure(fig, out / f"{name}.png", f"drivers of {fate}"))
    if not timed:
        parts.append("<p class='note'>No heatmaps of the drivers along pseudotime: <code>fate_bias</code> ran "
                     "without a <code>root</code> or <code>time_key</code>, so no pseudotime was stored "
                     "(<code>genegrad.pl.drivers(adata, fate, pseudotime=...)</code> takes any obs column).</p>")
    _to_csv(pd.concat(tables, ignore_index=True), out / "drivers.csv", index=False)
    parts.append("<p>Driver genes of every fate: <a href='drivers.csv'>drivers.csv</a>.</p>")
    return "".join(parts)
