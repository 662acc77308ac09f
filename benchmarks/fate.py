"""Fate bias: genegrad against CellRank 2, Palantir and a plain diffusion baseline, on the same AnnData.

Every method gets the same preprocessed data, the same terminal cells and (where it needs one) the same root
cell; progenitor labels are hidden from all of them. Scored by the AUROC of each method's probability of one
fate against the truth (or proxy) on the early cells. Also: cross-validated classifiers with the true fates, on
expression alone vs genegrad's gradient features (how much fate information the gradients add). Wall time and
peak traced memory (tracemalloc: Python and numpy allocations) of each method in the same run. On the real data,
each AUROC's standard error and genegrad's difference to each method with its paired standard error, from 500
bootstrap resamples of the scored cells (the same resamples for every method).

Needs the peers: ``pip install -e ".[bench]"`` (cellrank, palantir).

    python benchmarks/fate.py                        # synthetic trees (3 seeds), paul15, Treutlein lung
    python benchmarks/fate.py --only synthetic --seeds 0 --no-record
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import genegrad as gg
from genegrad.tl._fate import run_fate_bias

sys.path.insert(0, str(Path(__file__).parent))
from _common import paul15_root, record

warnings.filterwarnings("ignore")
logging.getLogger("cellrank").setLevel(logging.ERROR)


def measured(fn, *args, **kwargs):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, wall, peak / 1024**3


# ----------------------------------------------------------------------------------------------- methods
BOOTSTRAP = 500


def auroc_with_bootstrap(truth, score, *, seed=0):
    """``{'AUROC': ..., 'boot': (BOOTSTRAP,)}``: the AUROC and its values on resampled cells.

    The resamples (cells drawn with replacement, ``seed`` fixed) are the same for every method scored on the same
    cells, so differences between methods can be bootstrapped paired.
    """
    truth, score = np.asarray(truth), np.asarray(score)
    rng = np.random.default_rng(seed)
    boot = np.empty(BOOTSTRAP)
    for b in range(BOOTSTRAP):
        idx = rng.integers(0, truth.size, truth.size)
        boot[b] = roc_auc_score(truth[idx], score[idx]) if truth[idx].min() != truth[idx].max() else np.nan
    return {"AUROC": roc_auc_score(truth, score), "boot": boot}


def paired_errors(table):
    """Per real data set: each method's bootstrap SE, and genegrad minus it with the paired bootstrap SE."""
    out = []
    for dataset, part in table.dropna(subset=["boot"]).groupby("dataset", sort=False):
        ref = part[part["method"] == "genegrad"]
        if ref.empty:
            continue
        ref_boot = ref["boot"].iloc[0]
        for _, row in part.iterrows():
            diff = ref_boot - row["boot"]
            out.append({"dataset": dataset, "method": row["method"], "AUROC": round(row["AUROC"], 3),
                        "SE (bootstrap)": round(float(np.nanstd(row["boot"])), 3),
                        "genegrad minus this": round(float(ref["AUROC"].iloc[0] - row["AUROC"]), 3),
                        "its SE (paired bootstrap)": round(float(np.nanstd(diff)), 3)})
    return pd.DataFrame(out)


def run_genegrad(adata, terminal_key, **kwargs):
    a = adata.copy()
    gg.pp.manifold(a, n_neighbors=30)
    run_fate_bias(a, terminal_key, **kwargs)  # gg.tl.fate_bias with the options the variants below change
    gg.tl.fate_features(a)
    return a.obsm["genegrad_fate_probs"], a


def run_genegrad_dpt(adata, terminal_key, *, root, **kwargs):
    """genegrad with its chain oriented by scanpy's diffusion pseudotime (the peers' DPT) via ``time_key``."""
    a = adata.copy()
    a.obs["dpt_pseudotime"] = _with_dpt(adata, root).obs["dpt_pseudotime"].to_numpy()
    return run_genegrad(a, terminal_key, root=root, time_key="dpt_pseudotime", **kwargs)


