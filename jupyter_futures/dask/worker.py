"""The Dask backend's worker side: what runs in a Dask worker process for a kernel.

::

    kernel: DaskBackend.submit ─► client.submit(run_task, spec, fn, blob, values, *inputs, key=spec.key)
    a Dask worker thread: run_task(spec, ...)
        ├─ the kernel's session in this process (made at its first task): the keys running
        │  here (so cancel() can interrupt them), the session's client for nested work
        ├─ unpack: the futures anywhere in (args, kwargs) become their values (inputs: Dask
        │  keys this task depends on; values: results the kernel already held)
        ├─ fn(*args, **kwargs) with the session's client current on this thread
        │    print / display() / plt.show() ─► worker.log_event("jupyter-futures-<session>")
        │                                      ─► the kernel's one subscription ─► the cell
        └─ its value (kept by Dask, an input of later tasks), or TaskFailed(fid, error)

    ActorHost (a Dask actor) keeps one user instance on a thread of its own:
        call(caller, seq, ActorCall)   one rpc per call (Dask's actor_execute, on the event
        loop): queued for the thread in each caller's sequence, however the rpcs arrive,
        and answered when the call is done; so calls run one at a time in each caller's
        order, and results return as they finish.

Several kernels may share one Dask worker: everything here is keyed by the session (a
kernel's cluster id) or by a token per running task, never by a bare future id.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import io
import itertools
import os
import pickle
import platform
import queue
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from .. import errors
from ..capture.output import TaskOutput
from ..current import thread_client


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a worker needs to know of a future besides its function and arguments."""

    session: str  # the kernel's cluster id
    fid: int  # the future's id in the kernel (random for work submitted by tasks)
    root: int  # the kernel future it descends from: where its output goes
    name: str
    key: str  # its Dask key
    no_recon: bool = False  # allow_reconstruction=False: it may run once only
    group: int = 0  # whose work (backend.GroupHook): work it submits is that group's too


def topic(session: str) -> str:
    """The Dask event topic one kernel's output travels on."""
    return f"jupyter-futures-{session}"


def versions() -> dict[str, str]:
    """What a worker runs, checked against the kernel's at connect."""
    from importlib import metadata

    return {"jupyter_futures": metadata.version("jupyter_futures"), "python": platform.python_version()}


# -- packing arguments: futures anywhere, as inputs or held values -----------------------


Where = dict[int, tuple[str, int]]
"""For each future id in a blob: ("d", i), the value of Dask input i, or ("v", i), held value i."""


def unpack(blob: bytes, where: Where, inputs: tuple[Any, ...], values: list[Any] | tuple[Any, ...]) -> Any:
    """The arguments with each future replaced by its value (see ``dask/packing.py``)."""

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            kind, index = where[pid]
            return inputs[index] if kind == "d" else values[index]

    return Loader(io.BytesIO(blob)).load()


# -- the session of one kernel in this process ---------------------------------------------

ClientFactory = Callable[[str, Any, Callable[[], "TaskSpec | None"]], Any]
_client_factory: list[ClientFactory] = []


def set_client_factory(factory: ClientFactory) -> None:
    """How a session makes its client for nested work (the backend module registers it,
    so this module never imports the kernel side)."""
    _client_factory[:] = [factory]


@dataclass
class _Session:
    name: str
    running: dict[str, int] = field(default_factory=dict)  # key -> thread ident
    lock: threading.Lock = field(default_factory=threading.Lock)
    _client: Any = None

    def client(self, worker: Any = None) -> Any:
        """The session's client in this process (made at its first use: most tasks never
        submit), on ``worker``'s own Dask client."""
        with self.lock:
            if self._client is None and _client_factory:
                if worker is None:
                    from distributed import get_worker

                    worker = get_worker()
                self._client = _client_factory[0](self.name, worker, running_spec)
            return self._client


class _SessionClient:
    """What ``jf.get_client()`` gives user code here: the session's client, made when first
    used (so a task that never submits costs no Dask client)."""

    def __init__(self, session: _Session, worker: Any) -> None:
        self._session = session
        self._worker = worker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session.client(self._worker), name)


_sessions: dict[str, _Session] = {}
_sessions_lock = threading.Lock()
_forgotten: OrderedDict[str, None] = OrderedDict()  # sessions whose kernel disconnected


def _session(name: str) -> _Session:
    with _sessions_lock:
        if name in _forgotten:  # a task of a kernel that left, started late: never run it
            raise errors.ClusterClosedError(f"the kernel of session {name} disconnected")
        s = _sessions.get(name)
        if s is None:
            s = _sessions[name] = _Session(name)
        return s


def forget_session(session: str) -> bool:
    """Run on every worker at the kernel's shutdown: drop what the session left here."""
    with _sessions_lock:
        s = _sessions.pop(session, None)
        _forgotten[session] = None
        while len(_forgotten) > 1000:
            _forgotten.popitem(last=False)
    if s is not None and s._client is not None:
        s._client.shutdown()
    return s is not None


# -- output: one capture per process, routed by a token per running task -----------------

