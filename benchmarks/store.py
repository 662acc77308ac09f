"""Out-of-core gradients: every gene's gradients and standard errors streamed to zarr under a memory budget.

One synthetic tree (2,000 genes, 1,000 UMIs/cell, manifold fitted once and saved); then, each in its own
process, ``tl.gradients(store='zarr', memory_gb=M)`` for all genes at 5 scales with standard errors: wall time,
peak RSS, the RSS after loading the data (and the fitted manifold), the working memory (peak minus that) against
the budget, the store's size on disk, and a lazy read of 10 genes with ``get.gradients``.

    python benchmarks/store.py                      # 100,000 cells, budgets 0.5, 1, 2 GB
    python benchmarks/store.py --cells 20000 --budgets 0.25
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import parse_or_work, record, run_worker, tree_data
from speed import peak_gb


def worker(budget: str, path: str) -> dict:
    import anndata as ad

    import genegrad as gg

    adata = ad.read_h5ad(path)
    base = peak_gb()
    store = Path(path).with_suffix(f".{budget}.zarr")
    t0 = time.perf_counter()
    gg.tl.gradients(adata, list(adata.var_names), store="zarr", path=store, memory_gb=float(budget), with_se=True)
    wall = time.perf_counter() - t0
    peak = peak_gb()
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 1024**3
    t1 = time.perf_counter()
    g = gg.get.gradients(adata, list(adata.var_names[:10]), scale=2)
    read = time.perf_counter() - t1
    shutil.rmtree(store)
    return {"memory_gb": float(budget), "wall s": wall, "peak GB": peak, "data + model GB": base,
            "working GB": peak - base, "store GB": size, "read 10 genes s": read, "read shape": str(g.shape)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--budgets", default="0.5,1,2")
    args = parse_or_work(ap, worker, metavar=("BUDGET", "PATH"))
    if args is None:
        return
    import genegrad as gg

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        adata = tree_data(args.cells, depth=1000)
        gg.pp.manifold(adata)
        path = str(Path(tmp) / "tree.h5ad")
        adata.write_h5ad(path)
        d = adata.uns["genegrad"]["n_dims"]
        del adata
        for budget in args.budgets.split(","):
            row = run_worker(__file__, budget, path)
            rows.append({"cells": args.cells, "d": d, **row})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).drop(columns=["method"], errors="ignore").round(3)
    print(table.to_string(index=False))
    if not args.no_record:
        record("Out-of-core gradients", f"python benchmarks/store.py --cells {args.cells} --budgets {args.budgets}",
               table.to_markdown(index=False),
               notes="All 2,000 genes x 5 scales with standard errors, streamed to a zarr store on local disk. "
                     "'data + model GB': peak RSS after reading the AnnData with its fitted manifold; 'working GB': "
                     "peak RSS minus that, what `memory_gb` budgets (the model rebuilt from the AnnData counts "
                     "in it).")


if __name__ == "__main__":
    main()
