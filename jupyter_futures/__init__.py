"""jupyter_futures: distributed futures and actors for Jupyter, on local worker processes.

>>> import jupyter_futures as jf
>>> jf.init()
>>> jf.submit(pow, 2, 10).result()
1024

Importing this package starts nothing: no process, no thread, no socket. In IPython,
``%load_ext jupyter_futures`` adds the ``%futures`` and ``%%remote`` magics.
"""

from __future__ import annotations

import sys
from importlib import metadata as _metadata
from typing import Any

from . import current as _current
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
from .backend import LocalityRequirement
from .client import Client
from .current import get_client
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


def _in_ipython(client: Client) -> None:
    """What a client started in IPython gets, with or without ``%load_ext``: remote
    output in the submitting cell (in a Jupyter kernel), errors for the user's mistakes
    ending at the user's line, and the client's card as its rich display."""
    if "IPython" not in sys.modules:
        return
    from .jupyter.integration import client_started

    client_started(client)


_current.on_start.append(_in_ipython)  # a function in a list: nothing starts or imports


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_futures``: the ``%futures`` and ``%%remote`` magics, and live
    widgets for futures and actor handles. Starts no process."""
    from .jupyter.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_futures``."""
    from .jupyter.magics import unload_ipython_extension as unload

    unload(ipython)
