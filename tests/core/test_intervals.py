"""Genomic intervals against brute force and hand-written windows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genegrad._core import _intervals


def test_overlaps_match_brute_force_on_random_intervals():
    """Half-open intervals: [s, e) and [a, b) overlap when s < b and e > a (touching ends do not), per
    chromosome; peaks of very different widths (the search window grows with the widest)."""
    rng = np.random.default_rng(0)
    chroms = np.array(["chr1", "chr2", "chrX"])
    ps = rng.integers(0, 5000, 300)
    peaks = pd.DataFrame({"chrom": rng.choice(chroms, 300), "start": ps,
                          "end": ps + rng.choice([1, 50, 400, 2500], 300)})
    ws = rng.integers(0, 5000, 80)
    windows = pd.DataFrame({"chrom": rng.choice(np.append(chroms, "chrY"), 80), "start": ws,
                            "end": ws + rng.integers(1, 800, 80)})
    # touching ends, exactly: a window ending where a peak starts, one starting where a peak ends
    peaks.loc[0, ["chrom", "start", "end"]] = ["chr1", 1000, 1100]
    windows.loc[0, ["chrom", "start", "end"]] = ["chr1", 900, 1000]
    windows.loc[1, ["chrom", "start", "end"]] = ["chr1", 1100, 1200]
    M = _intervals.overlaps(peaks, windows).toarray()
    brute = np.zeros((300, 80))
    for i, p in peaks.iterrows():
        for j, w in windows.iterrows():
            brute[i, j] = float(p.chrom == w.chrom and p.start < w.end and p.end > w.start)
    np.testing.assert_array_equal(M, brute)
    assert M[0, 0] == 0
    assert M[0, 1] == 0
    assert M.sum() > 50  # the fixture has overlaps to find


def test_overlaps_with_no_shared_chromosome_is_empty():
    peaks = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10]})
    windows = pd.DataFrame({"chrom": ["chr2", "chr1"], "start": [0, 20], "end": [10, 30]})
    M = _intervals.overlaps(peaks, windows)
    assert M.shape == (1, 2)
    assert M.nnz == 0
    assert M.dtype == np.float32


def test_overlaps_single_candidates_and_a_chromosome_without_any():
    """chr1 has no overlap at all, chr2 exactly one candidate pair (which overlaps), chr3 one more: every
    chromosome is searched whatever the ones before it held."""
    peaks = pd.DataFrame({"chrom": ["chr1", "chr2", "chr3"], "start": [0, 100, 5], "end": [10, 200, 6]})
    windows = pd.DataFrame({"chrom": ["chr1", "chr2", "chr3"], "start": [500, 150, 0], "end": [600, 160, 10]})
    np.testing.assert_array_equal(_intervals.overlaps(peaks, windows).toarray(), np.diag([0, 1, 1]))


def test_gene_windows_follow_the_strand():
    """Promoter windows around the TSS (the start on +, the end on -), upstream against the direction of
    transcription; with gene_body, the whole gene plus the flanks; clipped at 0 and at least [0, 1)."""
    genes = pd.DataFrame({"chrom": ["c1", "c1", "c2"], "start": [1000, 5000, 50], "end": [2000, 6000, 80],
                          "strand": ["+", "-", "+"]})
    tss = _intervals.gene_windows(genes, upstream=300, downstream=100, gene_body=False)
    np.testing.assert_array_equal(tss["start"], [700, 5900, 0])
    np.testing.assert_array_equal(tss["end"], [1100, 6300, 150])
    body = _intervals.gene_windows(genes, upstream=300, downstream=100, gene_body=True)
    np.testing.assert_array_equal(body["start"], [700, 4900, 0])
    np.testing.assert_array_equal(body["end"], [2100, 6300, 180])
    assert list(body["chrom"]) == ["c1", "c1", "c2"]
    tiny = _intervals.gene_windows(pd.DataFrame({"chrom": ["c"], "start": [0], "end": [0], "strand": ["-"]}),
                                   upstream=0, downstream=5, gene_body=False)
    assert (tiny["start"].iloc[0], tiny["end"].iloc[0]) == (0, 1)


def test_looks_like_peaks_needs_nine_in_ten():
    peaks = [f"chr1:{i}-{i + 100}" for i in range(9)]
    assert _intervals.looks_like_peaks([*peaks, "GAPDH"])
    assert not _intervals.looks_like_peaks([*peaks[:8], "GAPDH", "ACTB"])
    assert _intervals.looks_like_peaks(["chr2_5_10", "chrX-1-2"])
    assert not _intervals.looks_like_peaks([])
    # only the first n names are read
    assert _intervals.looks_like_peaks([*peaks, *["GENE"] * 100], n=9)
