"""Terminal states detected from a root cell: genegrad against CellRank 2 and Palantir, on the same AnnData.

genegrad: ``gg.tl.fate_bias(adata, root=...)`` (persistent tips of the graph pseudotime). CellRank 2: a
PseudotimeKernel on scanpy's diffusion pseudotime from the root, GPCCA macrostates (``fit(n_states=[2, 8])``, the
number chosen by CellRank) and ``predict_terminal_states()``. Palantir: ``run_palantir`` without terminal states
(its boundary cells of the diffusion components that are late in its pseudotime). All get the same
preprocessed data and root cell; nothing about the fates.

- Synthetic trees (fates A, B, C; several seeds): each detected state is matched to the fate whose terminal
  segment holds most of its cells (Palantir: its one terminal cell). A fate is *recovered* when a detected state
  holds >= 90% cells of its terminal segment; *spurious* states are the others. For genegrad, also the AUROC of
  p(A) against the true fate on the trunk with the detected states (the fate benchmark's score, which there
  uses the true terminal cells).
- paul15 (root = the 7MEP cell nearest the GMPs; ``uns['iroot']`` lies in 8Mk, a terminal state): the clusters
  of the detected states.

    python benchmarks/terminal_states.py
    python benchmarks/terminal_states.py --seeds 0 --no-palantir --no-record
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import genegrad as gg

sys.path.insert(0, str(Path(__file__).parent))
from _common import paul15_root, record
from fate import cellrank_gpcca, palantir_space

warnings.filterwarnings("ignore")

TERMINAL_SEGMENT = {"A": 1, "B": 3, "C": 4}


def genegrad_states(adata, root, groupby):
    a = adata.copy()
    t0 = time.perf_counter()
    gg.pp.manifold(a)
    gg.tl.fate_bias(a, root=root, groupby=groupby)
    return a, time.perf_counter() - t0


def cellrank_states(adata, root, cluster_key=None):
    t0 = time.perf_counter()
    _, g = cellrank_gpcca(adata, root)
    g.fit(n_states=[2, 8], cluster_key=cluster_key)
    g.predict_terminal_states()
    ts = g.terminal_states
    groups = {str(c): np.flatnonzero((ts == c).to_numpy()) for c in ts.cat.categories}
    return groups, time.perf_counter() - t0


def palantir_states(adata, root):
    import palantir

    a = adata.copy()
    t0 = time.perf_counter()
    palantir_space(a)
    palantir.core.run_palantir(a, a.obs_names[int(root)], num_waypoints=500, n_jobs=1)
    cells = list(a.obsm["palantir_fate_probabilities"].columns)
    return cells, time.perf_counter() - t0


def score_tree(adata, groups: dict[str, np.ndarray]) -> dict:
    """``groups``: detected state -> its cells' positions. Recovered fates and spurious states."""
    seg = adata.obs["segment"].astype(int).to_numpy()
    recovered, spurious = set(), 0
    for cells in groups.values():
        hit = None
        for fate, s in TERMINAL_SEGMENT.items():
            if (seg[cells] == s).mean() >= 0.9:
                hit = fate
        if hit is None or hit in recovered:
            spurious += 1
        else:
            recovered.add(hit)
    return {"states": len(groups), "fates recovered": len(recovered), "spurious states": spurious,
            "recovered": "".join(sorted(recovered))}


def run_synthetic(seeds, n_cells, depth, palantir, cellrank):
    rows = []
    for seed in seeds:
        adata = gg.datasets.synthetic("tree", n_cells=n_cells, n_genes=1000, depth=depth, fate_bias=1.0,
                                      n_bias_genes=30, rng=seed)  # the fate benchmark's trees
        gg.pp.preprocess(adata, n_top_genes=1000, n_comps=30)
        root = int(np.argmin(adata.obs["pseudotime"].to_numpy()))
        trunk = (adata.obs["segment"] == 0).to_numpy()
        truth = (adata.obs["fate"] == "A").to_numpy()
        base = {"data": f"tree, {int(depth)} UMIs/cell", "seed": seed}
        try:
            a, wall = genegrad_states(adata, root, "fate")
            states = a.obs["genegrad_terminal_states"]
            groups = {s: np.flatnonzero((states == s).to_numpy()) for s in states.cat.categories}
            row = {**base, "method": "genegrad", **score_tree(adata, groups), "wall s": wall}
            probs = a.obsm["genegrad_fate_probs"]
            if "A" in probs:
                row["trunk AUROC p(A)"] = roc_auc_score(truth[trunk], probs["A"].to_numpy()[trunk])
        except ValueError as err:
            row = {**base, "method": "genegrad", "states": 0, "fates recovered": 0, "spurious states": 0,
                   "recovered": f"error: {str(err)[:60]}"}
        rows.append(row)
        n_rows = 1
        if cellrank:
            try:
                groups, wall = cellrank_states(adata, root)
                rows.append({**base, "method": "CellRank 2", **score_tree(adata, groups), "wall s": wall})
            except Exception as err:  # a peer's failure is a result, not a crash
                rows.append({**base, "method": "CellRank 2", "states": 0, "fates recovered": 0,
                             "spurious states": 0, "recovered": f"error: {type(err).__name__}: {str(err)[:50]}"})
            n_rows += 1
        if palantir:
            cells, wall = palantir_states(adata, root)
            groups = {c: np.array([adata.obs_names.get_loc(c)]) for c in cells}
            rows.append({**base, "method": "Palantir", **score_tree(adata, groups), "wall s": wall})
            n_rows += 1
        print(pd.DataFrame(rows[-n_rows:]).round(3).to_string(index=False), flush=True)
    return rows


