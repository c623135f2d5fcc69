"""The client: what user code calls, in the kernel and inside tasks.

``BaseClient`` turns calls into :class:`~jupyter_futures.local.protocol.TaskSpec` records and
keeps this process's Futures (one per id, held weakly). Subclasses say how a spec reaches
the scheduler: the kernel's ``Client`` calls the in-process scheduler directly; a worker's
``WorkerClient`` (in ``local/worker/client.py``) sends it a message. Either way, results come back as
``_on_resolved(tid, outcome)``.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import cloudpickle

from .. import errors
from ..actors import ActorHandle
from ..backend import (
    GroupHook,
    LocalityRequirement,
    check_priority,
    default_output,
    group_of,
    split_options,
)
from ..current import current_client_or_none, get_client, set_client
from ..futures import Future, FutureInfo
from .functions import FunctionCache
from .protocol import DRIVER, NO_REQUIREMENTS, Outcome, Requirements, TaskKind, TaskSpec
from .serialize import (
    INLINE_LIMIT,
    STORED_ARGS,
    Packed,
    collecting,
    handles_from,
    pack_args,
    pack_value,
    reduce_future,
    set_handle_factory,
    unpack,
)
from .store import POOL_MIN, ObjectStore, map_object

T = TypeVar("T")
REFETCHES = 3  # times a reader has a vanished value rebuilt before it gives up
REFETCH_TIMEOUT = 600.0  # seconds a reader waits for a vanished value to be rebuilt


class _Refetch:
    """A reader waiting for a value rebuilt because its copy vanished."""

    __slots__ = ("done", "outcome")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: Outcome | None = None


def exception_from(outcome: Outcome) -> BaseException:
    """The exception a caller sees for a failed outcome."""
    cause: BaseException | None = None
    if outcome.data is not None:
        try:
            cause = rebuild_exception(cloudpickle.loads(outcome.data))
        except Exception:
            cause = None
    if outcome.error_type.startswith("jf:"):
        klass = errors.error_class(outcome.error_type[3:])
        exc: BaseException
        if issubclass(klass, errors.WorkerDiedException):
            exc = klass(outcome.text, exitcode=outcome.code, worker=outcome.where)  # type: ignore[call-arg]
        else:
            exc = klass(outcome.text)
        if cause is not None:
            exc.__cause__ = cause
        return exc
    message = outcome.text.strip().splitlines()[-1] if outcome.text.strip() else outcome.error_type
    where = f"worker {outcome.where}" if outcome.where is not None else ""
    return errors.make_remote_exception(cause, outcome.error_type, message, outcome.text, where)


def rebuild_exception(loaded: Any) -> BaseException | None:
    """An exception shipped as ("exception", type, args, attributes) by a worker."""
    if isinstance(loaded, BaseException):
        return loaded
    if not (isinstance(loaded, tuple) and len(loaded) == 4 and loaded[0] == "exception"):
        return None
    _, cls, args, attributes = loaded
    exc: BaseException = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(attributes)
    return exc


class BaseClient:
    """Submission, handles and reference counting, whatever the process."""

    proc: int = DRIVER

    def __init__(self, cluster_id: str, shm_dir: Path, store: ObjectStore) -> None:
        self.cluster_id = cluster_id
        self.shm_dir = shm_dir
        self.store = store
        self.functions = FunctionCache(self.put_packed)
        # Unsettled futures are held strongly, as an executor holds its futures, so a
        # callback on a future nobody keeps still runs; once settled a future moves to the
        # weak map and its value is released when the user drops it. A future is in one.
        self._pending: dict[int, Future[Any]] = {}
        self._futures: weakref.WeakValueDictionary[int, Future[Any]] = weakref.WeakValueDictionary()
        self._pins: dict[int, int] = {}
        self._pins_lock = threading.RLock()  # RLock: a Future's __del__ may run inside
        self._refetching: dict[int, _Refetch] = {}  # settled futures whose copy is being rebuilt
        self._futures_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._id_base = self.proc << 40
        self.output_handler: Callable[[int, str, str], None] = default_output
        self.group_hook: GroupHook | None = None  # whose work a submit is (backend.GroupHook)
        self.closed = False
        set_handle_factory(self.handle)  # futures unpickled in this process are ours

    # -- ids and handles ----------------------------------------------------------
    def _new_id(self) -> int:
        return self._id_base | next(self._ids)

    def _new_future(self, tid: int, name: str, actor_id: int | None = None) -> Future[Any]:
        f: Future[Any] = Future(tid, self, name, actor_id)  # type: ignore[arg-type]
        with self._futures_lock:
            self._pending[tid] = f
        self._pin(tid)
        return f

    def _future(self, tid: int) -> Future[Any] | None:
        """This process's Future for ``tid``, if it has one."""
        f = self._pending.get(tid)
        return f if f is not None else self._futures.get(tid)

    def handle(self, tid: int) -> Future[Any]:
        """This process's Future for ``tid`` (made and registered if new)."""
        with self._futures_lock:
            f = self._future(tid)
            if f is not None:
                return f
            f = Future(tid, self)  # type: ignore[arg-type]
            self._pending[tid] = f
        if self._pin(tid):
            self._acquire([tid])
        return f

    # -- what a Future asks of its backend (jupyter_futures.backend.Backend) -------
    def release(self, tid: int) -> None:
        """A Future of ours was garbage collected (called from ``Future.__del__``)."""
        self._unpin(tid)

    def load(self, f: Future[Any], writable: bool) -> Any:
        """Unpickle ``f``'s value from its inline bytes or its shared-memory object.

        An object is mapped here, when it is read, never when its future settles: a
        future held but not read holds no memory, so a spilled object's pages are not kept
        alive by this process (the store's capacity bounds what the cluster holds in RAM).
        The mapping lives as long as the value read from it."""
        name = f" ({f.name})" if f.name else ""
        what = f"the result of future {f.id}{name} in this process"
        payload = f._payload
        if isinstance(payload, Outcome):
            payload = self._map_value(f, payload)
        with handles_from(self.handle):
            value = unpack(payload, writable=writable, what=what)
        if isinstance(value, ActorHandle) and value._bound is None:
            value._bound = self  # calls go through the client that made the actor
        return value

    def reduce(self, f: Future[Any]) -> Any:
        return reduce_future(f.id)

    # -- pins: this process holds a value while a Future of it or a mapping of it lives --
    def _pin(self, tid: int) -> bool:
        """Count one more local reference; True if it is the first."""
        with self._pins_lock:
            n = self._pins.get(tid, 0)
            self._pins[tid] = n + 1
        return n == 0

    def _unpin(self, tid: int) -> None:
        with self._pins_lock:
            n = self._pins.get(tid, 0) - 1
            if n > 0:
                self._pins[tid] = n
                return
            self._pins.pop(tid, None)
        if not self.closed:
            self._release_later(tid)

    def pin_mapping(self, tid: int, mapping: object) -> bool:
        """Keep ``tid`` allocated while ``mapping`` (an mmap) lives: a zero-copy array may
        outlive its Future. True if that made this process a new holder."""
        first = self._pin(tid)
        weakref.finalize(mapping, self._unpin, tid)
        return first

    # -- resolution -------------------------------------------------------------
    def _on_resolved(self, tid: int, outcome: Outcome) -> None:
        f = self._future(tid)
        if f is None:
            return
        if f.done():  # a value rebuilt because its copy vanished before it was read
            refetch = self._refetching.get(tid)
            if refetch is not None:
                refetch.outcome = outcome
                refetch.done.set()
            return
        self._resolve_future(f, outcome)
        if f.done():
            with self._futures_lock:
                if self._pending.pop(tid, None) is not None:
                    self._futures[tid] = f

    def _resolve_future(self, f: Future[Any], outcome: Outcome) -> None:
        exc: BaseException | None = None
        payload: bytes | Outcome | None = None
        if outcome.status == "ok":
            payload = outcome if outcome.segment is not None else outcome.data  # mapped when read
        elif outcome.status == "error":
            exc = exception_from(outcome)
        where = outcome.where if outcome.where != DRIVER else None
        info = FutureInfo(nbytes=outcome.nbytes, duration=outcome.duration, worker=where)
        f._settle(payload=payload, exc=exc, cancelled=outcome.status == "cancelled", info=info)

    def _map_value(self, f: Future[Any], outcome: Outcome) -> memoryview | bytes:
        """Map ``f``'s object; if its copy vanished (its worker died), have it rebuilt and
        wait for the new copy (bounded), as a task whose input vanished does."""
        for _ in range(REFETCHES):
            try:
                return self._map(f.id, outcome)
            except FileNotFoundError:
                outcome = self._refetch(f)
                if outcome.segment is None:
                    assert outcome.data is not None
                    return outcome.data
        raise errors.ObjectLost(f"the copy of future {f.id}'s value vanished {REFETCHES} times in a row")

    def _refetch(self, f: Future[Any]) -> Outcome:
        tid = f.id
        with self._futures_lock:
            refetch = self._refetching.setdefault(tid, _Refetch())
        try:
            self._copy_missing(tid)
            with self.waiting():
                if not refetch.done.wait(REFETCH_TIMEOUT):
                    raise errors.ObjectLost(
                        f"the copy of future {tid}'s value vanished (its worker died) and was not "
                        f"rebuilt within {REFETCH_TIMEOUT:.0f} s"
                    )
        finally:
            with self._futures_lock:
                self._refetching.pop(tid, None)
        outcome = refetch.outcome
        assert outcome is not None
        if outcome.status != "ok":
            raise exception_from(outcome)
        f._payload = outcome
        return outcome

    def _map(self, tid: int, outcome: Outcome) -> memoryview:
        assert outcome.segment is not None
        if outcome.segment in self.store:
            view = self.store.view(outcome.segment)
        else:
            view = map_object(self.store.obj_dir, self.store.spill_dir, outcome.segment)
        self.pin_mapping(tid, view.obj)
        return view

    def _abandon_unfinished(self) -> None:
        """At shutdown: every future not yet settled fails with ClusterClosedError."""
        with self._futures_lock:
            unfinished = list(self._pending.values())
            self._pending.clear()
        for f in unfinished:
            f._abandon(
                errors.ClusterClosedError(
                    f"the cluster was shut down before future {f.id} ({f.name or 'task'}) finished"
                )
            )

    # -- the public operations --------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker; returns a Future of its result (the
        options of ``submit``, ``backend.SUBMIT_OPTIONS``, are taken out of ``kwargs``)."""
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
        options, kwargs = split_options(kwargs)
        fields = _task_fields(fn, **options)
        return self._submit(self._spec("task", fn, args, kwargs, group=group_of(self.group_hook), **fields))

    def submit_many(
        self, fn: Callable[..., T], arg_tuples: list[tuple[Any, ...]], **options: Any
    ) -> list[Future[T]]:
        """``fn(*args)`` for each tuple, one task each, handed to the scheduler together
        (``options``: those of ``submit``)."""
        if not callable(fn):
            raise TypeError(f"map() needs a callable, got {type(fn).__name__}")
        fields = _task_fields(fn, **options)
        fields["group"] = group_of(self.group_hook)  # one cell's batch: asked once
        prepared = [self._spec("task", fn, args, {}, **fields) for args in arg_tuples]
        futures = [self._new_future(spec.tid, spec.name) for spec, _stored in prepared]
        try:
            self._send_specs([spec for spec, _stored in prepared])
        except BaseException:
            with self._futures_lock:
                for f in futures:
                    self._pending.pop(f.id, None)
            for f in futures:
                f._backend = None  # type: ignore[assignment]  # nothing to release
            raise
        return futures

    def put(self, obj: Any) -> Future[Any]:
        """Store ``obj`` in shared memory now; returns a Future that is already done."""
        self._check_open()
        tid = self._new_id()
        outcome = self._store_packed(tid, pack_value(obj))
        f = self._new_future(tid, "put")
        self._put(tid, outcome)
        self._on_resolved(tid, outcome)
        return f

    def _store_packed(self, tid: int, packed: Packed) -> Outcome:
        if packed.nbytes < INLINE_LIMIT:
            return Outcome(
                "ok", data=packed.to_bytes(), nbytes=packed.nbytes, contained=tuple(packed.contained)
            )
        if packed.nbytes >= POOL_MIN:
            self._drain_releases()  # a file just let go of may be the one this put recycles
        name = self.store.put(tid, packed)
        return Outcome(
            "ok",
            segment=name,
            nbytes=packed.nbytes,
            contained=tuple(packed.contained),
            where=self.proc,
        )

    def create_actor(
        self,
        cls: type,
        *args: Any,
        min_cpu: float = 0,
        min_ram: float = 0,
        min_gpu: float = 0,
        resources: dict[str, float] | None = None,
        max_restarts: int = 0,
        **kwargs: Any,
    ) -> Future[ActorHandle]:
        """Start ``cls(*args, **kwargs)`` on a worker; a Future of its handle."""
        if not isinstance(cls, type):
            raise TypeError(f"create_actor() needs a class, got {type(cls).__name__}")
        aid = self._new_id()
        prepared = self._spec(
            "actor",
            cls,
            args,
            kwargs,
            requirements=_requirements(min_cpu, min_ram, min_gpu, resources),
            actor=aid,
            max_restarts=_non_negative_int("max_restarts", max_restarts),
            allow_reconstruction=False,
            name=cls.__name__,
            group=group_of(self.group_hook),
        )
        return self._submit(prepared, actor_id=aid)

    def call_actor(
        self, actor: ActorHandle | Future[ActorHandle], method: str, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Call ``actor.method(*args, **kwargs)``; a Future of the result."""
        aid, cls_name = _actor_id(actor)
        if not isinstance(method, str) or not method:
            raise TypeError("the method must be named by a non-empty string")
        prepared = self._spec(
            "call",
            None,
            args,
            kwargs,
            actor=aid,
            method=method,
            allow_reconstruction=False,
            name=f"{cls_name}.{method}",
            group=group_of(self.group_hook),
        )
        return self._submit(prepared)

    def kill_actor(self, actor: ActorHandle | Future[ActorHandle]) -> None:
        """Stop the actor; its pending calls fail with ActorDiedError."""
        self._check_open()
        self._kill_actor(_actor_id(actor)[0])

    def set_group_hook(self, hook: GroupHook | None) -> None:
        """Tag work submitted from now on with ``hook()``'s group (``backend.GroupHook``)."""
        self.group_hook = hook

    def cancel(self, f: Future[Any]) -> bool:
        if self.closed:
            return False
        return self._cancel(f.id)

    def locality(self, f: Future[Any]) -> list[LocalityRequirement]:
        """Where ``f``'s value lives now, as requirements to pass to ``submit(locality=)``."""
        f.result()  # where it lives is only known once it exists
        return [LocalityRequirement(w, f.id) for w in self._where(f.id)]

    def _spec(
        self,
        kind: TaskKind,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        **fields: Any,
    ) -> tuple[TaskSpec, Future[Any] | None]:
        """The spec of a call, and the stored arguments' future to keep alive until it is sent."""
        self._check_open()
        tid = self._new_id()
        fn_hash, fn_bytes = b"", None
        if fn is not None:
            shipped = self.functions.get(fn)
            fn_hash, fn_bytes = shipped.fn_hash, shipped.fn_bytes
            if shipped.stored is not None:  # too large for a message: stored once, an input
                args = (shipped.stored, *args)
        packed, deps = pack_args(args, kwargs)
        stored = None
        if packed.nbytes < INLINE_LIMIT:
            blob = packed.to_bytes()
        else:  # large arguments are stored once and passed by reference
            stored = self.put_packed(packed)
            with collecting("arg") as outer:
                header = cloudpickle.dumps((STORED_ARGS, stored), protocol=5)
            blob = Packed(header, [], []).to_bytes()
            deps += outer
        spec = TaskSpec(
            tid=tid,
            kind=kind,
            fn_hash=fn_hash,
            fn_bytes=fn_bytes,
            args=blob,
            deps=tuple(deps),
            owner=self.proc,
            **fields,
        )
        return spec, stored

    def put_packed(self, packed: Packed) -> Future[Any]:
        tid = self._new_id()
        outcome = self._store_packed(tid, packed)
        f = self._new_future(tid, "arguments")
        self._put(tid, outcome)
        self._on_resolved(tid, outcome)
        return f

    def _submit(
        self, prepared: tuple[TaskSpec, Future[Any] | None], actor_id: int | None = None
    ) -> Future[Any]:
        spec, _stored = prepared  # _stored stays referenced until the scheduler links it
        f = self._new_future(spec.tid, spec.name, actor_id)
        try:
            self._send_spec(spec)
        except BaseException:
            with self._futures_lock:
                self._pending.pop(spec.tid, None)
            f._backend = None  # type: ignore[assignment]  # nothing to release
            raise
        return f

    def _check_open(self) -> None:
        if self.closed:
            raise errors.ClusterClosedError(
                "this client was shut down; call jf.init() to start a new cluster"
            )

    # -- how each kind of process talks to the scheduler ------------------------
    def _send_spec(self, spec: TaskSpec) -> None:
        raise NotImplementedError

    def _send_specs(self, specs: list[TaskSpec]) -> None:
        for spec in specs:
            self._send_spec(spec)

    def _put(self, tid: int, outcome: Outcome) -> None:
        raise NotImplementedError

    def _acquire(self, tids: list[int]) -> None:
        raise NotImplementedError

    def _release_later(self, tid: int) -> None:
        raise NotImplementedError

    def _drain_releases(self) -> None:
        """Have the releases queued by dropped futures carried out now (a hint)."""

    def _cancel(self, tid: int) -> bool:
        raise NotImplementedError

    def _kill_actor(self, aid: int) -> None:
        raise NotImplementedError

    def _where(self, tid: int) -> list[int]:
        raise NotImplementedError

    def _copy_missing(self, tid: int) -> None:
        raise NotImplementedError

    def future_state(self, tid: int) -> str:
        return "pending"

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a blocking wait; a task's client gives its slot back meanwhile."""
        yield

    def wants_value(self, f: Future[Any]) -> None:
        """Nothing to fetch: a value is read from shared memory where it lies."""


