"""jupyter_futures: distributed futures and actors for Jupyter, on local worker processes.

>>> import jupyter_futures as jf
>>> jf.init()
>>> jf.submit(pow, 2, 10).result()
1024

Importing this package starts nothing: no process, no thread, no socket. In IPython,
``%load_ext jupyter_futures`` adds the ``%futures`` and ``%%remote`` magics.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from . import current as _current

if TYPE_CHECKING:  # what ``__getattr__`` below gives, for type checkers and editors
    from .actors import ActorHandle
    from .api import (
        Executor,
        await_future,
        call_actor,
        create_actor,
        init,
        kill_actor,
        locality,
        logs,
        map,
        put,
        restart,
        scale,
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
        NotSupportedError,
        ObjectStoreFullError,
        RemoteException,
        SerializationError,
        UnsatisfiableRequirementError,
        UpstreamDependencyFailedException,
        UpstreamDependencyFailedNoReconstructionAllowed,
        WorkerDiedException,
    )
    from .futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, as_completed, gather, wait
    from .jupyter.notebook import dashboard, progress, task_stream

    __version__: str

# The public names, by the module that defines them. Imported on first use, so a worker
# process (``python -m jupyter_futures.local.worker``), which imports this package first,
# loads only what a worker needs rather than the API, the client and package metadata.
_SOURCES = {
    ".actors": ["ActorHandle"],
    ".api": [
        "Executor",
        "await_future",
        "call_actor",
        "create_actor",
        "init",
        "kill_actor",
        "locality",
        "logs",
        "map",
        "put",
        "restart",
        "scale",
        "shutdown",
        "status",
        "submit",
        "submit_future",
    ],
    ".backend": ["LocalityRequirement"],
    ".client": ["Client"],
    ".current": ["get_client"],
    ".errors": [
        "ActorDiedError",
        "ClusterClosedError",
        "FutureCancelledError",
        "FutureTimeoutError",
        "JupyterFuturesError",
        "NotSupportedError",
        "ObjectStoreFullError",
        "RemoteException",
        "SerializationError",
        "UnsatisfiableRequirementError",
        "UpstreamDependencyFailedException",
        "UpstreamDependencyFailedNoReconstructionAllowed",
        "WorkerDiedException",
    ],
    ".futures": [
        "ALL_COMPLETED",
        "FIRST_COMPLETED",
        "FIRST_EXCEPTION",
        "Future",
        "as_completed",
        "gather",
        "wait",
    ],
    ".jupyter.notebook": ["dashboard", "progress", "task_stream"],
}
_SOURCE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # from labextension/package.json, at install
        from importlib import metadata

        value: Any = metadata.version("jupyter_futures")
    elif name in _SOURCE_OF:
        value = getattr(importlib.import_module(_SOURCE_OF[name], __name__), name)
    else:
        raise AttributeError(f"module 'jupyter_futures' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups find it here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "ActorDiedError",
    "ActorHandle",
    "Client",
    "ClusterClosedError",
    "Executor",
    "Future",
    "FutureCancelledError",
    "FutureTimeoutError",
    "JupyterFuturesError",
    "LocalityRequirement",
    "NotSupportedError",
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
    "logs",
    "map",
    "progress",
    "put",
    "restart",
    "scale",
    "shutdown",
    "status",
    "submit",
    "submit_future",
    "task_stream",
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
