"""Gene chunks of a ``GradientModel`` computed as tasks on a ``dask.distributed`` cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._threads import bounded

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ._model import GradientChunk, GradientModel


def iter_chunks(model: GradientModel, block: Callable[[int], Any], starts, *, client, with_se: bool,
                with_signals: bool, reduce, scales: list[int], log_mean: bool) -> Iterator[Any]:
    """The chunks ``block(s)`` of every start ``s``, computed on ``client``'s workers, in order.

    The model is scattered to the workers once; a ``LocalCluster`` of two single-thread workers is made (and
    closed) when ``client`` is ``None``. At most twice the workers' threads of chunks are in flight.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        msg = "backend='dask' needs dask.distributed: `pip install 'dask[distributed]'`."
        raise ImportError(msg) from err
    own = None
    if client is None:
        # dashboard on a free port: dashboard_address=None still binds 8787, and two runs would collide
        own = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"))
        client = own
    try:
        # the operator travels once, and so does the reducer with whatever arrays it holds; under a key of
        # their own (hash=False): scattered again under the same content-hashed key, as a second call would,
        # the earlier call's futures, released late, can drop the data this call's tasks depend on ("lost
        # dependencies")
        remote = client.scatter(model, broadcast=True, hash=False)
        if reduce is not None:
            reduce = client.scatter(reduce, broadcast=True, hash=False)
        slots = max(1, 2 * sum(client.nthreads().values()))

        def submit(fn, s):
            return client.submit(fn, remote, block(s), s, with_se, with_signals, reduce, scales, log_mean,
                                 pure=False)

        yield from bounded(submit, _chunk, starts, slots)
    finally:
        if own is not None:
            own.close()


def _chunk(model: GradientModel, F, start: int, with_se: bool, with_signals: bool, reduce,
           scales: list[int] | None, log_mean: bool) -> GradientChunk | Any:
    """One gene chunk on a dask worker (numpy backend there), reduced there when ``reduce`` is given."""
    chunk = model.gradients_chunk(F, start=start, with_se=with_se, with_signals=with_signals, scales=scales,
                                  log_mean=log_mean)
    return chunk if reduce is None else reduce(model, chunk)
