"""scATAC-seq: gradients on the LSI manifold, against the RNA recipe on the same counts, and a real-data check.

1. Gradient recovery on synthetic accessibility counts with exact truth (3,000 cells, 5,000 peaks, ~0.06 or ~0.2
   counts per peak and cell, log-depths spread 0.6 as in scATAC-seq): median cosine between estimated and true
   gradients of 300 structured peaks (over cell-peak pairs whose true gradient is at least 0.1 x the peak's 95th
   percentile, as in gradient_recovery.py), for genegrad's ATAC recipe (TF-IDF, LSI without its depth
   components, rows scaled to unit length), the same with ``log_mean=False`` (the smoothed TF-IDF instead of
   the log of its local mean), the same LSI without the row scaling, and the RNA recipe
   (log-normalise, 2,000 highly variable features, PCA) on the same counts; finite differences along the LSI
   graph's edges as the naive baseline. Each estimate is scored in its own representation (the truth pushed
   forward into it).
2. Gene geometry on the same kind of data: AUROC of telling structured peaks from noise peaks, and the adjusted
   Rand index of the patterns against the seven true classes (structured peaks).
3. Paired multiome (synthetic, the same cells in both modalities): RNA genes' gradients on their own PCA manifold
   and on the ATAC manifold carried over by ``pp.transfer_manifold``, each against the exact truth.
4. Granja et al. 2019 bone marrow (600 cells x 5,000 random peaks, ~140 fragments per cell in them): fate
   probabilities from the LSI, with GMP, B and CD8 T cells as terminal states and every progenitor label hidden;
   scored by the AUROC of p(GMP) for CMP/LMPP against CLP cells (a cell-type proxy, not lineage truth). Every
   method gets the same LSI (in ``obsm['X_pca']``, where the peers read it) and the same root (the HSC medoid).

    python benchmarks/atac.py                      # all four parts (~25 min on 2 cores)
    python benchmarks/atac.py --only granja --no-record
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, roc_auc_score

import genegrad as gg
from genegrad.pp._manifold import load_model

sys.path.insert(0, str(Path(__file__).parent))
from _common import record
from gradient_recovery import cosines, finite_differences

N_CELLS, N_PEAKS, LIBRARY_SD = 3000, 5000, 0.6


def simulate(kind, depth, seed, n_peaks=N_PEAKS):
    return gg.datasets.synthetic(kind, n_cells=N_CELLS, n_genes=n_peaks, depth=depth, library_sd=LIBRARY_SD,
                                 rng=seed)


def scale_cosines(a, genes, rep, true):
    """Median cosine at each scale over the (cell, gene) pairs whose true gradient is not negligible, and the mask."""
    nt = np.linalg.norm(true, axis=2)
    mask = nt >= 0.1 * np.percentile(nt, 95, axis=0)
    per = {int(t): float(np.median(cosines(gg.get.gradients(a, genes, scale=int(t), basis=rep), true, mask)))
           for t in a.uns["genegrad"]["scales"]}
    return per, mask


RECIPES = {  # name: representation, preprocess_atac's options (None: the RNA recipe), tl.gradients' options
    "genegrad ATAC (LSI, unit rows)": ("X_lsi", {}, {}),
    "same, log_mean=False (smoothed log)": ("X_lsi", {}, {"log_mean": False}),
    "LSI, rows not scaled": ("X_lsi", {"normalize_rows": False}, {}),
    "RNA recipe (log-normalise, PCA)": ("X_pca", None, {}),
}


def recovery(kind, depth, seed, n_eval=300):
    base = simulate(kind, depth, seed)
    probe = gg.pp.preprocess_atac(base, n_comps=31, copy=True)
    peaks = probe.var_names[probe.var["highly_variable"].to_numpy(bool) & (probe.var["pattern"] != "noise")]
    genes = list(peaks[:n_eval])
    row = {"manifold": kind, "counts/peak/cell": round(float(base.X.sum() / np.prod(base.shape)), 3),
           "seed": seed}
    for name, (rep, opts, grad_opts) in RECIPES.items():
        a = base.copy()
        if opts is None:
            gg.pp.preprocess(a, n_comps=30)
        else:
            gg.pp.preprocess_atac(a, n_comps=31, **opts)
        t0 = time.perf_counter()
        gg.pp.manifold(a, use_rep=rep)
        gg.tl.gradients(a, genes, with_se=False, store="obsm", **grad_opts)  # timed: the tensor computed here
        elapsed = time.perf_counter() - t0
        true = gg.datasets.true_gradients(a, genes, basis=rep)
        per, mask = scale_cosines(a, genes, rep, true)
        best = max(per, key=per.get)
        row[f"{name}: d"] = int(a.uns["genegrad"]["n_dims"])
        row[f"{name}: cosine (best t)"] = per[best]
        row[f"{name}: best t"] = best
        if name.startswith("genegrad"):
            row["genegrad s"] = elapsed
            model = load_model(a)
            Y = a.obsm[rep].astype(np.float64)
            F = a[:, genes].X.toarray().astype(np.float64)
            fd = -1.0
            for _ in range(5):  # t = 0 .. 4
                fd = max(fd, float(np.median(cosines(finite_differences(Y, model.knn_indices_, F), true, mask))))
                F = model.diffusion_ @ F
            row["finite differences (LSI, best t <= 4)"] = fd
    return row


def geometry(kind, depth, seed):
    a = simulate(kind, depth, seed, n_peaks=3000)
    gg.pp.preprocess_atac(a, n_comps=31)
    gg.pp.manifold(a, use_rep="X_lsi")
    t0 = time.perf_counter()
    gg.tl.patterns(a)
    elapsed = time.perf_counter() - t0
    truth = a.var["pattern"].astype(str).to_numpy()
    hv = a.var["highly_variable"].to_numpy(bool)
    score = a.var["genegrad_structured_score"].to_numpy()
    found = a.var["genegrad_pattern"].astype(str).to_numpy()
    s = hv & (truth != "noise")
    return {"manifold": kind, "counts/peak/cell": round(float(a.layers["counts"].sum() / np.prod(a.shape)), 3),
            "seed": seed, "d": int(a.uns["genegrad"]["n_dims"]), "peaks described": int(hv.sum()),
            "structure AUROC": roc_auc_score(truth[hv] != "noise", score[hv]),
            "pattern ARI (structured peaks)": adjusted_rand_score(truth[s], found[s]),
            "patterns found": len(set(found[hv]) - {"noise"}),
            "noise peaks p<0.05": float(np.mean(a.var["genegrad_structured_pval"].to_numpy()[hv & (truth == "noise")]
                                                < 0.05)),
            "structured peaks q<0.05": float(np.mean(a.var["genegrad_structured_qval"].to_numpy()[s] < 0.05)),
            "patterns s": elapsed}


def multiome(kind, seed, n_eval=300):
    """RNA genes of paired cells: on their own PCA manifold, and on the ATAC manifold (``transfer_manifold``)."""
    atac = simulate(kind, 300, seed)  # the same kind, cells and seed: the same latent positions
    rna = gg.datasets.synthetic(kind, n_cells=N_CELLS, n_genes=1000, depth=1000, rng=seed)
    gg.pp.preprocess_atac(atac, n_comps=31)
    gg.pp.manifold(atac, use_rep="X_lsi")
    gg.pp.preprocess(rna, n_comps=30)
    genes = list(rna.var_names[rna.var["pattern"] != "noise"][:n_eval])
    row = {"manifold": kind, "seed": seed}
    for name in ("RNA manifold (PCA)", "ATAC manifold (LSI, transferred)"):
        a = rna.copy()
        if name.startswith("RNA"):
            gg.pp.manifold(a)
            rep, emb = "X_pca", None
        else:
            gg.pp.transfer_manifold(a, atac)
            rep, emb = "X_lsi", atac
        gg.tl.gradients(a, genes, with_se=False, store="obsm")  # timed: the tensor computed here
        true = gg.datasets.true_gradients(a, genes, basis=rep, embedding=emb)
        per, _ = scale_cosines(a, genes, rep, true)
        best = max(per, key=per.get)
        row[f"{name}: d"] = int(a.uns["genegrad"]["n_dims"])
        row[f"{name}: cosine (best t)"] = per[best]
        row[f"{name}: cosine t=2"] = per[2]
    return row


GRANJA_TERMINAL = {"07_GMP": "GMP", "17_B": "B", "19_CD8.N": "T"}


def granja():
    from fate import _with_dpt, auroc_with_bootstrap, compare, synthetic_tree

    _with_dpt(synthetic_tree(0, n_cells=300, bias=0.0, n_bias=0), 0)  # numba compiles here, untimed

    adata = gg.datasets.granja_atac()
    gg.pp.preprocess_atac(adata, n_comps=31)
    adata.obsm["X_pca"] = adata.obsm["X_lsi"]  # what every method reads
    ct = adata.obs["BioClassification"].astype(str)
    adata.obs["terminal"] = pd.Categorical(ct.map(GRANJA_TERMINAL))
    hsc = np.flatnonzero((ct == "01_HSC").to_numpy())
    Y = adata.obsm["X_lsi"]
    root = int(hsc[np.argmin(((Y[hsc] - Y[hsc].mean(0)) ** 2).sum(1))])
    early = ct.isin(["05_CMP.LMPP", "15_CLP.2"]).to_numpy()
    myeloid = (ct == "05_CMP.LMPP").to_numpy()

    def score(p):
        return auroc_with_bootstrap(myeloid[early], np.nan_to_num(p["GMP"].to_numpy()[early], nan=0.5))

    rows, _ = compare(adata, "terminal", root=root, score=score, dataset="Granja BM scATAC")
    return rows


def run_grid(fn, grid):
    """``fn(*args)`` for every ``args`` of ``grid``, each row printed as it comes; the table, rounded."""
    rows = []
    for args in grid:
        rows.append(fn(*args))
        print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).round(3)
    print(table.to_string(index=False))
    return table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="recovery,geometry,multiome,granja")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    parts = args.only.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    sections = []
    if "recovery" in parts:
        table = run_grid(recovery, [(k, depth, seed) for k in ("plane", "cycle", "tree") for depth in (300, 1000)
                                    for seed in seeds])
        sections.append(("scATAC-seq gradient recovery", table.to_markdown(index=False),
                         f"Synthetic accessibility counts: {N_CELLS} cells, {N_PEAKS} peaks (features of "
                         f"`gg.datasets.synthetic` drawn at 300 or 1,000 counts per cell, log-depth sd "
                         f"{LIBRARY_SD}); 300 structured peaks of the LSI; cosine in each recipe's own "
                         "representation; genegrad s = manifold + gradients."))
    if "geometry" in parts:
        table = run_grid(geometry, [(k, 600, seed) for k in ("cycle", "tree", "plane") for seed in seeds])
        sections.append(("scATAC-seq gene geometry", table.to_markdown(index=False),
                         f"{N_CELLS} cells, 3,000 peaks at 600 counts per cell (log-depth sd {LIBRARY_SD}); "
                         "`gg.tl.patterns` with its defaults on the LSI manifold; the held-out graphs of the "
                         "structure test are LSIs of each half of the peaks."))
    if "multiome" in parts:
        table = run_grid(multiome, [(k, seed) for k in ("plane", "cycle", "tree") for seed in seeds])
        sections.append(("Multiome: RNA gradients on the ATAC manifold", table.to_markdown(index=False),
                         f"Paired synthetic cells ({N_CELLS}): ATAC {N_PEAKS} peaks at 300 counts per cell (~0.06 per "
                         f"peak, log-depth sd {LIBRARY_SD}) and RNA 1,000 genes at 1,000 UMIs per cell, simulated on "
                         "the same latent positions; 300 structured RNA genes; the truth pushed into each "
                         "manifold's representation (`true_gradients(..., embedding=atac)` for the LSI)."))
    if "granja" in parts:
        from fate import FINE_STEP_NOTES, paired_errors

        table = pd.DataFrame(granja())
        paired = paired_errors(table)
        table = table.drop(columns="boot")
        print(table.round(3).to_string(index=False))
        print(paired.to_string(index=False))
        text = (table.round(3).to_markdown(index=False) + "\n\nUncertainty over the scored cells (500 bootstrap "
                "resamples, the same for every method): each AUROC's standard error, and genegrad's AUROC minus each "
                "method's with the standard error of that difference (paired):\n\n" + paired.to_markdown(index=False)
                + "\n\n" + "\n".join(f"- {n}" for n in FINE_STEP_NOTES))
        sections.append(("scATAC-seq fate check (Granja bone marrow)", text,
                         "600 cells x 5,000 random peaks; terminal states GMP (07_GMP), B (17_B), T (19_CD8.N); "
                         "AUROC of p(GMP) for 05_CMP.LMPP against 15_CLP.2 cells (a cell-type proxy); every method "
                         "on the same LSI (30 components, the depth one dropped, unit rows), root = the HSC medoid. "
                         "CellRank: scipy's direct sparse solver."))
    if not args.no_record:
        for title, text, notes in sections:
            record(title, f"python benchmarks/atac.py --only {args.only} --seeds {args.seeds}", text, notes=notes,
                   pkgs=("scikit-learn", "cellrank", "palantir"))


if __name__ == "__main__":
    main()
