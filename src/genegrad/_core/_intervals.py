"""Genomic intervals: peak names, gene windows and their overlaps with peaks (pure numerics, no AnnData)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numpy.typing import NDArray

#: Peak names that read as intervals: ``chr1:100-200``, ``chr1_100_200``, ``chr1-100-200``.
PEAK_NAME = re.compile(r"^(?P<chrom>.+?)[:_-](?P<start>\d+)[_-](?P<end>\d+)$")


def looks_like_peaks(names: Iterable, n: int = 1000) -> bool:
    """Whether nine in ten of the first ``n`` feature names read as genomic intervals."""
    head = [str(x) for _, x in zip(range(n), names, strict=False)]
    return bool(head) and sum(PEAK_NAME.match(x) is not None for x in head) >= 0.9 * len(head)


def gene_windows(genes: pd.DataFrame, *, upstream: int, downstream: int, gene_body: bool) -> pd.DataFrame:
    """Each gene's window ``[start, end)`` on its chromosome, strand-aware."""
    plus = genes["strand"].to_numpy() == "+"
    s, e = genes["start"].to_numpy(), genes["end"].to_numpy()
    if gene_body:
        lo = np.where(plus, s - upstream, s - downstream)
        hi = np.where(plus, e + downstream, e + upstream)
    else:
        tss = np.where(plus, s, e)
        lo = np.where(plus, tss - upstream, tss - downstream)
        hi = np.where(plus, tss + downstream, tss + upstream)
    return pd.DataFrame({"chrom": genes["chrom"].to_numpy(), "start": np.maximum(lo, 0), "end": np.maximum(hi, 1)})


def overlaps(peaks: pd.DataFrame, windows: pd.DataFrame) -> sparse.csr_matrix:
    """Peaks x windows 0/1 matrix: peak ``[s, e)`` overlaps window ``[a, b)`` when ``s < b`` and ``e > a``.

    Per chromosome, peaks sorted by start: the candidates of a window start in ``[a - W, b)`` (``W`` the widest
    peak) and are found by binary search; memory is the number of candidate pairs.
    """
    rows: list[NDArray] = []
    cols: list[NDArray] = []
    pchrom = peaks["chrom"].to_numpy()
    wchrom = windows["chrom"].to_numpy()
    for chrom in np.intersect1d(np.unique(pchrom), np.unique(wchrom)):
        pi = np.flatnonzero(pchrom == chrom)
        order = np.argsort(peaks["start"].to_numpy()[pi], kind="stable")
        pi = pi[order]
        ps = peaks["start"].to_numpy()[pi]
        pe = peaks["end"].to_numpy()[pi]
        width = int((pe - ps).max())
        wi = np.flatnonzero(wchrom == chrom)
        a = windows["start"].to_numpy()[wi]
        b = windows["end"].to_numpy()[wi]
        lo = np.searchsorted(ps, a - width, side="left")
        hi = np.searchsorted(ps, b, side="left")
        n = hi - lo
        if n.sum() == 0:
            continue
        win = np.repeat(np.arange(wi.size), n)
        pos = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        hit = (pe[pos] > a[win]) & (ps[pos] < b[win])
        rows.append(pi[pos[hit]])
        cols.append(wi[win[hit]])
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    return sparse.csr_matrix((np.ones(r.size, dtype=np.float32), (r, c)), shape=(len(peaks), len(windows)))
