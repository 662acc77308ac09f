"""Validators shared by the public functions: messages name the problem and the fix."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

if TYPE_CHECKING:
    from collections.abc import Sequence

    import anndata as ad


class GenegradWarning(UserWarning):
    """The one warning class genegrad raises."""


def warn(msg: str, stacklevel: int = 3, *, into: list[str] | None = None) -> None:
    """Warn from the caller's frame.

    ``into``, a tool's list of its warnings, keeps the message too: the tool stores it with its results, where the
    report shows it.
    """
    if into is not None:
        into.append(msg)
    warnings.warn(msg, GenegradWarning, stacklevel=stacklevel)


def as_rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, a generator or ``None`` (seed 0, for determinism)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    msg = f"Expected `rng` to be an int, a numpy Generator or None, got {type(rng).__name__}."
    raise TypeError(msg)


def check_n_jobs(n_jobs: Any) -> None:
    """``n_jobs``: a non-zero integer (``-1``: every core, ``-2``: all but one) or ``None`` (one thread)."""
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0):
        msg = f"Expected `n_jobs` to be a non-zero integer (-1: every core) or None (1 thread), got {n_jobs!r}."
        raise ValueError(msg)


def check_range(name: str, value: Any, low: float | None, high: float | None, *, integer: bool = False) -> None:
    """sklearn-style range check: "Expected `n_neighbors` in [2, 499], got 0."."""
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok_type:
        msg = f"Expected `{name}` to be {kind}, got {value!r} ({type(value).__name__})."
        raise TypeError(msg)
    if (low is not None and value < low) or (high is not None and value > high) or not np.isfinite(value):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        msg = f"Expected `{name}` in [{lo}, {hi}], got {value!r}."
        raise ValueError(msg)


def require_key(adata: ad.AnnData, slot: str, key: str, *, fix: str) -> None:
    """Raise ``KeyError`` naming the missing ``adata.<slot>[key]``, what is there, and how to fill it."""
    mapping = getattr(adata, slot)
    if key not in mapping:
        have = list(mapping.keys())
        msg = f"`adata.{slot}['{key}']` not found (available: {have}); {fix}."
        raise KeyError(msg)


def fate_bias_info(adata: ad.AnnData, key: str) -> Any:
    """``adata.uns[key]['fate_bias']``, or a ``KeyError`` that says to run :func:`genegrad.tl.fate_bias` first."""
    require_key(adata, "uns", key, fix="run `genegrad.pp.manifold` first")
    info = adata.uns[key].get("fate_bias")
    if info is None:
        msg = f"No fate probabilities under `adata.uns['{key}']['fate_bias']`; run `genegrad.tl.fate_bias` first."
        raise KeyError(msg)
    return info


def fate_program(info: Any, j: int) -> Any:
    """The program (``genes``, ``weights``) of the ``j``-th fate in ``uns[key]['fate_bias']``.

    Stored under the fate's position (a name may hold '/', a path in HDF5); by name in results written before.
    """
    programs = info["programs"]
    return programs[str(j)] if str(j) in programs else programs[str(info["fates"][j])]


def fate_terminal(adata: ad.AnnData, key: str) -> np.ndarray:
    """Each cell's terminal state in the last :func:`genegrad.tl.fate_bias` run (``''`` for other cells)."""
    info = fate_bias_info(adata, key)
    col = f"{key}_terminal_states"
    if col not in adata.obs:
        msg = (f"`adata.obs['{col}']` not found: it was removed, or `genegrad.tl.fate_bias` ran with an older "
               "genegrad; run `genegrad.tl.fate_bias` again.")
        raise KeyError(msg)
    values = adata.obs[col].astype(object)
    terminal = values.where(values.notna(), "").astype(str).to_numpy()
    unknown = sorted(set(terminal) - {"", *(str(f) for f in info["fates"])})
    if unknown:
        msg = (f"`adata.obs['{col}']` holds {unknown[:5]}, not fates of the last `genegrad.tl.fate_bias` run; "
               "run it again.")
        raise ValueError(msg)
    return terminal


#: The largest diffusion time accepted: each step is a sparse product over every cell, and far fewer steps
#: already smooth a signal to its mean over the graph.
MAX_SCALE = 256


def check_scales(scales: Sequence[int]) -> tuple[int, ...]:
    """Scales: a non-empty collection of distinct integers in ``[0, MAX_SCALE]``, returned sorted."""
    try:
        vals = [int(t) for t in scales]
    except (TypeError, ValueError):
        msg = f"Expected `scales` to be a sequence of non-negative ints, got {scales!r}."
        raise TypeError(msg) from None
    if not vals:
        msg = "Expected at least one scale in `scales`, got an empty sequence; use e.g. (0, 1, 2, 4, 8)."
        raise ValueError(msg)
    if any(v != t for v, t in zip(vals, scales, strict=True)) or min(vals) < 0:
        msg = f"Expected `scales` to be non-negative integers (diffusion steps), got {list(scales)!r}."
        raise ValueError(msg)
    if max(vals) > MAX_SCALE:
        msg = (f"Expected `scales` of at most {MAX_SCALE} diffusion steps, got {max(vals)}: each step is a product "
               "over every cell, and far fewer steps smooth a signal to its mean; use e.g. (0, 1, 2, 4, 8).")
        raise ValueError(msg)
    if len(set(vals)) != len(vals):
        msg = f"Expected distinct `scales`, got {list(scales)!r}."
        raise ValueError(msg)
    return tuple(sorted(vals))