def run_paul15(palantir, cellrank):
    adata = gg.datasets.paul15()
    gg.pp.preprocess(adata, n_top_genes=2000, n_comps=30)
    cl = adata.obs["paul15_clusters"].astype(str)
    root = paul15_root(adata.obsm["X_pca"], cl)  # uns['iroot'] lies in 8Mk, a terminal state
    rows = []
    a, _ = genegrad_states(adata, root, "paul15_clusters")
    states = a.obs["genegrad_terminal_states"]
    for s in states.cat.categories:
        cells = (states == s).to_numpy()
        counts = cl[cells].value_counts()
        rows.append({"method": "genegrad", "state": s, "cells": int(cells.sum()),
                     "clusters": ", ".join(f"{k} {v}" for k, v in counts.items())})
    if cellrank:
        groups, _ = cellrank_states(adata, root, cluster_key="paul15_clusters")
        for s, cells in groups.items():
            counts = cl.iloc[cells].value_counts()
            rows.append({"method": "CellRank 2", "state": s, "cells": len(cells),
                         "clusters": ", ".join(f"{k} {v}" for k, v in counts.items())})
    if palantir:
        cells, _ = palantir_states(adata, root)
        for c in cells:
            rows.append({"method": "Palantir", "state": c, "cells": 1, "clusters": cl[c]})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    return table, f"root {adata.obs_names[root]} (cluster {cl.iloc[root]})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--cells", type=int, default=3000)
    ap.add_argument("--depths", default="1000,2000")
    ap.add_argument("--no-palantir", action="store_true")
    ap.add_argument("--no-cellrank", action="store_true")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    pal, crk = not args.no_palantir, not args.no_cellrank
    rows = []
    for depth in [float(d) for d in args.depths.split(",")]:
        rows += run_synthetic([int(s) for s in args.seeds.split(",")], args.cells, depth, pal, crk)
    table = pd.DataFrame(rows)
    summary = table.groupby(["data", "method"], sort=False).agg(
        runs=("seed", "size"), **{"fates recovered (mean of 3)": ("fates recovered", "mean"),
                                  "all 3 recovered": ("fates recovered", lambda x: int((x == 3).sum())),
                                  "spurious states (mean)": ("spurious states", "mean"),
                                  "wall s (mean)": ("wall s", "mean")}).reset_index()
    if "trunk AUROC p(A)" in table:
        auc = table.groupby(["data", "method"], sort=False)["trunk AUROC p(A)"].mean()
        keys = zip(summary["data"], summary["method"], strict=True)
        summary["trunk AUROC p(A), detected states"] = [auc.get(key, np.nan) for key in keys]
    print(table.round(3).to_string(index=False))
    print(summary.round(3).to_string(index=False))
    paul, root_note = run_paul15(pal, crk)
    if not args.no_record:
        record("Terminal states", f"python benchmarks/terminal_states.py --seeds {args.seeds} --cells {args.cells} "
               f"--depths {args.depths}" + (" --no-palantir" if args.no_palantir else "")
               + (" --no-cellrank" if args.no_cellrank else ""),
               summary.round(3).to_markdown(index=False) + "\n\nPer run:\n\n" + table.round(3).to_markdown(index=False)
               + f"\n\n**paul15**, {root_note}: the detected states and their clusters\n\n"
               + paul.to_markdown(index=False),
               notes=("Synthetic trees of the given cells, 1,000 genes, 30 PCs, the fate benchmark's weak bias (30 "
                      "genes, log-fold 1); the root is the cell of lowest true pseudotime. A fate is recovered when a "
                      "detected state holds >= 90% cells of its terminal segment (Palantir detects one terminal cell "
                      "per state). Trunk AUROC: p(A) against the true fate on the trunk, from gg.tl.fate_bias with the "
                      "detected states (the fate benchmark gives every method the true terminal cells instead). Wall "
                      "time: genegrad, pp.manifold and the fate probabilities; CellRank, scanpy's neighbours, diffusion"
                      " map and pseudotime, the kernel and GPCCA (a dense Schur decomposition: petsc4py/slepc4py "
                      "absent); Palantir, its diffusion maps and fate probabilities, with its defaults (10 diffusion "
                      "components, multiscale space, 500 waypoints)."),
               pkgs=("cellrank", "palantir"))


if __name__ == "__main__":
    main()