def _scanpy_graph(a):
    import scanpy as sc

    try:
        sc.pp.neighbors(a, n_neighbors=30, use_rep="X_pca", random_state=0)
    except AttributeError:  # scanpy 1.11 rejects pynndescent 0.7's csr_array
        sc.pp.neighbors(a, n_neighbors=30, use_rep="X_pca", random_state=0, transformer="sklearn")


def _with_dpt(adata, root):
    """A copy with scanpy's neighbours, diffusion map and diffusion pseudotime from ``root``."""
    import scanpy as sc

    a = adata.copy()
    _scanpy_graph(a)
    sc.tl.diffmap(a)
    a.uns["iroot"] = int(root)
    sc.tl.dpt(a)
    return a


def cellrank_gpcca(adata, root):
    """CellRank 2's GPCCA estimator on a PseudotimeKernel (soft thresholding) of the diffusion pseudotime."""
    import cellrank as cr

    a = _with_dpt(adata, root)
    pk = cr.kernels.PseudotimeKernel(a, time_key="dpt_pseudotime")
    pk.compute_transition_matrix(threshold_scheme="soft", show_progress_bar=False)
    return a, cr.estimators.GPCCA(pk)


def palantir_space(a):
    """Palantir's diffusion maps (10 components) and multiscale space, in place."""
    import palantir

    try:
        palantir.utils.run_diffusion_maps(a, n_components=10, pca_key="X_pca")
    except AttributeError:  # its scanpy kernel hits the same pynndescent 0.7 csr_array problem above 4,096 cells
        palantir.utils.run_diffusion_maps(a, n_components=10, pca_key="X_pca", kernel_backend="sklearn")
    palantir.utils.determine_multiscale_space(a)


def run_cellrank(adata, terminal_key, *, root, solver="direct"):
    a, g = cellrank_gpcca(adata, root)
    g.set_terminal_states(a.obs[terminal_key].astype("category"))
    # without petsc4py CellRank uses scipy's solvers: its default (GMRES, tol 1e-6) left negative probabilities
    # on paul15 and at tol 1e-10 had not finished after 7 minutes, so the direct sparse solver
    g.compute_fate_probabilities(show_progress_bar=False, solver=solver, use_petsc=False)
    fp = g.fate_probabilities
    return pd.DataFrame(np.asarray(fp), index=a.obs_names, columns=list(fp.names))


def run_palantir(adata, terminal_key, *, root):
    import palantir

    a = _with_dpt(adata, root)
    term = a.obs[terminal_key]
    cells = {}
    for f in term.dropna().unique():  # one terminal cell per fate: its furthest in diffusion pseudotime
        sel = a.obs_names[(term == f).to_numpy()]
        cells[a.obs.loc[sel, "dpt_pseudotime"].idxmax()] = str(f)
    palantir_space(a)
    palantir.core.run_palantir(a, a.obs_names[int(root)], terminal_states=pd.Series(cells), num_waypoints=500,
                               n_jobs=1)
    return a.obsm["palantir_fate_probabilities"].copy()


#: One line per data set (and seed) that :func:`compare` ran: the default's fine-scale agreement and whether the
#: fine-scale step ran; the scripts print and record them.
FINE_STEP_NOTES: list[str] = []


