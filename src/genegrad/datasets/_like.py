"""Semi-synthetic counts fitted to a real AnnData (scDesign3's model, through ``scdesigner``), with exact truth."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.interpolate import BSpline
from scipy.spatial import cKDTree

from .._validation import as_rng, check_counts, check_range, require_key, warn
from . import _patterns

if TYPE_CHECKING:
    from collections.abc import Generator, Sequence

    from numpy.typing import NDArray

#: Basis columns per lineage (1-D latent, cubic B-splines) and thin-plate columns (2-D latent) by default.
DF_1D = 6
DF_2D = 12
#: Cells generated at once (bounds the dense ``cells x genes`` blocks).
CELL_BLOCK = 10_000
#: Negative-binomial sizes are kept in scdesigner's range.
SIZE_RANGE = (1e-3, 1e3)
#: Each new cell lies between a real cell and one of this many of its neighbours on the latent.
N_NEIGHBORS = 10
#: IRLS of the means: damped Newton steps (scdesigner's default, 10 steps of 0.1, stops far from the optimum).
MAX_EPOCHS = 200
STEP = 0.5


def simulate_like(
    adata: ad.AnnData,
    latent: str | Sequence[str],
    *,
    lineage: str | None = None,
    n_cells: int | None = None,
    n_flat: int | None = None,
    genes: Sequence[str] | None = None,
    df: int | None = None,
    rng: int | np.random.Generator | None = 0,
) -> ad.AnnData:
    """Counts like those of ``adata`` at fresh cells of its manifold, with every gene's exact gradient.

    scDesign3's model is fitted to the raw counts of ``adata`` with ``scdesigner``: each gene's log-mean
    ``eta_g(z)`` is a smooth function of the latent coordinates ``z`` (cubic B-splines with fixed knots in 1-D,
    one set per lineage; a thin-plate spline basis plus linear terms in 2-D), its counts negative binomial with a
    fitted size, and the genes coupled by a Gaussian copula (its correlation shrunk by Ledoit-Wolf, so that
    data with fewer cells than genes can be fitted). New cells are drawn between a real cell and one of
    its neighbours on the latent (in the same lineage). ``n_flat`` genes, drawn at random, are made flat: they keep
    their average share of each cell's expected counts, so after total-count normalisation their truth is zero; the
    other genes share the rest in proportion to ``exp(eta_g)``, as in :func:`genegrad.datasets.synthetic`.

    Parameters
    ----------
    adata
        Real data with raw counts in ``X``.
    latent
        The manifold coordinates: an ``obsm`` key with one or two columns (two diffusion components, a 2-D
        layout), or one or two ``obs`` columns (a pseudotime).
    lineage
        An ``obs`` column (categories) for lineage-specific means along a one-dimensional ``latent``.
    n_cells
        Cells to simulate; as many as ``adata`` by default.
    n_flat
        Genes forced flat, the nulls; a tenth of the genes by default.
    genes
        Genes to simulate; every gene of ``adata`` by default.
    df
        Basis columns (per lineage in 1-D): 6 in 1-D, 12 in 2-D by default.
    rng
        Seed or generator; the same seed gives the same data.

    Returns
    -------
    AnnData with raw counts in ``X`` (CSR, float32) and the truth: ``obsm['X_latent']`` (the cells' latent
    coordinates), ``obs['lineage']`` (with ``lineage``), ``obs['total_counts']``, ``var['flat']``, and
    ``uns['synthetic']`` (the fitted model), from which :func:`genegrad.datasets.true_gradients` gives each
    gene's gradient, in the latent or pushed into the PCA after :func:`genegrad.pp.preprocess`.
    """
    try:
        from scdesigner.copulas.gaussian_copula_helpers import sample_pseudo_obs
        from scdesigner.simulators import NegBinIRLSCopula
    except ImportError as err:
        msg = "`simulate_like` needs scdesigner (scDesign3 in Python) and torch: `pip install scdesigner torch`."
        raise ImportError(msg) from err
    gen = as_rng(rng)
    genes = list(adata.var_names) if genes is None else list(genes)
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        msg = f"`genes` not in `adata.var_names`: {missing[:5]}; pass names of its genes."
        raise ValueError(msg)
    if len(genes) < 2 or len(set(genes)) != len(genes):
        msg = f"`genes` must be two or more distinct names, got {len(genes)} ({len(set(genes))} distinct)."
        raise ValueError(msg)
    sub = adata[:, genes]
    counts, _ = check_counts(sub, None)
    z, name = _latent(adata, latent)
    lineages = _lineages(adata, lineage, z)
    n_genes = len(genes)
    n_flat = n_genes // 10 if n_flat is None else n_flat
    check_range("n_flat", n_flat, 0, n_genes - 1, integer=True)
    n_cells = adata.n_obs if n_cells is None else n_cells
    check_range("n_cells", n_cells, 1, None, integer=True)
    d = z.shape[1]
    df = (DF_1D if d == 1 else DF_2D) if df is None else df
    check_range("df", df, 4, 50, integer=True)

    loc, sd = z.mean(axis=0), z.std(axis=0)
    zs = (z - loc) / sd
    with _seeded(int(gen.integers(2**31))):
        basis = _fit_basis(zs, lineages, df)
        design = _design(basis, zs, lineages[0])[0]
        cols = [f"gg_basis_{j}" for j in range(design.shape[1])]
        fit_data = ad.AnnData(sparse.csr_matrix(counts, dtype=np.float32),
                              obs=pd.DataFrame(design, columns=cols, index=adata.obs_names.astype(str)))
        sim = NegBinIRLSCopula(mean_formula="~ 0 + " + " + ".join(cols), dispersion_formula="~ 1",
                               copula_formula="~ 1", estimator="ledoit_wolf")
        sim.fit(fit_data, verbose=False, max_epochs=MAX_EPOCHS, eta=STEP)
        predicted = sim.predict(fit_data.obs)
    beta = sim.marginal.predict.coefs["mean"].detach().cpu().numpy().astype(np.float64)
    if beta.shape != (len(cols), n_genes) or not np.allclose(design @ beta, np.log(predicted["mean"]),
                                                             atol=1e-3, rtol=1e-3):
        msg = "scdesigner's mean coefficients do not follow the design's columns; this version is unsupported."
        raise RuntimeError(msg)
    size = np.clip(predicted["dispersion"][0].astype(np.float64), *SIZE_RANGE)

    flat = np.zeros(n_genes, dtype=bool)
    flat[gen.choice(n_genes, size=n_flat, replace=False)] = True
    mu_fit = np.exp(design @ beta)
    share = (mu_fit / mu_fit.sum(axis=1, keepdims=True)).mean(axis=0)
    spec = {"kind": "like", "latent": name, "loc": loc, "scale": sd, "basis": basis, "beta": beta,
            "size": size, "flat": flat, "flat_share": np.where(flat, share, 0.0), "names": np.asarray(genes)}

    z_new, lin_new = _new_cells(z, lineages, n_cells, gen=gen)
    (cov,) = sim.copula.parameters.values()
    X = []
    for start in range(0, n_cells, CELL_BLOCK):
        stop = min(start + CELL_BLOCK, n_cells)
        mu = _means(spec, z_new[start:stop], lin_new[start:stop])[0]
        u = sample_pseudo_obs(stop - start, cov, rng=gen)
        y = stats.nbinom(n=size[None, :], p=size[None, :] / (size[None, :] + mu)).ppf(u)
        X.append(sparse.csr_matrix(y.astype(np.float32)))
    X = sparse.vstack(X, format="csr")
    obs = pd.DataFrame(index=pd.Index([f"cell_{i}" for i in range(n_cells)]))
    if lineage is not None:
        obs["lineage"] = pd.Categorical(np.asarray(basis["lineages"])[lin_new], categories=basis["lineages"])
    obs["total_counts"] = np.asarray(X.sum(axis=1)).ravel()
    empty = int((obs["total_counts"] == 0).sum())
    if empty:
        warn(f"{empty} simulated cells have no counts (the data are that sparse in these genes); drop them "
             "(`sim[sim.obs['total_counts'] > 0]`) before `genegrad.pp.preprocess`, or simulate more genes.")
    out = ad.AnnData(X, obs=obs, var=pd.DataFrame({"flat": flat}, index=pd.Index(genes)))
    out.obsm["X_latent"] = z_new
    out.uns["synthetic"] = spec
    return out


def _latent(adata: ad.AnnData, latent: str | Sequence[str]) -> tuple[NDArray[np.float64], str]:
    """The latent coordinates ``(N, d)`` named by ``latent``, checked, and a name for them."""
    if isinstance(latent, str) and latent in adata.obsm:
        z = np.asarray(adata.obsm[latent], dtype=np.float64)
        z = z.reshape(len(z), -1)
        name = latent
    else:
        names = [latent] if isinstance(latent, str) else list(latent)
        missing = [c for c in names if c not in adata.obs]
        if missing:
            msg = (f"`latent` {missing[0]!r} is neither an `obsm` key ({list(adata.obsm)}) nor an `obs` column; "
                   "name the manifold coordinates (e.g. two diffusion components in `obsm`, a pseudotime in `obs`).")
            raise KeyError(msg)
        try:
            z = np.column_stack([np.asarray(adata.obs[c], dtype=np.float64) for c in names])
        except (TypeError, ValueError) as err:
            msg = f"`latent` {names} must hold numbers (coordinates, a pseudotime), not labels."
            raise ValueError(msg) from err
        name = ",".join(names)
    if z.shape[1] not in (1, 2):
        msg = f"`latent` must have one or two columns, {name!r} has {z.shape[1]}; pick one or two of them."
        raise ValueError(msg)
    if not np.isfinite(z).all():
        msg = f"`latent` {name!r} has missing or infinite values; subset `adata` to the cells where it is defined."
        raise ValueError(msg)
    if np.any(z.std(axis=0) == 0):
        msg = f"`latent` {name!r} is constant in a column; it cannot place the cells."
        raise ValueError(msg)
    return z, name


def _lineages(adata: ad.AnnData, lineage: str | None, z: NDArray) -> tuple[NDArray[np.int64], list[str]]:
    """Each cell's lineage code and the lineage names (one lineage, ``'all'``, without ``lineage``)."""
    if lineage is None:
        return np.zeros(adata.n_obs, dtype=np.int64), ["all"]
    require_key(adata, "obs", lineage, fix="name the `obs` column that holds each cell's lineage")
    if z.shape[1] != 1:
        msg = "`lineage` needs a one-dimensional `latent` (a pseudotime), got a two-dimensional one."
        raise ValueError(msg)
    values = adata.obs[lineage]
    if values.isna().any():
        msg = f"`obs['{lineage}']` has missing values; give every cell a lineage or subset `adata`."
        raise ValueError(msg)
    cat = pd.Categorical(values.astype(str))
    sizes = np.bincount(cat.codes, minlength=len(cat.categories))
    small = [str(c) for c, n in zip(cat.categories, sizes, strict=True) if n < 20]
    if small:
        msg = f"Lineages {small} of `obs['{lineage}']` have fewer than 20 cells, too few to fit their means."
        raise ValueError(msg)
    return cat.codes.astype(np.int64), [str(c) for c in cat.categories]


