"""The structure test on a sample of cells: what it finds against the test on every cell.

Above ``tl._patterns.STRUCTURE_SAMPLE`` cells (20,000), ``tl.patterns`` builds its held-out graphs and runs its
structure test on a fixed random sample of that many cells. On the scale benchmark's tree (2,000 genes: 1,400
structured, 600 flat) plus ``--rare`` genes structured only in a rare population (a flat gene raised by
``--lift`` log units in the ``--share`` of cells nearest the tree's root: the case a sample can miss), the test
runs with the sample at each size of ``--samples`` ("all" = every cell). Recorded: time of the test, AUROC of
the score (structured against flat), and the genes called at q < 0.05 (structured, flat, rare).

    python benchmarks/structure_sample.py --cells 100000 --samples all,30000,20000
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


def with_rare_genes(adata, *, n_genes: int, share: float, lift: float, rng: np.random.Generator):
    """``adata`` with ``n_genes`` more columns: copies of flat genes raised by ``lift`` in the ``share`` of cells
    with the lowest pseudotime (a rare population at the root), named ``rare0``, ``rare1``, ..."""
    import anndata as ad
    from scipy import sparse

    flat = np.flatnonzero((adata.var["pattern"] == "noise").to_numpy())
    cols = rng.choice(flat, n_genes, replace=False)
    X = sparse.csc_matrix(adata.X[:, cols]).toarray()
    tau = adata.obs["pseudotime"].to_numpy()
    rare = tau <= np.quantile(tau, share)
    X[rare] += lift
    var = pd.DataFrame({"pattern": "rare", "highly_variable": False}, index=[f"rare{i}" for i in range(n_genes)])
    var = pd.concat([adata.var.assign(pattern=adata.var["pattern"].astype(str)), var])
    out = ad.AnnData(X=sparse.hstack([adata.X, sparse.csr_matrix(X.astype(np.float32))], format="csr"),
                     obs=adata.obs.copy(), var=var, obsm=dict(adata.obsm), obsp=dict(adata.obsp), uns=adata.uns)
    return out, int(rare.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--samples", default="all,30000,20000")
    ap.add_argument("--rare", type=int, default=50)
    ap.add_argument("--share", type=float, default=0.005)
    ap.add_argument("--lift", type=float, default=1.0)
    ap.add_argument("--data-dir", default=None, help="where scale.py keeps its data sets (reused when there)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    import anndata as ad
    from sklearn.metrics import roc_auc_score

    import genegrad as gg
    from genegrad.tl import _patterns as tp

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.data_dir or tmp) / f"tree_{args.cells}.h5ad"
        if path.exists():
            adata = ad.read_h5ad(path)
        else:
            adata = tree_data(args.cells, depth=2000, n_genes=2000)
    gg.pp.manifold(adata)
    adata, n_rare = with_rare_genes(adata, n_genes=args.rare, share=args.share, lift=args.lift,
                                    rng=np.random.default_rng(0))
    pattern = adata.var["pattern"].astype(str).to_numpy()
    structured = pattern != "noise"
    rows = []
    for size in args.samples.split(","):
        tp.STRUCTURE_SAMPLE = adata.n_obs if size == "all" else int(size)
        model = tp.load_model(adata, "genegrad")
        genes = list(adata.var_names)
        F = tp.read_signal(adata, None, None, by_column=False)
        t0 = time.perf_counter()
        score, pval, n_tested = tp._structure_test(
            adata, model, F, genes=genes, layer=None, key="genegrad", depth_key="total_counts", notes=[],
            n_null=500, holdout=True, rng=np.random.default_rng(0), n_jobs=-1, progress=False)
        wall = time.perf_counter() - t0
        called = tp._patterns.bh_qvalues(pval) < 0.05
        finite = np.where(np.isfinite(score), score, -np.inf)
        rows.append({"cells tested": n_tested, "test s": wall,
                     "AUROC (structured vs flat)": roc_auc_score(structured, finite),
                     "structured called": f"{int((called & (pattern != 'noise') & (pattern != 'rare')).sum())}"
                                          f" / {int(((pattern != 'noise') & (pattern != 'rare')).sum())}",
                     "flat called": f"{int((called & (pattern == 'noise')).sum())} / {int((pattern == 'noise').sum())}",
                     "rare called": f"{int((called & (pattern == 'rare')).sum())} / {args.rare}"})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).round(4)
    print(table.to_string(index=False))
    if not args.no_record:
        record("Structure test on a sample of cells",
               f"python benchmarks/structure_sample.py --cells {args.cells} --samples {args.samples} --rare "
               f"{args.rare} --share {args.share} --lift {args.lift}", table.to_markdown(index=False),
               notes=f"The scale benchmark's tree ({args.cells:,} cells, 2,000 UMIs/cell; 1,400 structured and 600 "
                     f"flat genes) plus {args.rare} 'rare' genes: flat genes raised by {args.lift} log units in the "
                     f"{n_rare} cells ({args.share:.1%}) nearest the root. The held-out structure test of "
                     "`tl.patterns` (500 null genes, q < 0.05) on a fixed random sample of cells of each size "
                     "('cells tested'; the default is 20,000 above 20,000 cells). AUROC counts the rare genes as "
                     "structured.")


if __name__ == "__main__":
    main()