def compare(adata, terminal_key, *, root, score, dataset, seed=None):
    """Run every method; ``score(probs)`` gives the AUROC on the early cells (or a dict of named scores)."""
    rows, extra = [], {}
    methods = {
        "genegrad": lambda: run_genegrad(adata, terminal_key, root=root),
        "genegrad without a root (no time orientation)": lambda: run_genegrad(adata, terminal_key),
        "genegrad, stronger orientation (forward=30)": lambda: run_genegrad(adata, terminal_key, root=root,
                                                                             forward=30.0),
        "genegrad, fine scale against t=8 (coarse_scale=8)": lambda: run_genegrad(adata, terminal_key, root=root,
                                                                                   coarse_scale=8),
        "genegrad, fine step whatever its agreement (min_fine_agreement=None)": lambda: run_genegrad(
            adata, terminal_key, root=root, min_fine_agreement=None),
        "genegrad, fine step unless an agreement is below -0.2 (the default until 2026-12-06)": lambda: run_genegrad(
            adata, terminal_key, root=root, min_fine_agreement=-0.2),
        "genegrad, fine step at full weight (fine_weight=1; the default until 2026-12-05)": lambda: run_genegrad(
            adata, terminal_key, root=root, fine_weight=1.0),
        "genegrad, tilted chain (beta=3; the default until 2026-12-04)": lambda: run_genegrad(
            adata, terminal_key, root=root, beta=3.0),
        "genegrad, weaker tilt (beta=1)": lambda: run_genegrad(adata, terminal_key, root=root, beta=1.0),
        "genegrad with a flow kernel mixed in, CellRank-style (flow_mix=0.2)": lambda: run_genegrad(
            adata, terminal_key, root=root, flow_mix=0.2),
        "genegrad, tilted chain only (beta=3, fine_weight=0)": lambda: run_genegrad(adata, terminal_key, root=root,
                                                                                     beta=3.0, fine_weight=0.0),
        "oriented diffusion (genegrad without the fine step: fine_weight=0)": lambda: run_genegrad(
            adata, terminal_key, root=root, fine_weight=0.0),
        "diffusion (no root, fine_weight=0)": lambda: run_genegrad(adata, terminal_key, fine_weight=0.0),
        "genegrad oriented by scanpy's DPT (time_key='dpt_pseudotime')": lambda: run_genegrad_dpt(
            adata, terminal_key, root=root),
        "oriented diffusion by scanpy's DPT (time_key, fine_weight=0)": lambda: run_genegrad_dpt(
            adata, terminal_key, root=root, fine_weight=0.0),
        "genegrad oriented by its own diffusion pseudotime (orientation='diffusion')": lambda: run_genegrad(
            adata, terminal_key, root=root, orientation="diffusion"),
        "CellRank 2 (PseudotimeKernel + GPCCA)": lambda: run_cellrank(adata, terminal_key, root=root),
        "Palantir": lambda: run_palantir(adata, terminal_key, root=root),
    }
    for name, fn in methods.items():
        try:
            out, wall, peak = measured(fn)
        except Exception as err:
            msg = f"{type(err).__name__}: {err}"[:100]
            rows.append({"dataset": dataset, "seed": seed, "method": name, "error": msg})
            continue
        probs, a = out if isinstance(out, tuple) else (out, None)
        if a is not None and name == "genegrad":
            extra["adata"] = a
            info = a.uns["genegrad"]["fate_bias"]
            agreement = ", ".join(f"{f} {v:+.3f}" for f, v in zip(info["fates"], info["fine_agreement"], strict=True))
            FINE_STEP_NOTES.append(f"{dataset}{'' if seed is None else f', seed {seed}'}: fine-scale agreement with "
                                   f"the chain {agreement}; the fine-scale step "
                                   f"{'ran' if info['fine_step'] else 'was skipped'}")
        scores = score(probs)
        scores = scores if isinstance(scores, dict) else {"AUROC": scores}
        rows.append({"dataset": dataset, "seed": seed, "method": name, **scores, "wall s": wall, "peak GB": peak})
    return rows, extra


# ---------------------------------------------------------------------------------------------- datasets
def synthetic_tree(seed, *, n_cells, bias, n_bias):
    adata = gg.datasets.synthetic("tree", n_cells=n_cells, n_genes=1000, depth=2000, fate_bias=bias,
                                  n_bias_genes=n_bias, rng=seed)
    gg.pp.preprocess(adata, n_top_genes=1000, n_comps=30)
    adata.obs["terminal"] = gg.datasets.tree_terminal_states(adata)
    return adata


