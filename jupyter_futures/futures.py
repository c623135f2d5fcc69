"""``Future``: one class for plain cells (``.result()``) and async ones (``await f``).

A Future is a handle on a value that lives in the cluster, made by a backend
(:mod:`jupyter_futures.backend`) and settled by it::

    backend ── _settle(payload, info) ──► Future ── result() ──► backend.load(future)
                                              ├── cancel() / state ──► backend
                                              └── garbage collected ──► backend.release(id)

The value is loaded lazily, on the first ``result()``, by the backend that made it (the
local engine unpickles it from inline bytes or from a copy-on-write mapping of its shared
memory object, taken then). What is known of it without loading it is ``info`` (size,
duration, where it lives).

A future is small until someone waits on it: its condition, waiter and callback lists are
made on the first blocking wait or callback, and a future with none settles without them
(a million queued futures are a notebook's normal day).

Each process holds at most one Future per id. Creating one tells the engine this process
holds the value; when it is garbage collected, the engine hears the opposite and may free
the value.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
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


_PENDING, _RUNNING = cf._base.PENDING, cf._base.RUNNING  # type: ignore[attr-defined]
_CANCELLED = (cf._base.CANCELLED, cf._base.CANCELLED_AND_NOTIFIED)  # type: ignore[attr-defined]
_FINISHED = cf._base.FINISHED  # type: ignore[attr-defined]
_DONE = (*_CANCELLED, _FINISHED)
_LAZY = threading.Lock()
"""Makes a future's condition (with its waiter and callback lists) the first time a thread
waits on it or adds a callback, and settles a future that has none: most futures are never
waited on one by one, and a condition is ~1.3 KB (issue: a million queued futures)."""


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

    # What a queued future has not set itself is read from the class: a queued future is
    # its id, its backend and its state (~100 bytes), the rest comes when it is needed.
    name = ""
    actor_id: int | None = None  # set on the future of create_actor(): the actor it makes
    info: FutureInfo | None = None  # set when it settles
    _payload: Any = None  # what the backend needs to load the value
    _value: Any = _UNDECODED
    _result: Any = None
    _exception: BaseException | None = None
    _cond: threading.Condition | None = None
    _decoding: threading.Lock | None = None
    _waiters: list[Any] = ()  # type: ignore[assignment]  # lists made with the condition
    _done_callbacks: list[Any] = ()  # type: ignore[assignment]

    def __init__(self, fid: int, backend: FutureBackend, name: str = "", actor_id: int | None = None) -> None:
        # not cf.Future.__init__: its condition and lists are made when first needed
        self.id = fid
        self._backend = backend
        self._state = _PENDING
        if name:
            self.name = name
        if actor_id is not None:
            self.actor_id = actor_id

    def _made(self, attr: str, make: Callable[[], Any]) -> Any:
        """``self.<attr>``, made by ``make`` (under ``_LAZY``) the first time it is asked for."""
        value = getattr(self, attr)
        if value is None:
            with _LAZY:
                value = getattr(self, attr)
                if value is None:
                    value = make()
                    setattr(self, attr, value)
        return value

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        """``concurrent.futures.Future``'s condition, made on first use (a wait, a callback,
        ``concurrent.futures.wait``)."""
        return self._made("_cond", self._new_condition)  # type: ignore[no-any-return]

    def _new_condition(self) -> threading.Condition:
        self._waiters = []
        self._done_callbacks = []
        return threading.Condition()

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
        if self._settle_quietly(payload, exc, cancelled, info):
            return
        with self._condition:
            if self._state != _PENDING:
                return
            self.info = info or FutureInfo()
            if not cancelled and exc is None:
                self._payload = payload
        if cancelled:
            super().cancel()
            self.set_running_or_notify_cancel()
        elif exc is not None:
            self.set_exception(exc)
        else:
            self.set_result(_UNDECODED)

    def _settle_quietly(
        self, payload: Any, exc: BaseException | None, cancelled: bool, info: FutureInfo | None
    ) -> bool:
        """Settle a future nobody waits on and with no callbacks (it has no condition yet)
        without making one; False if it has one (then cf.Future's own path wakes them)."""
        with _LAZY:
            if self._cond is not None:
                return False
            if self._state in (_PENDING, _RUNNING):
                self.info = info or FutureInfo()
                if cancelled:
                    self._state = cf._base.CANCELLED_AND_NOTIFIED  # type: ignore[attr-defined]
                elif exc is not None:
                    self._exception = exc
                    self._state = _FINISHED
                else:
                    self._payload = payload
                    self._result = _UNDECODED
                    self._state = _FINISHED
            return True

    def _abandon(self, exc: BaseException) -> None:
        """Fail now, whatever the cluster was doing (it was shut down under this future):
        waiters wake and callbacks run, as for any error."""
        if self._settle_quietly(None, exc, False, None):
            return
        with self._condition:
            if self._state not in (_PENDING, _RUNNING):
                return
            self.info = FutureInfo()
        try:
            self.set_exception(exc)
        except cf.InvalidStateError:  # resolved meanwhile by the I/O thread's last act
            pass

    # -- state, read without the condition (one attribute read) -------------------
    def done(self) -> bool:
        return self._state in _DONE

    def cancelled(self) -> bool:
        return self._state in _CANCELLED

    def running(self) -> bool:
        return self._state == _RUNNING

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
        if self._state in _CANCELLED:
            raise errors.FutureCancelledError(f"future {self.id} was cancelled")
        if self._exception is not None:
            try:
                raise self._exception
            finally:
                self = None  # type: ignore[assignment]  # no cycle through the traceback
        marker = self._result
        if marker is not _UNDECODED:
            return marker  # type: ignore[no-any-return]
        if writable:
            return self._decode(writable=True)  # type: ignore[no-any-return]
        with self._made("_decoding", threading.Lock):
            if self._value is _UNDECODED:
                self._value = self._decode(writable=False)
            return self._value  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        if self._state in _CANCELLED:
            raise errors.FutureCancelledError(f"future {self.id} was cancelled")
        return self._exception

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


def _already_done(fs: set[cf.Future[Any]]) -> set[cf.Future[Any]]:
    """Those of our futures in ``fs`` that are done, read without their locks:
    ``concurrent.futures.wait`` takes every future's lock, which would make one for each."""
    return {f for f in fs if isinstance(f, Future) and f.done()}


def wait(
    fs: Iterable[cf.Future[Any]], timeout: float | None = None, return_when: str = ALL_COMPLETED
) -> cf._base.DoneAndNotDoneFutures:  # type: ignore[name-defined]
    """Wait for futures, like ``concurrent.futures.wait``; returns ``(done, not_done)``.

    Any ``concurrent.futures.Future`` may be among them (ours are ones)."""
    given = list(dict.fromkeys(fs))  # in the order given (usually submission order)
    fs = set(given)
    done = _already_done(fs)
    rest = fs - done
    if (
        not rest
        or (return_when == FIRST_COMPLETED and done)
        or (return_when == FIRST_EXCEPTION and any(not f.cancelled() and f.exception() for f in done))
    ):
        return cf._base.DoneAndNotDoneFutures(done, rest)  # type: ignore[attr-defined]
    client = _client_of(fs)
    if client is None:
        got = cf.wait(rest, timeout, return_when)
    elif return_when == ALL_COMPLETED and all(isinstance(f, Future) for f in rest):
        with client.waiting():
            _wait_each([f for f in given if f in rest], timeout)  # type: ignore[misc]
        done = {f for f in fs if f.done()}
        return cf._base.DoneAndNotDoneFutures(done, fs - done)  # type: ignore[attr-defined]
    else:
        with client.waiting():
            got = cf.wait(rest, timeout, return_when)
    return cf._base.DoneAndNotDoneFutures(done | got.done, got.not_done)  # type: ignore[attr-defined]


def _wait_each(fs: list[Future[Any]], timeout: float | None) -> None:
    """Wait for all of ``fs`` one after the other (until ``timeout``): what
    ``ALL_COMPLETED`` means, with a lock made only for a future still pending when its
    turn comes (results arrive in batches, so most are done by then), where
    ``concurrent.futures.wait`` would make one for every future at once."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for f in fs:
        if f.done():
            continue
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        if f._backend.closed:  # a handle on a shut-down cluster: fails at once
            f._wait(None)
            continue
        with f._condition:
            if not f._condition.wait_for(f.done, left):
                return


def as_completed(fs: Iterable[cf.Future[Any]], timeout: float | None = None) -> Iterator[cf.Future[Any]]:
    """Yield futures as they finish (ours and plain ``concurrent.futures`` ones alike);
    ``FutureTimeoutError`` if some are not done in time."""
    deadline = None if timeout is None else time.monotonic() + timeout
    fs = set(fs)
    done = _already_done(fs)
    client = _client_of(fs)
    yield from done
    rest = fs - done
    if not rest:
        return
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    it = cf.as_completed(rest, left)
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
