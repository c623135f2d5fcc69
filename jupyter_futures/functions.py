"""Submitted callables, pickled with cloudpickle once per definition and named by a hash."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import cloudpickle

from .errors import SerializationError
from .serialize import describe


class FunctionCache:
    """cloudpickle each function once; the key is the hash of its pickle."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Any, bytes, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, fn: Callable[..., Any]) -> tuple[bytes, bytes]:
        entry = self._by_id.get(id(fn))
        if entry is not None and entry[0] is fn:
            return entry[1], entry[2]
        try:
            data = cloudpickle.dumps(fn, protocol=5)
        except Exception as exc:
            raise SerializationError(
                f"could not pickle function {describe(fn)}: {type(exc).__name__}: {exc}"
            ) from exc
        digest = hashlib.blake2b(data, digest_size=16).digest()
        with self._lock:
            if len(self._by_id) > 4096:
                self._by_id.clear()
            self._by_id[id(fn)] = (fn, digest, data)  # keeps fn alive so its id stays unique
        return digest, data
