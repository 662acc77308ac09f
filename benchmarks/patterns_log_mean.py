"""Should ``tl.patterns`` read the log of the local mean? Pattern ARI with either signal, on development data.

``tl.gradients`` differentiates the log of the local mean by default (``log_mean``); ``tl.patterns`` still
describes each gene by the gradients of its smoothed log signal, on which its clustering was chosen. Here the same
``tl.patterns`` call runs twice on each data set: as it is, and with every gradient it computes taken of the log
of the local mean (``GradientModel.iter_gradients(log_mean=True)`` for the duration of the call). Scored by the
adjusted Rand index against the seven true classes (all genes, noise as a class), as in ``patterns.py``.

Development data only (our own generator, held-out seeds): an ablation of genegrad, so no peer applies; the
pattern peers (GSPA, Hotspot modules) run in ``patterns.py``.

    python benchmarks/patterns_log_mean.py                      # 4 manifolds x seeds 5-9, ~7 min on 2 cores
    python benchmarks/patterns_log_mean.py --kinds tree --seeds 5 --no-record
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score

import genegrad as gg
from genegrad import GradientModel

sys.path.insert(0, str(Path(__file__).parent))
from _common import record


@contextlib.contextmanager
def log_of_local_mean():
    """Every ``GradientModel.iter_gradients`` call differentiates the log of the local mean meanwhile."""
    original = GradientModel.iter_gradients

    def patched(self, F, **kwargs):
        kwargs.setdefault("log_mean", True)
        return original(self, F, **kwargs)

    GradientModel.iter_gradients = patched
    try:
        yield
    finally:
        GradientModel.iter_gradients = original


def ari(kind, seed, *, n_cells, log_mean):
    a = gg.datasets.synthetic(kind, n_cells=n_cells, n_genes=1000, depth=2000, rng=seed)
    gg.pp.preprocess(a, n_comps=30)
    gg.pp.manifold(a)
    with log_of_local_mean() if log_mean else contextlib.nullcontext():
        gg.tl.patterns(a, genes=list(a.var_names))
    return adjusted_rand_score(a.var["pattern"].astype(str), a.var["genegrad_pattern"].astype(str))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="tree,plane,cycle,swissroll")
    ap.add_argument("--seeds", default="5,6,7,8,9")
    ap.add_argument("--cells", type=int, default=3000)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    rows = []
    for kind in args.kinds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            before = ari(kind, seed, n_cells=args.cells, log_mean=False)
            after = ari(kind, seed, n_cells=args.cells, log_mean=True)
            rows.append({"manifold": kind, "seed": seed, "ARI, smoothed log (default)": before,
                         "ARI, log of local mean": after, "change": after - before})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    means = table.groupby("manifold", sort=False)[["ARI, smoothed log (default)", "ARI, log of local mean",
                                                   "change"]].mean().reset_index()
    text = table.round(3).to_markdown(index=False) + "\n\nMeans over seeds:\n\n" + means.round(3).to_markdown(
        index=False)
    print(text)
    if not args.no_record:
        record("Patterns on the log of the local mean", f"python benchmarks/patterns_log_mean.py --kinds {args.kinds} "
               f"--seeds {args.seeds} --cells {args.cells}", text,
               notes=(f"Synthetic manifolds, {args.cells} cells, 1,000 genes, 2,000 UMIs/cell, held-out development "
                      "seeds; tl.patterns at its defaults either way. An ablation: no peer applies (patterns.py "
                      "runs GSPA and Hotspot)."), pkgs=("scikit-learn",))


if __name__ == "__main__":
    main()
