"""Exact gradients of the synthetic data, in latent coordinates or pushed forward into a PCA or an LSI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from .._validation import require_key
from . import _like, _manifolds, _patterns

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad
    from numpy.typing import NDArray


def true_gradients(
    adata: ad.AnnData,
    genes: Sequence[str] | None = None,
    *,
    basis: Literal["latent", "X_pca", "X_lsi"] = "X_pca",
    signal: Literal["log_mean", "log1p"] = "log_mean",
    target_sum: float | None = None,
    embedding: ad.AnnData | None = None,
) -> NDArray[np.float64]:
    """Exact gradients of the genes of simulated data, ``(cells, genes, dim)``.

    The data come from :func:`genegrad.datasets.synthetic` or :func:`genegrad.datasets.simulate_like`.

    Parameters
    ----------
    adata
        Simulated data (possibly preprocessed; cells and genes may have been
        subset, the truth follows ``obsm['X_latent']`` and the gene names).
    genes
        Genes to return; all by default.
    basis
        ``'latent'``: gradient in the latent coordinates ``u`` (``grad_u f``). ``'X_pca'``: pushed forward into
        the PCA coordinates, ``J (J^T J)^-1 grad_u f`` with ``J = PCs^T d x / d u`` the Jacobian of the
        noise-free PCA coordinates (``x = log1p(target_sum * pi)``); needs ``varm['PCs']``. ``'X_lsi'``: pushed
        forward into the LSI of :func:`genegrad.pp.preprocess_atac` (the noise-free TF-IDF
        ``x = log1p(scale_factor * idf * pi)`` projected on ``varm['LSI']``, then scaled to unit length when the
        LSI rows were); needs ``varm['LSI']`` and ``var['idf']``.
    signal
        ``'log_mean'``: the gradient of the log of the gene's mean (``log pi_g``), the direction truth.
        ``'log1p'``: the gradient of the noise-free log-normalised expression ``log1p(target_sum * pi_g)``
        (of the TF-IDF signal after :func:`genegrad.pp.preprocess_atac`), the magnitude truth for an estimator
        applied to that signal.
    target_sum
        Normalisation target; by default the one :func:`genegrad.pp.preprocess` recorded, else 1e4.
    embedding
        The data whose representation (``basis``) the truth is pushed into, when it is not ``adata``: the other
        modality of simulated paired data (``synthetic`` with the same ``kind``, ``n_cells`` and seed: the same
        cells), e.g. RNA genes on the ATAC manifold after :func:`genegrad.pp.transfer_manifold`.
    """
    model = _model(adata)
    names = model["names"]
    pos = {n: j for j, n in enumerate(names)}
    genes = list(adata.var_names) if genes is None else list(genes)
    missing = [g for g in genes if g not in pos]
    if missing:
        msg = f"Genes not in the synthetic model: {missing[:10]}."
        raise KeyError(msg)
    sel = np.array([pos[g] for g in genes], dtype=int)
    out = model["glogpi"][:, sel]
    if signal == "log1p":
        out = out * _kappa(adata, model, target_sum)[:, sel, None]
    elif signal != "log_mean":
        msg = f"Expected `signal` in {{'log_mean', 'log1p'}}, got {signal!r}."
        raise ValueError(msg)
    if basis == "latent":
        return out
    if basis not in ("X_pca", "X_lsi"):
        msg = f"Expected `basis` in {{'latent', 'X_pca', 'X_lsi'}}, got {basis!r}."
        raise ValueError(msg)
    if embedding is None:
        J = _jacobian(adata, model, basis, target_sum=target_sum)
    else:
        emb_model = _model(embedding)
        same = embedding.n_obs == adata.n_obs and np.array_equal(embedding.obs_names, adata.obs_names)
        if not same or not np.allclose(emb_model["u"], model["u"]):
            msg = ("`embedding` must hold the same cells as `adata`, in the same order and at the same latent "
                   "positions: simulate both with the same `kind`, `n_cells` and seed.")
            raise ValueError(msg)
        J = _jacobian(embedding, emb_model, basis, target_sum=None)
    JtJ = np.einsum("npd,npe->nde", J, J)
    coef = np.linalg.solve(JtJ + 1e-12 * np.eye(JtJ.shape[1]), np.swapaxes(out, 1, 2))  # (N, d, G)
    return np.einsum("npd,ndg->ngp", J, coef)


def _model(adata: ad.AnnData) -> dict:
    """The simulated gene model at the cells of ``adata``: proportions and their log-gradients, every gene."""
    require_key(adata, "uns", "synthetic", fix="make the data with `genegrad.datasets.synthetic`")
    spec = adata.uns["synthetic"]
    kind = spec["kind"]
    if kind == "like":
        return _like.model(adata)
    params = {k: np.asarray(v) for k, v in spec["genes"].items()}
    u = np.asarray(adata.obsm["X_latent"], dtype=np.float64)
    segment = np.asarray(adata.obs["segment"]).astype(int) if kind == "tree" else None
    w, Phi = _manifolds.embed(kind, u)
    h, grad_w = _patterns.evaluate(kind, params, w, segment)
    grad_u = np.einsum("ngm,nmd->ngd", grad_w, Phi)  # (N, G_all, d)
    pi = _patterns.proportions(params["base"][None, :] + h, params)
    glogpi = _patterns.log_proportion_gradients(grad_u, pi, params)
    return {"u": u, "pi": pi, "glogpi": glogpi, "names": _patterns.gene_names(params["pattern"])}


def _scale(adata: ad.AnnData, model: dict, target_sum: float | None) -> NDArray[np.float64]:
    """Per gene, the factor ``s`` of the noise-free signal ``log1p(s pi)``."""
    prep = adata.uns.get("genegrad_preprocess", {})
    names = model["names"]
    if prep.get("modality") == "atac":
        # TF-IDF: x = log1p(s * idf * pi), idf per peak (unseen peaks: 0)
        require_key(adata, "var", "idf", fix="run `genegrad.pp.preprocess_atac` first")
        pos = {n: j for j, n in enumerate(names)}
        scale = np.zeros(len(names))
        scale[[pos[g] for g in adata.var_names]] = float(prep["scale_factor"]) * adata.var["idf"].to_numpy(float)
        return scale
    if target_sum is None:
        target_sum = float(prep.get("target_sum", 1e4))
    return np.full(len(names), float(target_sum))


def _kappa(adata: ad.AnnData, model: dict, target_sum: float | None) -> NDArray[np.float64]:
    """``d log1p(s pi) / d log pi`` at every cell and gene."""
    s = _scale(adata, model, target_sum)[None, :] * model["pi"]
    return s / (1 + s)


def _jacobian(adata: ad.AnnData, model: dict, basis: str, *, target_sum: float | None) -> NDArray[np.float64]:
    """``(N, p, d)``: the Jacobian of the noise-free representation ``basis`` of ``adata`` in latent coordinates."""
    vkey = "PCs" if basis == "X_pca" else "LSI"
    fix = ("run `genegrad.pp.preprocess` (or `scanpy.pp.pca`) first" if basis == "X_pca"
           else "run `genegrad.pp.preprocess_atac` first")
    require_key(adata, "varm", vkey, fix=fix)
    names = model["names"]
    pos = {n: j for j, n in enumerate(names)}
    loadings = np.zeros((len(names), adata.varm[vkey].shape[1]))
    loadings[np.array([pos[g] for g in adata.var_names], dtype=int)] = adata.varm[vkey]
    J = np.einsum("gp,ng,ngd->npd", loadings, _kappa(adata, model, target_sum), model["glogpi"])
    if basis == "X_lsi" and adata.uns.get("lsi", {}).get("normalize_rows", False):
        z = np.log1p(_scale(adata, model, target_sum)[None, :] * model["pi"]) @ loadings  # noise-free LSI scores
        r = np.linalg.norm(z, axis=1)
        yhat = z / r[:, None]
        J = (J - np.einsum("np,nq,nqd->npd", yhat, yhat, J)) / r[:, None, None]  # d (z/|z|) = (I - y y^T) dz / |z|
    return J
