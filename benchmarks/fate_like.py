"""Fate bias on semi-synthetic lineages with known fates: genegrad, CellRank 2 and Palantir in the same run.

The protocol of benchmarks/README.md: ``simulate_like`` fitted along a pseudotime with one mean curve per lineage,
(b) to paul15 (development: erythroid/megakaryocyte against myeloid cells; and ``b2``, monocytes against
neutrophils, the GMPs fitted in both lineages) and (c) to the Granja scATAC-seq subset
(proof, peaks: HSC -> CMP/LMPP -> GMP against HSC -> CLP -> B; the HSCs are fitted in both lineages; half the
peaks those that differ most between GMP and B cells, half the most accessible). Every
simulated cell knows its lineage, so fate bias has exact truth, unlike on the real data, where cell types are
proxies.

Every method gets the same preprocessed data (PCA for RNA, LSI for peaks), the same root (the simulated cell
earliest in the latent pseudotime) and the same terminal cells (per lineage, the tenth of its cells latest in
the pseudotime). Scored by the AUROC of each method's probability of the first lineage against the true lineage,
on the early cells (the first third of the pseudotime, where the lineages' means have barely parted) and on the
middle third (terminal cells excluded); mean and standard deviation over seeds of the simulation.

Needs the peers and scdesigner: ``pip install -e ".[bench,sim]"``.

    python benchmarks/fate_like.py                   # 3 seeds each, ~15 min on 2 cores
    python benchmarks/fate_like.py --only b --seeds 0 --no-record
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from sklearn.metrics import roc_auc_score

import genegrad as gg

sys.path.insert(0, str(Path(__file__).parent))
from _common import paul15_root, record, scanpy_log_pca
from fate import FINE_STEP_NOTES, _has, _with_dpt, compare, errors_markdown, synthetic_tree

N_CELLS, N_FEATURES, N_FLAT = 2000, 500, 50
TERMINAL = 0.1

PAUL_LINEAGE = {**dict.fromkeys(["1Ery", "2Ery", "3Ery", "4Ery", "5Ery", "6Ery", "7MEP", "8Mk"], "Ery/Mk"),
                **dict.fromkeys(["9GMP", "10GMP", "11DC", "12Baso", "13Baso", "14Mo", "15Mo", "16Neu", "17Neu",
                                 "18Eos"], "myeloid")}
#: the myeloid split of paul15 (development, harder than Ery/Mk against myeloid): the GMPs are fitted in both lineages
PAUL_MYELOID = {"14Mo": "Mo", "15Mo": "Mo", "16Neu": "Neu", "17Neu": "Neu"}
PAUL_GMP = ("9GMP", "10GMP")
GRANJA_LINEAGE = {"05_CMP.LMPP": "myeloid", "07_GMP": "myeloid", "15_CLP.2": "B", "17_B": "B"}


def _dpt(b, rep, root):
    sc.pp.neighbors(b, use_rep=rep, random_state=0)
    sc.tl.diffmap(b, random_state=0)
    b.uns["iroot"] = int(root)
    sc.tl.dpt(b)
    return b.obs["dpt_pseudotime"].to_numpy()


def fit_paul15():
    """paul15's counts, its highly variable genes, a DPT from its root and each cell's lineage (Lymph dropped)."""
    real = gg.datasets.paul15()
    keep = real.obs["paul15_clusters"].astype(str).map(PAUL_LINEAGE).notna().to_numpy()
    real = real[keep].copy()
    sc.pp.filter_genes(real, min_cells=20)
    b = scanpy_log_pca(real, n_top_genes=N_FEATURES)
    root = paul15_root(b.obsm["X_pca"], real.obs["paul15_clusters"])
    real = real[:, b.var["highly_variable"].to_numpy()].copy()
    real.obs["dpt"] = _dpt(b, "X_pca", root)
    real.obs["lineage"] = real.obs["paul15_clusters"].astype(str).map(PAUL_LINEAGE).to_numpy()
    return real, "rna"


def fit_paul15_myeloid():
    """paul15's GMPs, monocytes and neutrophils; a DPT from the root of :func:`fit_paul15` on the cells of both
    (so that the GMPs come first); the GMPs fitted in both lineages, as Granja's HSCs."""
    real, _ = fit_paul15()
    cl = real.obs["paul15_clusters"].astype(str)
    parts = []
    for lin in ("Mo", "Neu"):
        keep = cl.isin(PAUL_GMP) | (cl.map(PAUL_MYELOID) == lin)
        part = real[keep.to_numpy()].copy()
        part.obs["lineage"] = lin
        part.obs_names = [f"{n}_{lin}" for n in part.obs_names]
        parts.append(part)
    return ad.concat(parts), "rna"


