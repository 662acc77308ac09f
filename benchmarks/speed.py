"""Wall time and peak memory: genegrad (manifold + all genes x 5 scales, streamed) against yardsticks.

genegrad runs twice: differentiating the smoothed log signal, and the log of the local mean (``log_mean``,
``tl.gradients``' default on log1p data). Each method runs in its own process on the same preprocessed AnnData
(synthetic tree, 2,000 genes, 30 PCs, k = 30), so peak RSS is its own. Yardsticks in the same run:
``scanpy.pp.neighbors`` + ``scanpy.tl.diffmap``, and a straightforward per-cell implementation (a Python loop:
local PCA and least squares per cell, all genes at once) timed on 1,000 cells and scaled to N.

    python benchmarks/speed.py                 # N = 10k, 50k, 100k
    python benchmarks/speed.py --sizes 10000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import parse_or_work, record, run_worker, tree_data

N_GENES = 2000
SCALES = (0, 1, 2, 4, 8)


def peak_gb() -> float:
    """This process's peak RSS (VmHWM: unlike ``ru_maxrss`` it is not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def worker(method: str, path: str) -> dict:
    import anndata as ad

    adata = ad.read_h5ad(path)
    base = peak_gb()
    t0 = time.perf_counter()
    if method.startswith("genegrad"):
        from genegrad import GradientModel

        model = GradientModel(n_neighbors=30, scales=SCALES).fit(adata.obsm["X_pca"])
        t_fit = time.perf_counter() - t0
        F = adata.X.tocsc()
        mean_norm = np.zeros((F.shape[1], len(SCALES)))
        log_mean = method == "genegrad, log of local mean"  # tl.gradients' default on log1p data
        for part in model.iter_gradients(F, chunk_size=64, with_se=True, n_jobs=-1,  # streamed: reduce, never hold all
                                         log_mean=log_mean):
            mean_norm[part.start:part.stop] = np.linalg.norm(part.gradients, axis=2).mean(axis=0)
        extra = {"fit s": t_fit, "d": model.n_dims_}
    elif method == "scanpy":
        import scanpy as sc

        try:
            sc.pp.neighbors(adata, n_neighbors=30, use_rep="X_pca", random_state=0)
            extra = {"knn": "pynndescent"}
        except AttributeError:  # scanpy 1.11 rejects pynndescent 0.7's csr_array (see BENCHMARKS.md)
            t0 = time.perf_counter()
            sc.pp.neighbors(adata, n_neighbors=30, use_rep="X_pca", random_state=0, transformer="sklearn")
            extra = {"knn": "sklearn exact (pynndescent 0.7 rejected by scanpy)"}
        sc.tl.diffmap(adata)
    elif method == "per-cell loop":
        extra = per_cell(adata)
    else:
        raise ValueError(method)
    return {"method": method, "wall s": time.perf_counter() - t0 if method != "per-cell loop" else extra.pop("wall s"),
            "peak GB": peak_gb(), "data GB": base, **extra}


def per_cell(adata, n_sample=1000, k=30, d=1):
    """Per-cell loop on n_sample cells; the smoothing P^t F is done beforehand (not counted: favours the loop)."""
    from sklearn.neighbors import NearestNeighbors

    Y = adata.obsm["X_pca"].astype(np.float64)
    n = Y.shape[0]
    rng = np.random.default_rng(0)
    cells = rng.choice(n, n_sample, replace=False)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(Y)
    F = adata.X.tocsr()
    t0 = time.perf_counter()
    _, idx = nn.kneighbors(Y[cells])
    for c, nb in zip(cells, idx, strict=True):
        nb = nb[1:]
        disp = Y[nb] - Y[c]
        _, _, vt = np.linalg.svd(disp, full_matrices=False)
        A = disp @ vt[:d].T
        rows = F[np.r_[c, nb]].toarray()
        for _ in SCALES:  # one least-squares solve per scale, all genes as right-hand sides
            np.linalg.lstsq(A, rows[1:] - rows[0], rcond=None)
    per = (time.perf_counter() - t0) / n_sample
    return {"wall s": per * n, "per cell ms": per * 1e3, "extrapolated from": n_sample}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,50000,100000")
    args = parse_or_work(ap, worker)
    if args is None:
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            adata = tree_data(n, depth=1000, n_genes=N_GENES)
            path = str(Path(tmp) / f"tree_{n}.h5ad")
            adata.write_h5ad(path)
            del adata
            for method in ("genegrad", "genegrad, log of local mean", "scanpy", "per-cell loop"):
                row = run_worker(__file__, method, path)
                row["cells"] = n
                rows.append(row)
                print(row, flush=True)
    table = pd.DataFrame(rows)
    gg_time = table[table.method == "genegrad"].set_index("cells")["wall s"]
    table["genegrad / this"] = [gg_time.get(c, np.nan) / w if np.isfinite(w) else np.nan
                                for c, w in zip(table["cells"], table["wall s"].astype(float), strict=True)]
    cols = [c for c in ["cells", "method", "wall s", "peak GB", "data GB", "fit s", "d", "knn", "per cell ms",
                        "genegrad / this", "error"] if c in table]
    table = table[cols].round(3)
    gg_rows = table[table.method == "genegrad"]
    if len(gg_rows) > 1:
        slope = np.polyfit(np.log(gg_rows["cells"]), np.log(gg_rows["wall s"].astype(float)), 1)[0]
        note = f"Fitted exponent of genegrad's wall time in N: {slope:.2f}."
    else:
        note = ""
    print(table.to_string(index=False))
    print(note)
    if not args.no_record:
        record("Speed", "python benchmarks/speed.py --sizes " + args.sizes, table.to_markdown(index=False),
               notes=note + " genegrad = manifold (kNN, frames, one operator per scale) + gradients of all "
                     f"{N_GENES} genes x {len(SCALES)} scales with standard errors (of the smoothed log signal; "
                     "'log of local mean': tl.gradients' default on log1p data), streamed in chunks of 64 "
                     "genes on 2 threads (reduced to per-gene mean magnitudes, never all held). 'data GB' is the "
                     "process's peak RSS after loading the AnnData, before the method ran.")


if __name__ == "__main__":
    main()