def run_synthetic(seeds, n_cells, bias, n_bias):
    rows, sup = [], []
    for seed in seeds:
        adata = synthetic_tree(seed, n_cells=n_cells, bias=bias, n_bias=n_bias)
        early = (adata.obs["segment"] == 0).to_numpy()  # the trunk: before any branch point
        truth = (adata.obs["fate"] == "A").to_numpy()
        root = int(np.argmin(adata.obs["pseudotime"].to_numpy()))

        def score(p, early=early, truth=truth):
            return roc_auc_score(truth[early], np.nan_to_num(p["A"].to_numpy()[early], nan=0.5))

        r, extra = compare(adata, "terminal", root=root, score=score, dataset=f"tree bias={bias:g}", seed=seed)
        rows += r
        a = extra.get("adata")
        if a is not None:
            ev = gg.tl.evaluate_fate_features(a, np.where(truth, "A", "B/C"), cells=early, random_state=seed)
            ev.insert(0, "seed", seed)
            sup.append(ev)
        print(pd.DataFrame(r).to_string(), flush=True)
    return rows, (pd.concat(sup) if sup else pd.DataFrame())


PAUL_TERMINAL = {"1Ery": "Ery", "2Ery": "Ery", "8Mk": "Mk", "14Mo": "Mo", "15Mo": "Mo", "16Neu": "Neu",
                 "17Neu": "Neu"}


def run_paul15():
    adata = gg.datasets.paul15()
    gg.pp.preprocess(adata, n_top_genes=2000, n_comps=30)
    cl = adata.obs["paul15_clusters"].astype(str)
    adata.obs["terminal"] = pd.Categorical(cl.map(PAUL_TERMINAL))
    early = cl.isin(["7MEP", "9GMP", "10GMP"]).to_numpy()
    mep = (cl == "7MEP").to_numpy()

    def score(p):
        ek = np.nan_to_num(p["Ery"].to_numpy() + p["Mk"].to_numpy(), nan=0.5)
        return auroc_with_bootstrap(mep[early], ek[early])

    root = paul15_root(adata.obsm["X_pca"], cl)  # uns['iroot'] lies in 8Mk, a terminal state
    rows, extra = compare(adata, "terminal", root=root, score=score, dataset="paul15")
    drivers = {}
    a = extra.get("adata")
    if a is not None:
        for fate in ("Ery", "Mk", "Mo", "Neu"):
            drivers[fate] = list(gg.tl.drivers(a, fate, n_genes=50).index)
    return rows, drivers


LUNG_AT1, LUNG_AT2 = ("Ager", "Pdpn", "Hopx"), ("Sftpc", "Lyz2", "Lamp3")