def fit_granja():
    """Granja's most accessible peaks, a DPT from the HSC medoid on the LSI; HSCs in both lineages."""
    real = gg.datasets.granja_atac()
    ct = real.obs["BioClassification"].astype(str)
    b = gg.pp.preprocess_atac(real, copy=True)
    hsc = np.flatnonzero((ct == "01_HSC").to_numpy())
    Y = b.obsm["X_lsi"]
    root = int(hsc[np.argmin(((Y[hsc] - Y[hsc].mean(0)) ** 2).sum(1))])
    real.obs["dpt"] = _dpt(b, "X_lsi", root)
    # the peaks that tell the lineages' ends apart (GMP against B: a standardised difference of accessibility)
    # and the most accessible ones, half each; the most accessible alone hardly differ between the lineages
    X = real.X.tocsr() if hasattr(real.X, "tocsr") else np.asarray(real.X)
    m = {c: np.asarray(X[(ct == c).to_numpy()].mean(axis=0)).ravel() for c in ("07_GMP", "17_B")}
    contrast = np.abs(m["07_GMP"] - m["17_B"]) / np.sqrt(m["07_GMP"] + m["17_B"] + 1e-3)
    nz = np.asarray((X > 0).sum(axis=0)).ravel()
    half = np.argsort(-contrast)[: N_FEATURES // 2]
    rest = [j for j in np.argsort(-nz) if j not in set(half)][: N_FEATURES - len(half)]
    real = real[:, np.r_[half, rest]].copy()
    parts = []
    for lin in ("myeloid", "B"):
        keep = (ct == "01_HSC") | (ct.map(GRANJA_LINEAGE) == lin)
        part = real[keep.to_numpy()].copy()
        part.obs["lineage"] = lin
        part.obs_names = [f"{n}_{lin}" for n in part.obs_names]
        parts.append(part)
    return ad.concat(parts), "atac"


FITS = {"b": ("(b) like paul15: Ery/Mk vs myeloid", fit_paul15),
        "b2": ("(b) like paul15: Mo vs Neu", fit_paul15_myeloid),
        "c": ("(c) like Granja scATAC: myeloid vs B", fit_granja)}


def simulated(real, modality, seed):
    sim = gg.datasets.simulate_like(real, "dpt", lineage="lineage", n_cells=N_CELLS, n_flat=N_FLAT, rng=seed)
    sim = sim[sim.obs["total_counts"] > 0].copy()
    if modality == "rna":
        gg.pp.preprocess(sim, n_top_genes=N_FEATURES, n_comps=30)
    else:
        gg.pp.preprocess_atac(sim, n_comps=31)
        sim.obsm["X_pca"] = sim.obsm["X_lsi"]  # what every method reads
    t = sim.obsm["X_latent"][:, 0]
    lin = sim.obs["lineage"].astype(str).to_numpy()
    term = np.full(sim.n_obs, None, dtype=object)
    for name in np.unique(lin):
        own = lin == name
        term[own & (t >= np.quantile(t[own], 1 - TERMINAL))] = name
    sim.obs["terminal"] = pd.Categorical(term)
    third = np.digitize(t, np.quantile(t, [1 / 3, 2 / 3]))  # 0 early, 1 middle, 2 late
    windows = {w: (third == i) & pd.isna(term) for i, w in enumerate(("early", "middle"))}
    return sim, int(np.argmin(t)), windows, lin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="b,c")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    _with_dpt(synthetic_tree(0, n_cells=300, bias=0.0, n_bias=0), 0)  # numba compiles here, untimed
    rows, facts = [], []
    for fam in args.only.split(","):
        name, fit = FITS[fam]
        real, modality = fit()
        for seed in (int(s) for s in args.seeds.split(",")):
            sim, root, windows, lin = simulated(real, modality, seed)
            first = sorted(np.unique(lin))[0]
            truth = lin == first
            facts.append(f"{name}, seed {seed}: {sim.n_obs} cells, {sim.X.sum() / sim.n_obs:.0f} counts/cell; "
                         + ", ".join(f"{int(m.sum())} {w} ({truth[m].mean():.2f} of them {first})"
                                     for w, m in windows.items()))
            print(facts[-1], flush=True)

            def score(p, windows=windows, truth=truth, first=first):
                pa = np.nan_to_num(p[first].to_numpy(), nan=0.5)
                return {f"AUROC {w}": roc_auc_score(truth[m], pa[m]) for w, m in windows.items()}

            r, _ = compare(sim, "terminal", root=root, score=score, dataset=name, seed=seed)
            rows += r
            print(pd.DataFrame(r).round(3).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    cols = ["AUROC early", "AUROC middle", "wall s"]
    summary = table.groupby(["dataset", "method"], sort=False)[cols].agg(["mean", "std"]).round(3)
    summary.columns = [f"{a} {b}" for a, b in summary.columns]
    summary = summary.reset_index()
    print(summary.to_string(index=False))
    if not args.no_record:
        text = summary.to_markdown(index=False) + errors_markdown(table)
        main3 = table[table["method"].isin(["genegrad", "CellRank 2 (PseudotimeKernel + GPCCA)", "Palantir"])]
        main3 = main3[["dataset", "seed", "method", "AUROC early", "AUROC middle"]].round(3)
        text += "\n\nPer seed, genegrad and the peers:\n\n" + main3.to_markdown(index=False)
        text += "\n\n" + "\n".join(f"- {f}" for f in facts + FINE_STEP_NOTES)
        solver = "petsc4py present" if _has("petsc4py") else "petsc4py absent"
        record("Fate bias on simulate_like lineages (families b, c)",
               f"python benchmarks/fate_like.py --only {args.only} --seeds {args.seeds}", text,
               notes=(f"{N_CELLS} simulated cells x {N_FEATURES} features ({N_FLAT} flat), fitted along a DPT with one "
                      "mean curve per lineage; seeds are seeds of the simulation (the fit is the same). Root: the "
                      "earliest simulated cell; terminal cells: per lineage, the latest tenth in the pseudotime; "
                      "AUROC of p(first lineage) against the true lineage of the cells in the first ('early') and "
                      "second ('middle') thirds of the pseudotime. Method rows as in the 'Fate bias' table. CellRank "
                      "fate probabilities: scipy's "
                      f"direct sparse solver (solver='direct', use_petsc=False; {solver})."),
               pkgs=("cellrank", "palantir", "scdesigner"))


if __name__ == "__main__":
    main()
