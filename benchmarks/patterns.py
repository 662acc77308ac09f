"""Pattern identification and structured-versus-noise genes on synthetic manifolds with known pattern classes.

For each manifold (10,000 cells, 2,000 UMIs/cell, 1,000 genes; seed 0): the adjusted Rand index of
``gg.tl.patterns`` against the true classes (all genes, noise as a class; the truly structured genes alone; and the
classes merged where they have one shape on the manifold, see ``SHAPE_CLASSES``), and the AUROC of telling
structured genes from noise genes for genegrad's structure score, genegrad's gradient magnitude, Moran's I
(``scanpy.metrics.morans_i`` on genegrad's connectivities) and Hotspot's autocorrelation Z (``hotspotsc``, danb
model on the counts, 30 neighbours on X_pca), all in the same run on the same AnnData; and the share of flat
(noise) genes the structure test calls structured, with its held-out graphs (default) and on the manifold's own
graph (``holdout=False``). The gene-pattern peer, GSPA (``gspa``, in an environment of its own made by
``_envs.py``: it needs TensorFlow), embeds the same log-normalised genes on its own cell graph; its embeddings are
clustered by k-means with k = the true number of classes (an oracle choice genegrad does not get). Hotspot's
gene modules (its tutorial's workflow) are scored against the same classes.

    python benchmarks/patterns.py                  # plane, swiss roll, tree, cycle
    python benchmarks/patterns.py --kinds tree --cells 3000 --no-record
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, roc_auc_score

import genegrad as gg
from genegrad.datasets._patterns import gene_names

sys.path.insert(0, str(Path(__file__).parent))
from _common import record
from _envs import gspa_embedding, peer_version


def hotspot_z(adata, *, rep="X_pca", model="danb", modules=False):
    """Hotspot's autocorrelation Z of every gene (counts in ``layers['counts']``, 30 neighbours on ``rep``).

    Returns ``(z, seconds)``; with ``modules``, ``(z, seconds, module, module seconds)``: Hotspot's gene modules
    as its tutorial makes them (local correlations of the genes with autocorrelation FDR < 0.05, then
    ``create_modules(min_gene_threshold=30, core_only=True, fdr_threshold=0.05)``), -1 for genes in no module.
    """
    import hotspot

    t0 = time.perf_counter()
    hs = hotspot.Hotspot(adata, layer_key="counts", model=model, latent_obsm_key=rep,
                         umi_counts_obs_key="total_counts")
    hs.create_knn_graph(weighted_graph=False, n_neighbors=30)
    res = hs.compute_autocorrelations(jobs=2)
    z = res["Z"].reindex(adata.var_names).to_numpy()
    t_auto = time.perf_counter() - t0
    if not modules:
        return np.nan_to_num(z, nan=-np.inf), t_auto
    t0 = time.perf_counter()
    genes = res.index[res["FDR"] < 0.05]
    hs.compute_local_correlations(genes, jobs=2)
    mod = hs.create_modules(min_gene_threshold=30, core_only=True, fdr_threshold=0.05)
    module = mod.reindex(adata.var_names).fillna(-1).astype(int).to_numpy()
    return np.nan_to_num(z, nan=-np.inf), t_auto, module, time.perf_counter() - t0


#: Classes the simulator draws that have the same shape on a manifold, merged for "ARI (shape classes)".
#: On the tree a transient (a Gaussian along the trunk's pseudotime) and a bump (a Gaussian on a terminal
#: branch) are both one localised peak, told apart only by where they sit. On the cycle every class has its own
#: shape: a ramp is the first harmonic (one maximum), "periodic" genes the second or third (two or three), a
#: transient (a Gaussian along a projection of the circle) two peaks where the projection's level line cuts it,
#: a bump one, a switch one plateau with sharp edges. (Until 2026-11-25 the cycle merged ramp with periodic and
#: transient with bump, which was wrong.)
SHAPE_CLASSES = {"tree": {"transient": "bump"}}


def by_axis_share(adata, found) -> str:
    """Swiss roll: the patterns found for each class, by the share of the gene's direction along the roll's axis.

    The simulator's genes are functions of the ambient coordinates ``w``; on the swiss roll a ramp along a
    direction in the roll's plane is, along the manifold, an oscillation of growing amplitude (``theta cos(theta
    - phi)``), and only a ramp along the axis is a ramp on the manifold; the same holds for the switches,
    saddles and periodic genes built on a direction. This table shows where each kind went.
    """
    v = np.asarray(adata.uns["synthetic"]["genes"]["direction"])
    pos = {g: j for j, g in enumerate(gene_names(adata.uns["synthetic"]["genes"]["pattern"]))}
    axis = np.abs(v[[pos[g] for g in adata.var_names], 1])
    truth = adata.var["pattern"].astype(str).to_numpy()
    parts = []
    for cls in ("ramp", "branch_switch"):
        sel = truth == cls
        share = pd.cut(axis[sel], [0, 0.5, 1.0], labels=["mostly in the roll's plane (|v_axis| <= 0.5)",
                                                          "mostly along the axis (|v_axis| > 0.5)"])
        cross = pd.crosstab(pd.Series(share, name=f"{cls} genes"), pd.Series(found[sel], name="genegrad"))
        parts.append(cross.to_markdown())
    return ("**swiss roll, by direction** (rows: the true class split by how much of the gene's direction lies "
            "along the roll's axis; columns: genegrad pattern)\n\n" + "\n\n".join(parts))


def by_branch(adata, found) -> str:
    """Tree: the patterns found for the switches, by the segment they switch on, and for the ramps, by sign.

    A switch on segment 2 (the branch shared by fates B and C) turns on in two of the three fates, one on a
    terminal segment (1, 3 or 4) in one; a rising ramp peaks at the three tips, a falling one at the root. The
    true classes lump each pair; this table shows whether the patterns tell them apart.
    """
    spec = adata.uns["synthetic"]["genes"]
    pos = {g: j for j, g in enumerate(gene_names(spec["pattern"]))}
    rows = [pos[g] for g in adata.var_names]
    truth = adata.var["pattern"].astype(str).to_numpy()
    sw = truth == "branch_switch"
    seg = np.asarray(spec["target_segment"])[rows][sw]
    where = np.where(seg == 2, "segment 2 (shared by B and C)", "a terminal segment (1, 3 or 4)")
    parts = [pd.crosstab(pd.Series(where, name="branch_switch genes, on"),
                         pd.Series(found[sw], name="genegrad")).to_markdown()]
    rp = truth == "ramp"
    sign = np.where(np.asarray(spec["amplitude"])[rows][rp] > 0, "rising (peaks at the tips)",
                    "falling (peaks at the root)")
    parts.append(pd.crosstab(pd.Series(sign, name="ramp genes"), pd.Series(found[rp], name="genegrad")).to_markdown())
    return ("**tree, by branch** (rows: the switches by the segment they switch on, the ramps by sign; columns: "
            "genegrad pattern)\n\n" + "\n\n".join(parts))


def run(kind: str, n: int, depth: float, n_genes: int, seed: int) -> dict:
    import scanpy as sc
    from scipy import sparse

    adata = gg.datasets.synthetic(kind, n_cells=n, n_genes=n_genes, depth=depth, rng=seed)
    gg.pp.preprocess(adata, n_top_genes=n_genes, n_comps=30)
    truth = adata.var["pattern"].astype(str).to_numpy()
    structured = truth != "noise"
    t0 = time.perf_counter()
    gg.pp.manifold(adata)
    gg.tl.patterns(adata, genes=list(adata.var_names), random_state=seed)
    t_gg = time.perf_counter() - t0
    own = gg.tl.patterns(adata, genes=list(adata.var_names), random_state=seed, holdout=False, copy=True)
    q_own = own.var["genegrad_structured_qval"].to_numpy()
    var = adata.var
    found = var["genegrad_pattern"].astype(str).to_numpy()
    desc = gg.get.descriptors(adata, scale=int(adata.uns["genegrad"]["patterns"]["scale"]))
    t0 = time.perf_counter()
    X = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    moran = sc.metrics.morans_i(sparse.csr_matrix(adata.obsp["genegrad_connectivities"]), X.T)
    t_moran = time.perf_counter() - t0
    hz, t_hs, hs_module, t_hs_mod = hotspot_z(adata, modules=True)
    emb, t_gspa = gspa_embedding(X, X.T, seed=seed)
    n_classes = len(np.unique(truth))
    gspa_all = KMeans(n_classes, n_init=10, random_state=seed).fit_predict(emb)
    gspa_st = KMeans(n_classes - 1, n_init=10, random_state=seed).fit_predict(emb[structured])
    q = var["genegrad_structured_qval"].to_numpy()
    st_genes = structured
    labels = adata.var["genegrad_pattern"].astype(str).to_numpy()[st_genes]
    row = {
        "manifold": kind, "cells": n, "UMIs": int(depth), "d": int(adata.uns["genegrad"]["n_dims"]),
        "patterns found": int((adata.var["genegrad_pattern"].cat.categories != "noise").sum()),
        "ARI (all genes)": adjusted_rand_score(truth, found),
        "ARI (structured genes)": adjusted_rand_score(truth[st_genes], labels),
        "ARI (shape classes)": adjusted_rand_score(pd.Series(truth).replace(SHAPE_CLASSES.get(kind, {})), found),
        "ARI GSPA (all genes, k = classes)": adjusted_rand_score(truth, gspa_all),
        "ARI GSPA (structured genes, k = classes)": adjusted_rand_score(truth[st_genes], gspa_st),
        "Hotspot modules": int(np.unique(hs_module[hs_module >= 0]).size),
        "ARI Hotspot modules (all genes)": adjusted_rand_score(truth, hs_module),
        "ARI Hotspot modules (structured genes)": adjusted_rand_score(truth[st_genes], hs_module[st_genes]),
        "AUROC genegrad score": roc_auc_score(structured, var["genegrad_structured_score"].to_numpy()),
        "AUROC gradient magnitude": roc_auc_score(structured, np.nan_to_num(desc["magnitude"].to_numpy())),
        "AUROC Moran's I": roc_auc_score(structured, np.nan_to_num(moran)),
        "AUROC Hotspot": roc_auc_score(structured, hz),
        "recall q<0.05": float((q[structured] < 0.05).mean()),
        "noise called q<0.05": float((q[~structured] < 0.05).mean()),
        "noise p<0.05": float((var["genegrad_structured_pval"].to_numpy()[~structured] < 0.05).mean()),
        "noise q<0.05, own graph": float((q_own[~structured] < 0.05).mean()),
        "genegrad s": t_gg, "Moran s": t_moran, "Hotspot s": t_hs, "Hotspot modules s": t_hs_mod,
        "GSPA s": t_gspa,
    }
    cross = pd.crosstab(pd.Series(truth, name="true"), pd.Series(found, name="genegrad")).to_markdown()
    if kind == "swissroll":
        cross += "\n\n" + by_axis_share(adata, found)
    if kind == "tree":
        cross += "\n\n" + by_branch(adata, found)
    return row, cross


PAUL_MARKERS = {
    "Ery": ["Gata1", "Klf1", "Car2", "Hba-a2"], "Mk": ["Pf4", "Itga2b"],
    "Neu": ["Elane", "Mpo", "Prtn3", "Ctsg"], "Mo": ["Csf1r", "Irf8", "Ly86"],
}
PAUL_TERMINAL = {"1Ery": "Ery", "2Ery": "Ery", "8Mk": "Mk", "14Mo": "Mo", "15Mo": "Mo", "16Neu": "Neu",
                 "17Neu": "Neu"}


def run_paul15() -> str:
    """Patterns on paul15: top genes per pattern; the markers' patterns and whether they point to their branch.

    A marker points towards its own branch when its gradient aligns with the branch's fate flow contrast on the
    progenitors (``gg.tl.drivers``' alignment > 0; the fates' terminal states are mature clusters only).
    """
    adata = gg.datasets.paul15()
    gg.pp.preprocess(adata, n_top_genes=2000, n_comps=30)
    markers = [g for genes in PAUL_MARKERS.values() for g in genes]
    hvg = list(adata.var_names[adata.var["highly_variable"]])
    genes = list(dict.fromkeys(hvg + markers))
    gg.pp.manifold(adata)
    gg.tl.patterns(adata, genes=genes)
    cl = adata.obs["paul15_clusters"].astype(str)
    adata.obs["terminal"] = pd.Categorical(cl.map(PAUL_TERMINAL))
    gg.tl.fate_bias(adata, "terminal")
    df = gg.get.descriptors(adata)
    top = []
    for p in df["pattern"].cat.categories:
        sel = df[df["pattern"] == p].sort_values(["typicality", "score"], ascending=False)
        top.append({"pattern": p, "genes": len(sel), "top genes": ", ".join(sel.index[:8])})
    rows = []
    for fate, genes in PAUL_MARKERS.items():
        align = gg.tl.drivers(adata, fate, genes=genes, n_genes=len(genes))
        for g in genes:
            rows.append({"marker": g, "branch": fate, "pattern": df.loc[g, "pattern"],
                         "structured q": df.loc[g, "qval"], "alignment with own branch": align.loc[g, "alignment"],
                         "points to own branch": bool(align.loc[g, "alignment"] > 0)})
    marks = pd.DataFrame(rows)
    print(pd.DataFrame(top).to_string(index=False))
    print(marks.round(3).to_string(index=False))
    return ("**paul15** (2,730 cells, 2,000 HVGs + markers): top genes of each pattern\n\n"
            + pd.DataFrame(top).to_markdown(index=False) + "\n\nKnown markers: their pattern, and whether their "
            "gradient on the progenitors points towards their own branch (alignment with the branch's fate-flow "
            "contrast from `gg.tl.fate_bias`, terminal states = mature clusters)\n\n"
            + marks.round(3).to_markdown(index=False))


def run_paul15_flat(n_flat: int = 300, seed: int = 0) -> str:
    """A real-data negative control: flat genes added to paul15's counts, then the structure test.

    ``n_flat`` negative-binomial genes (dispersion 5) whose share of each cell's counts is fixed (drawn from the
    real genes' mean shares) follow paul15's own sequencing depths and nothing else; their p-values should be
    uniform. Also reported: the share of paul15's own HVGs with q < 0.05.
    """
    import anndata as ad
    from scipy import sparse

    paul = gg.datasets.paul15()
    counts = sparse.csr_matrix(paul.layers["counts"] if "counts" in paul.layers else paul.X)
    depth = np.asarray(counts.sum(axis=1)).ravel()
    share = np.asarray(counts.sum(axis=0)).ravel() / depth.sum()
    rng = np.random.default_rng(seed)
    mu = np.outer(depth, rng.choice(share[share > 0], n_flat))
    flat = rng.negative_binomial(5, 5 / (5 + mu)).astype(np.float32)
    names = [*paul.var_names, *(f"flat{i}" for i in range(n_flat))]
    adata = ad.AnnData(sparse.hstack([counts, sparse.csr_matrix(flat)]).tocsr().astype(np.float32), obs=paul.obs)
    adata.var_names = names
    gg.pp.preprocess(adata, n_top_genes=2000, n_comps=30)
    gg.pp.manifold(adata)
    flat_names = names[-n_flat:]
    hvg = [g for g in adata.var_names[adata.var["highly_variable"]] if not g.startswith("flat")]
    rows = []
    for holdout in (True, False):
        out = gg.tl.patterns(adata, genes=list(dict.fromkeys(hvg + flat_names)), holdout=holdout, random_state=seed,
                             copy=True)
        p = out.var.loc[flat_names, "genegrad_structured_pval"].to_numpy()
        rows.append({"graph": "held out" if holdout else "own (holdout=False)", "flat genes p<0.05": (p < 0.05).mean(),
                     "flat genes p<0.2": (p < 0.2).mean(), "flat genes median p": float(np.median(p)),
                     "paul15 HVGs q<0.05": float((out.var.loc[hvg, "genegrad_structured_qval"] < 0.05).mean())})
    table = pd.DataFrame(rows).round(3)
    print(table.to_string(index=False))
    return (f"**paul15 with {n_flat} flat genes added** (negative binomial, dispersion 5, a fixed share of each "
            "cell's counts: paul15's own depths and nothing else; their p-values should be uniform)\n\n"
            + table.to_markdown(index=False))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="plane,swissroll,tree,cycle")
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--depth", type=float, default=2000)
    ap.add_argument("--genes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--no-paul15", action="store_true")
    args = ap.parse_args()
    rows, crosses = [], []
    for kind in [k for k in args.kinds.split(",") if k]:
        row, cross = run(kind, args.cells, args.depth, args.genes, args.seed)
        rows.append(row)
        crosses.append(f"**{kind}** (rows: true class; columns: genegrad pattern)\n\n{cross}")
        print(pd.Series(row).to_string(), "\n", cross, flush=True)
    table = pd.DataFrame(rows).round(3)
    print(table.to_string(index=False))
    if not args.no_paul15:
        crosses.append(run_paul15())
        crosses.append(run_paul15_flat())
    if not args.no_record:
        cmd = (f"python benchmarks/patterns.py --kinds {args.kinds} --cells {args.cells} --depth {args.depth:g} "
               f"--genes {args.genes} --seed {args.seed}" + (" --no-paul15" if args.no_paul15 else ""))
        record("Patterns", cmd, (table.to_markdown(index=False) if len(table) else "") + "\n\n"
               + "\n\n".join(crosses),
               notes=("ARI against the 7 true classes (noise counted as a class; genes genegrad calls noise form "
                      "one group). 'ARI (shape classes)': the same, with the classes that have one shape on the "
                      "manifold merged (tree: transient and bump are both one localised peak); equal to the 7-class "
                      "ARI on the plane, the swiss roll and the cycle, where every class has its own shape. "
                      "AUROC: structured (any non-noise class) against noise genes, from each "
                      "method's score. The simulated noise genes keep a fixed share of the counts, so they are "
                      "flat after total-count normalisation: 'noise called q<0.05' is false discovery, and "
                      "'noise p<0.05' should be about 0.05. 'own graph': the structure test run on the "
                      "manifold's own graph (`holdout=False`) instead of held-out graphs, on the same data. GSPA: "
                      "its default settings, its cell graph built from the same log-normalised expression and "
                      "condensed to 3,000 nodes (its condensation_threshold; exact GSPA on 10,000 cells holds "
                      "dense 10,000 x 10,000 operators), its 128-d autoencoder gene embeddings clustered by "
                      "k-means (10 starts) with k = the true number of classes (7 for all genes, 6 for the "
                      "structured ones): an oracle k; genegrad chooses its number of patterns from the data. "
                      "Hotspot modules: its tutorial's workflow on the same counts and kNN graph as its Z (local "
                      "correlations of the genes with autocorrelation FDR < 0.05, `create_modules(min_gene_threshold"
                      "=30, core_only=True, fdr_threshold=0.05)`), genes in no module one group; its modules group "
                      "co-expressed genes (a place on the manifold), not shapes, so this is the peer on a question "
                      "it was not built for. "
                      f"GSPA {peer_version('gspa', 'gspa')}, TensorFlow {peer_version('gspa', 'tensorflow-cpu')}."),
               pkgs=("hotspotsc", "scikit-learn"))


if __name__ == "__main__":
    main()
