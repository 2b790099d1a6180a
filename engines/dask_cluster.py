"""The Dask engine: the same per-partition functions, run on a Dask cluster.

With no scheduler address it starts a ``LocalCluster`` sized to this machine (one single-threaded
worker process per core, listening on loopback only); with ``tcp://host:8786`` it joins a running
cluster. Workers import the project's modules by name, so each worker needs the package installed
(``pip install`` of this project, the same version): nothing is pickled from ``__main__``.

Tasks lost with a worker that dies are retried on the others by Dask itself (the scheduler's
``allowed-failures``); an unreachable scheduler is reported after a bounded wait, never a hang.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from distributed import Client, Future, LocalCluster, as_completed

from engines.local import Progress


class SchedulerUnreachable(ConnectionError):
    """No Dask scheduler answered at the given address within the timeout."""


class DaskEngine:
    """Maps a per-partition function over a Dask cluster; results come back in partition order."""

    name = "dask"

    def __init__(self, client: Client, progress: Progress | None = None) -> None:
        self.client = client
        self.progress = progress

    @property
    def workers(self) -> int:
        return max(len(self.client.scheduler_info().get("workers", {})), 1)

    @property
    def threads_per_worker(self) -> int:
        return max(min(self.client.nthreads().values(), default=1), 1)

    def map(self, fn: Callable, items: list, what: str = "partitions") -> list:
        return self.client.gather(self.submit(fn, items, what))

    def submit(self, fn: Callable, items: list, what: str = "partitions") -> list[Future]:
        """``fn`` over ``items`` on the cluster, the results left on the workers (futures in item order).

        Returns once every result is computed, reporting progress as they finish.
        """
        items = list(items)
        futures = self.client.map(fn, items, pure=False)
        for done, _ in enumerate(as_completed(futures), start=1):
            if self.progress:
                self.progress(what, done, len(items))
        return futures


def connect(scheduler: str | None = None, workers: int | None = None, timeout_s: float = 10.0,
            memory_limit: str | None = "auto") -> tuple[Client, LocalCluster | None]:
    """A client of the scheduler at ``scheduler``, or of a new LocalCluster when it is None."""
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, host="127.0.0.1",
                               dashboard_address=None, memory_limit=memory_limit)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=f"{timeout_s}s"), None
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachable(
            f"no Dask scheduler answered at {scheduler} within {timeout_s:g} s ({exc.__class__.__name__}); start one "
            "with `dask scheduler` and workers with `dask worker <address>`, or leave out --scheduler to run a "
            "LocalCluster on this machine") from exc


@contextmanager
def dask_engine(scheduler: str | None = None, workers: int | None = None, timeout_s: float = 10.0,
                progress: Progress | None = None) -> Iterator[DaskEngine]:
    """A :class:`DaskEngine` for the duration of a block; a LocalCluster it started is shut down after."""
    client, cluster = connect(scheduler, workers, timeout_s)
    try:
        yield DaskEngine(client, progress)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
