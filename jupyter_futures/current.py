"""The current client of this process, and what runs when one starts.

::

    jf.init() ──► set_client(client) ──► each of ``on_start`` runs with it (in a Jupyter
                                          kernel: output routing, the traceback hook)
    jf.submit(...) ──► get_client(): the kernel's Client, or inside a task its worker's client

A documented accessor rather than a global reached from everywhere: the public API, actor
handles unpickled in a task and the Jupyter layer ask here. It imports nothing of the
package but ``errors``, so every layer may use it.

A thread may have a client of its own (``thread_client``): a Dask worker process serves
several kernels at once, so a task there submits through its own kernel's session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import errors

_current: list[Any] = []
_thread = threading.local()

on_start: list[Callable[[Any], None]] = []
"""Called with each client ``jf.init()`` starts (the package root adds the kernel's
integration, which imports the Jupyter layer only when it runs)."""


def get_client() -> Any:
    """The client of this process: the kernel's (from ``init()``) or, inside a task, its worker's."""
    mine = getattr(_thread, "client", None)
    if mine is not None:
        return mine
    if not _current:
        raise errors.ClusterClosedError("no cluster is running: call jf.init() first")
    return _current[0]


def set_client(client: Any) -> None:
    _current[:] = [client] if client is not None else []


def current_client_or_none() -> Any:
    mine = getattr(_thread, "client", None)
    if mine is not None:
        return mine
    return _current[0] if _current else None


@contextmanager
def thread_client(client: Any) -> Iterator[None]:
    """``client`` is the current client of the calling thread meanwhile."""
    outer = getattr(_thread, "client", None)
    _thread.client = client
    try:
        yield
    finally:
        _thread.client = outer
