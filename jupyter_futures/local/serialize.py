"""Turning functions, arguments and results into bytes, and back.

* Functions are pickled with cloudpickle once per definition and named by a hash, so a
  worker that has seen one gets only its hash.
* Arguments and results are pickled with protocol 5. Large buffers (numpy arrays, bytes)
  go out of band and are laid out, aligned, after the pickle stream in one blob::

      [magic u32][nbuf u32][header_len u64][(offset u64, length u64) * nbuf][header] pad [buf0] pad [buf1]

  The same layout is used inline (small values inside a control message) and in shared
  memory, where ``unpack`` hands each buffer to pickle as a view of a copy-on-write
  mapping, with no copy: objects rebuilt on them may write to them (a figure redrawn),
  and those writes stay in the reader.
* A Future found anywhere inside what is pickled (lists, dicts, objects) is recorded by
  ``Future.__reduce__`` through the collector set here: in arguments it becomes a
  dependency whose *value* the worker substitutes on load; in results and ``put`` it stays
  a future handle, and the containing object keeps it alive.
"""

from __future__ import annotations

import os
import pickle
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any

import cloudpickle

from ..errors import SerializationError

MAGIC = 0x4A460001
_HEAD = struct.Struct("<IIQ")
_ENTRY = struct.Struct("<QQ")
ALIGN = 64
INLINE_LIMIT = 64 * 1024
"""Values packing to fewer bytes than this travel inside the control message."""

_tls = threading.local()


# -- futures inside pickles ----------------------------------------------------------


@contextmanager
def _set(name: str, value: Any) -> Iterator[None]:
    """This thread's ``name`` is ``value`` inside the block (what pickling hooks read)."""
    saved = getattr(_tls, name, None)
    setattr(_tls, name, value)
    try:
        yield
    finally:
        setattr(_tls, name, saved)


@contextmanager
def collecting(mode: str) -> Iterator[list[int]]:
    """Collect the ids of futures pickled inside this block.

    ``mode`` is ``"arg"`` (futures become their values on the worker) or ``"value"``
    (futures stay handles).
    """
    found: list[int] = []
    with _set("collect", (mode, found)):
        yield found


def reduce_future(tid: int) -> tuple[Callable[..., Any], tuple[int]]:
    """``Future.__reduce__``: a dependency marker in arguments, a handle elsewhere."""
    state = getattr(_tls, "collect", None)
    if state is None:
        return (_load_handle, (tid,))
    mode, found = state
    found.append(tid)
    return (_load_dependency, (tid,)) if mode == "arg" else (_load_handle, (tid,))


def resolving(values: Callable[[int], Any]) -> AbstractContextManager[None]:
    """While unpickling arguments, futures are replaced by ``values(tid)``."""
    return _set("resolve", values)


def _load_dependency(tid: int) -> Any:
    resolve = getattr(_tls, "resolve", None)
    if resolve is None:
        return _load_handle(tid)
    return resolve(tid)


_handle_factory: list[Callable[[int], Any]] = []


def set_handle_factory(factory: Callable[[int], Any]) -> None:
    """How this process turns a future id into a Future (set by the client module)."""
    _handle_factory[:] = [factory]


def handles_from(factory: Callable[[int], Any]) -> AbstractContextManager[None]:
    """While unpickling here, futures become handles of ``factory``'s client (the one
    loading the value: a process may have more than one cluster)."""
    return _set("handles", factory)


def _load_handle(tid: int) -> Any:
    factory = getattr(_tls, "handles", None) or (_handle_factory[0] if _handle_factory else None)
    if factory is None:
        raise SerializationError(f"future {tid} unpickled outside a jupyter_futures process")
    return factory(tid)


def describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return repr(name) if name else f"<{type(obj).__name__} object>"


# -- arguments -----------------------------------------------------------------------


STORED_ARGS = "__jf_stored_args__"
"""Marks arguments too large for a message, stored once and passed by reference."""


