"""Command line: ``genegrad demo``, ``genegrad run`` and ``genegrad report``, a thin layer over the public functions."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``genegrad`` command."""
    parser = argparse.ArgumentParser(prog="genegrad", description="Gene gradients on the cell-state manifold.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run end to end on a synthetic three-fate tree with known gradients")
    demo.add_argument("-o", "--outdir", default="genegrad_demo", help="output folder (default: genegrad_demo)")
    demo.add_argument("--n-cells", type=int, default=3000)
    demo.add_argument("--seed", type=int, default=0)

    run = sub.add_parser("run", help="preprocess (if needed), build the manifold and compute gradients")
    run.add_argument("input", help="input .h5ad (raw counts in X, or already preprocessed with X_pca / X_lsi)")
    run.add_argument("--atac", action="store_true",
                     help="peak counts: TF-IDF and LSI (genegrad.pp.preprocess_atac); the manifold on X_lsi")
    run.add_argument("-o", "--output", required=True, help="output .h5ad")
    run.add_argument("--genes", default=None, help="comma-separated genes (default: highly variable genes)")
    run.add_argument("--n-neighbors", type=int, default=30)
    run.add_argument("--n-dims", type=int, default=None)
    run.add_argument("--scales", default="0,1,2,4,8", help="comma-separated diffusion times")
    run.add_argument("--backend", default="numpy", choices=["numpy", "torch", "dask"],
                     help="where the sparse products run (torch: CUDA when available)")
    run.add_argument("--scheduler", default=None, help="dask scheduler address (with --backend dask)")
    run.add_argument("--memory", type=float, default=4.0, help="memory budget of the gradients in GB")
    run.add_argument("--store", default="obsm", choices=["obsm", "zarr"],
                     help="keep the gradient tensor in the h5ad (obsm) or stream it to a zarr store")
    run.add_argument("--store-path", default=None, help="folder of the zarr store (default: OUTPUT.gradients.zarr)")
    run.add_argument("--patterns", action="store_true", help="also describe every gene and find patterns")
    run.add_argument("--terminal", default=None, metavar="KEY",
                     help="obs column of terminal states (missing = not terminal): also compute fate probabilities")
    run.add_argument("--root", default=None, metavar="CELL",
                     help="a cell of the starting population (obs name or position): orients the fate chain in "
                          "time; without --terminal, the terminal states are detected from it")
    run.add_argument("--time-key", default=None, metavar="KEY",
                     help="obs column of a pseudotime (e.g. dpt_pseudotime) orienting the fate chain instead of the "
                          "graph pseudotime from --root; needs --terminal or --root")
    run.add_argument("--groupby", default=None, metavar="KEY",
                     help="obs column naming the detected terminal states by their majority category")
    run.add_argument("--report", default=None, metavar="DIR", help="also write a report folder (genegrad report)")

    report = sub.add_parser("report", help="write an HTML page, figures and CSV tables of what genegrad computed")
    report.add_argument("input", help="an .h5ad written by genegrad run (or by the Python API)")
    report.add_argument("-o", "--outdir", required=True, help="output folder")
    report.add_argument("--basis", default=None,
                        help="obsm embedding of the figures (default: X_umap when present, else the manifold's)")
    report.add_argument("--n-genes", type=int, default=10, help="genes listed per pattern and per fate")
    args = parser.parse_args(argv)

    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.command == "demo":
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

    import anndata as ad

    import genegrad as gg

    adata = ad.read_h5ad(args.input)
    if args.command == "report":
        index = gg.io.write_report(adata, args.outdir, basis=args.basis, n_genes=args.n_genes)
        print(f"wrote {index}")
        return 0
    if args.groupby and not (args.root and not args.terminal):
        parser.error("--groupby names detected terminal states: give it with --root and without --terminal")
    root = args.root  # checked here, before the long steps
    if root is not None:
        from .tl._fate import root_index

        if root not in adata.obs_names and root.lstrip("-").isdigit():
            root = int(root)  # a position, unless a cell is named so
        try:
            root_index(adata, root)
        except (KeyError, ValueError) as err:
            parser.error(f"--root: {err}")
    if args.time_key and not (args.terminal or args.root):
        parser.error("--time-key orients the fate chain: give it with --terminal or --root")
    for opt, col in (("--terminal", args.terminal), ("--groupby", args.groupby), ("--time-key", args.time_key)):
        if col is not None and col not in adata.obs:
            parser.error(f"{opt} {col!r} is not a column of the input's obs (it has: {list(adata.obs.columns)})")
    if args.time_key:
        from .tl._fate import time_from_obs

        try:
            time_from_obs(adata, args.time_key)
        except (TypeError, ValueError) as err:
            parser.error(f"--time-key: {err}")
    rep = "X_lsi" if args.atac else "X_pca"
    if rep not in adata.obsm:
        (gg.pp.preprocess_atac if args.atac else gg.pp.preprocess)(adata)
    scales = tuple(int(s) for s in args.scales.split(",") if s.strip())
    gg.pp.manifold(adata, use_rep=rep, n_neighbors=args.n_neighbors, n_dims=args.n_dims, scales=scales)
    genes = args.genes.split(",") if args.genes else None
    path = args.store_path or (str(args.output) + ".gradients.zarr" if args.store == "zarr" else None)
    gg.tl.gradients(adata, genes, backend=args.backend, scheduler=args.scheduler, memory_gb=args.memory,
                    store=args.store, path=path)
    if args.patterns:
        gg.tl.patterns(adata, genes, backend=args.backend, scheduler=args.scheduler)
    if args.terminal or args.root:
        gg.tl.fate_bias(adata, args.terminal, root=root, time_key=args.time_key, groupby=args.groupby)
    adata.write_h5ad(args.output)
    print(f"wrote {args.output}")
    if args.report:
        print(f"wrote {gg.io.write_report(adata, args.report)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
