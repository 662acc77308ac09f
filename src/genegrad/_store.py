"""A chunked zarr store for the cells x genes x dims x scales gradient tensor and its standard errors.

Storage, used by :mod:`genegrad.tl` (writing) and :mod:`genegrad.get` (reading). A store owns its folder: it is
written beside the target under a temporary name and renamed into place, it replaces only a folder that holds
its own marker (``genegrad-store.json``), and it records the cells and genes its rows and columns are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._files import OwnedFolder

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

#: The marker file that makes a folder a genegrad gradient store.
MARKER = "genegrad-store.json"
FORMAT = "genegrad-gradients"


def names_hash(names: Sequence[str]) -> str:
    """A fingerprint of an ordered list of names (cells or genes)."""
    h = hashlib.blake2b(digest_size=16)
    for name in names:
        b = str(name).encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


class StoreError(ValueError):
    """A store that is missing, foreign, rewritten since, or not what the AnnData recorded."""


class GradientStore:
    """The gradients of :func:`genegrad.tl.gradients` with ``store='zarr'``: ``path/gradients`` and ``path/se``.

    Arrays are chunked by gene blocks (all cells, dims and scales of a block in one chunk), so reading a few
    genes reads only their chunks. The marker records a store id, the shape, and the cells and genes.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from genegrad.io import GradientStore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     s = GradientStore.create(tmp + "/g.zarr", cells=list("abcde"), genes=["x", "y", "z"], n_dims=2,
    ...                              n_scales=2, gene_chunk=2)
    ...     s.write(0, np.ones((5, 2, 2, 2), np.float32), np.ones((5, 2, 2), np.float32))
    ...     s.write(2, np.ones((5, 1, 2, 2), np.float32), np.ones((5, 1, 2), np.float32))
    ...     s.commit()
    ...     GradientStore(tmp + "/g.zarr").gradients([1], scale_index=0).shape
    (5, 1, 2)
    """

    def __init__(self, path: str | Path, *, store_id: str | None = None) -> None:
        import zarr

        self.path = Path(path)
        self.meta = read_marker(self.path)
        if store_id is not None and self.meta["id"] != store_id:
            msg = (f"The gradient store at {str(self.path)!r} was rewritten since this AnnData's "
                   "`genegrad.tl.gradients` call (by another call or another AnnData): its gradients are not this "
                   "AnnData's. Run `genegrad.tl.gradients(..., store='zarr')` again, with a path of its own.")
            raise StoreError(msg)
        self._grad = _open_checked(zarr, self.path / "gradients", tuple(self.meta["shape"]))
        n, g, _d, t = self.meta["shape"]
        self._se = _open_checked(zarr, self.path / "se", (n, g, t)) if self.meta.get("with_se") else None
        self._folder: OwnedFolder | None = None

    @classmethod
    def create(
        cls, path: str | Path, *, cells: Sequence[str], genes: Sequence[str], n_dims: int, n_scales: int,
        gene_chunk: int, with_se: bool = True,
    ) -> GradientStore:
        """An empty store written beside ``path`` under a temporary name; :meth:`commit` moves it into place.

        ``path`` must be new, an empty folder, or a genegrad store (which :meth:`commit` replaces); any other
        folder or file is refused (:class:`genegrad._files.OutputError`), and nothing in it is touched.
        """
        import zarr

        folder = OwnedFolder(path, MARKER, "gradient store")
        tmp = folder.path
        n_cells, n_genes = len(cells), len(genes)
        shape = (n_cells, n_genes, n_dims, n_scales)
        zarr.open_array(str(tmp / "gradients"), mode="w", shape=shape,
                        chunks=(n_cells, gene_chunk, n_dims, n_scales), dtype="float32")
        if with_se:
            zarr.open_array(str(tmp / "se"), mode="w", shape=(n_cells, n_genes, n_scales),
                            chunks=(n_cells, gene_chunk, n_scales), dtype="float32")
        meta = {"format": FORMAT, "version": 1, "id": uuid.uuid4().hex, "shape": list(shape), "with_se": with_se,
                "obs_hash": names_hash(cells), "var_hash": names_hash(genes)}
        (tmp / "obs_names.json").write_text(json.dumps([str(c) for c in cells]))
        (tmp / MARKER).write_text(json.dumps(meta))
        store = cls.__new__(cls)
        store.path, store.meta, store._folder = tmp, meta, folder
        store._grad = zarr.open_array(str(tmp / "gradients"), mode="r+")
        store._se = zarr.open_array(str(tmp / "se"), mode="r+") if with_se else None
        return store

    @property
    def id(self) -> str:
        """The store's id, recorded in the AnnData that wrote it."""
        return str(self.meta["id"])

    @property
    def shape(self) -> tuple[int, ...]:
        """``(cells, genes, dims, scales)``."""
        return tuple(self._grad.shape)

    def write(self, start: int, gradients: NDArray, se: NDArray | None) -> None:
        """Write a gene block starting at column ``start``."""
        stop = start + gradients.shape[1]
        self._grad[:, start:stop] = gradients
        if self._se is not None and se is not None:
            self._se[:, start:stop] = se

    def commit(self) -> None:
        """Move a store made by :meth:`create` into place (replacing the genegrad store there, if any)."""
        if self._folder is None:
            return
        import zarr

        self.path = self._folder.commit()
        self._folder = None
        self._grad = zarr.open_array(str(self.path / "gradients"), mode="r")
        self._se = zarr.open_array(str(self.path / "se"), mode="r") if self.meta["with_se"] else None

    def discard(self) -> None:
        """Remove a store made by :meth:`create` that was not committed (after a failure)."""
        if self._folder is not None:
            self._folder.discard()
            self._folder = None

    def rows_for(self, obs_names: Sequence[str]) -> NDArray[np.int64] | None:
        """Rows of ``obs_names`` in the store (``None`` when they are the store's cells in order); raises if absent."""
        names = [str(c) for c in obs_names]
        if names_hash(names) == self.meta["obs_hash"]:
            return None
        import pandas as pd

        stored = pd.Index(json.loads((self.path / "obs_names.json").read_text()))
        pos = stored.get_indexer(names)
        if np.any(pos < 0):
            missing = [c for c, p in zip(names, pos, strict=True) if p < 0][:3]
            msg = (f"{int((pos < 0).sum())} cells of this AnnData (e.g. {missing}) are not in the gradient store at "
                   f"{str(self.path)!r}; run `genegrad.tl.gradients(..., store='zarr')` again on this AnnData.")
            raise StoreError(msg)
        return pos.astype(np.int64)

    def gradients(self, columns: list[int], *, scale_index: int) -> NDArray[np.float32]:
        """``(cells, len(columns), dims)`` at one scale, reading only the chunks of those genes."""
        return _read_columns(self._grad, columns, lambda c: (slice(None), c, slice(None), scale_index))

    def se(self, columns: list[int], *, scale_index: int) -> NDArray[np.float32]:
        """``(cells, len(columns))`` standard errors at one scale; raises when the store holds none."""
        if self._se is None:
            msg = (f"The gradient store at {str(self.path)!r} holds no standard errors; run "
                   "`genegrad.tl.gradients(..., with_se=True, store='zarr')`.")
            raise StoreError(msg)
        return _read_columns(self._se, columns, lambda c: (slice(None), c, scale_index))


