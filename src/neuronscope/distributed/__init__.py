"""Running neuronscope on a Dask cluster (``dask.distributed``).

- :func:`connect` / :func:`active_client`: ``--scheduler local:N | tcp://HOST:PORT``;
- sharded extraction: ``extract(..., scheduler=...)`` (:mod:`.extraction`), bitwise
  identical to a single-process run and resumable;
- sufficient statistics over row chunks on the workers (:mod:`.statistics`): per-class
  moments for the moment-based rankers, the correlation (Gram) matrix for clustering;
- :func:`rank_on`: a ranker on the cluster (moment-based ones by distributed reductions,
  the others on one worker reading the shared store).
"""

from __future__ import annotations

from neuronscope.distributed.cluster import active_client, connect, parse_scheduler, use

__all__ = ["active_client", "connect", "parse_scheduler", "use"]
