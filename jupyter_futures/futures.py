"""``Future``: one class for plain cells (``.result()``) and async ones (``await f``).

A Future is a handle on a value that lives in the cluster, made by a backend
(:mod:`jupyter_futures.backend`) and settled by it::

    backend ── _settle(payload, info) ──► Future ── result() ──► backend.load(future)
                                              ├── cancel() / state ──► backend
                                              └── garbage collected ──► backend.release(id)

The value is loaded lazily, on the first ``result()``, by the backend that made it (the
local engine unpickles it from inline bytes or from a copy-on-write mapping of shared
memory taken when the future settled, so the value survives its worker's death). What is
known of it without loading it is ``info`` (size, duration, where it lives).

Each process holds at most one Future per id. Creating one tells the engine this process
holds the value; when it is garbage collected, the engine hears the opposite and may free
the value.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from . import errors

T = TypeVar("T")

ALL_COMPLETED = cf.ALL_COMPLETED
FIRST_COMPLETED = cf.FIRST_COMPLETED
FIRST_EXCEPTION = cf.FIRST_EXCEPTION

_UNDECODED = object()

WorkerId = int | str
"""A worker's id: an int in the local engine, a string (an address) elsewhere."""


@dataclass(frozen=True, slots=True)
class FutureInfo:
    """What is known of a settled future's value without loading it."""

    nbytes: int = 0  # its size as stored (0: unknown or none)
    duration: float = 0.0  # seconds the work ran
    worker: WorkerId | None = None  # where the value lives (None: in the kernel, or nowhere)


class FutureBackend(Protocol):
    """What a Future asks of the backend that made it (the rest of the protocol is in
    :class:`jupyter_futures.backend.Backend`)."""

    @property
    def closed(self) -> bool: ...
    def load(self, f: Future[Any], writable: bool) -> Any: ...
    def cancel(self, f: Future[Any]) -> bool: ...
    def future_state(self, fid: int) -> str: ...
    def release(self, fid: int) -> None: ...
    def reduce(self, f: Future[Any]) -> Any:
        """``Future.__reduce__``: how a future travels inside arguments and values."""
        ...

    def waiting(self) -> AbstractContextManager[None]:
        """Around a blocking wait in user code: inside a task, lend the task's slot (the
        local engine) or secede from the worker's pool (Dask), so nested waits never
        deadlock."""
        ...

    def wants_value(self, f: Future[Any]) -> None:
        """A thread is about to block for ``f``'s value: an engine whose values live
        elsewhere (Dask) fetches it the moment ``f`` is done, in the same step."""
        ...


