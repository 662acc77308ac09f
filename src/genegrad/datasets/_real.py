"""Real datasets, read offline from a local copy (never downloaded at run time)."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

#: Where each dataset lives inside a data folder.
FILES = {
    "paul15": Path("paul15") / "paul15.h5ad",
    "treutlein_lung": Path("treutlein2014_lung") / "lung_monocle.h5ad",
    "granja_atac": Path("granja2019_bm_scatac_subset") / "hemato_atac.h5ad",
    "pbmc_multiome_rna": Path("pbmc10x_multiome_tiny") / "10xpbmc_rna_subset.h5ad",
    "pbmc_multiome_atac": Path("pbmc10x_multiome_tiny") / "10xpbmc_atac_subset.h5ad",
    "myoblast_atac": Path("pliner2018_myoblast_sciatac") / "myoblast_sciatac_chr18.h5ad",
}

#: Hours of differentiation of the myoblast time points (Pliner et al. 2018).
MYOBLAST_HOURS = {"T0": 0.0, "T1": 24.0, "T2": 48.0, "T3": 72.0}


def data_dirs() -> list[Path]:
    """Folders searched, in order.

    ``$GENEGRAD_DATA``, ``~/.cache/genegrad``, then ``shared/data`` in or beside the working directory and its
    parents (the layout of the project's checkout).
    """
    dirs = []
    if os.environ.get("GENEGRAD_DATA"):
        dirs.append(Path(os.environ["GENEGRAD_DATA"]))
    dirs.append(Path.home() / ".cache" / "genegrad")
    here = Path.cwd().resolve()
    for parent in (here, *here.parents):
        dirs.append(parent / "shared" / "data")
        dirs.append(parent.parent / "shared" / "data")
    return list(dict.fromkeys(dirs))


def _read(name: str) -> ad.AnnData:
    for d in data_dirs():
        path = d / FILES[name]
        if path.is_file():
            return ad.read_h5ad(path)
    msg = (f"Dataset {name!r} not found offline (looked for {FILES[name]} under $GENEGRAD_DATA, "
           f"~/.cache/genegrad and shared/data beside the working directory). Put the file there or set "
           f"GENEGRAD_DATA to the folder that holds {FILES[name].parent}/.")
    raise FileNotFoundError(msg)


def paul15() -> ad.AnnData:
    """Mouse myeloid progenitors (Paul et al. 2015): 2,730 cells x 3,451 genes, raw UMI counts.

    ``obs['paul15_clusters']``: the 19 published clusters (erythroid/megakaryocyte 1-8, myeloid 9-19);
    ``uns['iroot']``: the root cell of the scanpy tutorials. No lineage-traced fate: cluster identity only.
    """
    return _read("paul15")


def treutlein_lung() -> ad.AnnData:
    """Mouse distal lung epithelium (Treutlein et al. 2014): 185 cells x 218 genes, FPKM-like expression.

    ``obs['Time']`` (E14.5, E16.5, E18.5, adult), Monocle's ``Pseudotime`` and ``State``, and
    ``state_inferred_celltype`` (progenitor-like, AT1, AT2; derived from marker means, not published labels).
    ``var['gene_short_name']``: gene symbols.
    """
    return _read("treutlein_lung")


def granja_atac() -> ad.AnnData:
    """Human bone-marrow scATAC-seq (Granja et al. 2019): 600 cells x 5,000 random peaks (hg19), fragment counts.

    ``obs['BioClassification']``: six cell types, 100 cells each (``01_HSC``, ``05_CMP.LMPP``, ``07_GMP``,
    ``15_CLP.2``, ``17_B``, ``19_CD8.N``): the hierarchy HSC -> CMP/LMPP -> GMP and HSC -> CLP -> B. Peak
    coordinates in ``var['seqnames']``, ``['start']``, ``['end']``; the published UMAP in
    ``obsm['X_umap_published']``. No lineage-traced fate.
    """
    return _read("granja_atac")


def pbmc_multiome() -> tuple[ad.AnnData, ad.AnnData]:
    """A tiny paired RNA + ATAC subset of 10x Genomics' PBMC multiome: ``(rna, atac)``, 98 cells x 200 features each.

    The same cells in both, in the same order and under the same names (the distributed ``_rna`` and ``_atac``
    suffixes stripped), so :func:`genegrad.pp.transfer_manifold` pairs them as they are; the 2 of the 100
    distributed cells without a fragment in these 200 peaks are left out. ATAC peaks with ``var['chr']``,
    ``['start']``, ``['end']`` (GRCh38); ``obs['celltype']`` a cluster id. A fixture for paired-modality code
    paths: too small for biology.
    """
    rna, atac = _read("pbmc_multiome_rna"), _read("pbmc_multiome_atac")
    rna.obs_names = rna.obs_names.str.removesuffix("_rna")
    atac.obs_names = atac.obs_names.str.removesuffix("_atac")
    atac = atac[rna.obs_names]
    seen = (np.asarray(atac.X.sum(axis=1)).ravel() > 0) & (np.asarray(rna.X.sum(axis=1)).ravel() > 0)
    return rna[seen].copy(), atac[seen].copy()


def myoblast_atac() -> ad.AnnData:
    """Differentiating human myoblasts, sci-ATAC-seq (Pliner et al. 2018): 200 cells x 6,146 chr18 peaks (hg19).

    Raw read counts (about 40-900 per cell). ``obs['timepoint']``: ``T0`` < ``T1`` < ``T2`` < ``T3`` (ordered
    categories) and ``obs['hours']`` (0, 24, 48, 72 h of differentiation): a real time course, one trajectory from
    proliferating myoblasts to differentiating myotubes. Peak coordinates in ``var['chrom']``, ``['start']``,
    ``['end']``. ``uns['genes']``: the GENCODE chr18 genes (``chrom``, ``start``, ``end``, ``strand``,
    ``gene_name``; each gene's span over its exons), ready for :func:`genegrad.pp.gene_activity`.
    """
    adata = _read("myoblast_atac")
    adata.obs["hours"] = adata.obs["timepoint"].astype(str).map(MYOBLAST_HOURS).astype(np.float64)
    exons = pd.DataFrame(adata.uns.pop("gene_annotation_chr18_hg19"))
    genes = exons.groupby("symbol", observed=True).agg(chrom=("chromosome", "first"), start=("start", "min"),
                                                      end=("end", "max"), strand=("strand", "first"))
    adata.uns["genes"] = genes.reset_index().rename(columns={"symbol": "gene_name"})[
        ["chrom", "start", "end", "strand", "gene_name"]]
    return adata
