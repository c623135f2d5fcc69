"""``ThreadBackend``: the backend protocol served by threads of this process.

::

    submit(fn, *args) ─► _Task (waits on the futures found in its arguments)
         │ inputs done ─► ready queue ─► worker thread k: fn(*values) ─► Future._settle(value)
                          (ready.py: by priority, then the cells in turn)
    create_actor(Cls) ─► an actor thread with its own FIFO: the constructor, then each call
                         in the order submitted (a call waits for its inputs in its turn)
    a task that waits on other futures (nested work) lends its slot: a spare thread runs
    queued work meanwhile, so waits inside tasks never deadlock, even with one worker

Values are the objects themselves (``result(writable=True)`` gives a deep copy); errors
are the task's own exceptions, with their own tracebacks, so pdb's post-mortem works.
Futures are found anywhere in the arguments (also inside objects) with the pickler's
persistent ids; arguments that do not pickle are searched in lists, tuples, sets and dicts.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import itertools
import os
import queue
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import errors
from ..actors import ActorHandle, public_methods
from ..backend import (
    ActorView,
    ClusterStatus,
    FutureView,
    GroupHook,
    LocalityRequirement,
    Origin,
    OutputHandler,
    TaskStream,
    WorkerStatus,
    check_priority,
    group_of,
    queue_rows,
    sizes_from_info,
)
from ..futures import Future, FutureInfo, WorkerId
from ..runs import RunLog, lane_namer
from .arguments import find_futures
from .ready import ReadyTasks

T = TypeVar("T")
KEEP_RECORDS = 10_000  # settled futures the views remember
_backends: weakref.WeakValueDictionary[str, ThreadBackend] = weakref.WeakValueDictionary()


@dataclass
class _Task:
    fid: int
    name: str
    kind: str  # task, actor, call
    run: Callable[[], Any]  # resolves the inputs and calls the function
    deps: list[Future[Any]]
    future: Future[Any] | None  # held until settled, then only weakly (``settled``)
    retries: int = 0
    state: str = "pending"  # pending, running, done, failed, cancelled
    worker: int | None = None
    submitted: float = field(default_factory=time.monotonic)
    started: float = 0.0
    duration: float = 0.0
    error: str = ""
    root: int | None = None  # the kernel future this one descends from
    thread: int | None = None  # ident of the thread running it
    actor: int | None = None  # the actor it creates or calls: its run is on that actor's lane
    settled: weakref.ref[Future[Any]] | None = None
    priority: int = 0
    group: int = 0  # whose work it is (backend.GroupHook): equal priorities take turns

    def handle(self) -> Future[Any] | None:
        """Its Future, while someone holds it (the record never keeps a value alive)."""
        return self.future if self.future is not None else (self.settled() if self.settled else None)

    def forget_work(self) -> None:
        """Settled: the function, its arguments and the Future (with its value) are the
        user's to keep or drop, not this record's."""
        if self.future is not None:
            self.settled = weakref.ref(self.future)
        self.future = None
        self.run = _spent
        self.deps = []


def _spent() -> Any:
    raise AssertionError("a settled task was run again")


@dataclass
class _Actor:
    aid: int
    cls: type
    calls: queue.SimpleQueue[_Task | None] = field(default_factory=queue.SimpleQueue)
    instance: Any = None
    namespace: dict[str, Any] = field(default_factory=dict)
    state: str = "starting"
    calls_done: int = 0
    queued: int = 0
    death: str = ""
    thread: threading.Thread | None = None


class ThreadBackend:
    """Tasks and actors on threads of this process (see the module docstring)."""

    name = "threads"

    def __init__(
        self,
        n_workers: int | None = None,
        *,
        cpus_per_worker: float = 1,
        gpus_per_worker: float | None = None,  # declared: threads are pinned to no device
        resources: dict[str, float] | None = None,
        **_ignored: Any,  # options of the process engine (store size, heartbeats) mean nothing here
    ) -> None:
        n = n_workers if n_workers is not None else (os.cpu_count() or 1)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        self.n_workers = n
        self.cluster_id = secrets.token_hex(5)
        self.capacity = {"cpu": float(cpus_per_worker), "gpu": float(gpus_per_worker or 0)}
        self.capacity.update({str(k): float(v) for k, v in (resources or {}).items()})
        self._closed = False
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._ready: ReadyTasks[_Task] = ReadyTasks()
        self._tasks: OrderedDict[int, _Task] = OrderedDict()
        self._actors: dict[int, _Actor] = {}
        self._running: dict[int, _Task] = {}  # thread ident -> task
        self._runs = RunLog()  # finished runs, for the task stream
        self._tls = threading.local()
        self._threads: list[threading.Thread] = []
        self._handler: OutputHandler | None = None
        self._group_hook: GroupHook | None = None
        for k in range(1, n + 1):
            self._start_thread(k)
        _backends[self.cluster_id] = self

    # -- threads ---------------------------------------------------------------------
    def _start_thread(self, worker: int, until: threading.Event | None = None) -> None:
        t = threading.Thread(
            target=self._serve, args=(worker, until), name=f"jupyter-futures-thread-{worker}", daemon=True
        )
        self._threads.append(t)
        t.start()

    def _serve(self, worker: int, until: threading.Event | None) -> None:
        self._tls.worker = worker
        while until is None or not until.is_set():
            try:
                task = self._ready.get(timeout=0.1 if until is not None else None)
            except queue.Empty:
                continue
            if task is None:
                return
            self._execute(task, worker)

    def _execute(self, task: _Task, worker: int) -> None:
        with self._lock:
            if task.state != "pending":
                return
            task.state, task.worker, task.started = "running", worker, time.monotonic()
            task.thread = threading.get_ident()
            self._running[task.thread] = task
        outer = getattr(self._tls, "task", None)
        self._tls.task = task
        try:
            for attempt in itertools.count():
                try:
                    value = task.run()
                except errors.TaskInterrupted:
                    self._finish(task, cancelled=True)
                    return
                except Exception as exc:
                    if attempt < task.retries:
                        with self._lock:  # that run failed; the retry is a run of its own
                            now = time.monotonic()
                            self._runs.add(task.started, now, worker, task.name, "failed")
                            task.started = now
                        continue
                    self._finish(task, exc=exc)
                    return
                self._finish(task, value=value)
                return
        finally:
            self._tls.task = outer
            with self._lock:
                self._running.pop(threading.get_ident(), None)

    def _finish(
        self, task: _Task, value: Any = None, exc: BaseException | None = None, cancelled: bool = False
    ) -> None:
        with self._lock:
            if task.state in ("done", "failed", "cancelled"):
                return
            task.duration = time.monotonic() - task.started if task.started else 0.0
            task.state = "cancelled" if cancelled else ("failed" if exc is not None else "done")
            if exc is not None:
                task.error = f"{type(exc).__name__}: {exc}"
            if task.started:
                lane = task.worker if task.actor is None else ("actor", task.actor)
                self._runs.add(task.started, task.started + task.duration, lane, task.name, task.state)
            self._forget_old()
        info = FutureInfo(duration=task.duration, worker=task.worker)
        f = task.future
        task.forget_work()
        if f is not None:
            f._settle(payload=value, exc=exc, cancelled=cancelled, info=info)

    def _forget_old(self) -> None:
        while len(self._tasks) > KEEP_RECORDS:
            fid, old = next(iter(self._tasks.items()))
            if old.state in ("pending", "running"):
                break
            del self._tasks[fid]

    # -- submission --------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise errors.ClusterClosedError(
                "this client was shut down; call jf.init() to start a new cluster"
            )

    def _check_requirements(self, min_cpu: float, min_gpu: float, resources: dict[str, float] | None) -> None:
        asked = {
            "cpu": float(min_cpu),
            "gpu": float(min_gpu),
            **{k: float(v) for k, v in (resources or {}).items()},
        }
        for key, amount in asked.items():
            if amount < 0 or amount != amount:
                raise ValueError(f"{key} must be a non-negative number, got {amount!r}")
            if amount > self.capacity.get(key, 0.0):
                offered = ", ".join(f"{k}={v:g}" for k, v in sorted(self.capacity.items()) if v)
                raise errors.UnsatisfiableRequirementError(
                    f"no worker can ever meet {key}={amount:g}: each worker offers {offered}"
                )

    def _new_task(
        self,
        kind: str,
        name: str,
        call: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: int = 0,
        actor_id: int | None = None,
    ) -> _Task:
        self._check_open()
        fid = next(self._ids)
        packed, deps = find_futures((args, kwargs))
        f: Future[Any] = Future(fid, self, name, actor_id)

        def run() -> Any:
            a, k = packed()
            return call(*a, **k)

        parent = getattr(self._tls, "task", None)
        task = _Task(fid, name, kind, run, deps, f, retries=retries)
        task.root = parent.root if parent is not None else fid
        # Work a task submits is its cell's, as its output is; the kernel's, the running cell's.
        task.group = parent.group if parent is not None else group_of(self._group_hook)
        with self._lock:
            self._tasks[fid] = task
        return task

    def _when_inputs_done(self, task: _Task, then: Callable[[_Task], None]) -> None:
        left = [d for d in task.deps if not d.done()]
        if not left:
            then(task)
            return
        count = [len(left)]
        lock = threading.Lock()

        def one_done(_f: Any) -> None:
            with lock:
                count[0] -= 1
                last = count[0] == 0
            if last:
                then(task)

        for d in left:
            d.add_done_callback(one_done)

    def _enqueue(self, task: _Task) -> None:
        failed = next((d for d in task.deps if d.cancelled() or d.exception() is not None), None)
        if failed is not None:
            cause = None if failed.cancelled() else failed.exception()
            exc = errors.UpstreamDependencyFailedException(
                f"input future {failed.id} ({failed.name}) failed" + (f" with {cause!r}" if cause else "")
            )
            exc.__cause__ = cause
            self._finish(task, exc=exc)
            return
        self._ready.put(task, task.priority, task.group)

    def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        min_cpu: float = 0,
        min_ram: float = 0,
        min_gpu: float = 0,
        resources: dict[str, float] | None = None,
        locality: Any = None,  # one process: every value is local
        max_retries: int = 0,
        allow_reconstruction: bool = True,  # values are never lost here
        name: str | None = None,
        priority: int = 0,
        **kwargs: Any,
    ) -> Future[T]:
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        check_priority(priority)
        self._check_requirements(min_cpu, min_gpu, resources)
        label = name or str(getattr(fn, "__name__", "task"))
        task = self._new_task("task", label, fn, args, kwargs, max_retries)
        task.priority = priority
        f = task.future
        self._when_inputs_done(task, self._enqueue)
        return f  # type: ignore[return-value]

    def submit_many(
        self, fn: Callable[..., T], arg_tuples: list[tuple[Any, ...]], **options: Any
    ) -> list[Future[T]]:
        """One ``submit`` per tuple (each is its own task here too)."""
        return [self.submit(fn, *args, **options) for args in arg_tuples]

    def put(self, obj: Any) -> Future[Any]:
        self._check_open()
        f: Future[Any] = Future(next(self._ids), self, "put")
        f._settle(payload=obj, info=FutureInfo())
        return f

    def locality(self, f: Future[Any]) -> list[LocalityRequirement]:
        f.result()
        return [LocalityRequirement(f.info.worker if f.info and f.info.worker is not None else 0, f.id)]

    # -- actors ------------------------------------------------------------------------
    def create_actor(
        self,
        cls: type,
        *args: Any,
        min_cpu: float = 0,
        min_ram: float = 0,
        min_gpu: float = 0,
        resources: dict[str, float] | None = None,
        max_restarts: int = 0,  # a thread does not crash the way a process does
        **kwargs: Any,
    ) -> Future[ActorHandle]:
        if not isinstance(cls, type):
            raise TypeError(f"create_actor() needs a class, got {type(cls).__name__}")
        self._check_requirements(min_cpu, min_gpu, resources)
        aid = next(self._ids)
        actor = _Actor(aid, cls)

        def construct(*a: Any, **k: Any) -> ActorHandle:
            actor.instance = cls(*a, **k)
            actor.state = "alive"
            return ActorHandle(aid, cls.__name__, public_methods(cls), self)

        task = self._new_task("actor", cls.__name__, construct, args, kwargs, actor_id=aid)
        task.actor = aid
        f = task.future
        with self._lock:
            self._actors[aid] = actor
        actor.thread = threading.Thread(
            target=self._serve_actor, args=(actor,), name=f"jupyter-futures-actor-{aid}", daemon=True
        )
        self._threads.append(actor.thread)
        actor.thread.start()
        actor.calls.put(task)
        return f  # type: ignore[return-value]

    def _serve_actor(self, actor: _Actor) -> None:
        self._tls.worker = 0
        while True:
            task = actor.calls.get()
            if task is None:
                return
            inputs = threading.Event()
            self._when_inputs_done(task, lambda _t, ready=inputs: ready.set())  # type: ignore[misc]
            inputs.wait()
            failed = next((d for d in task.deps if d.cancelled() or d.exception() is not None), None)
            if failed is not None:
                self._enqueue(task)  # fails it, naming the input
            elif actor.state == "dead":
                self._finish(task, exc=errors.ActorDiedError(f"actor {actor.aid} is dead: {actor.death}"))
            else:
                self._execute(task, 0)
                if task.kind == "actor" and task.state != "done":
                    actor.state, actor.death = "dead", f"its constructor failed: {task.error}"
            with self._lock:
                if task.kind == "call":
                    actor.queued -= 1
                    actor.calls_done += 1

    def call_actor(self, actor: Any, method: str, *args: Any, **kwargs: Any) -> Future[Any]:
        aid = actor.id if isinstance(actor, ActorHandle) else getattr(actor, "actor_id", None)
        record = self._actors.get(aid) if aid is not None else None
        if record is None:
            raise TypeError(f"expected an actor handle (from create_actor), got {type(actor).__name__}")

        def call(*a: Any, **k: Any) -> Any:
            if method == "__jf_run__":  # a %%remote --actor cell, with the actor's namespace
                fn, *rest = a
                return fn(record.instance, record.namespace, *rest, **k)
            return getattr(record.instance, method)(*a, **k)

        task = self._new_task("call", f"{record.cls.__name__}.{method}", call, args, kwargs)
        task.actor = aid
        f = task.future
        if record.state == "dead":
            self._finish(task, exc=errors.ActorDiedError(f"actor {aid} is dead: {record.death}"))
            return f  # type: ignore[return-value]
        with self._lock:
            record.queued += 1
        record.calls.put(task)
        return f  # type: ignore[return-value]

    def kill_actor(self, actor: Any) -> None:
        aid = actor.id if isinstance(actor, ActorHandle) else getattr(actor, "actor_id", None)
        record = self._actors.get(aid) if aid is not None else None
        if record is None:
            raise TypeError(f"expected an actor handle (from create_actor), got {type(actor).__name__}")
        record.state, record.death = "dead", "it was killed with kill_actor()"
        record.calls.put(None)

    def actor_locality(self, actor: ActorHandle) -> LocalityRequirement | None:
        record = self._actors.get(actor.id)
        return None if record is None or record.state == "dead" else LocalityRequirement(0, actor.id)

    # -- what a Future asks -----------------------------------------------------------
    def load(self, f: Future[Any], writable: bool) -> Any:
        return copy.deepcopy(f._payload) if writable else f._payload

    def cancel(self, f: Future[Any]) -> bool:
        with self._lock:
            task = self._tasks.get(f.id)
            if task is None or task.state not in ("pending", "running"):
                return False
            running = task.state == "running" and task.thread is not None
        if running:  # interrupt it: an exception raised in its thread at the next bytecode
            _interrupt(task.thread)
            with f._condition:  # it settles at its next bytecode (a blocking C call: when it returns)
                f._condition.wait_for(f.done, 2.0)
            return f.cancelled()
        self._finish(task, cancelled=True)
        return True

    def future_state(self, fid: int) -> str:
        task = self._tasks.get(fid)
        return task.state if task is not None else "released"

    def release(self, fid: int) -> None:
        pass  # values are plain objects: the garbage collector frees them

    def reduce(self, f: Future[Any]) -> Any:
        return (_future, (self.cluster_id, f.id))

    def wants_value(self, f: Future[Any]) -> None:
        """Nothing to fetch: a value is already in this process."""

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """A task that waits lends its slot: a spare thread serves the queue meanwhile."""
        worker = getattr(self._tls, "worker", None)
        if worker is None or self._closed:
            yield
            return
        until = threading.Event()
        self._start_thread(worker, until)
        try:
            yield
        finally:
            until.set()

    # -- views -------------------------------------------------------------------------
    def _view(self, t: _Task) -> FutureView:
        elapsed = time.monotonic() - t.started if t.state == "running" else t.duration
        waiting = sum(1 for d in t.deps if not d.done()) if t.state == "pending" else 0
        return FutureView(t.fid, t.name, t.state, waiting, t.worker, elapsed, t.error)

    def future_view(self, fid: int) -> FutureView | None:
        with self._lock:
            t = self._tasks.get(fid)
            return self._view(t) if t is not None else None

    def latest_futures(self, n: int) -> list[FutureView]:
        with self._lock:
            return [self._view(t) for t in list(reversed(self._tasks.values()))[:n]]

    def failed_futures(self, n: int) -> list[FutureView]:
        with self._lock:
            return [self._view(t) for t in reversed(self._tasks.values()) if t.state == "failed"][:n]

    def value_sizes(self, fs: list[Future[Any]]) -> list[int]:
        return sizes_from_info(fs)

    def actor_view(self, aid: int) -> ActorView | None:
        a = self._actors.get(aid)
        if a is None:
            return None
        return ActorView(a.aid, a.cls.__name__, 0, a.state, a.calls_done, a.queued, a.death)

    def task_stream(self, after: int = 0) -> TaskStream:
        """Runs on lanes "worker N" (thread N) and, for actors, "Class #id"."""

        lane_name = lane_namer(
            lambda aid: a.cls.__name__ if (a := self._actors.get(aid)) is not None else None
        )
        with self._lock:
            cursor, runs = self._runs.since(after, lane_name)
        return TaskStream(time.monotonic(), cursor, runs)

    def unsettled(self) -> list[Future[Any]]:
        with self._lock:
            return [t.future for t in self._tasks.values() if t.future is not None]

    def scale(self, n: int, timeout: float = 60.0) -> None:
        """Have ``n`` worker threads: more start now; surplus ones end after their task."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"scale() takes a positive number of workers, got {n!r}")
        self._check_open()
        with self._lock:
            current, self.n_workers = self.n_workers, n
        for k in range(current, n):
            self._start_thread(k)
        if current > n:
            self._ready.stop(current - n)  # the next threads free for work end instead

    def restart(self, timeout: float = 60.0) -> None:
        raise errors.NotSupportedError(
            "restart() replaces worker processes, and this engine's workers are threads of the "
            "kernel itself: restart the kernel, or use worker processes (jf.init())"
        )

    def logs(self, worker: WorkerId | None = None) -> dict[WorkerId, str]:
        """Nothing: workers are threads of this process, and what they write outside tasks
        goes to the kernel's own streams."""
        return {}

    def status(self) -> ClusterStatus:
        import psutil

        with self._lock:
            counts: dict[str, int] = {}
            queued: dict[tuple[int, int], int] = {}
            for t in self._tasks.values():
                counts[t.state] = counts.get(t.state, 0) + 1
                if t.state == "pending":
                    queued[t.group, t.priority] = queued.get((t.group, t.priority), 0) + 1
            running = {t.worker: t.fid for t in self._running.values() if t.worker is not None}
            actors = [
                {
                    "id": a.aid,
                    "class": a.cls.__name__,
                    "worker": 0,
                    "state": a.state,
                    "calls_done": a.calls_done,
                    "calls_queued": a.queued,
                }
                for a in self._actors.values()
            ]
        rss = psutil.Process().memory_info().rss
        workers: list[WorkerStatus] = [
            {
                "id": k,
                "pid": os.getpid(),
                "alive": not self._closed,
                "cpu_percent": 0.0,
                "rss": rss,
                "store_used": 0,
                "store_capacity": 0,
                "spilled": 0,
                "objects": 0,
                "actors": [],
                "running": [running[k]] if k in running else [],
                "capacity": dict(self.capacity),
                "gpus": [],
            }
            for k in range(1, self.n_workers + 1)
        ]
        return {
            "cluster": self.cluster_id,
            "engine": self.name,
            "workers": workers,
            "futures": counts,
            "actors": actors,  # type: ignore[typeddict-item]
            "objects": {"count": 0, "bytes": 0, "spilled": 0},
            "queued": queue_rows(queued),
        }

    def set_output_handler(self, handler: OutputHandler) -> None:
        self._handler = handler  # prints from task threads reach the kernel's streams directly

    def set_group_hook(self, hook: GroupHook | None) -> None:
        self._group_hook = hook

    def output_origin(self, fid: int) -> Origin | None:
        t = self._tasks.get(fid)
        if t is None:
            return None
        return Origin((t.root,) if t.root is not None else (), t.submitted)

    def wait_for_workers(self, n: int | None = None, timeout: float = 30.0) -> None:
        pass  # threads are there from the start

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            unfinished = [t for t in self._tasks.values() if t.state in ("pending", "running")]
            running = [t for t in unfinished if t.state == "running" and t.thread is not None]
        for t in running:
            _interrupt(t.thread)
        for t in unfinished:
            with self._lock:
                t.state = "failed"
            f = t.future
            t.forget_work()
            if f is not None:
                f._abandon(
                    errors.ClusterClosedError(
                        f"the cluster was shut down before future {t.fid} ({t.name}) finished"
                    )
                )
        self._ready.stop(len(self._threads))  # spare threads may take some of these
        for a in self._actors.values():
            a.calls.put(None)
        deadline = time.monotonic() + 1.0
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def __repr__(self) -> str:
        return f"<jupyter_futures.inprocess.ThreadBackend {self.cluster_id} {self.n_workers} threads>"


def _interrupt(thread: int | None) -> None:
    """Raise errors.TaskInterrupted in ``thread`` at its next bytecode."""
    if thread is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread), ctypes.py_object(errors.TaskInterrupted)
        )


def _future(cluster: str, fid: int) -> Future[Any]:
    backend = _backends.get(cluster)
    task = backend._tasks.get(fid) if backend is not None else None
    f = task.handle() if task is not None else None
    if f is None:
        raise errors.SerializationError(f"future {fid} was unpickled outside its threads backend")
    return f