class Future(cf.Future, Generic[T]):  # type: ignore[type-arg]
    """The eventual result of work submitted to the cluster.

    A ``concurrent.futures.Future``: ``result(timeout)``, ``exception()``, ``done()``,
    ``cancel()``, ``add_done_callback()``; and awaitable (``await f``).

    Examples
    --------
    >>> f = jf.submit(pow, 2, 10)
    >>> f.result()
    1024
    """

    def __init__(self, fid: int, backend: FutureBackend, name: str = "", actor_id: int | None = None) -> None:
        super().__init__()
        self.id = fid
        self.name = name
        self.actor_id = actor_id  # set on the future of create_actor(): the actor it makes
        self.info: FutureInfo | None = None  # set when it settles
        self._backend = backend
        self._payload: Any = None  # what the backend needs to load the value
        self._value: Any = _UNDECODED
        self._decode_lock = threading.Lock()

    @property
    def backend(self) -> FutureBackend:
        """The engine that runs this future's work."""
        return self._backend

    # -- settling (called by the backend, on any thread) --------------------------
    def _settle(
        self,
        *,
        payload: Any = None,
        exc: BaseException | None = None,
        cancelled: bool = False,
        info: FutureInfo | None = None,
    ) -> None:
        """Done with a value (``payload``, loaded later by the backend), an error, or cancelled."""
        with self._condition:
            if self._state != cf._base.PENDING:  # type: ignore[attr-defined]
                return
        self.info = info or FutureInfo()
        if cancelled:
            super().cancel()
            self.set_running_or_notify_cancel()
        elif exc is not None:
            self.set_exception(exc)
        else:
            self._payload = payload
            self.set_result(_UNDECODED)

    def _abandon(self, exc: BaseException) -> None:
        """Fail now, whatever the cluster was doing (it was shut down under this future):
        waiters wake and callbacks run, as for any error."""
        with self._condition:
            if self._state not in (cf._base.PENDING, cf._base.RUNNING):  # type: ignore[attr-defined]
                return
        self.info = FutureInfo()
        try:
            self.set_exception(exc)
        except cf.InvalidStateError:  # resolved meanwhile by the I/O thread's last act
            pass

    # -- results ----------------------------------------------------------------
    def result(self, timeout: float | None = None, *, writable: bool = False) -> T:
        """Wait for the value and return it.

        Parameters
        ----------
        timeout
            Seconds to wait; ``FutureTimeoutError`` (a ``TimeoutError``) after that.
        writable
            Return a private, writable copy. By default a numpy array result is a
            read-only view of shared memory, shared with every other reader; arrays
            inside other results (a figure, a DataFrame) are copy-on-write views,
            writable, whose writes stay in this process.
        """
        if not self.done():
            self._backend.wants_value(self)
        self._wait(timeout)
        try:
            marker = super().result(0)
        except cf.CancelledError:
            raise errors.FutureCancelledError(f"future {self.id} was cancelled") from None
        if marker is not _UNDECODED:
            return marker  # type: ignore[no-any-return]
        if writable:
            return self._decode(writable=True)  # type: ignore[no-any-return]
        with self._decode_lock:
            if self._value is _UNDECODED:
                self._value = self._decode(writable=False)
            return self._value  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        try:
            return super().exception(0)
        except cf.CancelledError:
            raise errors.FutureCancelledError(f"future {self.id} was cancelled") from None

    def _wait(self, timeout: float | None) -> None:
        if self.done():
            return
        if self._backend.closed:  # settled at shutdown; a handle made after it has no cluster
            self._abandon(errors.ClusterClosedError(f"future {self.id}: its cluster was shut down"))
            return
        with self._backend.waiting(), self._condition:
            if not self._condition.wait_for(self.done, timeout):
                raise errors.FutureTimeoutError(
                    f"future {self.id} ({self.name or 'task'}) not done after {timeout} s; the work goes on"
                )

    def _decode(self, writable: bool) -> Any:
        return self._backend.load(self, writable)

    def cancel(self) -> bool:
        """Drop the work if pending; interrupt it if running. True if it was cancelled."""
        if self.done():
            return self.cancelled()
        self._backend.cancel(self)
        return self.cancelled()

    @property
    def state(self) -> str:
        """pending, running, done, failed, cancelled (as the scheduler sees it now)."""
        if self.done():
            return "cancelled" if self.cancelled() else ("failed" if self._exception else "done")
        return self._backend.future_state(self.id)

    def __await__(self) -> Generator[Any, None, T]:
        if self.done():
            return self.result()
        return (yield from _await(self).__await__())

    def __reduce__(self) -> Any:
        return self._backend.reduce(self)

    def __repr__(self) -> str:
        label = f" {self.name}" if self.name else ""
        return f"<jupyter_futures.Future {self.id}{label} {self.state}>"

    def __del__(self) -> None:
        backend = getattr(self, "_backend", None)
        if backend is not None:
            backend.release(self.id)


async def _await(f: Future[T]) -> T:
    import asyncio  # only awaiting needs it, and it is a tenth of a second to import

    await asyncio.wrap_future(f)
    return f.result()


Future.__module__ = "jupyter_futures"


def _client_of(fs: Iterable[cf.Future[Any]]) -> FutureBackend | None:
    """The backend whose ``waiting()`` wraps a wait on ``fs``: that of the first of our
    futures among them (plain ``concurrent.futures`` futures may be mixed in)."""
    for f in fs:
        client = getattr(f, "_backend", None) if isinstance(f, Future) else None
        if client is not None:
            return client
    return None


def wait(
    fs: Iterable[cf.Future[Any]], timeout: float | None = None, return_when: str = ALL_COMPLETED
) -> cf._base.DoneAndNotDoneFutures:  # type: ignore[name-defined]
    """Wait for futures, like ``concurrent.futures.wait``; returns ``(done, not_done)``.

    Any ``concurrent.futures.Future`` may be among them (ours are ones)."""
    fs = list(fs)
    client = _client_of(fs)
    if client is None:
        return cf.wait(fs, timeout, return_when)
    with client.waiting():
        return cf.wait(fs, timeout, return_when)


def as_completed(fs: Iterable[cf.Future[Any]], timeout: float | None = None) -> Iterator[cf.Future[Any]]:
    """Yield futures as they finish (ours and plain ``concurrent.futures`` ones alike);
    ``FutureTimeoutError`` if some are not done in time."""
    fs = list(fs)
    client = _client_of(fs)
    it = cf.as_completed(fs, timeout)
    while True:
        try:
            if client is None:
                f = next(it)
            else:
                with client.waiting():
                    f = next(it)
        except StopIteration:
            return
        except TimeoutError as exc:
            raise errors.FutureTimeoutError(str(exc)) from None
        yield f  # type: ignore[misc]


def gather(fs: Iterable[cf.Future[T]], timeout: float | None = None) -> list[T]:
    """The results of ``fs`` in order (any ``concurrent.futures.Future`` among them);
    raises the first error met, ``FutureTimeoutError`` if one is not done in time."""
    fs = list(fs)
    deadline = None if timeout is None else time.monotonic() + timeout
    out = []
    for f in fs:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            out.append(f.result(left))
        except cf.TimeoutError as exc:
            if isinstance(exc, errors.FutureTimeoutError):
                raise
            raise errors.FutureTimeoutError(f"{f!r} not done after {timeout} s") from None
    return out