def _fit_basis(zs: NDArray, lineages: tuple[NDArray, list[str]], df: int) -> dict[str, Any]:
    """The basis of the standardised latent ``zs``: its state, enough to evaluate it anywhere."""
    codes, names = lineages
    if zs.shape[1] == 1:
        knots = []
        for code in range(len(names)):
            x = zs[codes == code, 0]
            inner = np.quantile(x, np.linspace(0, 1, df - 2)[1:-1])
            knots.append(np.r_[[x.min()] * 4, inner, [x.max()] * 4])
        return {"type": "bspline", "knots": np.array(knots), "lineages": names}
    from scdesigner.data import TPSBasis

    tps = TPSBasis(df=df, n_landmarks=min(200, len(zs))).fit(zs)
    return {"type": "tps", "landmarks": tps.landmarks_, "projection": tps.projection_, "eps": tps.eps,
            "lineages": names}


def _design(basis: dict, zs: NDArray, codes: NDArray) -> tuple[NDArray, NDArray]:
    """The design matrix ``(N, p)`` at standardised coordinates and its derivative ``(N, p, d)``."""
    codes = np.asarray(codes)
    if basis["type"] == "bspline":
        knots = np.asarray(basis["knots"])
        n_lin, nb = len(knots), knots.shape[1] - 4
        D = np.zeros((len(zs), n_lin * nb))
        dD = np.zeros((len(zs), n_lin * nb, 1))
        for code in range(n_lin):
            rows = np.flatnonzero(codes == code)
            t = knots[code]
            x = np.clip(zs[rows, 0], t[0], t[-1])
            spline = BSpline(t, np.eye(nb), 3, extrapolate=False)
            D[rows, code * nb:(code + 1) * nb] = np.nan_to_num(spline(x))
            dD[rows, code * nb:(code + 1) * nb, 0] = np.nan_to_num(spline.derivative()(x))
        return D, dD
    L = np.asarray(basis["landmarks"])
    P = np.asarray(basis["projection"])
    diff = zs[:, None, :] - L[None, :, :]
    r = np.maximum(np.linalg.norm(diff, axis=2), float(basis["eps"]))
    K = r**2 * np.log(r)
    dK = np.where(r > float(basis["eps"]), 2 * np.log(r) + 1, 0.0)[:, :, None] * diff  # d(r^2 log r)/dz
    n = len(zs)
    D = np.column_stack([np.ones(n), zs, K @ P])
    dD = np.concatenate([np.zeros((n, 1, 2)), np.broadcast_to(np.eye(2), (n, 2, 2)),
                         np.einsum("nmd,mp->npd", dK, P)], axis=1)
    return D, dD


