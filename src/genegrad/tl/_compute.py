"""Where the tools compute: the backend and, for dask, the scheduler."""

from __future__ import annotations

import asyncio
from typing import Any

from .._core._backend import BACKENDS
from .._validation import check_n_jobs

#: Seconds to reach a dask scheduler and hear it answer as one before giving up.
CONNECT_TIMEOUT = 10.0


def compute_options(backend: str, scheduler: Any, n_jobs: int | None) -> dict[str, Any]:
    """Keyword arguments of :meth:`GradientModel.iter_gradients` for ``backend`` and ``scheduler``.

    ``scheduler`` is a ``dask.distributed.Client`` or a scheduler address (``'tcp://host:8786'``); with
    ``backend='dask'`` and no scheduler, a two-worker ``LocalCluster`` is started for the call.
    """
    check_n_jobs(n_jobs)
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
            msg = "backend='dask' needs dask.distributed: `pip install 'dask[distributed]'`."
            raise ImportError(msg) from err
        _probe_scheduler(scheduler, CONNECT_TIMEOUT)
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    return {"backend": backend, "client": client, "n_jobs": n_jobs}


def _probe_scheduler(address: str, timeout: float) -> None:
    """Ask ``address`` who it is, within ``timeout`` seconds: a clear error instead of waiting forever.

    ``distributed.Client`` waits without end on an address that accepts connections but is not a scheduler.
    """
    async def identity() -> Any:
        from distributed.comm import connect

        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        try:
            await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), timeout)
            return await asyncio.wait_for(comm.read(), timeout)
        finally:
            comm.abort()

    from concurrent.futures import ThreadPoolExecutor

    try:
        # on a thread of its own: the caller may already run an event loop (Jupyter), where asyncio.run refuses
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(asyncio.run, identity()).result()
    except Exception as err:  # any failure of the probe (refused, timed out, garbled reply) is the same answer
        msg = (f"No dask scheduler answered at {address!r} within {timeout:g} s ({type(err).__name__}: {err}); "
               "check the address (e.g. 'tcp://host:8786') and that the scheduler runs, or pass a "
               "`distributed.Client`.")
        raise ConnectionError(msg) from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        msg = (f"{address!r} answers but is not a dask scheduler; pass the scheduler's address (e.g. "
               "'tcp://host:8786', printed by `dask scheduler`).")
        raise ConnectionError(msg)


def default_memory_gb() -> float:
    """Half of the memory available now (``MemAvailable`` of ``/proc/meminfo``, else the free physical pages), in GB.

    The default budget of the tools that size their work to memory; 4 GB when the system does not say.
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / 2 / 1024**3
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 / 1024**3
    except (AttributeError, ValueError, OSError):
        return 4.0
