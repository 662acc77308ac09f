"""Gradient recovery, standard-error calibration and structured-vs-null genes on three families of data.

The protocol of benchmarks/README.md: (a) ``gg.datasets.synthetic`` (development), (b) ``simulate_like`` fitted
to paul15 (development), (c) ``simulate_like`` fitted to the Granja scATAC-seq subset and to the myoblast time
course (proof: nothing was tuned on them). Treutlein's lung data hold FPKM, not counts, so they cannot be
fitted by a count model and are left out of (b).

Per data set (2,000 simulated cells; 400 features: the paul15 highly variable genes, the most accessible peaks):

- cosine: median cosine between genegrad's gradients and the exact truth pushed into the representation (PCA
  for RNA, LSI for peaks), over (cell, gene) pairs whose true gradient is at least 0.1 x the gene's 95th
  percentile, at t = 0 and t = 2, and at the best t (chosen on the truth: an oracle); the peer, finite differences
  along the graph's edges, also at its best t <= 4 (oracle);
- coverage: share of those pairs whose true gradient (of the noise-free log-normalised signal, the estimator's
  target) lies in the 95% ball of the estimate, radius ``se * sqrt(chi2_0.95(d) / d)`` (the standard error is that
  of the gradient's length, spread evenly over the d tangent directions); 0.95 when calibrated;
- auto: each gene at its recommended scale (``scale='auto'``, Lepski's rule), its coverage with the widened
  standard errors of ``gg.get.gradients_se(..., scale='auto')`` (the finest scale's, widened by the move from it),
  its median cosine minus the best fixed scale's with a bootstrap standard error (200 resamples of the genes,
  the pairs of a gene kept together and paired between the two),
  their median width relative to the finest scale's, and, for comparison, the coverage with the coarse scale's
  own standard error widened by the same move;
- ``log_mean=False``: genegrad differentiating the smoothed ``log1p`` signal instead of the log of the local mean
  (its default before), for comparison;
- structured vs flat: AUROC of telling the structured genes from the flat ones (the nulls), by genegrad's
  structure test (``tl.patterns``, its p-value), by Moran's I on scanpy's kNN graph of the same
  representation and by Hotspot's autocorrelation Z (peers; Hotspot's danb model on RNA counts, its bernoulli
  model on peaks, 30 neighbours on the same representation).

Needs the bench and sim extras: ``pip install -e ".[bench,sim]"``.

    python benchmarks/second_opinion.py              # ~10 min on 2 cores
    python benchmarks/second_opinion.py --only a --no-record
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
from scipy import stats
from sklearn.metrics import roc_auc_score

import genegrad as gg
from genegrad.pp._manifold import load_model

sys.path.insert(0, str(Path(__file__).parent))
from _common import record, scanpy_log_pca
from gradient_recovery import cosines, finite_differences
from patterns import hotspot_z

N_CELLS, N_FEATURES, N_FLAT = 2000, 400, 60


def synthetic(kind):
    a = gg.datasets.synthetic(kind, n_cells=N_CELLS, n_genes=N_FEATURES, depth=1000, rng=0)
    a.var["flat"] = (a.var["pattern"] == "noise").to_numpy()
    return a, "rna"


def like_paul15():
    real = gg.datasets.paul15()
    sc.pp.filter_genes(real, min_cells=20)
    b = scanpy_log_pca(real, n_top_genes=N_FEATURES)
    sc.pp.neighbors(b, random_state=0)
    sc.tl.diffmap(b, random_state=0)
    real = real[:, b.var["highly_variable"].to_numpy()].copy()
    real.obsm["X_dc"] = b.obsm["X_diffmap"][:, 1:3]
    return gg.datasets.simulate_like(real, "X_dc", n_cells=N_CELLS, n_flat=N_FLAT, rng=0), "rna"


def top_peaks(real):
    nz = np.asarray((real.X > 0).sum(axis=0)).ravel()
    return real[:, np.argsort(-nz)[:N_FEATURES]].copy()


def like_granja():
    real = top_peaks(gg.datasets.granja_atac())
    return gg.datasets.simulate_like(real, "X_umap_published", n_cells=N_CELLS, n_flat=N_FLAT, rng=0), "atac"


def like_myoblast():
    real = gg.datasets.myoblast_atac()
    b = gg.pp.preprocess_atac(real, copy=True)
    sc.pp.neighbors(b, use_rep="X_lsi", random_state=0)
    sc.tl.diffmap(b, random_state=0)
    hours = real.obs["hours"].to_numpy()
    t0 = np.flatnonzero(hours == 0)
    X = b.obsm["X_lsi"]
    b.uns["iroot"] = int(t0[np.argmin(((X[t0] - X[t0].mean(axis=0)) ** 2).sum(axis=1))])
    sc.tl.dpt(b)
    real = top_peaks(real)
    real.obs["dpt"] = b.obs["dpt_pseudotime"].to_numpy()
    return gg.datasets.simulate_like(real, "dpt", n_cells=N_CELLS, n_flat=N_FLAT, rng=0), "atac"


DATA = {
    "a": {"synthetic tree": lambda: synthetic("tree"), "synthetic plane": lambda: synthetic("plane")},
    "b": {"like paul15 (2 diffusion comps)": like_paul15},
    "c": {"like Granja scATAC (published UMAP)": like_granja, "like myoblasts scATAC (DPT)": like_myoblast},
}
FAMILY = {"a": "(a) synthetic: development", "b": "(b) simulate_like RNA: development",
          "c": "(c) simulate_like scATAC: proof"}


def mean_of_log(adata, genes, rep, true, target, mask, radius):
    """genegrad with ``log_mean=False`` (the default before): the gradient of the smoothed ``log1p`` signal.

    Cosines at t = 2 and auto, coverages at t = 0 and auto, as in :func:`evaluate`.
    """
    b = adata.copy()
    gg.tl.gradients(b, genes, log_mean=False, store="obsm")

    def cover(scale):
        g = gg.get.gradients(b, genes, scale=scale, basis=rep)
        se = gg.get.gradients_se(b, genes, scale=scale)
        return float(np.mean((np.linalg.norm(g - target, axis=2) <= radius * se)[mask]))

    return {"cosine t=2": float(np.median(cosines(gg.get.gradients(b, genes, scale=2, basis=rep), true, mask))),
            "cosine auto": float(np.median(cosines(gg.get.gradients(b, genes, scale="auto", basis=rep), true, mask))),
            "coverage t=0": cover(0), "coverage auto": cover("auto")}


def each_set(only: str):
    """``(family, name, adata, modality)`` for every data set of the families in ``only`` (e.g. ``'a,b'``)."""
    for fam in only.split(","):
        for name, make in DATA[fam].items():
            adata, modality = make()
            print(f"{name}: {adata.n_obs} cells x {adata.n_vars} features", flush=True)
            yield fam, name, adata, modality


def differentiated(adata, modality):
    """Preprocess, manifold and every feature's gradients (in obsm), with the truth.

    Returns ``(rep, genes, true, target, mask, structured, seconds)``: the representation, the features, the
    direction truth and the magnitude truth (``log1p`` signal) pushed into it, the (cell, feature) pairs scored
    (structured, true gradient at least 0.1 x the feature's 95th percentile), the structured features, and the
    time ``tl.gradients`` took.
    """
    if modality == "rna":
        gg.pp.preprocess(adata, n_top_genes=N_FEATURES, n_comps=30)
        rep = "X_pca"
    else:
        gg.pp.preprocess_atac(adata, n_comps=31)
        rep = "X_lsi"
    gg.pp.manifold(adata, use_rep=rep)
    genes = list(adata.var_names)
    t0 = time.perf_counter()
    gg.tl.gradients(adata, genes, store="obsm")
    elapsed = time.perf_counter() - t0
    true = gg.datasets.true_gradients(adata, genes, basis=rep)
    target = gg.datasets.true_gradients(adata, genes, basis=rep, signal="log1p")
    nt = np.linalg.norm(true, axis=2)
    structured = ~adata.var["flat"].to_numpy(bool)
    mask = (nt >= 0.1 * np.percentile(nt, 95, axis=0)) & structured[None, :]
    return rep, genes, true, target, mask, structured, elapsed


def median_gap_se(a, b, gene, *, n_boot=200, seed=0):
    """Bootstrap SE of ``median(a) - median(b)``, paired (cell, gene) values resampled by gene: the genes are the
    sampling unit (a gene's cells share its noise and its truth)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(gene)
    rows = {g: np.flatnonzero(gene == g) for g in ids}
    gaps = []
    for _ in range(n_boot):
        pick = np.concatenate([rows[g] for g in rng.choice(ids, ids.size)])
        gaps.append(np.median(a[pick]) - np.median(b[pick]))
    return float(np.std(gaps, ddof=1))


def evaluate(adata, modality):
    depth = float(adata.X.sum() / adata.n_obs)
    rep, genes, true, target, mask, structured, elapsed = differentiated(adata, modality)
    d = adata.uns["genegrad"]["n_dims"]
    radius = np.sqrt(stats.chi2.ppf(0.95, d) / d)
    scales = [int(t) for t in adata.uns["genegrad"]["scales"]]
    cos, cover, per_pair = {}, {}, {}
    se_all = adata.obsm["genegrad_gradients_se"]
    for i, t in enumerate(scales):
        est = gg.get.gradients(adata, genes, scale=t, basis=rep)
        per_pair[t] = cosines(est, true, mask)
        cos[t] = float(np.median(per_pair[t]))
        err = np.linalg.norm(est - target, axis=2)
        cover[t] = float(np.mean((err <= radius * se_all[:, :, i])[mask]))
    auto = gg.get.gradients(adata, genes, scale="auto", basis=rep)
    per_pair["auto"] = cosines(auto, true, mask)
    cos["auto"] = float(np.median(per_pair["auto"]))
    err = np.linalg.norm(auto - target, axis=2)
    se_auto = gg.get.gradients_se(adata, genes, scale="auto")
    cover["auto"] = float(np.mean((err <= radius * se_auto)[mask]))
    # the width it costs, and the rule before it (each gene's own scale's SE + its move from the finest scale)
    width = float(np.median((se_auto / np.maximum(se_all[:, :, 0], 1e-30))[mask]))
    per_gene = adata.var["genegrad_scale"].to_numpy().astype(int)
    se_t = se_all[:, np.arange(len(genes)), [scales.index(t) for t in per_gene]]
    moved = np.linalg.norm(auto - gg.get.gradients(adata, genes, scale=0, basis=rep), axis=2)
    cover["auto, coarse se"] = float(np.mean((err <= radius * se_t + moved)[mask]))
    auto_scales = adata.var["genegrad_scale"].to_numpy()[structured]
    model = load_model(adata)
    Y = adata.obsm[rep].astype(np.float64)
    F = adata[:, genes].X
    F = (F.toarray() if hasattr(F, "toarray") else np.asarray(F)).astype(np.float64)
    fd = -1.0
    for t in (s for s in scales if s <= 4):
        Ft = F
        for _ in range(t):
            Ft = model.diffusion_ @ Ft
        fd = max(fd, float(np.median(cosines(finite_differences(Y, model.knn_indices_, Ft), true, mask))))
    before = mean_of_log(adata, genes, rep, true, target, mask, radius)
    gg.tl.patterns(adata, genes=genes, n_null=200)
    auroc_gg = roc_auc_score(structured, -adata.var["genegrad_structured_pval"].to_numpy())
    b = adata.copy()
    sc.pp.neighbors(b, use_rep=rep, random_state=0)
    moran = sc.metrics.morans_i(b)
    auroc_moran = roc_auc_score(structured, np.nan_to_num(moran, nan=-1.0))
    hz, _ = hotspot_z(adata, rep=rep, model="danb" if modality == "rna" else "bernoulli")
    auroc_hs = roc_auc_score(structured, hz)
    best = max((t for t in cos if t != "auto"), key=cos.get)
    gap_se = median_gap_se(per_pair["auto"], per_pair[best], np.nonzero(mask)[1])
    return {"counts/cell": round(depth), "d": d, "cosine t=0": round(cos[0], 3), "cosine t=2": round(cos[2], 3),
            "cosine best t (oracle)": f"{cos[best]:.3f} (t={best})", "finite differences (oracle t)": round(fd, 3),
            "coverage t=0": round(cover[0], 3), "coverage t=2": round(cover[2], 3),
            "cosine auto": round(cos["auto"], 3),
            "auto minus best t (bootstrap SE)": f"{cos['auto'] - cos[best]:+.3f} ({gap_se:.3f})",
            "coverage auto": round(cover["auto"], 3),
            "auto SE / t=0 SE (median)": round(width, 2),
            "coverage auto with the coarse scale's SE": round(cover["auto, coarse se"], 3),
            "log_mean=False: cosine t=2 / auto, coverage t=0 / auto":
                "{:.3f} / {:.3f}, {:.3f} / {:.3f}".format(*before.values()),
            "auto scales (median, IQR)": "{:g} ({:g}-{:g})".format(*np.percentile(auto_scales, [50, 25, 75])),
            "structured vs flat: genegrad": round(auroc_gg, 3), "Moran's I (peer)": round(auroc_moran, 3),
            "Hotspot (peer)": round(auroc_hs, 3),
            "gradients s": round(elapsed, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="a,b,c")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    rows = []
    for fam, name, adata, modality in each_set(args.only):
        rows.append({"family": FAMILY[fam], "data": name, **evaluate(adata, modality)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).to_markdown(index=False)
    print(table)
    if not args.no_record:
        record("Second opinion: gradients, calibration and null genes on three families",
               f"python benchmarks/second_opinion.py --only {args.only}", table,
               notes=("Development (a, b) beside proof (c): defaults were chosen on (a) only. 2,000 cells x 400 "
                      "features each; coverage of the 95% ball (0.95 when calibrated); AUROCs of structured against "
                      "flat features (60 flat in the simulate_like sets, the noise class in the synthetic ones)."),
               pkgs=("scdesigner", "hotspotsc"))


if __name__ == "__main__":
    main()
