"""LARRY lineage tracing in vitro (Weinreb et al. 2020), read from the files its authors publish."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import pandas as pd
from scipy import io, sparse

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The published files of the in vitro time course (each may be gzipped, as published, or not).
FILES = {
    "counts": "stateFate_inVitro_normed_counts.mtx",
    "genes": "stateFate_inVitro_gene_names.txt",
    "metadata": "stateFate_inVitro_metadata.txt",
    "clones": "stateFate_inVitro_clone_matrix.mtx",
}
URL = "https://kleintools.hms.harvard.edu/paper_websites/state_fate2020/"
#: Published metadata columns and the ``obs`` columns they become.
COLUMNS = {"Library": "library", "Cell barcode": "barcode", "Time point": "time_point",
           "Starting population": "starting_population", "Cell type annotation": "cell_type", "Well": "well"}


def larry(path: str | Path, *, fates: Sequence[str] = ("Neutrophil", "Monocyte")) -> ad.AnnData:
    """The LARRY in vitro haematopoiesis time course (Weinreb et al. 2020), with the clonal fate of day-2 cells.

    Reads the four files of the authors' data page (``stateFate_inVitro_normed_counts.mtx``, ``_gene_names.txt``,
    ``_metadata.txt`` and ``_clone_matrix.mtx``, gzipped or not) from ``path``; nothing is downloaded.

    Parameters
    ----------
    path
        Folder holding the four files.
    fates
        Mature cell types (``'Cell type annotation'``) whose share among a clone's day-4 and day-6 cells gives the
        clonal fate of its day-2 cells.

    Returns
    -------
    Cells x genes, with ``X`` the log1p of the published total-count-normalised expression (CSR float32) and
    ``layers['normalized']`` the published values; ``obs``: ``library``, ``barcode``, ``time_point`` (days),
    ``starting_population``, ``cell_type``, ``well``, ``clone`` (column of the clone matrix; -1 for cells in
    no clone or in several), and for day-2 cells in a clone with later cells of ``fates``:
    ``clonal_fate_share`` (the share of ``fates[0]`` among them) and ``clonal_fate`` (the fate of a strict
    majority of them; missing on ties). ``obsm['X_spring']``: the published SPRING coordinates.

    Examples
    --------
    With the four files downloaded into ``larry/`` (the data are not shipped, so this is not run here)::

        adata = gg.datasets.larry("larry/")
        sc.pp.highly_variable_genes(adata)
        sc.pp.pca(adata)
        gg.pp.manifold(adata)
        gg.tl.fate_bias(adata, ["Neutrophil", "Monocyte"], groupby="cell_type", root=...)
        gg.tl.fate_features(adata)
        gg.tl.evaluate_fate_features(adata, "clonal_fate", cells=adata.obs["time_point"] == 2)
    """
    fates = [fates] if isinstance(fates, str) else [str(f) for f in fates]
    if len(fates) < 2 or len(set(fates)) < len(fates):
        msg = f"`fates` must name at least two distinct cell types (e.g. ('Neutrophil', 'Monocyte')), got {fates}."
        raise ValueError(msg)
    folder = Path(path)
    found = {key: _find(folder, name) for key, name in FILES.items()}
    missing = [FILES[k] for k, f in found.items() if f is None]
    if missing:
        msg = (f"{len(missing)} LARRY files not found in {str(folder)!r}: {missing} (each may end in .gz). "
               f"Download them from {URL} (Weinreb et al. 2020, in vitro time course) into that folder.")
        raise FileNotFoundError(msg)
    normed = sparse.csr_matrix(io.mmread(found["counts"]), dtype=np.float32)
    genes = pd.read_csv(found["genes"], header=None, sep="\t").iloc[:, 0].astype(str).to_numpy()
    meta = pd.read_csv(found["metadata"], sep="\t")
    clones = sparse.csr_matrix(io.mmread(found["clones"]))
    absent = [c for c in (*COLUMNS, "SPRING-x", "SPRING-y") if c not in meta.columns]
    if absent:
        msg = f"{found['metadata'].name} lacks the published columns {absent} (it has {list(meta.columns)})."
        raise ValueError(msg)
    n = normed.shape[0]
    shapes = {"metadata rows": len(meta), "clone-matrix rows": clones.shape[0]}
    wrong = {k: v for k, v in shapes.items() if v != n}
    if wrong or normed.shape[1] != genes.size:
        msg = (f"The LARRY files disagree: the counts are {n} cells x {normed.shape[1]} genes, but there are "
               f"{genes.size} gene names, {len(meta)} metadata rows and {clones.shape[0]} clone-matrix rows. "
               "Use the four files of one release, unmodified.")
        raise ValueError(msg)

    obs = meta.rename(columns=COLUMNS)[list(COLUMNS.values())].copy()
    unknown = [f for f in fates if not (obs["cell_type"].astype(str) == f).any()]
    if unknown:
        msg = (f"`fates` {unknown} name no 'Cell type annotation' of the metadata (it has: "
               f"{sorted(obs['cell_type'].astype(str).unique())}).")
        raise ValueError(msg)
    obs["time_point"] = pd.to_numeric(obs["time_point"], errors="raise").astype(int)
    for col in ("library", "barcode", "starting_population", "cell_type", "well"):
        obs[col] = obs[col].astype(str)
    names = (obs["library"] + ":" + obs["barcode"]).to_numpy()
    obs.index = pd.Index(names if pd.Index(names).is_unique else [f"{s}-{i}" for i, s in enumerate(names)],
                         dtype=str)
    n_clones = np.diff(clones.indptr)
    clone = np.full(n, -1, dtype=np.int64)
    single = n_clones == 1
    clone[single] = clones.indices[clones.indptr[:-1][single]]
    obs["clone"] = clone
    share, fate = _clonal_fates(obs, fates)
    obs["clonal_fate_share"] = share
    obs["clonal_fate"] = pd.Categorical(fate, categories=fates)
    for col in ("library", "starting_population", "cell_type", "well"):
        obs[col] = obs[col].astype("category")

    logged = normed.copy()
    logged.data = np.log1p(logged.data)
    var = pd.DataFrame(index=ad.utils.make_index_unique(pd.Index(genes, dtype=str)))  # as var_names_make_unique
    adata = ad.AnnData(X=logged, obs=obs, var=var)
    adata.layers["normalized"] = normed
    adata.obsm["X_spring"] = meta[["SPRING-x", "SPRING-y"]].to_numpy(dtype=np.float64)
    adata.uns["log1p"] = {"base": None}
    return adata


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _clonal_fates(obs: pd.DataFrame, fates: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the share of ``fates[0]`` among its clone's later cells of ``fates``, and the majority fate.

    Only day-2 cells in a clone get them; the others, and clones without later cells of ``fates``, get NaN.
    """
    clone = obs["clone"].to_numpy()
    n_clones = int(clone.max()) + 1 if clone.size and clone.max() >= 0 else 0
    later = (obs["time_point"].to_numpy() > 2) & (clone >= 0)
    kind = obs["cell_type"].to_numpy()
    per_fate = np.stack([np.bincount(clone[later & (kind == f)], minlength=n_clones) for f in fates], axis=1)
    total = per_fate.sum(axis=1)
    early = (obs["time_point"].to_numpy() == 2) & (clone >= 0)
    share = np.full(len(obs), np.nan)
    fate = np.full(len(obs), None, dtype=object)
    has = np.zeros(len(obs), dtype=bool)
    has[early] = total[clone[early]] > 0
    c = clone[has]
    share[has] = per_fate[c, 0] / total[c]
    top = per_fate[c].argmax(axis=1)
    majority = 2 * per_fate[c, top] > total[c]
    fate[np.flatnonzero(has)[majority]] = np.asarray(fates, dtype=object)[top[majority]]
    return share, fate
