"""The futures inside a call's arguments, for the threads backend, and the arguments again
with their values in place::

    find_futures((args, kwargs)) ──► pickle with persistent ids: every Future, anywhere
        (inside objects too); buffers (numpy) out of band, so nothing large is copied
        └─ does not pickle (a lock, a socket)? look in lists, tuples, sets and dicts
    ──► (rebuild, futures): rebuild() makes the arguments with each future's value
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any

from ..futures import Future


def find_futures(value: Any) -> tuple[Callable[[], Any], list[Future[Any]]]:
    """The futures inside ``value``, and how to make ``value`` with their values instead."""
    found: dict[int, Future[Any]] = {}

    class Finder(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, Future):
                found[obj.id] = obj
                return obj.id
            return None

    buffers: list[pickle.PickleBuffer] = []
    data = io.BytesIO()
    try:
        Finder(data, protocol=5, buffer_callback=buffers.append).dump(value)
    except Exception:  # it does not pickle: look in the plain containers
        found.clear()
        return (lambda: _substitute(value)), _scan(value)
    if not found:
        return (lambda: value), []

    class Loader(pickle.Unpickler):
        def persistent_load(self, fid: Any) -> Any:
            return found[fid].result()

    return (lambda: Loader(io.BytesIO(data.getvalue()), buffers=buffers).load()), list(found.values())


def _scan(value: Any, depth: int = 0) -> list[Future[Any]]:
    if isinstance(value, Future):
        return [value]
    if depth > 4:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return [f for v in value for f in _scan(v, depth + 1)]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _scan(v, depth + 1)]
    return []


def _substitute(value: Any, depth: int = 0) -> Any:
    if isinstance(value, Future):
        return value.result()
    if depth > 4:
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(_substitute(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, depth + 1) for k, v in value.items()}
    return value