_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Data the standard pickler handles exactly as cloudpickle would (no code inside)."""
    kind = type(value)
    if kind in _PLAIN or (kind.__name__ == "Future" and kind.__module__ == "jupyter_futures"):
        return True
    if depth > 2:
        return False
    if kind in (list, tuple) and len(value) <= 32:
        return all(_is_plain(v, depth + 1) for v in value)
    if kind is dict and len(value) <= 32:
        return all(type(k) in _PLAIN and _is_plain(v, depth + 1) for k, v in value.items())
    return kind.__module__ == "numpy" and kind.__name__ == "ndarray" and not value.dtype.hasobject


def pack_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Packed, list[int]]:
    """Pickle a call's arguments; returns them packed and the ids of futures inside.

    Plain data (numbers, strings, containers of them, numeric arrays, futures) takes the
    standard pickler, several times cheaper than cloudpickle for a small call; a call
    without arguments takes a constant (0.5 us instead of 8.7 here)."""
    if not args and not kwargs:
        return Packed(_NO_ARGS, [], []), []
    buffers: list[pickle.PickleBuffer] = []
    dumps = pickle.dumps if _is_plain(args) and _is_plain(kwargs) else cloudpickle.dumps
    with collecting("arg") as deps:
        try:
            header = dumps((args, kwargs), protocol=5, buffer_callback=buffers.append)
        except Exception as exc:
            raise SerializationError(_which_argument_fails(args, kwargs, exc)) from exc
    return Packed(header, buffers, []), deps


_NO_ARGS = pickle.dumps(((), {}), protocol=5)


def _which_argument_fails(args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception) -> str:
    named = [(f"argument {i}", a) for i, a in enumerate(args)] + [
        (f"keyword argument {k!r}", v) for k, v in kwargs.items()
    ]
    for label, value in named:
        try:
            cloudpickle.dumps(value, protocol=5)
        except Exception as inner:
            return (
                f"could not pickle {label} ({describe(value)}, a {type(value).__name__}): "
                f"{type(inner).__name__}: {inner}"
            )
    return f"could not pickle the arguments: {type(exc).__name__}: {exc}"


def unpack_args(
    blob: bytes | memoryview, values: Callable[[int], Any], *, what: str = "the arguments of a call"
) -> tuple[Any, Any]:
    """The (args, kwargs) of a call, with every future replaced by ``values(tid)``."""
    with resolving(values):
        obj = unpack(blob, what=what)
        if obj[0] == STORED_ARGS:
            obj = obj[1]
    return obj[0], obj[1]


# -- values (results and put) --------------------------------------------------------


class Packed:
    """A value pickled with its out-of-band buffers, ready to be laid out in one blob."""

    __slots__ = ("buffers", "contained", "header", "nbytes")

    def __init__(self, header: bytes, buffers: list[pickle.PickleBuffer], contained: list[int]):
        self.header = header
        self.buffers = buffers
        self.contained = contained
        self.nbytes = layout_size(len(header), [b.raw().nbytes for b in buffers])

    def to_bytes(self) -> bytes:
        out = bytearray(self.nbytes)
        self.write_into(memoryview(out))
        return bytes(out)

    def write_to_fd(self, fd: int) -> None:
        """Lay the value out in an open file with ``pwrite``: the kernel fills the page
        cache directly, with no page faults in this process."""
        lengths = [b.raw().nbytes for b in self.buffers]
        offsets = _offsets(len(self.header), lengths)
        head = bytearray(_HEAD.size + _ENTRY.size * len(lengths))
        _HEAD.pack_into(head, 0, MAGIC, len(lengths), len(self.header))
        for i, (off, n) in enumerate(zip(offsets, lengths)):
            _ENTRY.pack_into(head, _HEAD.size + i * _ENTRY.size, off, n)
        _pwrite_all(fd, memoryview(bytes(head) + self.header), 0)
        for buf, off in zip(self.buffers, offsets):
            _pwrite_all(fd, buf.raw().cast("B"), off)

    def write_into(self, dest: memoryview) -> None:
        """Lay the value out in ``dest`` (which is ``nbytes`` long)."""
        lengths = [b.raw().nbytes for b in self.buffers]
        offsets = _offsets(len(self.header), lengths)
        _HEAD.pack_into(dest, 0, MAGIC, len(lengths), len(self.header))
        pos = _HEAD.size
        for off, n in zip(offsets, lengths):
            _ENTRY.pack_into(dest, pos, off, n)
            pos += _ENTRY.size
        dest[pos : pos + len(self.header)] = self.header
        for buf, off, n in zip(self.buffers, offsets, lengths):
            dest[off : off + n] = buf.raw().cast("B")


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    chunk = 64 * 2**20
    done = 0
    while done < data.nbytes:
        done += os.pwrite(fd, data[done : done + chunk], offset + done)


def _offsets(header_len: int, lengths: list[int]) -> list[int]:
    pos = _HEAD.size + _ENTRY.size * len(lengths) + header_len
    out = []
    for n in lengths:
        pos = -(-pos // ALIGN) * ALIGN
        out.append(pos)
        pos += n
    return out


def layout_size(header_len: int, lengths: list[int]) -> int:
    if not lengths:
        return _HEAD.size + header_len
    return _offsets(header_len, lengths)[-1] + lengths[-1]


def pack_value(obj: Any) -> Packed:
    """Pickle a result or a put object (protocol 5, buffers out of band)."""
    buffers: list[pickle.PickleBuffer] = []
    dumps = pickle.dumps if _is_plain(obj) else cloudpickle.dumps
    with collecting("value") as contained:
        try:
            header = dumps(obj, protocol=5, buffer_callback=buffers.append)
        except Exception as exc:
            raise SerializationError(
                f"could not pickle a value of type {type(obj).__name__}: {type(exc).__name__}: {exc}"
            ) from exc
    return Packed(header, buffers, contained)


def unpack(blob: memoryview | bytes, writable: bool = False, *, what: str = "an object") -> Any:
    """Rebuild a value laid out by ``Packed.write_into``.

    Every object comes back usable as its type expects, writable buffers included (a
    figure redraws into its arrays, a DataFrame column can be changed):

    * ``blob`` writable (a copy-on-write mapping of the store, see ``store.map_object``):
      buffers are views into it, with no copy; writes land in this process's pages only.
    * ``blob`` read-only (``bytes`` of an inline value): buffers are copied (inline
      values are small).
    * ``writable=True``: buffers are copied whatever ``blob`` is, so nothing is shared.

    A numpy array that *is* the value (not one inside it) is marked read-only unless
    ``writable``: it is a view of the shared object, and ``result(writable=True)`` is the
    way to a private copy. ``what`` names the value in errors ("the result of future 3").

    Raises ``SerializationError``: "corrupt or truncated" only when the layout or the
    pickle stream itself is damaged; when a well-formed stream fails to load (a class's
    own ``__reduce__`` callable raises, a module is missing), the error names what the
    stream was rebuilding, with the original exception as its cause.
    """
    view = memoryview(blob)
    try:
        magic, nbuf, header_len = _HEAD.unpack_from(view, 0)
    except struct.error as exc:
        raise SerializationError(f"corrupt or truncated object ({what}): {exc}") from exc
    if magic != MAGIC:
        raise SerializationError(f"not a jupyter_futures object ({what}): bad magic number")
    pos = _HEAD.size
    bufs: list[Any] = []
    copy = writable or view.readonly
    for _ in range(nbuf):
        if pos + _ENTRY.size > view.nbytes:
            raise SerializationError(f"truncated object ({what}): its buffer table runs past its end")
        off, n = _ENTRY.unpack_from(view, pos)
        pos += _ENTRY.size
        if off + n > view.nbytes:
            raise SerializationError(f"truncated object ({what}): a buffer runs past its end")
        part = view[off : off + n]
        bufs.append(bytearray(part) if copy else part)
    if pos + header_len > view.nbytes:
        raise SerializationError(f"truncated object ({what}): the pickle runs past its end")
    header = view[pos : pos + header_len]
    try:
        obj = pickle.loads(header, buffers=bufs)
    except Exception as exc:
        if _raised_by_a_dependency(exc):
            raise  # an input's own error (lost, or failed to load), already described
        raise SerializationError(_load_failure(header, what, exc)) from exc
    if not writable and _is_array(obj):
        obj.flags.writeable = False
    return obj


def _is_array(obj: Any) -> bool:
    """A numpy array (or subclass), told without touching numpy: another thread of this
    process may be importing it right now."""
    return any(k.__name__ == "ndarray" and k.__module__ == "numpy" for k in type(obj).__mro__)


# -- why a load failed (error path only) ----------------------------------------------


def _raised_by_a_dependency(exc: BaseException) -> bool:
    """Raised while fetching a future's value inside the stream, not by the stream."""
    ours = (_load_dependency.__code__, _load_handle.__code__)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in ours:
            return True
        tb = tb.tb_next
    return False