def _read_columns(array, columns: list[int], where) -> NDArray[np.float32]:
    """The gene ``columns`` of a zarr ``array``, stacked on axis 1 in the given order.

    They are read in ascending order (chunk by chunk); ``where(c)`` is the index of column ``c``.
    """
    cols = np.asarray(columns, dtype=int)
    order = np.argsort(cols)
    block = np.stack([np.asarray(array[where(int(c))]) for c in cols[order]], axis=1)
    out = np.empty_like(block)
    out[:, order] = block
    return out


def read_marker(path: Path) -> dict:
    """The marker of the store at ``path``, checked; raises :class:`StoreError` for anything else."""
    marker = path / MARKER
    if not marker.is_file():
        msg = (f"No genegrad gradient store at {str(path)!r} (no {MARKER}); run "
               "`genegrad.tl.gradients(..., store='zarr', path=...)`.")
        raise StoreError(msg)
    try:
        meta = json.loads(marker.read_text())
        ok = (meta.get("format") == FORMAT and isinstance(meta.get("id"), str)
              and isinstance(meta.get("shape"), list) and len(meta["shape"]) == 4)
    except (ValueError, OSError, AttributeError):
        ok = False
    if not ok:
        msg = f"{str(marker)!r} is not a valid genegrad store marker; run `genegrad.tl.gradients` again."
        raise StoreError(msg)
    return meta


def _open_checked(zarr, path: Path, shape: tuple[int, ...]):
    """Open a zarr array read-only after checking, from its metadata alone, that it is float32 of ``shape``."""
    arr = None
    with contextlib.suppress(Exception):
        arr = zarr.open_array(str(path), mode="r")
    if arr is None or np.dtype(arr.dtype) != np.float32 or tuple(arr.shape) != shape:
        what = "missing" if arr is None else f"{arr.dtype} of shape {tuple(arr.shape)}"
        msg = (f"The gradient store array {str(path)!r} is {what}, not float32 of shape {shape}: the store is "
               "damaged or not genegrad's. Run `genegrad.tl.gradients(..., store='zarr')` again.")
        raise StoreError(msg)
    return arr
