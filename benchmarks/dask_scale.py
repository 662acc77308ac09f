"""Every gene's gradients on a dask ``LocalCluster`` against the numpy backend, at up to a million cells.

One synthetic tree of the scale benchmark (2,000 genes, 2,000 UMIs/cell; ``--data-dir`` reuses the data set
``scale.py`` wrote), its manifold fitted once; then the gradients and standard errors of every gene at the 5
scales, streamed in gene chunks, by ``GradientModel.iter_gradients`` with ``backend='numpy'`` (threads) and with
``backend='dask'`` (a ``LocalCluster`` of 2 single-threaded worker processes). The ``N x g x d x T`` blocks never
leave the worker that computed them: each is reduced there to per-gene sums (of every gradient component, of its
square, of the standard errors) and those are compared between the backends. Recorded: wall times, the main
process's peak RSS, and each worker's peak RSS (VmHWM of the worker process).

    python benchmarks/dask_scale.py --cells 1000000 --data-dir /tmp/genegrad-scale
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
from _common import record, tree_data
from speed import peak_gb

N_GENES = 2000


def gene_sums(model, chunk) -> np.ndarray:
    """Per gene of the chunk: sums over the cells of each gradient component and scale, of their squares and of
    the standard errors, in float64: ``(g, 2 d T + T)``."""
    g = chunk.gradients.astype(np.float64)  # (N, g, d, T)
    n_genes = g.shape[1]
    parts = [g.sum(axis=0).reshape(n_genes, -1), (g * g).sum(axis=0).reshape(n_genes, -1),
             chunk.se.astype(np.float64).sum(axis=0).reshape(n_genes, -1)]
    return np.concatenate(parts, axis=1)


def worker_peak_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--data-dir", default=None, help="where scale.py keeps its data sets (reused when there)")
    ap.add_argument("--chunk", type=int, default=None, help="genes per chunk (default: tl.patterns' choice)")
    ap.add_argument("--numpy-every", type=int, default=1,
                    help="the numpy reference on every k-th gene chunk only (the same chunks: 1, every chunk)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    import anndata as ad
    from distributed import Client, LocalCluster

    import genegrad as gg
    from genegrad.pp._manifold import load_model
    from genegrad.tl._patterns import _chunk_size
    from genegrad.tl._signal import read_signal

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.data_dir or tmp) / f"tree_{args.cells}.h5ad"
        if not path.exists():
            adata = tree_data(args.cells, depth=2000, n_genes=N_GENES)
            adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
            adata.write_h5ad(path)
            del adata
        adata = ad.read_h5ad(path)
    t0 = time.perf_counter()
    gg.pp.manifold(adata)
    t_manifold = time.perf_counter() - t0
    model = load_model(adata)
    F = read_signal(adata, None, by_column=False)  # row-major, read in place by the chunks
    chunk = args.chunk or _chunk_size(model)
    rows, sums = [], {}
    # the numpy reference on every k-th chunk: whole chunks, so that each is the same computation as dask's
    starts = np.arange(0, F.shape[1], chunk)
    every = args.numpy_every
    ref_cols = np.concatenate([np.arange(s, min(s + chunk, F.shape[1])) for s in starts[::every]])
    for backend in ("dask", "numpy"):
        client = None
        if backend == "dask":
            client = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                         memory_limit=0))
        t0 = time.perf_counter()
        parts = model.iter_gradients(F, chunk_size=chunk, with_se=True, n_jobs=-1, backend=backend, client=client,
                                     reduce=gene_sums, columns=None if backend == "dask" or every == 1 else ref_cols)
        sums[backend] = np.concatenate(list(parts), axis=0)
        wall = time.perf_counter() - t0
        row = {"backend": backend, "cells": adata.n_obs, "genes": len(sums[backend]), "genes per chunk": chunk,
               "wall s": wall, "main peak GB": peak_gb()}
        if client is not None:
            peaks = client.run(worker_peak_gb)
            row["worker peak GB"] = ", ".join(f"{v:.2f}" for v in peaks.values())
            client.close()
        rows.append(row)
        print(row, flush=True)
    b, a = sums["dask"][ref_cols], sums["numpy"]
    scale = np.maximum(np.abs(a).max(axis=0, keepdims=True), 1e-30)
    diff = float(np.max(np.abs(a - b) / scale))
    table = pd.DataFrame(rows)
    table["max diff / column max"] = [diff, 0.0]
    table = table.round(3)
    print(table.to_string(index=False))
    print(f"manifold {t_manifold:.1f} s; model {model.nbytes / 1024**3:.2f} GB; identical: {np.array_equal(a, b)}")
    if not args.no_record:
        command = f"python benchmarks/dask_scale.py --cells {args.cells}"
        if args.chunk is not None:
            command += f" --chunk {args.chunk}"
        if every != 1:
            command += f" --numpy-every {every}"
        record("Dask gradients", command, table.to_markdown(index=False),
               notes="Synthetic tree (scale.py's data), 2,000 genes x 5 scales with standard errors, CPU only. "
                     + (f"numpy on every {every}th gene chunk only (the reference: {ref_cols.size} genes, "
                        "the same chunks as dask's), dask on every gene. " if every != 1 else "")
                     + f"Manifold fitted once ({t_manifold:.0f} s; the model holds {model.nbytes / 1024**3:.2f} GB, "
                     "scattered to each worker). numpy: threads on every core; dask: LocalCluster of 2 worker "
                     "processes, 1 thread each, no memory limit. Each chunk's gradients are reduced where they "
                     "were computed to per-gene sums (each component and scale, their squares, the standard "
                     "errors); 'max diff / column max': the largest difference between the backends' sums, over "
                     f"the largest value of that sum over the genes. Bit-identical: {np.array_equal(a, b)}. "
                     "'main peak GB' is the main process's peak RSS so far (the signal and the model included); "
                     "'worker peak GB' each worker's own.",
               pkgs=("dask", "distributed"))


if __name__ == "__main__":
    main()
