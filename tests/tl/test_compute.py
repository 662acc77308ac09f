"""tl._compute: where the tools compute. A dask scheduler address is probed before any work, with a clear error."""

from __future__ import annotations

import socket
import threading

import pytest
from conftest import optional

import genegrad as gg


def test_an_address_that_is_not_a_scheduler_fails_fast(plane_adata, monkeypatch):
    optional("distributed")
    from genegrad.tl import _compute

    monkeypatch.setattr(_compute, "CONNECT_TIMEOUT", 1.0)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()  # accepts, never answers
    port = server.getsockname()[1]
    try:
        with pytest.raises(ConnectionError, match=r"No dask scheduler answered at 'tcp://127\.0\.0\.1:\d+' within 1 s "
                           r"\(.*\); check the address \(e\.g\. 'tcp://host:8786'\) and that the scheduler runs, or "
                           r"pass a `distributed\.Client`\.$"):
            gg.tl.gradients(plane_adata, list(plane_adata.var_names[:2]), backend="dask", scheduler=f"tcp://127.0.0.1:{port}")
    finally:
        for conn, _ in accepted:
            conn.close()
        server.close()


def test_an_address_answering_as_something_else_is_refused(monkeypatch):
    # a dask worker (or any other dask server) answers the identity probe, but not as a scheduler
    import asyncio

    optional("distributed")
    import distributed.comm

    from genegrad.tl._compute import _probe_scheduler

    class Worker:
        async def write(self, msg):
            self.asked = msg

        async def read(self):
            return {"type": "Worker", "id": "w"}

        def abort(self):
            pass

    async def connect(address, timeout):
        await asyncio.sleep(0)
        return Worker()

    monkeypatch.setattr(distributed.comm, "connect", connect)
    with pytest.raises(ConnectionError, match=r"^'tcp://10\.0\.0\.1:8788' answers but is not a dask scheduler; pass "
                       r"the scheduler's address \(e\.g\. 'tcp://host:8786', printed by `dask scheduler`\)\.$"):
        _probe_scheduler("tcp://10.0.0.1:8788", 1.0)


def test_a_scheduler_is_reached_from_inside_a_running_event_loop():
    # Jupyter runs an event loop: the probe must not need to start one of its own there
    import asyncio

    distributed = optional("distributed")
    from genegrad.tl._compute import _probe_scheduler

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  dashboard_address=":0") as cluster:
        async def inside_a_loop():
            await asyncio.sleep(0)  # a coroutine, as a notebook cell's code runs within one
            _probe_scheduler(cluster.scheduler_address, 10.0)

        asyncio.run(inside_a_loop())  # raises ConnectionError if the probe cannot run here