def _load_failure(header: memoryview, what: str, exc: Exception) -> str:
    """Say what failed: a damaged stream, or which global of a sound stream raised."""
    error = f"{type(exc).__name__}: {exc}"
    try:
        names = referenced_globals(header)
    except Exception as damage:  # pickletools could not walk it: the bytes are damaged
        return f"corrupt or truncated object ({what}): {error} ({damage})"
    called = _frame_below_unpack(exc)
    if called is None and isinstance(exc, (pickle.UnpicklingError, EOFError)):
        return f"corrupt or truncated object ({what}): {error}"  # the unpickler's own complaint
    culprit = _culprit(called, names)
    if culprit is not None:
        return f"could not unpickle {what}: rebuilding {culprit} raised {error}"
    found = f" (it refers to {_listing(names)})" if names else ""
    return f"could not unpickle {what}: {error}{found}"


def _listing(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _frame_below_unpack(exc: BaseException) -> TracebackType | None:
    """The traceback entry of the code the unpickler called when it raised, if any."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code is not unpack.__code__:
        tb = tb.tb_next
    return tb.tb_next if tb is not None else None


def _culprit(called: TracebackType | None, names: list[str]) -> str | None:
    """The global of the stream whose code raised: the first frame below the unpickler
    is the callable it invoked (a ``__reduce__`` function, a class, its ``__setstate__``)."""
    if called is None:
        return None
    code = called.tb_frame.f_code
    module = str(called.tb_frame.f_globals.get("__name__", ""))
    if module.startswith("importlib"):
        return None  # finding a class failed; the error names the module
    full = f"{module}.{getattr(code, 'co_qualname', code.co_name)}"
    for name in names:  # a method (Point.__setstate__) belongs to its class
        if full == name or full.startswith(name + "."):
            return name
    return full


_STRINGS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)


def referenced_globals(header: bytes | memoryview) -> list[str]:
    """The ``module.name`` of every class and function a pickle stream refers to, in order.

    Walks the opcodes with ``pickletools`` (nothing is imported or called); raises
    ``ValueError`` if the stream is malformed."""
    import pickletools  # error path only: it is a large module

    names: list[str] = []
    memo: dict[int, Any] = {}
    pushed: list[Any] = []  # the last values pushed, enough to read STACK_GLOBAL's two
    for op, arg, _pos in pickletools.genops(bytes(header)):
        if op.name in _STRINGS:
            pushed.append(arg)
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            pushed.append(memo.get(int(arg or 0)))
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg or 0)] = pushed[-1] if pushed else None
        elif op.name == "STACK_GLOBAL":
            module, name = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            pushed[-2:] = [None]
            if isinstance(module, str) and isinstance(name, str):
                names.append(f"{module}.{name}")
        elif op.name in ("GLOBAL", "INST"):
            names.append(str(arg).replace(" ", "."))
            pushed.append(None)
        elif op.name in ("FRAME", "PROTO"):
            continue  # they leave the stack as it is (a frame may start between two strings)
        else:
            pushed.append(None)
        del pushed[:-2]
    return [n for n in dict.fromkeys(names) if not n.startswith(("builtins.", "copyreg."))]
