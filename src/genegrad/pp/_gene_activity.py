"""Gene activity scores from peak counts: the fragments in each gene's body and promoter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from .. import _keys
from .._core import _intervals
from .._validation import check_counts, check_range, warn
from ._transfer import transfer_manifold

if TYPE_CHECKING:
    import anndata as ad

logger = logging.getLogger(__name__)

#: Column names accepted for a peak's chromosome in ``adata.var``.
CHROM_COLUMNS = ("chrom", "chr", "seqnames", "chromosome")


def gene_activity(
    adata: ad.AnnData,
    annotation: str | Path | pd.DataFrame,
    *,
    upstream: int = 2000,
    downstream: int = 0,
    gene_body: bool = True,
    layer: str | None = None,
    target_sum: float = 1e4,
    key: str = _keys.UNS,
) -> ad.AnnData:
    """Gene activity: per cell, the counts of the peaks that overlap each gene's body and promoter.

    The window of a gene is its body extended by ``upstream`` bases before its transcription start site and
    ``downstream`` after its end, on its strand (Signac's ``GeneActivity``); with ``gene_body=False``, only
    ``[TSS - upstream, TSS + downstream]``. A peak counts for every gene whose window it overlaps. The scores are
    normalised and log-transformed like RNA, so that :func:`genegrad.tl.gradients` differentiates them on the
    ATAC manifold, which the result carries when ``adata`` has one (:func:`transfer_manifold`).

    Parameters
    ----------
    adata
        Peak counts (cells x peaks): raw counts in ``layers['counts']`` (as :func:`preprocess_atac` keeps them),
        else in ``X``; or the layer named by ``layer``. Peak coordinates in ``var`` (a chromosome column, one of
        ``chrom``, ``chr``, ``seqnames``, ``chromosome``, with ``start`` and ``end``) or in the peak names
        (``chr1:100-200``, ``chr1_100_200`` or ``chr1-100-200``).
    annotation
        Genes: a GTF file (``gene`` records; ``gene_name``, else ``gene_id``; 1-based), a BED file (chrom,
        start, end, name and optionally score and strand; 0-based), either possibly gzipped, or a DataFrame
        with ``chrom``, ``start``, ``end``, ``gene_name`` and optionally ``strand`` (0-based, end excluded).
        Use the genome build of the peaks.
    upstream, downstream
        Bases added before the TSS and after the gene's end (after the TSS with ``gene_body=False``).
    gene_body
        Count the gene body, or only the promoter window.
    layer
        Layer with the peak counts (default: ``'counts'`` when present, else ``X``).
    target_sum
        Normalisation target of the log-normalised scores.
    key
        Manifold carried over from ``adata`` when present (``uns[key]``).

    Returns
    -------
    A new AnnData (cells x genes with at least one peak): ``X`` the log-normalised activity (CSR float32),
    ``layers['counts']`` the summed counts, ``var`` the gene coordinates and ``n_peaks``; ``obs`` and ``obsm``
    copied from ``adata``, and its manifold when it has one. ``adata`` is not modified.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> import genegrad as gg
    >>> peaks = ad.AnnData(np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]]),
    ...                    var=pd.DataFrame(index=["chr1:100-200", "chr1:900-1000", "chr2:50-80"]))
    >>> genes = pd.DataFrame({"chrom": ["chr1", "chr2"], "start": [950, 0], "end": [5000, 60],
    ...                       "strand": ["+", "-"], "gene_name": ["A", "B"]})
    >>> ga = gg.pp.gene_activity(peaks, genes, upstream=100)
    >>> ga.layers["counts"].toarray()
    array([[2., 0.],
           [1., 3.]], dtype=float32)
    """
    import anndata as ad

    check_range("upstream", upstream, 0, None, integer=True)
    check_range("downstream", downstream, 0, None, integer=True)
    check_range("target_sum", target_sum, 1e-12, None)
    if not isinstance(gene_body, bool):
        msg = f"Expected `gene_body` to be True or False, got {gene_body!r}."
        raise TypeError(msg)
    if layer is None and "counts" in adata.layers:
        layer = "counts"
    raw, _ = check_counts(adata, layer, integer=True, nonempty=False)
    C = sparse.csr_matrix(raw, dtype=np.float32)

    peaks = peak_ranges(adata)
    genes = read_annotation(annotation)
    windows = _intervals.gene_windows(genes, upstream=upstream, downstream=downstream, gene_body=gene_body)
    M = _intervals.overlaps(peaks, windows)  # peaks x genes, 0/1
    n_peaks = np.diff(M.tocsc().indptr)
    has = n_peaks > 0
    if not has.any():
        chroms_p = sorted(set(peaks["chrom"]))[:5]
        chroms_g = sorted(set(genes["chrom"]))[:5]
        msg = (f"No peak overlaps any gene window: check that peaks and annotation use the same genome build and "
               f"chromosome names (peaks: {chroms_p}, annotation: {chroms_g}).")
        raise ValueError(msg)
    logger.info("%d of %d genes have peaks in their window", int(has.sum()), len(genes))
    A = sparse.csr_matrix(C @ M[:, has], dtype=np.float32)
    depth = np.asarray(A.sum(axis=1), dtype=np.float64).ravel()
    X = sparse.diags(np.divide(target_sum, depth, out=np.zeros_like(depth), where=depth > 0)) @ A
    X = sparse.csr_matrix(X, dtype=np.float32)
    X.data = np.log1p(X.data)
    var = genes.loc[has, ["chrom", "start", "end", "strand"]].copy()
    var["n_peaks"] = n_peaks[has]
    var.index = pd.Index(genes.loc[has, "gene_name"].astype(str).to_numpy())
    out = ad.AnnData(X=X, obs=adata.obs.copy(), var=var)
    out.layers["counts"] = A
    for k, v in adata.obsm.items():
        if not k.startswith(f"{key}_"):
            out.obsm[k] = v.copy()
    out.uns[_keys.PREPROCESS] = {"modality": "gene_activity", "target_sum": float(target_sum),
                                 "upstream": int(upstream), "downstream": int(downstream),
                                 "gene_body": bool(gene_body)}
    if key in adata.uns:
        transfer_manifold(out, adata, key=key)
    return out


def peak_ranges(adata: ad.AnnData) -> pd.DataFrame:
    """Chromosome, start and end of every peak, from ``var`` columns or, failing that, from the peak names."""
    var = adata.var
    chrom_col = next((c for c in CHROM_COLUMNS if c in var.columns), None)
    if chrom_col is not None and {"start", "end"} <= set(var.columns):
        out = pd.DataFrame({"chrom": var[chrom_col].astype(str).to_numpy(),
                            "start": pd.to_numeric(var["start"]).to_numpy(np.int64),
                            "end": pd.to_numeric(var["end"]).to_numpy(np.int64)})
    else:
        parsed = pd.Series(adata.var_names.astype(str)).str.extract(_intervals.PEAK_NAME)
        bad = parsed["chrom"].isna()
        if bad.any():
            example = adata.var_names[np.flatnonzero(bad.to_numpy())[0]]
            msg = (f"Peak coordinates not found: `adata.var` has no chromosome/start/end columns (chromosome one of "
                   f"{list(CHROM_COLUMNS)}) and {int(bad.sum())} peak names do not read as 'chr1:100-200', "
                   f"'chr1_100_200' or 'chr1-100-200' (e.g. {example!r}). Add the columns to `adata.var`.")
            raise ValueError(msg)
        out = pd.DataFrame({"chrom": parsed["chrom"].to_numpy(), "start": parsed["start"].astype(np.int64).to_numpy(),
                            "end": parsed["end"].astype(np.int64).to_numpy()})
    if np.any(out["end"].to_numpy() < out["start"].to_numpy()):
        msg = "Some peaks end before they start; check the `start` and `end` of `adata.var`."
        raise ValueError(msg)
    return out


def read_annotation(annotation: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Genes as a DataFrame (``chrom``, 0-based ``start``, ``end``, ``strand``, ``gene_name``), first of duplicates."""
    if not isinstance(annotation, (str, Path, pd.DataFrame)):
        msg = (f"Expected `annotation` to be a GTF or BED path or a DataFrame, got {type(annotation).__name__}; "
               "e.g. `gene_activity(adata, 'genes.gtf.gz')`.")
        raise TypeError(msg)
    if isinstance(annotation, pd.DataFrame):
        need = {"chrom", "start", "end", "gene_name"}
        if not need <= set(annotation.columns):
            msg = (f"Expected the annotation DataFrame to have columns {sorted(need)} (and optionally 'strand'), "
                   f"got {list(annotation.columns)}.")
            raise ValueError(msg)
        genes = annotation.loc[:, [c for c in ("chrom", "start", "end", "strand", "gene_name")
                                   if c in annotation.columns]].copy()
    else:
        path = Path(annotation)
        if not path.is_file():
            msg = f"Annotation file {str(path)!r} not found; pass a GTF or BED file of the peaks' genome build."
            raise FileNotFoundError(msg)
        suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
        if suffixes and suffixes[-1] in (".gtf", ".gff"):
            genes = _read_gtf(path)
        elif suffixes and suffixes[-1] == ".bed":
            genes = _read_bed(path)
        else:
            msg = f"Expected a .gtf or .bed annotation (possibly .gz), got {path.name!r}."
            raise ValueError(msg)
    if "strand" not in genes:
        genes["strand"] = "+"
    strand = genes["strand"].astype(str)
    unknown = ~strand.isin(["+", "-"])
    if unknown.any():
        warn(f"{int(unknown.sum())} genes have a strand other than '+' or '-' (e.g. {strand[unknown].iloc[0]!r}); "
             "they are read as '+' (the TSS at their start).")
    genes["strand"] = strand.where(~unknown, "+")
    genes["chrom"] = genes["chrom"].astype(str)
    genes["start"] = pd.to_numeric(genes["start"]).astype(np.int64)
    genes["end"] = pd.to_numeric(genes["end"]).astype(np.int64)
    genes["gene_name"] = genes["gene_name"].astype(str)
    if genes.empty:
        msg = "The annotation holds no genes."
        raise ValueError(msg)
    dup = genes["gene_name"].duplicated()
    if dup.any():
        warn(f"{int(dup.sum())} genes appear more than once in the annotation (e.g. "
             f"{genes.loc[dup, 'gene_name'].iloc[0]!r}); the first record of each is used.")
        genes = genes.loc[~dup]
    return genes.reset_index(drop=True)