def check_scale(scale: int, scales: Sequence[int]) -> int:
    """One of the computed ``scales``, or a ValueError that lists them."""
    if scale not in list(scales):
        msg = f"Expected `scale` in {list(scales)}, got {scale!r}."
        raise ValueError(msg)
    return int(scale)


def check_cell_mask(cells, n_obs: int, name: str = "cells"):
    """A boolean mask over the cells, of the right length."""
    import numpy as np

    mask = np.asarray(cells)
    if mask.dtype != bool or mask.shape != (n_obs,):
        msg = (f"Expected `{name}` to be a boolean mask of length {n_obs} (one entry per cell), got "
               f"{mask.dtype} of shape {mask.shape}; e.g. `adata.obs['segment'] == 0`.")
        raise ValueError(msg)
    return mask


def check_finite(name: str, X: Any) -> None:
    """Raise if a dense or sparse matrix holds NaN or infinite values."""
    data = X.data if sparse.issparse(X) else np.asarray(X)
    if data.dtype.kind in "fc" and not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.isfinite(data).sum())
        msg = f"`{name}` contains {bad} NaN or infinite values; remove or impute them first."
        raise ValueError(msg)


def check_unique_names(adata: ad.AnnData) -> None:
    """Duplicated cell or gene names make results ambiguous."""
    for axis, names, fix in (("obs", adata.obs_names, "obs_names_make_unique"),
                             ("var", adata.var_names, "var_names_make_unique")):
        if not names.is_unique:
            dup = names[names.duplicated()].unique()[:5].tolist()
            msg = f"`adata.{axis}_names` has duplicates, e.g. {dup}; call `adata.{fix}()` first."
            raise ValueError(msg)


def resolve_genes(adata: ad.AnnData, genes: Sequence[str] | str | None) -> list[str]:
    """Genes to use: all requested must exist (the missing ones are listed)."""
    if genes is None:
        return list(adata.var_names)
    if isinstance(genes, str):
        genes = [genes]
    genes = list(genes)
    if not genes:
        msg = "Expected at least one gene in `genes`, got an empty list."
        raise ValueError(msg)
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        msg = f"Genes not found in `adata.var_names`: {missing[:10]}{more}."
        raise KeyError(msg)
    if len(set(genes)) != len(genes):
        msg = "`genes` lists some genes more than once; pass each gene once."
        raise ValueError(msg)
    return genes


def highly_variable(adata: ad.AnnData) -> np.ndarray | None:
    """``var['highly_variable']`` as a boolean mask, read strictly; ``None`` when there is no such column.

    Booleans only: NaN or strings such as ``'False'`` would be truthy and select the wrong genes.
    """
    if "highly_variable" not in adata.var:
        return None
    col = adata.var["highly_variable"]
    if pd.api.types.is_bool_dtype(col) and not col.isna().any():
        return col.to_numpy(dtype=bool)
    example = col[~col.isin([True, False]) | col.isna()].head(3).tolist() if len(col) else []
    msg = (f"`adata.var['highly_variable']` must hold booleans (True/False, no missing values), got dtype "
           f"{col.dtype} (e.g. {example}); fix it, e.g. `adata.var['highly_variable'] = "
           "adata.var['highly_variable'].astype(str).eq('True')`, or pass `genes`.")
    raise TypeError(msg)


def default_genes(adata: ad.AnnData, genes: Sequence[str] | str | None) -> list[str]:
    """``genes`` checked by :func:`resolve_genes`; by default the highly variable genes, else every gene."""
    if genes is None:
        mask = highly_variable(adata)
        if mask is not None:
            if not mask.any():
                msg = "`adata.var['highly_variable']` selects no gene; pass `genes` or recompute it."
                raise ValueError(msg)
            genes = list(adata.var_names[mask])
    return resolve_genes(adata, genes)


def gene_positions(adata: ad.AnnData, genes: Sequence[str], *, rerun: str | None = None) -> np.ndarray:
    """Positions of ``genes`` in ``adata.var_names``; every gene must be there.

    Never ``-1`` (which, used as an index, reads the last gene): a gene missing from ``var_names`` raises. With
    ``rerun`` the genes come from a stored result, and the message says that genes were removed since that step.
    """
    genes = [str(g) for g in genes]
    pos = adata.var_names.get_indexer(genes)
    if np.any(pos < 0):
        missing = [g for g, p in zip(genes, pos, strict=True) if p < 0]
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        if rerun is None:
            msg = f"Genes not found in `adata.var_names`: {missing[:5]}{more}."
        else:
            msg = (f"{len(missing)} genes that `{rerun}` used are no longer in `adata.var_names` (e.g. "
                   f"{missing[:5]}{more}): genes were removed since. Run `{rerun}` again on this AnnData.")
        raise KeyError(msg)
    return pos.astype(np.int64)


