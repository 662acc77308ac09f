"""Per-cell gradient-geometry features of fate, and how much fate information they carry beyond expression."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _keys
from .._validation import check_cell_mask, check_range, fate_bias_info, fate_program, gene_positions, require_key
from ..pp._manifold import load_model
from ._signal import read_signal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad

logger = logging.getLogger(__name__)


def fate_features(
    adata: ad.AnnData,
    *,
    coarse_scale: int | None = None,
    key: str = _keys.UNS,
    copy: bool = False,
) -> ad.AnnData | None:
    """Gradient-geometry features of every cell for every fate (after :func:`genegrad.tl.fate_bias`).

    Per fate ``f`` (program score ``s_f = F w_f``, flow ``Phi_f``, total flow ``v = sum_f Phi_f``):

    - ``{f}_flow``: ``|Phi_f|``, how fast the fate's program changes here;
    - ``{f}_align``: ``cos(Phi_f, v)``, whether the local direction of maturation is this fate's;
    - ``{f}_deviation``: the cell's standardised score on the fate's fine-scale program (deviations from the
      neighbourhood trend, see :func:`genegrad.tl.fate_bias`): the fine-grained bias the main variation misses;
    - ``{f}_program``: ``s_f - P^t s_f``, the cell's level of the fate's program against its neighbourhood's;
    - ``{f}_displacement``: ``(y - P^t y) . (Phi_f - mean of the other flows)``, normalised: whether the cell
      sits, within its neighbourhood, on the side of fate ``f``.

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.fate_bias` ran.
    coarse_scale
        Diffusion time of the neighbourhood average; the largest scale by default.
    key
        Prefix of the keys :func:`genegrad.tl.fate_bias` wrote.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` or a copy, with ``adata.obsm['genegrad_fate_features']``: a DataFrame, five columns per fate.
    """
    info = fate_bias_info(adata, key)
    model = load_model(adata, key)
    coarse = model.scales_[-1] if coarse_scale is None else coarse_scale
    check_range("coarse_scale", coarse, 1, None, integer=True)
    fates = [str(f) for f in info["fates"]]
    flows = np.asarray(adata.obsm[f"{key}_fate_flow"], dtype=np.float64)  # (N, fates, d)
    layer = info["layer"]
    F = read_signal(adata, None if layer == "X" else layer)
    W = np.zeros((adata.n_vars, len(fates)))
    for j in range(len(fates)):
        prog = fate_program(info, j)
        W[gene_positions(adata, prog["genes"], rerun="genegrad.tl.fate_bias"), j] = prog["weights"]
    S = np.asarray(F @ W, dtype=np.float64)
    Y = np.asarray(adata.obsm[adata.uns[key]["params"]["use_rep"]], dtype=np.float64)
    S_c, Y_c = S.copy(), Y.copy()
    for _ in range(coarse):
        S_c, Y_c = model.diffusion_ @ S_c, model.diffusion_ @ Y_c
    amb = model.to_ambient(flows)  # (N, fates, p)
    v = amb.sum(axis=1)
    vn = np.linalg.norm(v, axis=1)
    cols = {}
    for j, f in enumerate(fates):
        phi = amb[:, j]
        n_phi = np.linalg.norm(phi, axis=1)
        cols[f"{f}_flow"] = n_phi
        cols[f"{f}_align"] = (phi * v).sum(axis=1) / np.maximum(n_phi * vn, 1e-300)
        cols[f"{f}_deviation"] = np.asarray(adata.obsm[f"{key}_fate_deviation"])[:, j]
        cols[f"{f}_program"] = S[:, j] - S_c[:, j]
        others = np.delete(amb, j, axis=1).mean(axis=1)
        diff = phi - others
        cols[f"{f}_displacement"] = ((Y - Y_c) * diff).sum(axis=1) / np.maximum(np.linalg.norm(diff, axis=1), 1e-300)
    target = adata.copy() if copy else adata
    target.obsm[f"{key}_fate_features"] = pd.DataFrame(cols, index=target.obs_names)
    logger.info("added `adata.obsm['%s_fate_features']`", key)
    return target if copy else None


def evaluate_fate_features(
    adata: ad.AnnData,
    labels: str | Sequence,
    *,
    cells: Sequence[bool] | None = None,
    use_rep: str = "X_pca",
    n_splits: int = 5,
    random_state: int = 0,
    key: str = _keys.UNS,
) -> pd.DataFrame:
    """Cross-validated AUROC of predicting ``labels`` from expression, from gradient features, and from both.

    A logistic regression (standardised inputs) per feature set, stratified ``n_splits``-fold
    cross-validation; one-vs-rest AUROC for more than two labels. Use it with lineage labels (e.g. the clonal
    fate of sister cells) on progenitors, to measure how much fate information the gradient geometry carries
    beyond expression alone: where it adds nothing, ``both`` equals ``expression``.

    Parameters
    ----------
    adata
        Data on which :func:`fate_features` ran.
    labels
        An ``obs`` key or one label per cell; missing labels are left out.
    cells
        Boolean mask of the cells to evaluate (e.g. the early progenitors); all labelled cells by default.
    use_rep
        The expression representation.
    n_splits
        Folds.
    random_state
        Seed of the folds.
    key
        Prefix of the keys :func:`fate_features` wrote.

    Returns
    -------
    One row per feature set: ``features``, ``n_features``, ``auroc`` (mean over folds) and ``auroc_sd``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name = f"{key}_fate_features"
    require_key(adata, "obsm", name, fix="run `genegrad.tl.fate_features` first")
    require_key(adata, "obsm", use_rep, fix="pass an existing `use_rep`")
    y = adata.obs[labels].to_numpy() if isinstance(labels, str) else np.asarray(labels, dtype=object)
    if len(y) != adata.n_obs:
        msg = f"`labels` has {len(y)} entries for {adata.n_obs} cells."
        raise ValueError(msg)
    keep = pd.notna(y)
    if cells is not None:
        keep &= check_cell_mask(cells, adata.n_obs)
    y = y[keep].astype(str)
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2 or counts.min() < n_splits:
        msg = (f"Need at least two labels with {n_splits} cells each among the evaluated cells, got "
               f"{dict(zip(classes, counts, strict=True))}.")
        raise ValueError(msg)
    expr = np.asarray(adata.obsm[use_rep])[keep]
    grad = np.asarray(adata.obsm[name])[keep]
    sets = {"expression": expr, "gradient features": grad, "both": np.hstack([expr, grad])}
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
    rows = []
    for label, X in sets.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        aucs = []
        for train, test in folds.split(X, y):
            model.fit(X[train], y[train])
            proba = model.predict_proba(X[test])
            if classes.size == 2:
                aucs.append(roc_auc_score(y[test] == model.classes_[1], proba[:, 1]))
            else:
                aucs.append(roc_auc_score(y[test], proba, multi_class="ovr", labels=model.classes_))
        rows.append({"features": label, "n_features": X.shape[1], "auroc": float(np.mean(aucs)),
                     "auroc_sd": float(np.std(aucs))})
    return pd.DataFrame(rows)
