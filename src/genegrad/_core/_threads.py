"""Threads for the numerics: how many, and independent blocks of rows computed on them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any


def n_threads(n_jobs: int | None) -> int:
    """Threads for ``n_jobs``: ``None`` 1, ``-1`` every core, ``-2`` all but one, and so on (at least 1)."""
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, int(n_jobs))


def for_blocks(fn: Callable[[int, int], None], n: int, block: int, *, n_jobs: int | None = -1) -> None:
    """Call ``fn(start, stop)`` for every block of ``block`` rows of ``n``, on ``n_jobs`` threads.

    For batched small-matrix work (``numpy.linalg`` on stacks of matrices releases the GIL): the BLAS is held to
    one thread meanwhile, since its own threads on matrices this small only contend with the blocks' threads.
    ``fn`` must write each block's results to its own rows, so that the order the blocks run in does not matter.
    """
    starts = range(0, n, block)
    workers = min(n_threads(n_jobs), len(starts))
    if workers <= 1:
        for s in starts:
            fn(s, min(s + block, n))
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(fn, s, min(s + block, n)) for s in starts]:
            future.result()  # re-raises a block's error


def bounded(submit: Callable, fn: Callable, starts: Iterable[int], slots: int) -> Iterator[Any]:
    """Submit ``fn(s)`` for every start, at most ``slots`` in flight, and yield the results in order.

    ``submit(fn, s)`` returns a future (a thread pool's ``submit``, or a dask client's); memory stays bounded
    whatever the consumer does with the results.
    """
    from collections import deque

    pending: deque = deque()
    for s in starts:
        pending.append(submit(fn, s))
        if len(pending) >= slots:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
