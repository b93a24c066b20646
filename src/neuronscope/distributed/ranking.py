"""Rankers on a Dask cluster.

Rankers whose data pass is a reduction of per-class moments (:data:`REDUCED`) run on the
client with the moments reduced over row chunks on the workers
(:func:`~neuronscope.distributed.statistics.class_moments_on`): equal to the single-process
ranking. Every other ranker (the probe, IoU, AP, ...) runs whole on one worker, which
streams the shared store itself; the client only receives the ranking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neuronscope.distributed.cluster import use
from neuronscope.distributed.workers import n_workers

if TYPE_CHECKING:
    from distributed import Client

    from neuronscope.methods.ranking import Ranking

#: Rankers computed from class moments reduced on the workers.
REDUCED = frozenset({"probeless"})


def _rank(method: Any, activations: Any, labels: Any) -> Ranking:
    return method.rank(activations, labels)


def rank_on(client: Client, method: Any, activations: Any, labels: Any) -> Ranking:
    """``method.rank(activations, labels)`` on the cluster (see the module docstring).

    ``activations`` is a store (or a view of one) on a path every worker can read, or an
    in-memory array (then sent to the worker).
    """
    n_workers(client)
    if getattr(method, "name", None) in REDUCED:
        with use(client):
            return method.rank(activations, labels)
    return client.submit(_rank, method, activations, labels, pure=False).result()
