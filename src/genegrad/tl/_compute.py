"""Where the tools compute: the backend and, for dask, the scheduler."""

from __future__ import annotations

from typing import Any

from .._core._backend import BACKENDS


def compute_options(backend: str, scheduler: Any, n_jobs: int | None) -> dict[str, Any]:
    """Keyword arguments of :meth:`GradientModel.iter_gradients` for ``backend`` and ``scheduler``.

    ``scheduler`` is a ``dask.distributed.Client`` or a scheduler address (``'tcp://host:8786'``); with
    ``backend='dask'`` and no scheduler, a two-worker ``LocalCluster`` is started for the call.
    """
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
        msg = f"Expected `n_jobs` to be a non-zero integer (-1: every core) or None (1 thread), got {n_jobs!r}."
        raise ValueError(msg)
    if backend not in BACKENDS:
        msg = f"Expected `backend` in {BACKENDS}, got {backend!r}."
        raise ValueError(msg)
    if scheduler is not None and backend != "dask":
        msg = "`scheduler` is for backend='dask'; pass backend='dask' too."
        raise ValueError(msg)
    client = scheduler
    if isinstance(scheduler, str):
        try:
            from distributed import Client
        except ImportError as err:
            msg = "backend='dask' needs dask.distributed: `pip install 'genegrad[dask]'`."
            raise ImportError(msg) from err
        client = Client(scheduler)
    return {"backend": backend, "client": client, "n_jobs": n_jobs}