_tls = threading.local()
_tokens = itertools.count(1)
_routes: dict[int, tuple[Any, str, int, int]] = {}  # token -> (worker, topic, fid, root)
_capture: list[TaskOutput] = []
_capture_lock = threading.Lock()


def running_spec() -> TaskSpec | None:
    """The spec of the task or actor call the calling thread runs; None elsewhere."""
    return getattr(_tls, "spec", None)


def _send(token: int, stream: str, text: str) -> None:
    route = _routes.get(token)
    if route is None:
        return
    worker, name, fid, root = route
    worker.log_event(name, {"fid": fid, "root": root, "stream": stream, "text": text})


def _current_token() -> int | None:
    return getattr(_tls, "token", None)


def _install_capture() -> TaskOutput:
    with _capture_lock:
        if not _capture:
            if "matplotlib" not in sys.modules:
                os.environ.setdefault("MPLBACKEND", "module://jupyter_futures.capture.mpl_backend")
            out = TaskOutput(_send, _current_token)
            out.install()
            _capture.append(out)
        return _capture[0]


@contextmanager
def _running(spec: TaskSpec, worker: Any) -> Iterator[None]:
    """Around user code: its output goes to its kernel, its nested work through its session."""
    capture = _install_capture()
    token = next(_tokens)
    _routes[token] = (worker, topic(spec.session), spec.fid, spec.root)
    outer = (getattr(_tls, "token", None), getattr(_tls, "spec", None))
    _tls.token, _tls.spec = token, spec
    try:
        with thread_client(_SessionClient(_session(spec.session), worker)):
            yield
    finally:
        _tls.token, _tls.spec = outer
        capture.end_task(token)
        _routes.pop(token, None)


def remote_error(exc: BaseException, skip: int = 1) -> BaseException:
    """The exception the kernel raises for ``exc``: a RemoteException that is also of
    ``exc``'s own type, with this worker's traceback text."""
    name, text = errors.describe_remote(exc, skip)
    cause: BaseException | None = exc
    try:
        cloudpickle.dumps(exc)
    except Exception:
        cause = None
        text += f"\n(the {name} itself could not be pickled, so it comes back as a RemoteException)\n"
    return errors.make_remote_exception(cause, name, str(exc), text)


# -- tasks -----------------------------------------------------------------------------------


def run_task(
    spec: TaskSpec, fn: Callable[..., Any], blob: bytes, where: Where, values: list[Any], *inputs: Any
) -> Any:
    """One jupyter_futures task, run by Dask on one of its worker threads."""
    try:
        args, kwargs = unpack(blob, where, inputs, values)
    except Exception as exc:
        raise errors.TaskFailed(
            spec.fid,
            errors.SerializationError(f"the arguments of future {spec.fid} do not unpickle: {exc!r}"),
        ) from None
    return _call(spec, fn, args, kwargs)


def run_plain(spec: TaskSpec, fn: Callable[..., Any], *args: Any) -> Any:
    """A task whose arguments are plain scalars, passed to Dask as they are (nothing to
    find inside them, nothing to pickle twice)."""
    return _call(spec, fn, args, {})


