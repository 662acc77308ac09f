"""Where the sparse x dense products run: numpy/scipy (default) or torch (CPU or CUDA).

The gradient operator is a handful of sparse matrices applied to dense gene chunks. A backend holds those
matrices in its own format and multiplies; everything else stays numpy. ``dask`` distributes gene chunks over
a cluster (see :meth:`genegrad.GradientModel.iter_gradients`) and runs the numpy backend on each worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from scipy import sparse

BACKENDS = ("numpy", "torch", "dask")


class NumpyOps:
    """Products with scipy.sparse matrices (float32)."""

    name = "numpy"

    def __init__(self, matrices: dict[str, sparse.csr_matrix]) -> None:
        self.matrices = matrices

    def put(self, X: NDArray) -> NDArray:
        """Move a dense block to the backend."""
        return X

    def mm(self, key: str, X: Any) -> Any:
        """``matrices[key] @ X``."""
        return self.matrices[key] @ X

    def get(self, X: Any) -> NDArray:
        """Bring a dense block back as numpy."""
        return np.asarray(X)


class TorchOps:
    """Products with torch sparse CSR tensors on ``device`` (CUDA when available by default)."""

    name = "torch"

    def __init__(self, matrices: dict[str, sparse.csr_matrix], device: str | None = None) -> None:
        try:
            import torch
        except ImportError as err:
            msg = "backend='torch' needs PyTorch: `pip install torch`."
            raise ImportError(msg) from err
        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.matrices = {k: self._csr(m) for k, m in matrices.items()}

    def _csr(self, m: sparse.csr_matrix):
        import warnings

        t = self.torch
        m = m.tocsr()
        m.sort_indices()  # the CSR invariants torch assumes (checked here once, not per product)
        with warnings.catch_warnings():  # "sparse CSR support is in beta", "invariant checks disabled"
            warnings.simplefilter("ignore", UserWarning)
            return t.sparse_csr_tensor(
                t.from_numpy(m.indptr.astype(np.int64)), t.from_numpy(m.indices.astype(np.int64)),
                t.from_numpy(m.data.astype(np.float32)), size=m.shape, device=self.device,
                check_invariants=True,
            )

    def put(self, X: NDArray):
        """Move a dense block to the device."""
        return self.torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(self.device)

    def mm(self, key: str, X):
        """``matrices[key] @ X`` on the device."""
        return self.matrices[key] @ X

    def get(self, X) -> NDArray:
        """Bring a dense block back to host memory."""
        return X.detach().cpu().numpy()


def make_ops(matrices: dict[str, sparse.csr_matrix], backend: str, device: str | None = None):
    """The product backend for ``backend`` ('numpy' or 'torch'; 'dask' workers use numpy)."""
    if backend in ("numpy", "dask"):
        return NumpyOps(matrices)
    if backend == "torch":
        return TorchOps(matrices, device)
    msg = f"Expected `backend` in {BACKENDS}, got {backend!r}."
    raise ValueError(msg)
