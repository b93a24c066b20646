"""How many workers a Dask client has (its own module: the reductions and the cluster
helpers both need it, and neither may import the other's module back)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuronscope.errors import NeuronscopeError

if TYPE_CHECKING:
    from distributed import Client


def n_workers(client: Client) -> int:
    """Workers connected now (at least one is needed to run anything)."""
    workers = client.nthreads()  # asks the scheduler (scheduler_info() may be stale)
    if not workers:
        raise NeuronscopeError(f"the Dask scheduler {client.scheduler.address} has no workers; "
                               "start some with `dask worker ADDRESS`")
    return len(workers)
