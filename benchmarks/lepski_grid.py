"""The recommended scale's tolerance: Lepski's share ``alpha`` and who votes, on a grid, per data set.

For each set of ``second_opinion.py`` (2,000 cells x 400 features) and each rule: the median cosine at the
recommended scale against the best fixed scale's (the issue's target: at least as high), the coverage of the 95%
intervals of ``get.gradients_se(scale='auto')`` and their median width relative to the finest scale's. Rules:
``alpha`` in 0.1, 0.2, 0.3, 0.5; every cell votes, or only cells whose finer-scale standard error is not zero.
The gradients are computed once per set (genegrad's defaults); only the choice of scale changes.

Choose on development data (``--only a,b``), then report the proof family (``--only c``).

    python benchmarks/lepski_grid.py --only a,b
    python benchmarks/lepski_grid.py --only c
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from genegrad._core import _scale

sys.path.insert(0, str(Path(__file__).parent))
from _common import record
from gradient_recovery import cosines
from second_opinion import FAMILY, differentiated, each_set

ALPHAS = (0.1, 0.2, 0.3, 0.5)


def choose(gradients, se, *, alpha, everyone):
    """Lepski's rule with share ``alpha``; ``everyone``: cells with a zero standard error vote too (the old rule).

    A voting cell of zero standard error is one whose ball is a point: the smallest positive float in its place
    makes it vote and leaves any real move outside its ball.
    """
    if everyone:
        se = np.where(se > 0, se, np.finfo(np.float64).tiny)
    return _scale.lepski_scales(gradients, se, alpha=alpha)


def evaluate(adata, modality):
    _, _, true, target, mask, structured, _ = differentiated(adata, modality)
    G = adata.obsm["genegrad_gradients"].astype(np.float64)
    SE = adata.obsm["genegrad_gradients_se"].astype(np.float64)
    frames = adata.obsm["genegrad_frames"].astype(np.float64)
    c = _scale.ball_factor(G.shape[2])
    scales = [int(t) for t in adata.uns["genegrad"]["scales"]]

    def pushed(g):
        return np.einsum("npd,ngd->ngp", frames, g)

    fixed = {t: float(np.median(cosines(pushed(G[..., i]), true, mask))) for i, t in enumerate(scales)}
    best = max(fixed, key=fixed.get)
    rows = []
    for everyone in (True, False):
        for alpha in ALPHAS:
            choice = choose(G, SE, alpha=alpha, everyone=everyone)
            auto = np.empty_like(G[..., 0])
            se = np.empty_like(SE[..., 0])
            for k in np.unique(choice):
                cols = choice == k
                auto[:, cols] = G[:, cols][..., k]
                se[:, cols] = _scale.widened_se(G[:, cols][..., k], G[:, cols][..., 0], SE[:, cols][..., 0])
            est = pushed(auto)
            rows.append({
                "voters": "every cell" if everyone else "se > 0", "alpha": alpha,
                "cosine auto": round(float(np.median(cosines(est, true, mask))), 3),
                "best fixed (t)": f"{fixed[best]:.3f} ({best})",
                "coverage auto": round(float(np.mean((np.linalg.norm(est - target, axis=2) <= c * se)[mask])), 3),
                "width / t=0": round(float(np.median((se / np.maximum(SE[..., 0], 1e-30))[mask])), 2),
                "auto scales (median)": float(np.median(np.asarray(scales)[choice][structured])),
            })
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="a,b")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    rows = []
    for fam, name, adata, modality in each_set(args.only):
        rows += [{"family": FAMILY[fam], "data": name, **r} for r in evaluate(adata, modality)]
    table = pd.DataFrame(rows).to_markdown(index=False)
    print(table)
    if not args.no_record:
        record("Recommended scale: Lepski's share and voters", f"python benchmarks/lepski_grid.py --only {args.only}",
               table, notes=("Chosen on development data (a, b): the rule whose auto cosine falls least below the "
                             "best fixed scale's on any set. The default is `se > 0`, alpha 0.2."),
               pkgs=("scdesigner",))


if __name__ == "__main__":
    main()
