"""A real time course (proof data): differentiating human myoblasts, sci-ATAC-seq (Pliner et al. 2018).

200 cells x 6,146 chr18 peaks collected at 0, 24, 48 and 72 h of differentiation (T0-T3), ~40-900 reads per
cell. Nothing in genegrad was tuned on it. Every method reads the same LSI (``pp.preprocess_atac``) and starts
from the same root (the T0 cell nearest the T0 mean in the LSI: the time labels pick the root, as a user picks a
progenitor, and are otherwise used only to score).

1. Ordering: does the pseudotime order the time points? Spearman correlation with the hours, AUROC of T3 against
   T0 cells, and the mean AUROC of consecutive time points (T1 vs T0, T2 vs T1, T3 vs T2). genegrad: the graph
   pseudotime (``tl.pseudotime``); peer: scanpy's diffusion pseudotime (``sc.tl.dpt``) on the same LSI.
2. Gene directions: gene activity from the real GENCODE annotation (``pp.gene_activity``, gene body + 2 kb
   promoter), on the ATAC manifold. Reference direction of each gene: the sign of its Spearman correlation with
   the hours, for the genes whose correlation is significant (BH q < 0.05). genegrad's call: the sign of the
   cell-average of ``<grad g, grad tau> / |grad tau|`` (the gene's gradient along the gradient of its own
   pseudotime ``tau``, both by the same operator, at each diffusion scale); peer: the sign of the gene's Spearman
   correlation with DPT. Scored: the share of the time-varying genes called in the reference direction. Named
   genes: MYOM1 (myomesin, sarcomere: expected to open as myotubes form); TYMS and NDC80 (S phase and mitosis:
   cell-cycle exit). Their reference rows are what the data show, not an assumption.

    python benchmarks/timecourse.py              # ~1 min on 2 cores
    python benchmarks/timecourse.py --no-record
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
from scipy import stats
from sklearn.metrics import roc_auc_score

import genegrad as gg
from genegrad.pp._manifold import load_model

sys.path.insert(0, str(Path(__file__).parent))
from _common import record

NAMED = ("MYOM1", "TYMS", "NDC80")


def ordering(t, hours, name):
    ok = np.isfinite(t)
    t, hours = t[ok], hours[ok]

    def auroc(lo, hi):
        sel = (hours == lo) | (hours == hi)
        return roc_auc_score(hours[sel] == hi, t[sel])

    return {"method": name, "Spearman (hours)": round(float(stats.spearmanr(t, hours)[0]), 3),
            "AUROC T3 vs T0": round(auroc(0, 72), 3),
            "mean AUROC, consecutive": round(float(np.mean([auroc(0, 24), auroc(24, 48), auroc(48, 72)])), 3),
            "cells ordered": int(ok.sum())}


def bh(p):
    p = np.asarray(p)
    order = np.argsort(p)
    q = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1)
    return out


def run():
    a = gg.datasets.myoblast_atac()
    hours = a.obs["hours"].to_numpy()
    gg.pp.preprocess_atac(a)
    gg.pp.manifold(a, use_rep="X_lsi")
    t0 = np.flatnonzero(hours == 0)
    X = a.obsm["X_lsi"]
    root = int(t0[np.argmin(((X[t0] - X[t0].mean(axis=0)) ** 2).sum(axis=1))])
    gg.tl.pseudotime(a, root=root)
    b = a.copy()
    sc.pp.neighbors(b, use_rep="X_lsi")
    sc.tl.diffmap(b)
    b.uns["iroot"] = root
    sc.tl.dpt(b)
    tau = a.obs["genegrad_pseudotime"].to_numpy()
    dpt = b.obs["dpt_pseudotime"].to_numpy()
    order = pd.DataFrame([ordering(tau, hours, "genegrad (graph pseudotime)"),
                          ordering(dpt, hours, "scanpy DPT (peer)")])

    ga = gg.pp.gene_activity(a, a.uns["genes"])
    F = ga.X.toarray() if hasattr(ga.X, "toarray") else np.asarray(ga.X)
    rho, p = zip(*(stats.spearmanr(F[:, j], hours) for j in range(F.shape[1])), strict=True)
    rho = np.nan_to_num(np.asarray(rho))
    q = bh(np.nan_to_num(np.asarray(p), nan=1.0))
    varying = q < 0.05
    model = load_model(ga)
    ok = np.isfinite(tau)
    chunk = model.gradients(np.c_[F, np.where(ok, tau, np.nanmax(tau))].astype(np.float32), with_se=False)
    G = chunk.gradients  # (N, genes + 1, d, scales)
    gt = G[:, -1]  # (N, d, scales)
    along = np.einsum("ngds,nds->ngs", G[:, :-1], gt) / np.maximum(np.linalg.norm(gt, axis=1), 1e-12)[:, None, :]
    calls = {f"genegrad t={s}": np.sign(along[ok, :, i].mean(axis=0)) for i, s in enumerate(model.scales_)}
    peer = np.sign([stats.spearmanr(F[:, j], dpt)[0] for j in range(F.shape[1])])
    calls["scanpy DPT (peer): sign of Spearman with DPT"] = np.nan_to_num(peer)
    ref = np.sign(rho)
    rows = [{"method": m, "time-varying genes": int(varying.sum()),
             "share in the reference direction": round(float(np.mean(c[varying] == ref[varying])), 3)}
            for m, c in calls.items()]
    genes = pd.DataFrame(rows)
    named = []
    for g in NAMED:
        j = list(ga.var_names).index(g)
        named.append({"gene": g, "Spearman with hours": round(float(rho[j]), 3), "q": float(f"{q[j]:.2g}"),
                      **{m: int(c[j]) for m, c in calls.items()}})
    return order, genes, pd.DataFrame(named)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    order, genes, named = run()
    text = "\n\n".join(t.to_markdown(index=False) for t in (order, genes, named))
    print(text)
    if not args.no_record:
        record("Time course (myoblasts, sci-ATAC-seq): proof data", "python benchmarks/timecourse.py", text,
               notes=("Proof data (nothing was tuned on it). Ordering: genegrad's graph pseudotime against scanpy's "
                      "DPT on the same LSI and root. Gene directions: gene activity of the chr18 genes, reference "
                      "direction the sign of each gene's Spearman correlation with the hours (BH q < 0.05); "
                      "named genes: +1 / -1 the direction each method calls (the reference is the first column)."))


if __name__ == "__main__":
    main()
