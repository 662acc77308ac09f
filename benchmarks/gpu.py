"""GPU: gradients of 2,000 genes x 5 scales, with standard errors, for 1,000,000 cells (torch backend).

Measured in one run on one card:

- ``fit s``: the manifold (kNN, frames, one operator per scale), on the host's CPU cores;
- ``gradients s``: every gene's gradients and standard errors at every scale, streamed in chunks of 64 genes
  through ``backend='torch'`` (each chunk moved to the card, multiplied, brought back and reduced to per-gene
  mean magnitudes, as a user's streaming loop would);
- ``bare products s``: the same sparse x dense products that those chunks need (``P`` for every diffusion step
  and for the pooled noise variance, ``D_t`` per scale, ``W`` twice), issued back to back with
  ``torch.sparse.mm`` on a chunk already on the card: what the card's sparse product alone takes;
- ``fraction of bare rate``: bare products / gradients, the share of the card's sparse-product throughput
  that the whole streaming loop achieves (transfers, the host-side reductions and the SE arithmetic make up
  the rest).

The gene values do not change the cost: the signals are the log-normalised counts of a 200-gene synthetic tree,
tiled to 2,000 columns (said in the recorded notes). Target: gradients under 60 s at 1M cells.

    python benchmarks/gpu.py                                            # 1M cells on CUDA
    python benchmarks/gpu.py --cells 20000 --device cpu --no-record     # a check of the script on the CPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import record

SCALES = (0, 1, 2, 4, 8)
CHUNK = 64
BASE_GENES = 200


def _mean_norm(model, chunk) -> np.ndarray:
    return np.linalg.norm(chunk.gradients, axis=2).mean(axis=0)


def bare_products(model, X: np.ndarray, device: str, reps: int = 3) -> float:
    """Seconds for one chunk's sparse products with bare ``torch.sparse.mm`` calls (best of ``reps``)."""
    import torch

    ops = model._ops("torch", device)
    Xb = ops.put(np.ascontiguousarray(X[model._order], dtype=np.float32))

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    best = np.inf
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        Y = Xb
        for _ in range(max(SCALES) + 1):  # diffusion steps, and one for the pooled noise variance
            Y = ops.mm("P", Y)
        for t in SCALES:
            ops.mm(f"D{t}", Y)
        ops.mm("W", Xb)
        ops.mm("W", Xb)
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    import torch

    import genegrad as gg
    from genegrad import GradientModel

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("No CUDA device: run on a machine with a GPU, or pass --device cpu to check the script.")
    adata = gg.datasets.synthetic("tree", n_cells=args.cells, n_genes=BASE_GENES, depth=2000, rng=0)
    gg.pp.preprocess(adata, n_top_genes=BASE_GENES, n_comps=30)
    t0 = time.perf_counter()
    model = GradientModel(n_neighbors=30, scales=SCALES).fit(adata.obsm["X_pca"])
    t_fit = time.perf_counter() - t0
    X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    F = np.tile(X.astype(np.float32), (1, -(-args.genes // X.shape[1])))[:, : args.genes]
    del adata, X
    opts = {"chunk_size": CHUNK, "with_se": True, "backend": "torch", "device": args.device, "reduce": _mean_norm}
    list(model.iter_gradients(F[:, :CHUNK], **opts))  # warm-up: device context, cuSPARSE handles
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    mags = np.concatenate(list(model.iter_gradients(F, **opts)))
    t_grad = time.perf_counter() - t0
    n_chunks = -(-args.genes // CHUNK)
    t_bare = bare_products(model, F[:, :CHUNK], args.device) * n_chunks
    on_card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (script check)"
    row = {
        "cells": args.cells, "genes": args.genes, "scales": len(SCALES), "device": on_card, "d": model.n_dims_,
        "fit s": t_fit, "gradients s": t_grad, "bare products s": t_bare, "fraction of bare rate": t_bare / t_grad,
        "peak GPU GB": (torch.cuda.max_memory_allocated() / 1024**3 if args.device.startswith("cuda")
                        else float("nan")),
        "finite": bool(np.isfinite(mags).all()),
    }
    table = pd.DataFrame([row]).round(3)
    print(table.to_string(index=False))
    if not args.no_record:
        record("GPU", f"python benchmarks/gpu.py --cells {args.cells} --genes {args.genes} --device {args.device}",
               table.to_markdown(index=False), pkgs=("torch",),
               notes=f"Synthetic tree; the signals are {BASE_GENES} genes' log-normalised counts tiled to "
                     f"{args.genes} columns (the cost does not depend on the values). 'fit s' runs on the host "
                     "CPU. Target: 'gradients s' under 60 at 1,000,000 cells.")


if __name__ == "__main__":
    main()
