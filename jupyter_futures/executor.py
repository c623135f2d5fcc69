"""A ``concurrent.futures.Executor`` on a cluster: code that speaks the standard library's
executor API runs on jupyter_futures unchanged.

::

    Executor.submit(fn, /, *args, **kwargs) ──► concurrent.futures.Future, returned at once
        │ queued here (FIFO) while ``max_workers`` calls are in flight (on a cluster it
        │ started itself, with max_workers workers: AHEAD_PER_WORKER per worker)
        ▼
    client.submit(fn, *args, **submit_options, **kwargs) ──► jf.Future
        └─ done callback (the engine's thread) ──► the cf.Future's result or exception,
                                                    then the next queued call is submitted
    map(fn, *iterables, chunksize=k) ──► one call per chunk of k items, results in order
    shutdown(wait, cancel_futures) ──► cancels what is still queued here (never what runs),
                                       waits for what runs, stops a cluster it started

A call counts as running (``cf.Future.running()``, no longer cancellable) from the moment it
is handed to the cluster, as ProcessPoolExecutor's calls do once they are in its call queue.
Before the interpreter exits, every executor's submitted work completes (its output is
printed), and a submit from then on raises ``ClusterClosedError`` (a ``RuntimeError``, as
the standard library's executors raise), as a submit after ``shutdown()`` does.

This module knows only a client's ``submit``, ``n_workers`` and ``shutdown``: which
cluster an :class:`~jupyter_futures.Executor` uses (or starts) is decided in ``api.py``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

from .backend import SUBMIT_OPTIONS, check_options
from .errors import ClusterClosedError

T = TypeVar("T")

AHEAD_PER_WORKER = 4  # calls in flight per worker of a cluster the executor started itself
_exiting = False  # the interpreter is shutting down: no new work
_live: weakref.WeakSet[_Dispatch] = weakref.WeakSet()
_hook_lock = threading.Lock()
_hooked = False


def call_with(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    """``fn(*args, **kwargs)``: how a call travels whose keywords share a name with one of
    ``submit``'s options (``name=``, ``fn=``), so that they reach ``fn``."""
    return fn(*args, **kwargs)


def run_chunk(fn: Callable[..., T], chunk: list[tuple[Any, ...]]) -> list[T]:
    """One task of ``map(..., chunksize=k)``: ``fn`` over up to k argument tuples."""
    return [fn(*args) for args in chunk]


def check_max_workers(max_workers: int | None) -> None:
    if max_workers is None:
        return
    if not isinstance(max_workers, int) or isinstance(max_workers, bool):
        raise TypeError(f"max_workers must be an int, got {type(max_workers).__name__}")
    if max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")


def worker_count(client: Any) -> int:
    """How many workers ``client`` has; a task's own client knows none: the machine's CPUs."""
    return max(1, int(getattr(client, "n_workers", None) or os.cpu_count() or 1))