def run_lung():
    adata = gg.datasets.treutlein_lung()
    adata.var_names = adata.var["gene_short_name"].astype(str).to_numpy()
    adata.var_names_make_unique()
    adata.X = np.log1p(np.asarray(adata.X, dtype=np.float32))  # FPKM-like: log, no count normalisation
    import scanpy as sc

    sc.pp.pca(adata, n_comps=10, random_state=0)
    t = adata.obs["Time"].astype(str)
    ct = adata.obs["state_inferred_celltype"].astype(str)
    e185 = t.str.contains("18.5").to_numpy()
    at1_score = adata[:, list(LUNG_AT1)].X.mean(axis=1)
    # terminal states: the adult cells (AT2) and the 10 E18.5 cells highest in AT1 markers (AT1); the other
    # E18.5 cells are scored. A sense check: the AT1 terminals are chosen by the same markers that define AT1.
    at1_term = np.zeros(adata.n_obs, bool)
    cand = np.flatnonzero(e185 & (ct == "AT1").to_numpy())
    at1_term[cand[np.argsort(-at1_score[cand])[:10]]] = True
    term = np.full(adata.n_obs, None, dtype=object)
    term[t.str.contains("dult").to_numpy()] = "AT2"
    term[at1_term] = "AT1"
    adata.obs["terminal"] = pd.Categorical(term)
    scored = e185 & ~at1_term & ct.isin(["AT1", "AT2"]).to_numpy()
    truth = (ct == "AT1").to_numpy()
    root = int(np.argmin(adata.obs["Pseudotime"].to_numpy()))

    def score(p):
        return auroc_with_bootstrap(truth[scored], np.nan_to_num(p["AT1"].to_numpy()[scored], nan=0.5))

    rows, extra = compare(adata, "terminal", root=root, score=score, dataset="Treutlein lung (E18.5)")
    drivers = {}
    a = extra.get("adata")
    if a is not None:
        for fate in ("AT1", "AT2"):
            drivers[fate] = list(gg.tl.drivers(a, fate, n_genes=30, genes=list(a.var_names)).index)
    return rows, drivers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="synthetic,paul15,lung")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cells", type=int, default=3000)
    ap.add_argument("--bias", type=float, default=1.0)
    ap.add_argument("--bias-genes", type=int, default=30)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    parts = args.only.split(",")
    # scanpy's neighbours, diffusion map and DPT compile with numba on their first call: once here, untimed, so
    # that no method's wall time holds it (every method that calls them comes after)
    _with_dpt(synthetic_tree(0, n_cells=300, bias=0.0, n_bias=0), 0)
    rows, notes = [], []
    sup = pd.DataFrame()
    if "synthetic" in parts:
        r, sup = run_synthetic([int(s) for s in args.seeds.split(",")], args.cells, args.bias, args.bias_genes)
        rows += r
    if "paul15" in parts:
        r, drv = run_paul15()
        rows += r
        known = {"Ery": ["Gata1", "Klf1", "Car2", "Hba-a2"], "Mk": ["Pf4", "Itga2b"],
                 "Neu": ["Elane", "Mpo", "Prtn3", "Ctsg"], "Mo": ["Csf1r", "Irf8", "Ly86"]}
        for f, genes in drv.items():
            hits = [g for g in known[f] if g in genes]
            notes.append(f"paul15 drivers of {f} (top 50): known markers recovered {hits} of {known[f]}; "
                         f"top 10: {genes[:10]}")
    if "lung" in parts:
        r, drv = run_lung()
        rows += r
        for f, genes in drv.items():
            known = LUNG_AT1 if f == "AT1" else LUNG_AT2
            notes.append(f"Treutlein lung drivers of {f} (top 30 of 218 genes): known markers recovered "
                         f"{[g for g in known if g in genes]} of {list(known)}; top 10: {genes[:10]}")
    notes += FINE_STEP_NOTES
    table = pd.DataFrame(rows)
    paired = paired_errors(table) if "boot" in table else pd.DataFrame()
    table = table.drop(columns="boot", errors="ignore")
    num = [c for c in ("AUROC", "wall s", "peak GB") if c in table]
    summary = table.groupby(["dataset", "method"], sort=False)[num].agg(["mean", "std"]).round(3)
    summary.columns = [f"{a} {b}" for a, b in summary.columns]
    summary = summary.reset_index()
    print(table.round(3).to_string(index=False))
    print(summary.to_string(index=False))
    if len(sup):
        sup_sum = sup.groupby("features", sort=False)[["auroc"]].agg(["mean", "std"]).round(3)
        print(sup_sum)
    if len(paired):
        print(paired.to_string(index=False))
    for n in notes:
        print(n)
    if not args.no_record:
        text = summary.to_markdown(index=False) + errors_markdown(table)
        if len(paired):
            text += (f"\n\nReal data, uncertainty over the scored cells ({BOOTSTRAP} bootstrap resamples of them, the "
                     "same for every method): each AUROC's standard error, and genegrad's AUROC minus each method's "
                     "with the standard error of that difference (paired):\n\n" + paired.to_markdown(index=False))
        if len(sup):
            text += ("\n\nSupervised, with the true fates of the trunk cells (5-fold CV logistic regression, "
                     "mean over seeds):\n\n" + sup_sum.reset_index().to_markdown(index=False))
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
        solver = ("scipy's direct sparse solver (solver='direct', use_petsc=False; petsc4py "
                  + ("present" if _has("petsc4py") else "absent") + ")")
        record("Fate bias", f"python benchmarks/fate.py --only {args.only} --seeds {args.seeds} --cells "
               f"{args.cells} --bias {args.bias:g} --bias-genes {args.bias_genes}", text,
               notes=(f"CellRank fate probabilities: {solver}. Synthetic: trees of {args.cells} cells, 1,000 genes, "
                      f"2,000 UMIs/cell; {args.bias_genes} otherwise flat genes carry a log-fold {args.bias:g} "
                      "shift in the cells of their target fate, growing along the trunk; AUROC of p(A) against "
                      "the true fate (A vs B/C) on trunk cells. paul15: AUROC of p(Ery)+p(Mk) for 7MEP against "
                      "9GMP/10GMP (a published-annotation proxy, not clonal truth); terminal states = clusters "
                      "1Ery+2Ery, 8Mk, 14Mo+15Mo, 16Neu+17Neu; root = the 7MEP cell nearest the GMPs' centroid in PCA "
                      "(uns['iroot'] lies in 8Mk, a terminal state). Lung: AUROC of p(AT1) against "
                      "the derived AT1/AT2 state of E18.5 cells (a sense check). 'coarse_scale=8': the fine-scale "
                      "step's residuals f - P^t f at t = 8 (the largest scale; the default before 2026-11-25) "
                      "instead of t = 2. 'min_fine_agreement=None': the fine-scale step runs even where a fate's "
                      "evidence ranks the progenitors against the chain (by default it is skipped when any fate's "
                      "Spearman correlation with the chain's probabilities is negative; below -0.2 until 2026-12-06). "
                      "'beta=3', 'beta=1': the chain tilted along the fate flows, everything else at its default "
                      "(beta=0, no tilt, since 2026-12-04). 'flow_mix=0.2': the chain's transitions mixed 0.8 / 0.2 "
                      "with a flow kernel (the symmetric affinities tilted by exp(10 cos) along the fate flows, not "
                      "oriented in time), as CellRank mixes its velocity and connectivity kernels. "
                      "genegrad gets the peers' root (rows say where not): with "
                      "it the chain's steps back in the graph pseudotime are down-weighted (forward=10, CellRank's "
                      "soft-scheme default). 'diffusion': the plain random walk on genegrad's graph; 'oriented "
                      "diffusion': the same with the time orientation, a PseudotimeKernel on genegrad's graph. "
                      "'oriented by scanpy's DPT': the chain oriented by "
                      "scanpy's diffusion pseudotime from the same root on scanpy's graph (the one CellRank's "
                      "PseudotimeKernel gets), passed as time_key='dpt_pseudotime', instead of genegrad's graph "
                      "pseudotime; its wall time includes scanpy's neighbours, diffusion map and DPT (numba "
                      "compiled before any method is timed). 'its own diffusion pseudotime': Haghverdi's DPT "
                      "from the same root on genegrad's own affinities (density-normalised, 10 components), "
                      "orientation='diffusion'. Peak GB is tracemalloc's peak."),
               pkgs=("cellrank", "palantir", "scikit-learn"))


def errors_markdown(table) -> str:
    """The methods that failed, as a markdown section (empty when none did)."""
    if "error" not in table:
        return ""
    errs = table.dropna(subset=["error"])
    if not len(errs):
        return ""
    return "\n\nErrors:\n\n" + errs[["dataset", "seed", "method", "error"]].to_markdown(index=False)


def _has(mod):
    import importlib.util

    return importlib.util.find_spec(mod) is not None


if __name__ == "__main__":
    main()
