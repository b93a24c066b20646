"""Connecting to a Dask cluster: ``--scheduler local:N`` or ``tcp://HOST:PORT``.

``local:N`` starts a :class:`distributed.LocalCluster` of ``N`` worker processes (one thread
each: PyTorch and BLAS already use the cores) for the duration of a command; an address
connects to a running ``dask scheduler`` whose ``dask worker`` processes import neuronscope
and see the same store path (a shared file system or an object store).

Library functions take a :class:`distributed.Client`; :func:`connect` makes one from a
scheduler spec and :func:`active_client` returns the client of the innermost
:func:`connect` (or :func:`use`) block, so code several calls down can run on the cluster.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from neuronscope.errors import InvalidOptionError, NeuronscopeError

if TYPE_CHECKING:
    from distributed import Client

_ACTIVE: ContextVar[Any] = ContextVar("neuronscope_dask_client", default=None)
_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://\S+$")


def parse_scheduler(spec: str) -> tuple[str, int | str]:
    """``("local", n_workers)`` or ``("address", address)`` for a ``--scheduler`` value."""
    text = spec.strip()
    match = _LOCAL.match(text)
    if match:
        n = int(match.group(1))
        if n < 1:
            raise InvalidOptionError(f"--scheduler {spec!r}: a local cluster needs at least "
                                     "one worker (local:1, local:2, ...)")
        return "local", n
    if _ADDRESS.match(text):
        return "address", text
    raise InvalidOptionError(
        f"--scheduler {spec!r} is neither local:N (a local cluster of N worker processes) "
        "nor a scheduler address such as tcp://10.0.0.5:8786"
    )


@contextmanager
def connect(scheduler: str | Client, timeout: float = 30.0) -> Iterator[Client]:
    """A client for ``scheduler`` (a spec or an existing client), active inside the block.

    A local cluster is started here and shut down on exit; an existing client is used as is
    (and not closed).
    """
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        with use(scheduler):
            yield scheduler
        return
    kind, value = parse_scheduler(scheduler)
    if kind == "local":
        cluster = LocalCluster(n_workers=int(value), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        try:
            with Client(cluster) as client, use(client):
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(str(value), timeout=timeout)
    except OSError as err:
        raise NeuronscopeError(f"--scheduler {value}: cannot reach the Dask scheduler ({err}); "
                               "start one with `dask scheduler` and workers with "
                               f"`dask worker {value}`") from None
    try:
        with use(client):
            yield client
    finally:
        client.close()


class DaskBackend:
    """The reductions of :mod:`neuronscope._backend` computed on a Dask cluster."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def class_moments(self, data: Any, classes: Any, second_moments: bool) -> Any:
        from neuronscope.distributed.statistics import class_moments_on

        return class_moments_on(self.client, data, classes, second_moments)

    def block_pass(self, source: Any, lo: int, hi: int, precision: str, rows: Any) -> Any:
        from neuronscope.distributed.statistics import block_pass_on

        return block_pass_on(self.client, source, lo, hi, precision, rows)


@contextmanager
def use(client: Client) -> Iterator[Client]:
    """Make ``client`` the active one inside the block: class moments and correlation
    matrices computed there are reduced on its workers."""
    from neuronscope._backend import backend

    token = _ACTIVE.set(client)
    try:
        with backend(DaskBackend(client)):
            yield client
    finally:
        _ACTIVE.reset(token)


def active_client() -> Client | None:
    """The client of the innermost :func:`connect`/:func:`use` block, or None."""
    return _ACTIVE.get()