def _call(spec: TaskSpec, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from distributed import get_worker

    worker = get_worker()
    session = _session(spec.session)
    if spec.no_recon:
        _claim(spec)
    try:
        with session.lock:
            session.running[spec.key] = threading.get_ident()
        _announcer.add(worker, session, spec)
        try:
            with _running(spec, worker):
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    raise errors.TaskFailed(spec.fid, remote_error(exc)) from None
        finally:
            with session.lock:
                session.running.pop(spec.key, None)
    except errors.TaskInterrupted:
        raise errors.TaskFailed(
            spec.fid, errors.FutureCancelledError(f"future {spec.fid} was cancelled")
        ) from None


ANNOUNCE_AFTER = 0.05  # seconds a task runs before the kernel hears where (a short one: never)


class _Announcer:
    """Tells a kernel where its task runs, once the task has run ANNOUNCE_AFTER seconds.

    One thread per worker process sleeps until the earliest announcement is due (no
    polling); a task registers with a heap push, and wakes the thread only when it is the
    first one waiting. A task done by then is skipped, so short tasks cost no message."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Any, _Session, TaskSpec]] = []
        self._cond = threading.Condition()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, worker: Any, session: _Session, spec: TaskSpec) -> None:
        with self._cond:
            heapq.heappush(
                self._due, (time.monotonic() + ANNOUNCE_AFTER, next(self._order), worker, session, spec)
            )
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="jf-announce", daemon=True)
                self._thread.start()
            elif len(self._due) == 1:
                self._cond.notify()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, worker, session, spec = heapq.heappop(self._due)
            if spec.key in session.running:
                worker.log_event(topic(spec.session), {"fid": spec.fid, "start": worker.address})


_announcer = _Announcer()


def _claim(spec: TaskSpec) -> None:
    """allow_reconstruction=False: the first run marks the key on the scheduler; a second
    run (its value was lost, or its worker died under it) fails instead of running again."""
    from distributed import get_client

    client = get_client()
    mark = ["jupyter-futures", spec.session, spec.key]
    if client.get_metadata(mark, False):
        raise errors.TaskFailed(
            spec.fid,
            errors.ObjectLost(
                f"the value of future {spec.fid} ({spec.name}) was lost, and it was made with "
                "allow_reconstruction=False, so it is not run again"
            ),
        )
    client.set_metadata(mark, True)


def interrupt(session: str, key: str) -> bool:
    """Raise TaskInterrupted in the thread running ``key`` here (run by ``client.run``)."""
    s = _sessions.get(session)
    if s is None:
        return False
    with s.lock:
        ident = s.running.get(key)
        if ident is None:
            return False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(errors.TaskInterrupted)
        )
        return True


def running_keys(session: str) -> list[str]:
    s = _sessions.get(session)
    return list(s.running) if s is not None else []


# -- actors ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActorCall:
    fid: int
    root: int
    method: str | None  # None: a call that failed in the caller; its turn is skipped
    blob: bytes = b""
    where: Where = field(default_factory=dict)
    values: tuple[Any, ...] = ()


class ActorHost:
    """A Dask actor holding one jupyter_futures actor on its own thread (module doc)."""

    def __init__(
        self, spec: TaskSpec, cls: type, blob: bytes, where: Where, values: list[Any], *inputs: Any
    ) -> None:
        from distributed import get_worker

        self.spec = spec
        self._worker = get_worker()
        self._calls: queue.SimpleQueue[ActorCall | None] = queue.SimpleQueue()
        self._results: dict[int, asyncio.Future[Any]] = {}
        self._next: dict[str, int] = {}  # caller -> the number of its next call to run
        self._held: dict[tuple[str, int], ActorCall] = {}  # calls that arrived before their turn
        self._namespace: dict[str, Any] = {}
        self.calls_done = 0
        self.instance: Any = None
        started: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve,
            args=(cls, (blob, where, inputs, values), started),
            name=f"jf-actor-{spec.fid}",
            daemon=True,
        )
        self._thread.start()
        failure = started.get()
        if failure is not None:
            raise failure

    def _construct(self, cls: type, packed: tuple[bytes, Where, tuple[Any, ...], list[Any]]) -> None:
        args, kwargs = unpack(*packed)
        with _running(self.spec, self._worker):
            try:
                self.instance = cls(*args, **kwargs)
            except Exception as exc:
                raise errors.TaskFailed(self.spec.fid, remote_error(exc)) from None

    def _serve(self, cls: type, packed: Any, started: Any) -> None:
        try:
            self._construct(cls, packed)
        except BaseException as exc:
            started.put(exc)
            return
        started.put(None)
        while True:
            call = self._calls.get()
            if call is None:
                return
            if call.method is None:
                continue
            outcome: tuple[bool, Any]
            spec = TaskSpec(self.spec.session, call.fid, call.root, call.method, self.spec.key)
            try:
                with _running(spec, self._worker):
                    args, kwargs = unpack(call.blob, call.where, (), call.values)
                    try:
                        if call.method == "__jf_run__":  # a %%remote --actor cell
                            fn, *rest = args
                            value = fn(self.instance, self._namespace, *rest, **kwargs)
                        else:
                            value = getattr(self.instance, call.method)(*args, **kwargs)
                    except Exception as exc:
                        raise errors.TaskFailed(call.fid, remote_error(exc)) from None
                outcome = (True, value)
            except BaseException as exc:
                outcome = (False, exc)
            self.calls_done += 1
            self._answer(call.fid, outcome)

    def _future(self, fid: int) -> asyncio.Future[Any]:
        f = self._results.get(fid)
        if f is None:
            f = self._results[fid] = asyncio.get_running_loop().create_future()
        return f

    def _answer(self, fid: int, outcome: tuple[bool, Any]) -> None:
        def settle() -> None:
            f = self._future(fid)
            if f.done():
                return
            if outcome[0]:
                f.set_result(outcome[1])
            else:
                f.set_exception(outcome[1])

        self._worker.loop.add_callback(settle)

    # called through Dask's actor_execute, on the worker's event loop
    async def call(self, caller: str, seq: int, payload: bytes) -> Any:
        """Run a call (an ActorCall, pickled) in its caller's order (rpcs may arrive out of
        it); its value."""
        call: ActorCall = pickle.loads(payload)
        held = self._held
        held[(caller, seq)] = call
        n = self._next.get(caller, 0)
        while (caller, n) in held:
            ready = held.pop((caller, n))
            if ready.method is not None:
                self._future(ready.fid)
                self._calls.put(ready)
            n += 1
        self._next[caller] = n
        if call.method is None:
            return None
        try:
            return await self._future(call.fid)
        finally:
            self._results.pop(call.fid, None)

    def stop(self, why: str) -> int:
        """Stop after the call running now; calls still queued fail with ActorDiedError."""
        dropped = 0
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call is not None and call.method is not None:
                dropped += 1
                exc = errors.ActorDiedError(f"actor {self.spec.fid} is dead: {why}")
                self._answer(call.fid, (False, errors.TaskFailed(call.fid, exc)))
        self._calls.put(None)
        return dropped

    def queued(self) -> int:
        return self._calls.qsize()
