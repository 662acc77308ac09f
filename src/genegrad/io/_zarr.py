"""A chunked zarr store for the cells x genes x dims x scales gradient tensor and its standard errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray


class GradientStore:
    """The gradients of :func:`genegrad.tl.gradients` with ``store='zarr'``: ``path/gradients`` and ``path/se``.

    Arrays are chunked by gene blocks (all cells, dims and scales of a block in one chunk), so reading a few
    genes reads only their chunks.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from genegrad.io import GradientStore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     s = GradientStore.create(tmp + "/g.zarr", n_cells=5, n_genes=3, n_dims=2, n_scales=2, gene_chunk=2)
    ...     s.write(0, np.ones((5, 2, 2, 2), np.float32), np.ones((5, 2, 2), np.float32))
    ...     GradientStore(tmp + "/g.zarr").gradients([1], scale_index=0).shape
    (5, 1, 2)
    """

    def __init__(self, path: str | Path) -> None:
        import zarr

        self.path = Path(path)
        if not (self.path / "gradients").exists():
            msg = f"No gradient store at {self.path}; run `genegrad.tl.gradients(..., store='zarr', path=...)`."
            raise FileNotFoundError(msg)
        self._grad = zarr.open_array(str(self.path / "gradients"), mode="r")
        self._se = zarr.open_array(str(self.path / "se"), mode="r") if (self.path / "se").exists() else None

    @classmethod
    def create(
        cls, path: str | Path, *, n_cells: int, n_genes: int, n_dims: int, n_scales: int, gene_chunk: int,
        with_se: bool = True,
    ) -> GradientStore:
        """Create (or overwrite) an empty store."""
        import zarr

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        zarr.open_array(str(path / "gradients"), mode="w", shape=(n_cells, n_genes, n_dims, n_scales),
                        chunks=(n_cells, gene_chunk, n_dims, n_scales), dtype="float32")
        if with_se:
            zarr.open_array(str(path / "se"), mode="w", shape=(n_cells, n_genes, n_scales),
                            chunks=(n_cells, gene_chunk, n_scales), dtype="float32")
        elif (path / "se").exists():
            import shutil

            shutil.rmtree(path / "se")
        store = cls.__new__(cls)
        store.path = path
        store._grad = zarr.open_array(str(path / "gradients"), mode="r+")
        store._se = zarr.open_array(str(path / "se"), mode="r+") if with_se else None
        return store

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

    def gradients(self, columns: list[int], *, scale_index: int) -> NDArray[np.float32]:
        """``(cells, len(columns), dims)`` at one scale, reading only the chunks of those genes."""
        cols = np.asarray(columns, dtype=int)
        order = np.argsort(cols)
        block = np.stack([np.asarray(self._grad[:, int(c), :, scale_index]) for c in cols[order]], axis=1)
        out = np.empty_like(block)
        out[:, order] = block
        return out