#: Values checked to be integers: a strided sample over the whole matrix, enough to catch normalised data.
INTEGER_SAMPLE = 1_000_000


def canonical(X: Any) -> Any:
    """``X`` itself, or for sparse input with duplicate or unsorted entries a canonical copy (duplicates summed).

    The caller's matrix is never modified: a CSR matrix with two entries at one position means their sum, as
    the dense matrix would, but not every routine reads it so.
    """
    if not sparse.issparse(X):
        return X
    if X.format not in ("csr", "csc"):
        X = sparse.csr_matrix(X)  # a new matrix: duplicates summed by the conversion
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def sample_values(X: Any) -> np.ndarray:
    """Up to :data:`INTEGER_SAMPLE` stored values of ``X``, strided over the whole matrix."""
    data = (X.data if sparse.issparse(X) else np.asarray(X)).ravel()
    return data[:: max(1, data.size // INTEGER_SAMPLE)]


def check_counts(adata: ad.AnnData, layer: str | None, *, integer: bool = True, nonempty: bool = True):
    """The counts in ``X`` or ``layers[layer]`` and their name for messages, after every check.

    In memory, finite, non-negative counts (integers when ``integer``, checked on a strided sample of the stored
    values: log-normalised or normalised data are refused, with the fix), and with ``nonempty`` no cell without
    counts. Sparse input is returned canonical (duplicates summed, on a copy). The preprocessing tools all read
    their counts through this.
    """
    if adata.isbacked:
        msg = "`adata` is backed (on disk); load it with `adata.to_memory()` first."
        raise ValueError(msg)
    if layer is not None and layer not in adata.layers:
        msg = f"`adata.layers['{layer}']` not found (available: {list(adata.layers)}); pass another `layer`."
        raise KeyError(msg)
    counts = adata.X if layer is None else adata.layers[layer]
    name = "adata.X" if layer is None else f"adata.layers['{layer}']"
    if counts is None:
        msg = f"`{name}` is empty; put the raw counts there or pass the `layer` that holds them."
        raise ValueError(msg)
    counts = canonical(counts)
    check_finite(name, counts)
    data = counts.data if sparse.issparse(counts) else np.asarray(counts)
    if data.size and data.min() < 0:
        msg = (f"Expected non-negative counts in `{name}`, got values down to {data.min():g}: it holds a "
               "transformed signal (scaled or centred?); pass the raw counts (or the `layer` that holds them).")
        raise ValueError(msg)
    sample = sample_values(counts)
    if integer and sample.size and np.any(np.mod(sample, 1) != 0):
        example = float(sample[np.flatnonzero(np.mod(sample, 1) != 0)[0]])
        hints = []
        if layer is None and "log1p" in adata.uns:
            hints.append("`adata.uns['log1p']` says it was log-transformed")
        if layer is None and "counts" in adata.layers:
            hints.append("the counts seem to be in a layer: pass `layer='counts'`")
        hint = f" ({'; '.join(hints)})" if hints else ""
        msg = (f"Expected raw counts (non-negative integers) in `{name}`, got non-integers such as {example:g}: "
               f"normalised or log-transformed data{hint}. Pass the raw counts (or the `layer` that holds them); "
               "corrected counts (e.g. ambient-RNA removal) can be rounded first with `numpy.rint`.")
        raise ValueError(msg)
    if nonempty:
        totals = np.asarray(counts.sum(axis=1)).ravel()
        if np.any(totals <= 0):
            msg = (f"{int((totals <= 0).sum())} cells have no counts in `{name}`; remove them first, e.g. with "
                   "`scanpy.pp.filter_cells(adata, min_counts=1)`.")
            raise ValueError(msg)
    return counts, name


def check_counts_layer(adata: ad.AnnData, counts: Any, *, layer: str | None, name: str, tool: str) -> None:
    """Refuse to overwrite a ``layers['counts']`` that differs from the ``counts`` ``tool`` reads (from ``name``)."""
    if layer != "counts" and "counts" in adata.layers and not same_matrix(adata.layers["counts"], counts):
        msg = (f"`adata.layers['counts']` exists and differs from the counts in `{name}`: {tool} would overwrite "
               "it. Pass `layer='counts'` to use it, or move it (e.g. `adata.layers['counts_old'] = "
               "adata.layers.pop('counts')`).")
        raise ValueError(msg)


def same_matrix(A: Any, B: Any) -> bool:
    """Whether two dense or sparse matrices hold the same values."""
    if A.shape != B.shape:
        return False
    diff = (sparse.csr_matrix(A, dtype=np.float64) - sparse.csr_matrix(B, dtype=np.float64))
    return diff.count_nonzero() == 0