def _means(spec: dict, z: NDArray, codes: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Expected counts ``(N, G)``, shares ``pi`` and the gradients of ``log pi`` ``(N, G, d)`` at latent ``z``."""
    scale = np.asarray(spec["scale"], dtype=np.float64)
    zs = (np.asarray(z, dtype=np.float64) - np.asarray(spec["loc"])) / scale
    D, dD = _design(spec["basis"], zs, codes)
    beta = np.asarray(spec["beta"], dtype=np.float64)
    eta = D @ beta
    grad_eta = np.einsum("npd,pg->ngd", dD, beta) / scale  # chain rule: back to the latent's own units
    flat = np.asarray(spec["flat"], dtype=bool)
    flat_share = np.asarray(spec["flat_share"], dtype=np.float64)
    total = np.exp(eta).sum(axis=1, keepdims=True)
    rest = np.exp(eta[:, ~flat] - eta[:, ~flat].max(axis=1, keepdims=True))
    rest /= rest.sum(axis=1, keepdims=True)
    pi = np.empty_like(eta)
    pi[:, flat] = flat_share[flat]
    pi[:, ~flat] = (1 - flat_share.sum()) * rest
    return total * pi, pi, _patterns.log_proportion_gradients(grad_eta, pi, {"flat": flat})


def model(adata: ad.AnnData) -> dict:
    """The model of :func:`simulate_like` data at the cells of ``adata``, as :mod:`._truth` reads it."""
    spec = adata.uns["synthetic"]
    z = np.asarray(adata.obsm["X_latent"], dtype=np.float64).reshape(adata.n_obs, -1)
    names = list(spec["basis"]["lineages"])
    if len(names) > 1:
        require_key(adata, "obs", "lineage", fix="keep `obs['lineage']` of the simulated data")
        codes = pd.Categorical(adata.obs["lineage"].astype(str), categories=names).codes
        if np.any(codes < 0):
            msg = f"`obs['lineage']` holds lineages the model does not know (it knows {names})."
            raise ValueError(msg)
    else:
        codes = np.zeros(adata.n_obs, dtype=np.int64)
    _, pi, glogpi = _means(spec, z, codes)
    return {"u": z, "pi": pi, "glogpi": glogpi, "names": [str(g) for g in spec["names"]]}


def _new_cells(z: NDArray, lineages: tuple[NDArray, list[str]], n_cells: int, *,
               gen: np.random.Generator) -> tuple[NDArray, NDArray]:
    """Fresh latent positions: a uniform point between a random cell and one of its neighbours (same lineage)."""
    codes, _ = lineages
    pick = gen.choice(len(z), size=n_cells)
    z_new = np.empty((n_cells, z.shape[1]))
    scaled = z / z.std(axis=0)
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        k = min(N_NEIGHBORS + 1, len(members))
        _, nbrs = cKDTree(scaled[members]).query(scaled[members], k=k)
        local = np.searchsorted(members, pick[codes[pick] == code])
        other = members[nbrs[local, gen.integers(1, k, size=len(local))]]
        w = gen.uniform(size=(len(local), 1))
        z_new[codes[pick] == code] = (1 - w) * z[members[local]] + w * z[other]
    return z_new, codes[pick]


@contextlib.contextmanager
def _seeded(seed: int) -> Generator[None, None, None]:
    """Seed numpy's and torch's global generators (scdesigner draws from them), restoring them afterwards."""
    import torch

    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
