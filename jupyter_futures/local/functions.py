"""Submitted callables: pickled once while they live, never kept alive by us.

::

    submit(fn, *args)
       │
       ▼  FunctionCache.get(fn) ── seen, and still alive? ──► the same Shipped (no pickling)
       │         keyed by id(fn), or by (id(instance), method) for a bound method, whose
       │         object is new at every ``model.predict``; held through weak references
       │
       ├─ small pickle ──► Shipped(hash, bytes): each worker gets the bytes once, by hash
       └─ large (a method of a big model, a closure over an array)
              └─► stored once in shared memory, as a large argument is, and the task
                  becomes ``call_stored(<that stored future>, *args)``: a dependency, so
                  it runs where the copy is and reads it without another pickle

An entry goes when its callable (or its instance) is garbage collected, which drops the
stored copy too once no task needs it. Objects that take no weak reference are cached only
when they live for the program anyway (builtins of a module); others are pickled per call.
Pickles use the value layout of ``serialize.py`` (buffers out of band).
"""

from __future__ import annotations

import hashlib
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import SerializationError
from .serialize import INLINE_LIMIT, Packed, describe, pack_value


def call_stored(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a callable that was too large for a message (it arrives as a stored input)."""
    return fn(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class Shipped:
    """How a callable travels: its pickle's hash and bytes, and, for a large one, the
    stored future holding it (then ``fn_hash``/``fn_bytes`` are those of ``call_stored``)."""

    fn_hash: bytes
    fn_bytes: bytes
    stored: Any = None  # Future | None; Any keeps this module free of the client's types


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


_CALL_STORED_BYTES = pack_value(call_stored).to_bytes()
_CALL_STORED = (_digest(_CALL_STORED_BYTES), _CALL_STORED_BYTES)


class FunctionCache:
    """What each live callable was pickled to, so submitting it again costs a lookup.

    ``store`` puts a packed value in this process's object store and returns its Future;
    it is how a large callable is kept once rather than pickled per call."""

    def __init__(self, store: Callable[[Packed], Any] | None = None) -> None:
        self._store = store
        # key -> (is_same(fn): does the key still name this object?, Shipped)
        self._entries: dict[Any, tuple[Callable[[Any], bool], Shipped]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, fn: Callable[..., Any]) -> Shipped:
        method = type(fn) is types.MethodType
        key: Any = ("method", id(fn.__self__), id(fn.__func__)) if method else id(fn)  # type: ignore[attr-defined]
        entry = self._entries.get(key)
        if entry is not None and entry[0](fn):
            return entry[1]
        shipped = self._ship(fn)
        is_same = self._watch(key, fn)
        if is_same is not None:
            self._entries[key] = (is_same, shipped)
        return shipped

    def _ship(self, fn: Callable[..., Any]) -> Shipped:
        try:
            packed = pack_value(fn)
        except SerializationError as exc:
            cause = exc.__cause__ or exc
            raise SerializationError(
                f"could not pickle function {describe(fn)}: {type(cause).__name__}: {cause}"
            ) from cause
        if packed.nbytes >= INLINE_LIMIT and self._store is not None:
            return Shipped(*_CALL_STORED, stored=self._store(packed))
        data = packed.to_bytes()
        return Shipped(_digest(data), data)

    def _watch(self, key: Any, fn: Any) -> Callable[[Any], bool] | None:
        """How to tell later that ``key`` still names ``fn``, dropping the entry when it
        is collected; None when that cannot be told without keeping ``fn`` alive."""
        entries = self._entries

        def gone(_ref: Any) -> None:  # may run in any thread, from the garbage collector
            entries.pop(key, None)

        if type(fn) is types.MethodType:
            func = fn.__func__
            try:
                owner = weakref.ref(fn.__self__, gone)
            except TypeError:
                return None
            return lambda m: m.__self__ is owner() and m.__func__ is func
        try:
            ref = weakref.ref(fn, gone)
        except TypeError:
            if isinstance(fn, types.BuiltinFunctionType) and (
                fn.__self__ is None or isinstance(fn.__self__, types.ModuleType)
            ):
                return lambda f: f is fn  # a module's builtin: it lives for the program anyway
            return None
        return lambda f: f is ref()
