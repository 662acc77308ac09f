"""Neighbour search: genegrad's partitioned search against exact brute force and pynndescent, same data and run.

On the benchmarks' synthetic tree (30 PCs), each method in its own process (pynndescent pays its numba
compilation there, as it does in every new Python session): wall time, and the recall of the exact neighbours
(share of each cell's exact 30 neighbours found, over every 10th cell).

    python benchmarks/knn.py                       # 100,000 cells
    python benchmarks/knn.py --sizes 20000,100000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import parse_or_work, record, run_worker, tree_data

METHODS = ("exact", "partition", "pynndescent")
K = 30


def worker(method: str, path: str) -> dict:
    from genegrad._core import _graph

    Y = np.load(path)
    t0 = time.perf_counter()
    idx, _ = _graph.knn(Y, K, method=method)
    wall = time.perf_counter() - t0
    np.save(Path(path).with_suffix(f".{method}.npy"), idx)
    return {"method": method, "wall s": wall}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000")
    args = parse_or_work(ap, worker)
    if args is None:
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"pca_{n}.npy"
            np.save(path, tree_data(n, depth=1000).obsm["X_pca"].astype(np.float64))
            found = {}
            for method in METHODS:
                row = run_worker(__file__, method, str(path))
                found[method] = np.load(path.with_suffix(f".{method}.npy"))
                rows.append({"cells": n, **row})
            exact = found["exact"]
            for row in rows[-len(METHODS):]:
                got = found[row["method"]]
                row["recall"] = float(np.mean([np.intersect1d(exact[i], got[i]).size / K
                                               for i in range(0, n, 10)]))
                row["exact / this"] = rows[-len(METHODS)]["wall s"] / row["wall s"]
                print(row, flush=True)
    table = pd.DataFrame(rows).round(4)
    print(table.to_string(index=False))
    if not args.no_record:
        record("Neighbour search", f"python benchmarks/knn.py --sizes {args.sizes}", table.to_markdown(index=False),
               notes=f"k = {K} on 30 PCs of the synthetic tree (1,000 UMIs/cell, 2,000 genes); each method in a fresh "
                     "process, pynndescent's numba compilation included. Recall: share of the exact neighbours "
                     "found, over every 10th cell.", pkgs=("scikit-learn", "pynndescent"))


if __name__ == "__main__":
    main()