def _task_fields(
    fn: Any,
    *,
    min_cpu: float = 0,
    min_ram: float = 0,
    min_gpu: float = 0,
    resources: dict[str, float] | None = None,
    locality: LocalityRequirement | Future[Any] | None = None,
    max_retries: int = 0,
    allow_reconstruction: bool = True,
    name: str | None = None,
    priority: int = 0,
) -> dict[str, Any]:
    """The spec fields of a task from ``submit``'s options, checked."""
    return dict(
        requirements=_requirements(min_cpu, min_ram, min_gpu, resources),
        locality=_locality(locality),
        max_retries=_non_negative_int("max_retries", max_retries),
        allow_reconstruction=bool(allow_reconstruction),
        name=name or getattr(fn, "__name__", "task"),
        priority=check_priority(priority),
    )


def _requirements(
    min_cpu: float, min_ram: float, min_gpu: float, resources: dict[str, float] | None
) -> Requirements:
    values = {"min_cpu": min_cpu, "min_ram": min_ram, "min_gpu": min_gpu}
    for label, value in list(values.items()) + [
        (f"resources[{k!r}]", v) for k, v in (resources or {}).items()
    ]:
        if not isinstance(value, (int, float)) or value < 0 or value != value:
            raise ValueError(f"{label} must be a non-negative number, got {value!r}")
    custom = {str(k): float(v) for k, v in (resources or {}).items()}
    for reserved in ("cpu", "ram", "gpu"):
        if reserved in custom:
            raise ValueError(f"use min_{reserved}= rather than resources={{{reserved!r}: ...}}")
    if not custom and not (min_cpu or min_ram or min_gpu):
        return NO_REQUIREMENTS  # almost every future: one shared record, not one each
    return Requirements(cpu=float(min_cpu), ram=float(min_ram), gpu=float(min_gpu), custom=custom)


def _locality(loc: LocalityRequirement | Future[Any] | None) -> tuple[int, int] | None:
    if loc is None:
        return None
    if isinstance(loc, Future):
        return (-1, loc.id)
    if isinstance(loc, LocalityRequirement):
        if not isinstance(loc.worker, int):
            raise TypeError(f"worker {loc.worker!r} is not a worker of the local engine")
        return (loc.worker, loc.future_id)
    raise TypeError(f"locality= takes a LocalityRequirement from jf.locality(f), got {type(loc).__name__}")


def _non_negative_int(label: str, value: int) -> int:
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{label} must be a non-negative integer, got {value!r}")
    return value


def _actor_id(actor: ActorHandle | Future[ActorHandle]) -> tuple[int, str]:
    if isinstance(actor, ActorHandle):
        return actor.id, actor.class_name
    if isinstance(actor, Future) and actor.actor_id is not None:
        return actor.actor_id, actor.name
    raise TypeError(f"expected an actor handle (from create_actor), got {type(actor).__name__}")


__all__ = ["BaseClient", "LocalityRequirement", "current_client_or_none", "get_client", "set_client"]