def _read_gtf(path: Path) -> pd.DataFrame:
    cols = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attributes"]
    gtf = pd.read_csv(path, sep="\t", comment="#", header=None, names=cols, dtype={"chrom": str},
                      usecols=range(9))
    gtf = gtf.loc[gtf["feature"] == "gene"]
    if gtf.empty:
        msg = f"No 'gene' records in {path.name!r}; genegrad reads the gene lines of a GTF."
        raise ValueError(msg)
    name = gtf["attributes"].str.extract(r'gene_name "([^"]+)"', expand=False)
    gid = gtf["attributes"].str.extract(r'gene_id "([^"]+)"', expand=False)
    return pd.DataFrame({"chrom": gtf["chrom"].to_numpy(), "start": gtf["start"].to_numpy() - 1,
                         "end": gtf["end"].to_numpy(), "strand": gtf["strand"].to_numpy(),
                         "gene_name": name.fillna(gid).to_numpy()})


def _read_bed(path: Path) -> pd.DataFrame:
    bed = pd.read_csv(path, sep="\t", comment="#", header=None, dtype={0: str})
    if bed.shape[1] < 4:
        msg = f"Expected a BED file with at least 4 columns (chrom, start, end, name), got {bed.shape[1]}."
        raise ValueError(msg)
    out = pd.DataFrame({"chrom": bed[0], "start": bed[1], "end": bed[2], "gene_name": bed[3]})
    if bed.shape[1] >= 6:
        out["strand"] = bed[5]
    return out
