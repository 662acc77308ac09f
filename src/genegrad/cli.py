"""Command line: ``genegrad demo``, ``genegrad run`` and ``genegrad report``, a thin layer over the public functions."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
import warnings
from functools import partial
from pathlib import Path


class UsageError(Exception):
    """A mistake in the command line or its files: one line on stderr and exit code 2."""


#: Errors of the library that mean the input or an argument is wrong: reported in one line (``-v``: traceback).
USER_ERRORS = (ValueError, KeyError, TypeError, MemoryError, ConnectionError, FileNotFoundError, ImportError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``genegrad`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with warnings.catch_warnings():
        if not args.verbose:  # warnings as one line each, without the source line that raised them
            warnings.showwarning = _one_line_warning
        return _dispatch(args)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # ruff: ignore[too-many-positional-arguments]
    print(f"genegrad: warning: {message}", file=sys.stderr if file is None else file)


def _dispatch(args) -> int:
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "report":
            return _report(args)
        return _run(args)
    except UsageError as err:
        print(f"genegrad {args.command}: error: {err}", file=sys.stderr)
        return 2
    except USER_ERRORS as err:
        if args.verbose:
            raise
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f"genegrad {args.command}: error: {text} (-v shows where)", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log every step's details (and show tracebacks of errors)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only warnings, errors and the files written (no step lines, no progress bars)")
    parser = argparse.ArgumentParser(prog="genegrad", description="Gene gradients on the cell-state manifold.",
                                     parents=[common])
    parser.set_defaults(verbose=False, quiet=False)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"genegrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", parents=[common],
                          help="run end to end on a synthetic three-fate tree with known gradients")
    demo.add_argument("-o", "--outdir", default="genegrad_demo", help="output folder (default: genegrad_demo)")
    demo.add_argument("--n-cells", type=int, default=3000)
    demo.add_argument("--seed", type=int, default=0)

    run = sub.add_parser("run", parents=[common],
                         help="preprocess (if needed), build the manifold and compute gradients")
    run.add_argument("input", help="input .h5ad (raw counts in X, or already preprocessed with X_pca / X_lsi)")
    run.add_argument("--atac", action="store_true",
                     help="peak counts: TF-IDF and LSI (genegrad.pp.preprocess_atac); the manifold on X_lsi")
    run.add_argument("-o", "--output", required=True, help="output .h5ad (written atomically; may be the input "
                                                          "with --force)")
    run.add_argument("--force", action="store_true",
                     help="replace an existing output (h5ad, --report folder, --store-path store)")
    run.add_argument("--genes", default=None, help="comma-separated genes (default: highly variable genes)")
    run.add_argument("--n-neighbors", type=int, default=30)
    run.add_argument("--n-dims", type=int, default=None)
    run.add_argument("--scales", default="0,1,2,4,8", help="comma-separated diffusion times")
    run.add_argument("--backend", default="numpy", choices=["numpy", "torch", "dask"],
                     help="where the sparse products run (torch: CUDA when available)")
    run.add_argument("--scheduler", default=None, help="dask scheduler address (with --backend dask)")
    run.add_argument("--memory", type=float, default=None,
                     help="memory budget of the gradients in GB (default: half of the memory available)")
    run.add_argument("--log-mean", action=argparse.BooleanOptionalAction, default=None,
                     help="differentiate the log of the local mean expression (default: when X is log1p, as "
                          "preprocessing writes it) or, with --no-log-mean, the smoothed log signal")
    run.add_argument("--store", default="recompute", choices=["recompute", "obsm", "zarr"],
                     help="recompute the gradients when read (default: a small h5ad), keep the tensor in the "
                          "h5ad (obsm), or stream it to a zarr store")
    run.add_argument("--store-path", default=None, help="folder of the zarr store (default: OUTPUT.gradients.zarr)")
    run.add_argument("--patterns", action="store_true", help="also describe every gene and find patterns")
    run.add_argument("--terminal", default=None, metavar="KEY",
                     help="obs column of terminal states (missing = not terminal): also compute fate probabilities")
    run.add_argument("--terminal-groups", default=None, metavar="KEY:A,B,...",
                     help="the listed categories of obs column KEY are the terminal states (instead of --terminal)")
    run.add_argument("--root", default=None, metavar="CELL",
                     help="a cell of the starting population (obs name or position): orients the fate chain in "
                          "time; without --terminal, the terminal states are detected from it")
    run.add_argument("--time-key", default=None, metavar="KEY",
                     help="obs column of a pseudotime (e.g. dpt_pseudotime) orienting the fate chain instead of the "
                          "graph pseudotime from --root; needs --terminal or --root")
    run.add_argument("--groupby", default=None, metavar="KEY",
                     help="obs column naming the detected terminal states by their majority category")
    run.add_argument("--report", default=None, metavar="DIR", help="also write a report folder (genegrad report)")
    run.add_argument("--umap", action=argparse.BooleanOptionalAction, default=True,
                     help="compute a UMAP (obsm['X_umap'], for the figures and the output) when the input has none; "
                          "an existing X_umap is always kept (default: --umap)")

    report = sub.add_parser("report", parents=[common],
                            help="write an HTML page, figures and CSV tables of what genegrad computed")
    report.add_argument("input", help="an .h5ad written by genegrad run (or by the Python API)")
    report.add_argument("-o", "--outdir", required=True,
                        help="output folder: new, empty, or a report genegrad wrote (replaced)")
    report.add_argument("--basis", default=None,
                        help="obsm embedding of the figures (default: X_umap when present, else the manifold's)")
    report.add_argument("--n-genes", type=int, default=10, help="genes listed per pattern and per fate")
    return parser


def _demo(args) -> int:
    from ._demo import run_demo

    table, elapsed, extra = run_demo(args.outdir, n_cells=args.n_cells, seed=args.seed)
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_rows", 100, "display.max_columns", 20):
        print("Gradient recovery against the exact truth:")
        print(table.round(3).to_string(index=False))
        print("\nPatterns found (columns) against the true classes (rows):")
        print(extra["crosstab"].to_string())
        print("\nTerminal states detected from a root cell (rows) against the true segments (columns; "
              "the fates end in segments 1, 3, 4):")
        print(extra["detected"])
    print(f"\nadjusted Rand index of the patterns: {extra['ari']:.2f}")
    print(f"fate bias, AUROC of p(A) for the true fate on branch cells: {extra['fate_auroc']:.2f}")
    print(f"\n{args.n_cells} cells, 1000 genes, 5 scales: manifold + gradients in {elapsed:.1f} s; wrote "
          f"{args.outdir}/summary.csv, gradients.png, patterns.csv, patterns.png, fates.png, demo.h5ad and "
          f"report/index.html")
    return 0


def _read_input(path: str):
    """The input AnnData, or a one-line error for a missing, foreign or truncated file."""
    import anndata as ad

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"input {path!r} does not exist or is not a file")
    try:
        return ad.read_h5ad(p)
    except Exception as err:  # h5py and anndata raise many kinds for a foreign or truncated file
        raise UsageError(f"cannot read {path!r} as an h5ad file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'no details'}); pass an .h5ad "
                         "(anndata.AnnData.write_h5ad)") from None


def _check_folder(path: str, marker: str, what: str, *, force: bool) -> None:
    from ._files import OutputError, check_folder_target

    p = Path(path)
    if p.exists() and not force and not (p.is_dir() and not any(p.iterdir())):
        raise UsageError(f"the {what} {path!r} exists; pass --force to replace it")
    try:
        check_folder_target(p, marker, what)
    except OutputError as err:
        raise UsageError(str(err)) from None


def _report(args) -> int:
    from .io._report import REPORT_MARKER

    if args.n_genes < 1:
        raise UsageError(f"--n-genes must be at least 1, got {args.n_genes}")
    _check_folder(args.outdir, REPORT_MARKER, "report", force=True)  # a report genegrad wrote is replaced
    adata = _read_input(args.input)
    import genegrad as gg

    if args.basis is not None and args.basis not in adata.obsm:
        raise UsageError(f"--basis {args.basis!r} is not in the input's obsm (it has: {list(adata.obsm)})")
    print(f"wrote {gg.io.write_report(adata, args.outdir, basis=args.basis, n_genes=args.n_genes)}")
    return 0


def _run(args) -> int:
    import genegrad as gg

    from ._files import write_file_atomic

    plan = _check_run(args)  # every argument and path, before the first heavy step
    adata = plan["adata"]
    step = _Steps(quiet=args.quiet)
    bars = not args.quiet and sys.stderr.isatty()  # progress bars where a person watches
    if plan["preprocess"]:
        with step("preprocess (" + ("TF-IDF, LSI" if args.atac else "normalise, log1p, highly variable genes, PCA")
                  + ")"):
            (gg.pp.preprocess_atac if args.atac else gg.pp.preprocess)(adata)
    with step("manifold"):
        gg.pp.manifold(adata, use_rep=plan["rep"], n_neighbors=args.n_neighbors, n_dims=args.n_dims,
                       scales=plan["scales"])
    with step("gradients"):
        gg.tl.gradients(adata, plan["genes"], log_mean=args.log_mean, backend=args.backend,
                        scheduler=args.scheduler, memory_gb=args.memory, store=args.store, path=plan["store_path"],
                        progress=bars)
    if args.patterns:
        with step("patterns"):
            gg.tl.patterns(adata, plan["genes"], backend=args.backend, scheduler=args.scheduler, progress=bars)
    if plan["terminal"] is not None or args.root:
        with step("fate bias"):
            gg.tl.fate_bias(adata, plan["terminal"], root=plan["root"], time_key=args.time_key,
                            groupby=plan["groupby"])
    if args.umap and "X_umap" not in adata.obsm:
        with step("UMAP (for the figures)"):
            umap(adata, plan["rep"])
    with step("write h5ad"):
        # gzip: readable everywhere HDF5 is; a kill at any moment leaves the old file or the new one
        write_file_atomic(args.output, partial(adata.write_h5ad, compression="gzip"))
    print(f"wrote {args.output}")
    if args.report:
        with step("report"):
            folder = gg.io.write_report(adata, args.report)
        print(f"wrote {folder}")
    return 0


class _Steps:
    """``with steps("name"):`` prints ``genegrad: name (1.2 s)`` on stderr when the step ends (unless quiet)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0, done = time.perf_counter(), False
        try:
            yield
            done = True
        finally:  # a step that failed prints nothing: its error follows
            if done and not self.quiet:
                print(f"genegrad: {name} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)


def umap(adata, rep: str, *, random_state: int = 0) -> None:
    """``obsm['X_umap']`` from scanpy's UMAP on ``obsm[rep]`` (its own 15-neighbour graph, removed afterwards)."""
    import scanpy as sc

    key = "genegrad_umap_neighbors"
    sc.pp.neighbors(adata, use_rep=rep, n_neighbors=min(15, adata.n_obs - 1), key_added=key,
                    random_state=random_state)
    try:
        sc.tl.umap(adata, neighbors_key=key, random_state=random_state)
    finally:
        del adata.uns[key]
        for slot in (f"{key}_connectivities", f"{key}_distances"):
            adata.obsp.pop(slot, None)


def _check_run(args) -> dict:
    """Check the command line of ``genegrad run`` against its input; what the steps need, or a UsageError."""
    from ._store import MARKER
    from ._validation import check_counts, check_scales, resolve_genes
    from .io._report import REPORT_MARKER

    out = Path(args.output)
    if out.suffix != ".h5ad":
        raise UsageError(f"-o {args.output!r}: the output must be an .h5ad file")
    if not out.parent.is_dir():
        raise UsageError(f"-o {args.output!r}: the folder {str(out.parent)!r} does not exist; create it first")
    if out.exists() and not args.force:
        raise UsageError(f"-o {args.output!r} exists; pass --force to replace it")
    if out.is_dir():
        raise UsageError(f"-o {args.output!r} is a folder; pass a file name ending in .h5ad")
    try:  # the library's own check, so that the command line accepts exactly what pp.manifold does
        scales = check_scales([int(s) for s in args.scales.split(",") if s.strip()])
    except (TypeError, ValueError) as err:
        detail = str(err) if "scales" in str(err) else "expected comma-separated integers, e.g. 0,1,2,4,8"
        raise UsageError(f"--scales {args.scales!r}: {detail}") from None
    if args.memory is not None and not args.memory > 0:
        raise UsageError(f"--memory must be a positive number of GB, got {args.memory}")
    if args.n_neighbors < 2:
        raise UsageError(f"--n-neighbors must be at least 2, got {args.n_neighbors}")
    if args.n_dims is not None and args.n_dims < 1:
        raise UsageError(f"--n-dims must be at least 1, got {args.n_dims}")
    if args.scheduler and args.backend != "dask":
        raise UsageError("--scheduler is for --backend dask")
    for backend, module, package in (("torch", "torch", "torch"), ("dask", "distributed", "'dask[distributed]'")):
        if args.backend == backend:
            import importlib.util

            if importlib.util.find_spec(module) is None:
                raise UsageError(f"--backend {backend} needs {module}: pip install {package}")
    if args.terminal and args.terminal_groups:
        raise UsageError("give the terminal states once: --terminal KEY or --terminal-groups KEY:A,B")
    named = args.terminal or args.terminal_groups
    if args.groupby and not (args.root and not named):
        raise UsageError("--groupby names detected terminal states: give it with --root and without --terminal")
    if args.time_key and not (named or args.root):
        raise UsageError("--time-key orients the fate chain: give it with --terminal or --root")
    store_path = args.store_path or (str(args.output) + ".gradients.zarr" if args.store == "zarr" else None)
    if args.store_path and args.store != "zarr":
        raise UsageError("--store-path is the folder of the zarr store: give it with --store zarr")
    if store_path is not None:
        _check_folder(store_path, MARKER, "gradient store", force=args.force)
    if args.report:
        _check_folder(args.report, REPORT_MARKER, "report folder", force=args.force)

    adata = _read_input(args.input)
    rep = "X_lsi" if args.atac else "X_pca"
    preprocess = rep not in adata.obsm
    if preprocess:
        try:
            check_counts(adata, None)
        except (ValueError, KeyError) as err:
            raise UsageError(f"the input has no obsm[{rep!r}], so X must hold raw counts: {err}") from None
    n_rep = adata.obsm[rep].shape[1] if not preprocess else None
    if args.n_dims is not None and n_rep is not None and args.n_dims > n_rep:
        raise UsageError(f"--n-dims {args.n_dims} exceeds the {n_rep} dimensions of obsm[{rep!r}]")
    if args.n_neighbors >= adata.n_obs:
        raise UsageError(f"--n-neighbors {args.n_neighbors}: the input has only {adata.n_obs} cells")
    genes = [g.strip() for g in args.genes.split(",") if g.strip()] if args.genes else None
    if genes is not None:
        try:
            genes = resolve_genes(adata, genes)
        except (KeyError, ValueError) as err:
            raise UsageError(f"--genes: {err.args[0]}") from None
    root = args.root
    if root is not None:
        from .tl._pseudotime import root_index

        if root not in adata.obs_names and root.lstrip("-").isdigit():
            root = int(root)  # a position, unless a cell is named so
        try:
            root_index(adata, root)
        except (KeyError, ValueError) as err:
            raise UsageError(f"--root: {err.args[0]}") from None
    for opt, col in (("--terminal", args.terminal), ("--groupby", args.groupby), ("--time-key", args.time_key)):
        if col is not None and col not in adata.obs:
            raise UsageError(f"{opt} {col!r} is not a column of the input's obs (it has: {list(adata.obs.columns)})")
    terminal, groupby = args.terminal, args.groupby
    if args.terminal_groups:
        from .tl._fate import terminal_labels

        key, _, cats = args.terminal_groups.partition(":")
        terminal, groupby = [c.strip() for c in cats.split(",") if c.strip()], key
        try:  # tl.fate_bias's own reading of the terminal states
            terminal_labels(adata, terminal, groupby=groupby)
        except (KeyError, ValueError) as err:
            raise UsageError(f"--terminal-groups {args.terminal_groups!r} (KEY:A,B,...): {err.args[0]}") from None
    if args.time_key:
        from .tl._fate import time_from_obs

        try:
            time_from_obs(adata, args.time_key)
        except (TypeError, ValueError) as err:
            raise UsageError(f"--time-key: {err}") from None
    return {"adata": adata, "rep": rep, "preprocess": preprocess, "scales": scales, "genes": genes,
            "root": root, "store_path": store_path, "terminal": terminal, "groupby": groupby}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
