"""jupyter_futures: distributed futures and actors for Jupyter, on local worker processes.

>>> import jupyter_futures as jf
>>> jf.init()
>>> jf.submit(pow, 2, 10).result()
1024

Importing this package starts nothing: no process, no thread, no socket. In IPython,
``%load_ext jupyter_futures`` adds the ``%futures`` and ``%%remote`` magics.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from .actors import ActorHandle
from .api import (
    await_future,
    call_actor,
    create_actor,
    init,
    kill_actor,
    locality,
    put,
    shutdown,
    status,
    submit,
    submit_future,
)
from .client import Client, LocalityRequirement, get_client
from .errors import (
    ActorDiedError,
    ClusterClosedError,
    FutureCancelledError,
    FutureTimeoutError,
    JupyterFuturesError,
    ObjectStoreFullError,
    RemoteException,
    SerializationError,
    UnsatisfiableRequirementError,
    UpstreamDependencyFailedException,
    UpstreamDependencyFailedNoReconstructionAllowed,
    WorkerDiedException,
)
from .futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, as_completed, gather, wait
from .jupyter.notebook import dashboard, progress

__version__: str = _metadata.version("jupyter_futures")  # from labextension/package.json, at install

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "ActorDiedError",
    "ActorHandle",
    "Client",
    "ClusterClosedError",
    "Future",
    "FutureCancelledError",
    "FutureTimeoutError",
    "JupyterFuturesError",
    "LocalityRequirement",
    "ObjectStoreFullError",
    "RemoteException",
    "SerializationError",
    "UnsatisfiableRequirementError",
    "UpstreamDependencyFailedException",
    "UpstreamDependencyFailedNoReconstructionAllowed",
    "WorkerDiedException",
    "__version__",
    "as_completed",
    "await_future",
    "call_actor",
    "create_actor",
    "dashboard",
    "gather",
    "get_client",
    "init",
    "kill_actor",
    "locality",
    "progress",
    "put",
    "shutdown",
    "status",
    "submit",
    "submit_future",
    "wait",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_futures``: the ``%futures`` and ``%%remote`` magics, and live
    widgets for futures and actor handles. Starts no process."""
    from .jupyter.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_futures``."""
    from .jupyter.magics import unload_ipython_extension as unload

    unload(ipython)