_Call = tuple[cf.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
"""A call queued in an executor: its future, function, arguments and keywords."""


def waiting_of(client: Any) -> Callable[[], contextlib.AbstractContextManager[None]] | None:
    """The engine's ``waiting()``: around a blocking wait inside a task, it lends the task's
    slot (so the calls it waits for can run on its worker, even with one slot)."""
    waiting = getattr(getattr(client, "backend", client), "waiting", None)
    return waiting if callable(waiting) else None


class CallFuture(cf.Future):  # type: ignore[type-arg]
    """An executor call's ``concurrent.futures.Future``; a wait on it inside a task lends
    the task's slot meanwhile."""

    _waiting: Callable[[], contextlib.AbstractContextManager[None]] | None = None

    def result(self, timeout: float | None = None) -> Any:
        if self.done() or self._waiting is None:
            return super().result(timeout)
        with self._waiting():
            return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self.done() or self._waiting is None:
            return super().exception(timeout)
        with self._waiting():
            return super().exception(timeout)


class _Dispatch:
    """An executor's queue and in-flight count, apart from the executor object itself, so
    that callbacks and the exit hook never keep a dropped executor alive."""

    def __init__(self, client: Any, limit: int, options: dict[str, Any], own: bool) -> None:
        self.client = client
        self.limit = limit
        self.options = options
        self.own = own
        self.cv = threading.Condition(threading.RLock())
        self.queue: deque[tuple[cf.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = (
            deque()
        )
        self.in_flight = 0
        self.closed = False
        self.client_stopped = False
        self.waiting = waiting_of(client)

    # -- work --------------------------------------------------------------------------
    def add(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> cf.Future[Any]:
        with self.cv:
            if self.closed:
                raise ClusterClosedError("cannot schedule new futures after shutdown")
            if _exiting:
                raise ClusterClosedError("cannot schedule new futures after interpreter shutdown")
            f = CallFuture()
            f._waiting = self.waiting
            self.queue.append((f, fn, args, kwargs))
            self.pump()
        return f

    def pump(self) -> None:
        """Hand queued calls to the cluster while fewer than ``limit`` are in flight."""
        with self.cv:
            while self.queue and self.in_flight < self.limit:
                f, fn, args, kwargs = self.queue.popleft()
                if not f.set_running_or_notify_cancel():
                    continue  # cancelled while queued here
                try:
                    if kwargs.keys() & (SUBMIT_OPTIONS | {"fn"}):
                        work = self.client.submit(call_with, fn, args, kwargs, **self._named(fn))
                    else:
                        work = self.client.submit(fn, *args, **self.options, **kwargs)
                except BaseException as exc:  # unpicklable, cluster closed, bad option: this call's error
                    f.set_exception(exc)
                    continue
                self.in_flight += 1
                del fn, args, kwargs  # held by the cluster's future until it is done, not here
                work.add_done_callback(partial(self._finished, f))
            self.cv.notify_all()

    def _named(self, fn: Callable[..., Any]) -> dict[str, Any]:
        return {"name": getattr(fn, "__name__", "task"), **self.options}

    def _finished(self, f: cf.Future[Any], work: Any) -> None:
        try:
            if work.cancelled():
                f.set_exception(cf.CancelledError(f"the cluster cancelled {work!r}"))
            elif (exc := work.exception()) is not None:
                f.set_exception(exc)
            else:
                f.set_result(work.result())
        except BaseException as exc:  # loading the value failed (unpicklable in this process, say)
            if not f.done():
                f.set_exception(exc)
        finally:
            with self.cv:
                self.in_flight -= 1
                self.pump()

    # -- ending ------------------------------------------------------------------------
    def close(self, wait: bool, cancel_futures: bool) -> None:
        with self.cv:
            self.closed = True
            if cancel_futures:
                while self.queue:
                    self.queue.popleft()[0].cancel()
        if wait:
            self.drain()
            self.stop_client()
        elif self.own:  # stop the cluster once what was submitted is over, without waiting here
            threading.Thread(
                target=self._stop_when_idle, name="jupyter-futures-executor-stop", daemon=True
            ).start()

    def drain(self) -> None:
        """Wait until nothing is queued or in flight (a Ctrl-C ends the wait)."""
        with self.cv:
            if not (self.queue or self.in_flight):
                return
        with self.waiting() if self.waiting is not None else contextlib.nullcontext(), self.cv:
            while self.queue or self.in_flight:
                self.cv.wait(0.5)  # a bound per step, so an interrupt is seen

    def _stop_when_idle(self) -> None:
        self.drain()
        self.stop_client()

    def stop_client(self) -> None:
        with self.cv:
            if not self.own or self.client_stopped:
                return
            self.client_stopped = True
        self.client.shutdown()


def _at_interpreter_exit() -> None:
    """Before the interpreter exits (``threading``'s exit hooks, ahead of ``atexit``): let
    submitted work finish, then stop the clusters executors started."""
    global _exiting
    _exiting = True
    for d in list(_live):
        d.drain()
        d.stop_client()


def _hook_exit() -> None:
    global _hooked
    with _hook_lock:
        if not _hooked:
            threading._register_atexit(_at_interpreter_exit)  # type: ignore[attr-defined]
            _hooked = True


class ClusterExecutor(cf.Executor):
    """A ``concurrent.futures.Executor`` over ``client`` (see the module docstring).

    Made by :class:`jupyter_futures.Executor` or :meth:`jupyter_futures.Client.executor`.
    ``submit_options`` (``min_cpu``, ``resources``, ``max_retries``, ...) apply to every
    call; ``own``: the executor started ``client`` and stops it at shutdown.
    """

    def __init__(
        self, client: Any, max_workers: int | None = None, *, own: bool = False, **submit_options: Any
    ):
        check_max_workers(max_workers)
        check_options(submit_options)
        self._max_workers = max_workers if max_workers is not None else worker_count(client)
        # A cluster shared with other work gets at most max_workers calls at once (default:
        # twice its workers). Our own cluster has exactly max_workers workers, which bound
        # what runs at once; calls are handed over a few per worker ahead, so that a worker
        # never waits a round trip for its next one (ProcessPoolExecutor queues one ahead).
        if own:
            limit = AHEAD_PER_WORKER * self._max_workers
        else:
            limit = max_workers if max_workers is not None else 2 * self._max_workers
        self._dispatch = _Dispatch(client, limit, submit_options, own)
        _hook_exit()
        _live.add(self._dispatch)
        # Dropped without a shutdown: stop a cluster it started once its work is done.
        finalizer = weakref.finalize(self, self._dispatch.close, False, False)
        finalizer.atexit = False  # at exit, _at_interpreter_exit does it

    @property
    def client(self) -> Any:
        """The cluster's client the calls go to."""
        return self._dispatch.client

    @property
    def max_workers(self) -> int:
        """At most this many calls run at once."""
        return self._max_workers

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        """Schedule ``fn(*args, **kwargs)``; a ``concurrent.futures.Future`` of its result.

        Every keyword reaches ``fn`` (the options were given to the executor)."""
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
        return self._dispatch.add(fn, args, kwargs)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """``fn`` over the iterables, results in order (lazily, as ``concurrent.futures``).

        Everything is submitted at once; ``chunksize`` > 1 runs that many items per task.
        An item's exception is raised when its result is reached; ``TimeoutError`` if the
        results are not all there ``timeout`` seconds after the call."""
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        chunks = _chunks(zip(*iterables), chunksize)
        results = super().map(partial(run_chunk, fn), chunks, timeout=timeout)
        return itertools.chain.from_iterable(results)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls from now on; calls still queued here are cancelled if
        ``cancel_futures``; with ``wait``, return once the others are done. A cluster this
        executor started stops once its calls are over."""
        self._dispatch.close(wait, cancel_futures)

    def __repr__(self) -> str:
        state = "shut down" if self._dispatch.closed else f"max_workers={self._max_workers}"
        return f"<jupyter_futures.Executor {state} on {self._dispatch.client!r}>"


def _chunks(items: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


ClusterExecutor.__module__ = "jupyter_futures"
