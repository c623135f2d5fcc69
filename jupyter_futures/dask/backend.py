"""``DaskBackend``: the backend protocol served by a Dask distributed cluster.

::

    jf.init(address="tcp://host:8786" | distributed.Client | a Dask cluster object)
      └─ DaskBackend: a distributed.Client; each worker's jupyter_futures and Python
         versions checked; one subscription to this kernel's event topic (output, starts)

    submit(fn, *args) ─► pack: futures anywhere in the arguments ─► Dask inputs or held values
        ─► client.submit(worker.run_task, spec, fn, blob, where, values, *inputs,
                         key=<name>-<session>-<fid>, pure=False, resources=/workers=,
                         priority=<its own, then its place in its cell's line: _rank>)
        ─► Dask runs it ─► done callback ─► Future._settle(the Dask future | the error)
    create_actor(Cls), handle.m(x), kill_actor ─► actors.py (a mixin of this class)
    cancel(f) ─► client.cancel + worker.interrupt where it runs; still running after the
                 grace ─► restart that worker (its nanny starts it again)

Errors keep their type and remote traceback (``worker.remote_error``); a dependent of a
failed future fails with ``UpstreamDependencyFailedException`` naming it. What cannot hold
on Dask is listed in the README ("On a Dask cluster").
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import os
import queue
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .. import errors
from ..backend import (
    ActorView,
    ClusterStatus,
    FutureView,
    GroupHook,
    LocalityRequirement,
    Origin,
    OutputHandler,
    TaskStream,
    check_priority,
    default_output,
    group_of,
    queue_rows,
)
from ..futures import Future, FutureInfo, WorkerId
from ..runs import lane_namer
from . import worker as remote
from .actors import ActorsOnDask
from .packing import locate, pack
from .records import KEEP_RECORDS, PLAIN, ActorRecord, Fetched, Held, Record, key_prefix, worker_row
from .stream import DaskRuns

T = TypeVar("T")
LOG_RECORDS = 200  # log records per Dask worker that logs() returns
RANK_SPAN = 2**32  # tasks of one group and priority that _rank tells apart
log = logging.getLogger("jupyter_futures")
_backends: weakref.WeakValueDictionary[str, DaskBackend] = weakref.WeakValueDictionary()


def _connect(address: Any, timeout: float) -> tuple[Any, bool]:
    """A distributed.Client for ``address``, and whether this backend made it (and closes it)."""
    import distributed

    if isinstance(address, distributed.Client):
        return address, False
    target = getattr(address, "scheduler_address", address)
    if not isinstance(target, str):
        raise TypeError(
            "address= takes a scheduler address ('tcp://host:8786'), a distributed.Client or a "
            f"Dask cluster object, got {type(address).__name__}"
        )
    try:  # a cluster object itself, not its address: the client then shares the cluster's
        # event loop, as ``distributed.Client(cluster)`` does (an in-process scheduler's
        # messages then cross no second loop thread)
        return distributed.Client(address, set_as_default=False, timeout=timeout), True
    except OSError as exc:
        raise errors.ClusterClosedError(
            f"no Dask scheduler answered at {target} within {timeout:g} s: {exc}"
        ) from exc


class DaskBackend(ActorsOnDask):
    """jupyter_futures on a Dask distributed cluster (see the module docstring); its
    actors are in :mod:`.actors`."""

    name = "dask"

    def __init__(
        self,
        address: Any = None,
        *,
        cancel_grace: float = 2.0,
        connect_timeout: float = 10.0,
        _client: Any = None,
        _session: str | None = None,
        _running_spec: Callable[[], remote.TaskSpec | None] | None = None,
        **_ignored: Any,  # options of the local engine (store size, heartbeats) mean nothing here
    ) -> None:
        self._in_worker = _client is not None
        if _client is not None:
            self._client, self._owns_client = _client, False
        else:
            self._client, self._owns_client = _connect(address, connect_timeout)
        self.cluster_id = _session or secrets.token_hex(5)
        self.cancel_grace = cancel_grace
        self._running_spec = _running_spec or (lambda: None)
        self._closed = False
        self._ids: Iterator[int] = (
            iter(lambda: secrets.randbits(52) | 1 << 52, None) if self._in_worker else itertools.count(1)
        )
        self._lock = threading.RLock()
        self._records: OrderedDict[int, Record] = OrderedDict()
        self._stream = DaskRuns(self._client, self.cluster_id)  # for the task stream
        self._actors: dict[int, ActorRecord] = {}
        self._nested_roots: dict[int, int] = {}
        self._caller = secrets.token_hex(6)  # this client, as a caller of actors
        self._sending: set[asyncio.Future[None]] = set()
        self._unwatched: list[tuple[Record, Any]] = []
        self._watch_scheduled = False
        self._settle_q: queue.SimpleQueue[tuple[Record, Any, Fetched | None] | None] = queue.SimpleQueue()
        self._settler: threading.Thread | None = None
        self._handler: OutputHandler = default_output
        self._group_hook: GroupHook | None = None
        self._turns: dict[tuple[int, int], int] = {}  # (group, priority) -> tasks ranked so far
        self._info: tuple[float, dict[str, Any]] = (0.0, {})
        self._pids: dict[str, int] = {}
        self._tls = threading.local()
        if not self._in_worker:
            try:
                self._check_workers()
            except BaseException:
                self._close_client()
                raise
            self._client.subscribe_topic(remote.topic(self.cluster_id), self._on_event)
            self._client.subscribe_topic("all", self._on_cluster_event)  # workers leaving
            try:
                self._stream.start()
            except Exception:  # a scheduler that keeps no task stream: the view stays empty
                log.warning("the Dask scheduler did not start its task stream", exc_info=True)
            _backends[self.cluster_id] = self

    # -- connecting ---------------------------------------------------------------------
    def _check_workers(self) -> None:
        mine = remote.versions()
        answers = self._client.run(remote.versions, on_error="return")
        try:  # the scheduler unpickles task graphs too, so it needs the package as well
            answers["scheduler " + str(self._client.scheduler.address)] = self._client.run_on_scheduler(
                remote.versions
            )
        except Exception as exc:
            answers["scheduler " + str(self._client.scheduler.address)] = exc
        bad = {addr: v for addr, v in answers.items() if not isinstance(v, dict) or v != mine}
        if not bad:
            return
        lines = [
            f"  {addr}: {'cannot import jupyter_futures (' + repr(v) + ')' if not isinstance(v, dict) else v}"
            for addr, v in sorted(bad.items())
        ]
        raise errors.WorkerEnvironmentError(
            f"{len(bad)} of {len(answers)} Dask processes (workers and scheduler) cannot run this "
            f"kernel's work (the kernel runs jupyter_futures {mine['jupyter_futures']} "
            f"on Python {mine['python']}):\n"
            + "\n".join(lines)
            + f"\nInstall the same version there: pip install 'jupyter_futures=={mine['jupyter_futures']}' "
            "in each worker's environment (or its image), then restart those workers."
        )

    @property
    def n_workers(self) -> int:
        return len(self._workers())

    def _workers(self, fresh: bool = False) -> dict[str, Any]:
        stamp, info = self._info
        if fresh or time.monotonic() - stamp > 1.0:
            info = self._client.scheduler_info(n_workers=-1).get("workers", {})
            self._info = (time.monotonic(), info)
        return info

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise errors.ClusterClosedError("this client was shut down; call jf.init() to connect again")

    def _new_record(self, kind: str, name: str, actor_id: int | None = None) -> tuple[Record, Future[Any]]:
        self._check_open()
        fid = next(self._ids)
        f: Future[Any] = Future(fid, self, name, actor_id)
        spec = self._running_spec()
        root = spec.root if spec is not None else fid
        group = spec.group if spec is not None else group_of(self._group_hook)
        key = f"{key_prefix(name)}-{self.cluster_id}-{fid}"
        rec = Record(fid, name, kind, key, f, root=root, group=group)
        with self._lock:
            self._records[fid] = rec
            self._forget_old()
        return rec, f

    def _forget_old(self) -> None:
        while len(self._records) > KEEP_RECORDS:
            fid, old = next(iter(self._records.items()))
            if old.state in ("pending", "running"):
                break
            del self._records[fid]

    # -- requirements and locality ---------------------------------------------------------
    def _placement(
        self,
        min_cpu: float,
        min_ram: float,
        min_gpu: float,
        resources: dict[str, float] | None,
        locality: Any,
    ) -> dict[str, Any]:
        if min_cpu == min_ram == min_gpu == 0 and not resources and locality is None:
            return {}  # the common case: nothing to check, no scheduler lookup
        asked = {"cpu": min_cpu, "ram": min_ram, "gpu": min_gpu, **(resources or {})}
        for reserved in ("cpu", "ram", "gpu"):
            if reserved in (resources or {}):
                raise ValueError(f"use min_{reserved}= rather than resources={{{reserved!r}: ...}}")
        named = {"cpu": "min_cpu", "ram": "min_ram", "gpu": "min_gpu"}
        for k, v in asked.items():
            if not isinstance(v, (int, float)) or v < 0 or v != v:
                raise ValueError(
                    f"{named.get(k, f'resources[{k!r}]')} must be a non-negative number, got {v!r}"
                )
        workers = self._workers()
        advertised = {r for w in workers.values() for r in (w.get("resources") or {})}
        wanted: dict[str, float] = {str(k): float(v) for k, v in (resources or {}).items() if v}
        if min_gpu:
            wanted["GPU"] = float(min_gpu)
        if min_cpu and "CPU" in advertised:
            wanted["CPU"] = float(min_cpu)
        if min_ram and "MEMORY" in advertised:
            wanted["MEMORY"] = float(min_ram)
        by_threads = bool(min_cpu) and "CPU" not in wanted
        by_memory = bool(min_ram) and "MEMORY" not in wanted

        def fits(w: dict[str, Any]) -> bool:
            have = w.get("resources") or {}
            return (
                all(have.get(k, 0) >= v for k, v in wanted.items())
                and (not by_threads or w.get("nthreads", 0) >= min_cpu)
                and (not by_memory or not w.get("memory_limit") or w["memory_limit"] >= min_ram)
            )

        fit = [addr for addr, w in workers.items() if fits(w)]
        if workers and not fit:
            raise errors.UnsatisfiableRequirementError(self._unsatisfiable(asked, workers))
        out: dict[str, Any] = {}
        if wanted:
            out["resources"] = wanted
        if by_threads or by_memory:
            out["workers"], out["allow_other_workers"] = fit, False
        if locality is not None:
            out.update(self._locality(locality))
        return out

    @staticmethod
    def _unsatisfiable(asked: dict[str, float], workers: dict[str, Any]) -> str:
        def size(w: dict[str, Any]) -> tuple[float, float]:
            return (w.get("nthreads", 0), w.get("memory_limit", 0))

        addr, w = max(workers.items(), key=lambda kv: size(kv[1]))
        offers = {
            "cpu": w.get("nthreads", 0),
            "ram": int(w.get("memory_limit") or 0),
            **(w.get("resources") or {}),
        }
        want = ", ".join(f"{k}={v:g}" for k, v in asked.items() if v)
        have = ", ".join(
            f"{k}={v / 2**30:.3g} GiB" if k == "ram" else f"{k}={v:g}" for k, v in offers.items()
        )
        return f"no worker can ever meet {want}: the largest Dask worker ({addr}) offers {have}"

    def _locality(self, locality: Any) -> dict[str, Any]:
        reqs = locality if isinstance(locality, (list, tuple)) else [locality]
        addrs: list[str] = []
        follow = False  # to a value: rebuilt elsewhere if its worker died, so the place may move
        for r in reqs:
            if isinstance(r, Future):
                if not r.done():  # an input already (submit adds it): Dask runs work beside its inputs
                    continue
                addrs += [str(x.worker) for x in self.locality(r)]
                follow = True
            elif isinstance(r, LocalityRequirement):
                if r.future_id in self._actors:
                    addrs.append(self._actors[r.future_id].address or str(r.worker))
                else:
                    addrs.append(str(r.worker))
                    follow = follow or r.future_id in self._records
            elif isinstance(r, str):
                addrs.append(r)
            else:
                raise TypeError(
                    f"locality= takes jf.locality(f), a Future or a worker address, got {type(r).__name__}"
                )
        return {"workers": addrs, "allow_other_workers": follow} if addrs else {}

    @staticmethod
    def _beside(locality: Any) -> list[Future[Any]]:
        """The futures a locality names: inputs of the work, so Dask runs it beside them."""
        reqs = locality if isinstance(locality, (list, tuple)) else [locality]
        return [r for r in reqs if isinstance(r, Future)]

    def _beside_keys(self, locality: Any) -> list[Any]:
        """The values ``jf.locality(f)`` results point at, as inputs too: if the worker
        holding one died, the work waits for it to be rebuilt and runs beside the new copy
        (the restriction to the dead worker is loose), instead of waiting for ever."""
        reqs = locality if isinstance(locality, (list, tuple)) else [locality]
        out = []
        for r in reqs:
            rec = self._records.get(r.future_id) if isinstance(r, LocalityRequirement) else None
            if rec is not None and rec.dfut is not None and rec.kind != "actor":
                out.append(rec.dfut)
        return out

    def locality(self, f: Future[Any]) -> list[LocalityRequirement]:
        f.result()
        rec = self._records.get(f.id)
        if rec is None or rec.dfut is None:
            return []
        who = self._client.who_has([rec.dfut]).get(rec.key, ())
        return [LocalityRequirement(str(w), f.id) for w in who]

    # -- tasks ---------------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        min_cpu: float = 0,
        min_ram: float = 0,
        min_gpu: float = 0,
        resources: dict[str, float] | None = None,
        locality: Any = None,
        max_retries: int = 0,
        allow_reconstruction: bool = True,
        name: str | None = None,
        priority: int = 0,
        **kwargs: Any,
    ) -> Future[T]:
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        check_priority(priority)
        self._check_open()
        options = self._placement(min_cpu, min_ram, min_gpu, resources, locality)
        if not kwargs and locality is None and all(type(a) in PLAIN for a in args):
            return self._submit_plain(fn, args, options, max_retries, allow_reconstruction, name, priority)
        blob, deps = pack((args, kwargs))
        deps += [r for r in self._beside(locality) if all(r is not d for d in deps)]
        self._check_ours(deps)
        label = name or str(getattr(fn, "__name__", "task"))
        rec, f = self._new_record("task", label)
        rec.deps = deps
        options["priority"] = self._rank(rec, priority)
        spec = remote.TaskSpec(
            self.cluster_id, rec.fid, rec.root, label, rec.key, not allow_reconstruction, rec.group
        )

        def send() -> None:
            where, inputs, values = locate(deps, self._dask_future)
            inputs += self._beside_keys(locality)
            rec.dfut = self._client.submit(
                remote.run_task,
                spec,
                fn,
                blob,
                where,
                values,
                *inputs,
                key=rec.key,
                pure=False,
                retries=max_retries or None,
                **options,
            )
            self._watch(rec, rec.dfut)

        self._when_sendable(rec, send)
        return f

    def _submit_plain(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        options: dict[str, Any],
        max_retries: int,
        allow_reconstruction: bool,
        name: str | None,
        priority: int,
    ) -> Future[T]:
        """Scalars only (no futures can hide in them): straight to Dask, pickled once."""
        label = name or str(getattr(fn, "__name__", "task"))
        rec, f = self._new_record("task", label)
        options = {**options, "priority": self._rank(rec, priority)}
        spec = remote.TaskSpec(
            self.cluster_id, rec.fid, rec.root, label, rec.key, not allow_reconstruction, rec.group
        )
        try:
            rec.dfut = self._client.submit(
                remote.run_plain,
                spec,
                fn,
                *args,
                key=rec.key,
                pure=False,
                retries=max_retries or None,
                **options,
            )
        except Exception as exc:
            self._fail(rec, errors.SerializationError(f"future {rec.fid} could not be sent to Dask: {exc!r}"))
            return f
        self._watch(rec, rec.dfut)
        return f

    def _rank(self, rec: Record, priority: int) -> int:
        """Dask's ``priority=`` for task ``rec``: its own priority, then its place in its
        group's line. Dask serves queued work by priority, the oldest first among equals;
        so that cells take turns there too, a group's n-th task ranks with the n-th of
        every other group, and a new cell's work goes before the rest of an older cell's
        long queue (turns by work submitted rather than strictly one by one)."""
        rec.priority = priority
        key = (rec.group, priority)
        with self._lock:
            n = self._turns.get(key, 0)
            self._turns[key] = n + 1
        return priority * RANK_SPAN - min(n, RANK_SPAN - 1)

    def _check_ours(self, deps: list[Future[Any]]) -> None:
        for d in deps:
            if d.backend is not self:
                raise ValueError(f"future {d.id} belongs to another cluster; pass its value instead")

    def _dask_future(self, f: Future[Any]) -> Any:
        rec = self._records.get(f.id)
        if rec is not None and rec.dfut is not None:
            return rec.dfut
        payload = f._payload
        if isinstance(payload, Fetched):
            return payload.dfut
        return None if isinstance(payload, Held) else payload

    def _sendable(self, d: Future[Any]) -> bool:
        rec = self._records.get(d.id)
        return d.done() or (rec is not None and rec.dfut is not None)

    def _when_sendable(self, rec: Record, send: Callable[[], None]) -> None:
        """Send now if every input is a Dask key or a held value; else when the rest are
        done (an actor call's result, or work waiting on one)."""
        left = [d for d in rec.deps if not self._sendable(d)]
        if not left:
            self._send(rec, send)
            return
        count = [len(left)]
        lock = threading.Lock()

        def one_done(_f: Any) -> None:
            with lock:
                count[0] -= 1
                last = count[0] == 0
            if last:
                self._send(rec, send)

        for d in left:
            d.add_done_callback(one_done)

    def _send(self, rec: Record, send: Callable[[], None]) -> None:
        failed = next(
            (d for d in rec.deps if d.done() and (d.cancelled() or d.exception() is not None)), None
        )
        if rec.cancelling or self._closed:
            return
        if failed is not None:
            self._fail(rec, self._upstream(failed.id, None if failed.cancelled() else failed.exception()))
            return
        try:
            send()
        except Exception as exc:  # does not pickle, scheduler gone
            self._fail(rec, errors.SerializationError(f"future {rec.fid} could not be sent to Dask: {exc!r}"))

    def submit_many(
        self, fn: Callable[..., T], arg_tuples: list[tuple[Any, ...]], **options: Any
    ) -> list[Future[T]]:
        """One ``submit`` per tuple (each is its own task here too)."""
        return [self.submit(fn, *args, **options) for args in arg_tuples]

    def put(self, obj: Any) -> Future[Any]:
        rec, f = self._new_record("put", "put")
        [rec.dfut] = self._client.scatter([obj], hash=False)
        rec.state = "done"
        rec.future = None
        f._settle(payload=rec.dfut, info=FutureInfo())
        return f

    # -- settling --------------------------------------------------------------------------
    def _watch(self, rec: Record, dfut: Any) -> None:
        """Settle ``rec`` when ``dfut`` finishes. Not ``dfut.add_done_callback``: that wakes
        the client's event loop once per future (a self-pipe write, as costly here as the
        submit itself); here one wake starts the watchers of a whole burst, each awaits its
        Dask future's state on the loop and settles it there when only waiters are to be
        woken; a future with callbacks is settled by one thread of ours, so user callbacks
        do not run on Dask's loop."""
        with self._lock:
            self._unwatched.append((rec, dfut))
            if self._watch_scheduled:
                return
            self._watch_scheduled = True
            if self._settler is None:
                self._settler = threading.Thread(
                    target=self._settle_loop, name="jupyter-futures-dask-settle", daemon=True
                )
                self._settler.start()
        self._client.loop.add_callback(self._start_watchers)

    def _start_watchers(self) -> None:
        with self._lock:
            batch, self._unwatched = self._unwatched, []
            self._watch_scheduled = False
        for rec, dfut in batch:
            task = asyncio.ensure_future(self._watch_one(rec, dfut))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _watch_one(self, rec: Record, dfut: Any) -> None:
        state = getattr(dfut, "_state", None)
        if state is None:  # not the Dask future we know: its own callback, then
            dfut.add_done_callback(lambda d: self._settled(rec, d))
            return
        await state.wait()
        fetched = None
        if rec.fetch and dfut.status == "finished":
            # Someone blocks in result(): gather the value here, on the loop, in the same
            # step, rather than wake them to ask the loop for it (two thread hand-offs).
            try:
                [value] = await self._client._gather([dfut])
            except Exception:  # lost meanwhile, a failed gather: load() asks again
                pass
            else:
                fetched = Fetched(dfut, value)
        f = rec.future
        if f is None or not f._done_callbacks:  # type: ignore[attr-defined]
            self._settled(rec, dfut, fetched)  # only waiters to wake: at once, here
        else:
            self._settle_q.put((rec, dfut, fetched))

    def _settle_loop(self) -> None:
        while (item := self._settle_q.get()) is not None:
            try:
                self._settled(*item)
            except Exception:  # one bad settle must not stop the others
                log.exception("settling a Dask future failed")

    def _settled(self, rec: Record, dfut: Any, fetched: Fetched | None = None) -> None:
        status = dfut.status
        if status == "finished":
            self._finish(rec, payload=fetched or dfut)
        elif status == "cancelled":
            if rec.cancelling:
                self._finish(rec, cancelled=True)
            else:
                self._fail(
                    rec,
                    errors.UpstreamDependencyFailedException(f"an input of future {rec.fid} was cancelled"),
                )
        else:
            state = getattr(dfut, "_state", None)
            exc = getattr(state, "exception", None) if state is not None else None
            if exc is None:
                try:
                    exc = dfut.exception(timeout=30)
                except Exception as why:  # the scheduler went away meanwhile
                    exc = why
            self._fail(rec, self._error(rec, exc))

    def _error(self, rec: Record, exc: BaseException | None) -> BaseException:
        from distributed.scheduler import KilledWorker

        if isinstance(exc, errors.TaskFailed):
            if exc.fid != rec.fid:
                return self._upstream(exc.fid, exc.error)
            if isinstance(exc.error, errors.ObjectLost):  # it had started once: its worker died
                return errors.WorkerDiedException(
                    f"the worker running future {rec.fid} ({rec.name}) died, and it was made with "
                    "allow_reconstruction=False, so it is not run again"
                )
            return exc.error
        if isinstance(exc, KilledWorker):
            if exc.task != rec.key:
                return self._upstream(None, exc)
            return errors.WorkerDiedException(
                f"future {rec.fid} ({rec.name}): the Dask workers running it died each time it ran "
                f"(Dask allows distributed.scheduler.allowed-failures deaths): {exc}"
            )
        if exc is None:
            return errors.WorkerDiedException(f"future {rec.fid} failed on Dask without an exception")
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return errors.make_remote_exception(exc, name, str(exc), "")

    def _upstream(self, fid: int | None, cause: BaseException | None) -> BaseException:
        which = f"input future {fid}" if fid is not None else "an input future"
        rec = self._records.get(fid) if fid is not None else None
        which += f" ({rec.name})" if rec else ""
        if isinstance(cause, errors.ObjectLost):
            exc: BaseException = errors.UpstreamDependencyFailedNoReconstructionAllowed(
                f"{which} was lost and was made with allow_reconstruction=False"
            )
        else:
            exc = errors.UpstreamDependencyFailedException(
                f"{which} failed" + (f" with {cause!r}" if cause is not None else "")
            )
        exc.__cause__ = cause
        return exc

    def _finish(self, rec: Record, payload: Any = None, cancelled: bool = False) -> None:
        with self._lock:
            if rec.state in ("done", "failed", "cancelled"):
                return
            rec.duration = time.monotonic() - rec.started if rec.started else 0.0
            rec.state = "cancelled" if cancelled else "done"
            self._ran(rec)
            f, rec.future = rec.future, None
        if f is not None:
            f._settle(
                payload=payload,
                cancelled=cancelled,
                info=FutureInfo(duration=rec.duration, worker=rec.worker),
            )

    def _fail(self, rec: Record, exc: BaseException) -> None:
        with self._lock:
            if rec.state in ("done", "failed", "cancelled"):
                return
            rec.duration = time.monotonic() - rec.started if rec.started else 0.0
            rec.state, rec.error = "failed", f"{type(exc).__name__}: {exc}"
            self._ran(rec)
            f, rec.future = rec.future, None
        if f is not None:
            f._settle(exc=exc, info=FutureInfo(duration=rec.duration, worker=rec.worker))

    def _ran(self, rec: Record) -> None:
        """An actor call's run, for the task stream (tasks come from Dask's scheduler)."""
        if rec.kind == "call":
            self._stream.call_ran(rec, time.monotonic())

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """This kernel's topic: a task started somewhere, or output of a task."""
        msg = event[1]
        fid = msg.get("fid")
        if "start" in msg:
            rec = self._records.get(fid) if isinstance(fid, int) else None
            if rec is not None and rec.state == "pending":
                rec.state, rec.worker, rec.started = "running", str(msg["start"]), time.monotonic()
            return
        handler = self._handler
        if handler is None or not isinstance(fid, int):
            return
        if fid not in self._records:
            self._nested_roots[fid] = int(msg.get("root", fid))
            while len(self._nested_roots) > KEEP_RECORDS:
                self._nested_roots.pop(next(iter(self._nested_roots)))
        handler(fid, str(msg.get("stream", "stdout")), str(msg.get("text", "")))

    # -- what a Future asks ---------------------------------------------------------------
    def load(self, f: Future[Any], writable: bool) -> Any:
        payload = f._payload
        if isinstance(payload, (Held, Fetched)):
            value = payload.value
        else:
            try:
                with self.waiting():
                    value = payload.result()
            except errors.TaskFailed as exc:
                raise exc.error from None
        return copy.deepcopy(value) if writable else value

    def wants_value(self, f: Future[Any]) -> None:
        rec = self._records.get(f.id)
        if rec is not None and rec.kind == "task":
            rec.fetch = True

    def cancel(self, f: Future[Any]) -> bool:
        rec = self._records.get(f.id)
        if rec is None or rec.state not in ("pending", "running") or rec.kind != "task":
            return False
        rec.cancelling = True
        if rec.dfut is not None:
            self._client.cancel([rec.dfut])
            interrupted = [
                a for a, hit in self._client.run(remote.interrupt, self.cluster_id, rec.key).items() if hit
            ]
            if interrupted:
                threading.Timer(
                    self.cancel_grace, self._restart_if_stuck, args=(rec.key, interrupted)
                ).start()
        self._finish(rec, cancelled=True)
        return True

    def _restart_if_stuck(self, key: str, workers: list[str]) -> None:
        """A task that ignored its interrupt (stuck in C code) past the grace: restart its
        worker, as the local engine does (its nanny starts a fresh one)."""
        if self._closed:
            return
        try:
            still = [
                a
                for a, keys in self._client.run(remote.running_keys, self.cluster_id, workers=workers).items()
                if key in keys
            ]
            if still:
                self._client.restart_workers(still, timeout=30)
        except Exception:  # the worker died meanwhile, or has no nanny: nothing more to do
            pass

    def future_state(self, fid: int) -> str:
        rec = self._records.get(fid)
        return rec.state if rec is not None else "released"

    def release(self, fid: int) -> None:
        rec = self._records.get(fid)
        if rec is not None and rec.future is None:
            rec.dfut = None  # Dask frees the value once no client holds its key

    def reduce(self, f: Future[Any]) -> Any:
        rec = self._records.get(f.id)
        return (_rebuild_future, (self.cluster_id, f.id, rec.key if rec else "", f.name))

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Inside a Dask task: secede from the worker's pool while waiting, then rejoin,
        so nested waits never deadlock (with one thread too)."""
        from distributed.worker import thread_state

        if (
            not self._in_worker
            or getattr(self._tls, "seceded", False)
            or not getattr(thread_state, "key", None)
        ):
            yield
            return
        from distributed import rejoin, secede

        secede()
        self._tls.seceded = True
        try:
            yield
        finally:
            self._tls.seceded = False
            rejoin()

    # -- views -----------------------------------------------------------------------------
    def _view(self, r: Record) -> FutureView:
        elapsed = time.monotonic() - r.started if r.state == "running" else r.duration
        waiting = sum(1 for d in r.deps if not d.done()) if r.state == "pending" else 0
        return FutureView(r.fid, r.name, r.state, waiting, r.worker, elapsed, r.error)

    def future_view(self, fid: int) -> FutureView | None:
        r = self._records.get(fid)
        return self._view(r) if r is not None else None

    def latest_futures(self, n: int) -> list[FutureView]:
        with self._lock:
            return [self._view(r) for r in list(reversed(self._records.values()))[:n]]

    def failed_futures(self, n: int) -> list[FutureView]:
        with self._lock:
            return [self._view(r) for r in reversed(self._records.values()) if r.state == "failed"][:n]

    def actor_view(self, aid: int) -> ActorView | None:
        a = self._actors.get(aid)
        if a is None:
            return None
        return ActorView(a.aid, a.cls_name, a.address, a.state, a.calls_done, a.queued, a.death)

    def task_stream(self, after: int = 0) -> TaskStream:
        """Runs on lanes "worker 127.0.0.1:40131" (a Dask worker) and, for actors,
        "Class #id": tasks as Dask's scheduler recorded them (``stream.py``)."""

        lane_name = lane_namer(
            lambda aid: a.cls_name if (a := self._actors.get(aid)) is not None else None,
            lambda address: str(address).split("://", 1)[-1],
        )
        if not self._closed:
            try:
                self._stream.pull(self._records.get)
            except Exception:  # the scheduler went away: what was recorded stays
                log.debug("reading Dask's task stream failed", exc_info=True)
        return self._stream.since(after, lane_name)

    def value_sizes(self, fs: list[Future[Any]]) -> list[int]:
        """As Dask's scheduler counts them (one question for all of ``fs``)."""
        keys = {f.id: r.key for f in fs if (r := self._records.get(f.id)) is not None and r.state == "done"}
        if not keys:
            return [0] * len(fs)
        try:
            sizes = self._client.nbytes(list(keys.values()), summary=False)
        except Exception:  # the scheduler is going away: sizes are unknown, not an error
            sizes = {}
        return [int(sizes.get(keys.get(f.id), 0)) for f in fs]

    def unsettled(self) -> list[Future[Any]]:
        with self._lock:
            return [r.future for r in self._records.values() if r.future is not None]

    def scale(self, n: int, timeout: float = 60.0) -> None:
        """``cluster.scale(n)`` of the Dask cluster object this client was made from (Dask
        moves a retired worker's data itself); returns once ``n`` workers are there."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"scale() takes a positive number of workers, got {n!r}")
        cluster = getattr(self._client, "cluster", None)
        if cluster is None or not callable(getattr(cluster, "scale", None)):
            raise errors.NotSupportedError(
                "this Dask cluster was reached by its address, so it is scaled where it was "
                "started (cluster.scale(n) of LocalCluster, dask-jobqueue, dask-kubernetes); "
                "or connect with jf.init(address=cluster) to scale it from here"
            )
        cluster.scale(n)
        deadline = time.monotonic() + timeout
        while len(self._client.scheduler_info(n_workers=-1)["workers"]) != n:
            if time.monotonic() > deadline:
                raise errors.WorkersNotStartedError(
                    f"scaling to {n} workers did not finish within {timeout} s"
                )
            time.sleep(0.1)

    def restart(self, timeout: float = 60.0) -> None:
        """Restart every Dask worker through its nanny (``Client.restart_workers``): their
        tasks run again, their data is recomputed when needed."""
        workers = list(self._client.scheduler_info(n_workers=-1)["workers"])
        if workers:
            self._client.restart_workers(workers=workers, timeout=timeout)

    def logs(self, worker: WorkerId | None = None) -> dict[WorkerId, str]:
        """Each Dask worker's recent log records (its ``logging`` output), by address."""
        records = self._client.get_worker_logs(
            n=LOG_RECORDS, workers=[worker] if worker is not None else None
        )
        return {
            addr: "".join(f"{level} {message}\n" for level, message in entries)
            for addr, entries in sorted(records.items())
        }

    def status(self) -> ClusterStatus:
        workers = self._workers(fresh=True)
        with self._lock:
            counts: dict[str, int] = {}
            queued: dict[tuple[int, int], int] = {}
            for r in self._records.values():
                counts[r.state] = counts.get(r.state, 0) + 1
                if r.state == "pending":
                    queued[r.group, r.priority] = queued.get((r.group, r.priority), 0) + 1
            running: dict[str, list[int | str]] = {}
            for r in self._records.values():
                if r.state == "running" and r.worker is not None:
                    running.setdefault(r.worker, []).append(r.fid)
            held = [r for r in self._records.values() if r.state == "done" and r.dfut is not None]
            actors = [
                {
                    "id": a.aid,
                    "class": a.cls_name,
                    "worker": a.address,
                    "state": a.state,
                    "calls_done": a.calls_done,
                    "calls_queued": a.queued,
                }
                for a in self._actors.values()
            ]
        unknown = [a for a in workers if a not in self._pids]
        if unknown:
            with contextlib.suppress(Exception):
                self._pids.update(self._client.run(os.getpid, workers=unknown, on_error="return"))
        rows = [
            worker_row(addr, w, self._pids.get(addr), actors, running.get(addr, []))
            for addr, w in sorted(workers.items())
        ]
        return {
            "cluster": self.cluster_id,
            "engine": self.name,
            "address": str(self._client.scheduler.address),
            "workers": rows,
            "futures": counts,
            "actors": actors,  # type: ignore[typeddict-item]
            "objects": {
                "count": len(held),
                "bytes": sum(w["store_used"] for w in rows),
                "spilled": sum(w["spilled"] for w in rows),
            },
            "queued": queue_rows(queued),
        }

    # -- output and groups, for the Jupyter layer ---------------------------------------------
    def set_output_handler(self, handler: OutputHandler) -> None:
        self._handler = handler

    def set_group_hook(self, hook: GroupHook | None) -> None:
        self._group_hook = hook

    def output_origin(self, fid: int) -> Origin | None:
        r = self._records.get(fid)
        if r is not None:
            return Origin((r.root,), r.submitted)
        root = self._nested_roots.get(fid)
        if root is None:
            return None
        top = self._records.get(root)
        return Origin((root,), top.submitted if top is not None else time.monotonic())

    def wait_for_workers(self, n: int | None = None, timeout: float = 30.0) -> None:
        try:
            self._client.wait_for_workers(n or 1, timeout=timeout)
        except TimeoutError as exc:
            raise errors.WorkersNotStartedError(
                f"fewer than {n or 1} Dask workers after {timeout} s"
            ) from exc

    def shutdown(self) -> None:
        """Disconnect: cancel this kernel's work, drop what it registered on the workers and
        the scheduler; never stop the cluster itself."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            records = list(self._records.values())
            actors = list(self._actors.values())
        unfinished = [r for r in records if r.future is not None]
        for r in unfinished:
            f, r.future = r.future, None
            r.state = "failed"
            if f is not None:
                f._abandon(
                    errors.ClusterClosedError(
                        f"the cluster was shut down before future {r.fid} ({r.name}) finished"
                    )
                )
        self._stop_settler()
        if self._in_worker:
            return
        try:
            dfuts = [r.dfut for r in records if r.dfut is not None] + [
                a.dfut for a in actors if a.dfut is not None
            ]
            for a in actors:
                if a.state != "dead" and a.address is not None:
                    a.state = "dead"
                    with contextlib.suppress(Exception):
                        self._client.sync(self._actor_rpc, a, "stop", "the kernel disconnected")
            if dfuts:
                self._client.cancel(dfuts)
            for r in unfinished:
                if r.dfut is not None:
                    self._client.run(remote.interrupt, self.cluster_id, r.key)
            self._client.run(remote.forget_session, self.cluster_id)
            self._client.run_on_scheduler(_forget_on_scheduler(), self.cluster_id)
            self._client.unsubscribe_topic(remote.topic(self.cluster_id))
            self._client.unsubscribe_topic("all")
        finally:
            for r in records:
                r.dfut = None
            for a in actors:
                a.dfut = None
            self._close_client()

    def _stop_settler(self) -> None:
        self._settle_q.put(None)
        t = self._settler
        if t is not None and t is not threading.current_thread():
            t.join(2.0)

    def _close_client(self) -> None:
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"<jupyter_futures.dask.DaskBackend {self.cluster_id} on {self._client.scheduler.address}>"


def _forget_on_scheduler() -> Callable[..., Any]:
    """A function for ``run_on_scheduler`` that needs nothing of ours there (the scheduler
    may run without jupyter_futures): it drops the session's allow_reconstruction marks."""
    namespace: dict[str, Any] = {}
    exec(
        "def forget(session, dask_scheduler=None):\n"
        "    marks = dask_scheduler.task_metadata.get('jupyter-futures', {})\n"
        "    return marks.pop(session, None) is not None\n",
        namespace,
    )
    return namespace["forget"]  # type: ignore[no-any-return]


def _rebuild_future(session: str, fid: int, key: str, name: str) -> Future[Any]:
    """A future that traveled inside a value: the kernel's own, or (in a task) one bound to
    the task's session client."""
    from distributed import Future as DaskFuture

    backend = _backends.get(session)
    if backend is None and remote.running_spec() is not None:
        backend = remote._session(session).client()
    if backend is None:
        raise errors.SerializationError(f"future {fid} was unpickled outside its Dask session")
    with backend._lock:
        rec = backend._records.get(fid)
        if rec is not None and rec.future is not None:
            return rec.future
        dfut: Any = DaskFuture(key, backend._client)
        f: Future[Any] = Future(fid, backend, name)
        rec = Record(fid, name, "task", key, f, dfut=dfut)
        backend._records[fid] = rec
    dfut.add_done_callback(lambda d: backend._settled(rec, d))
    return f


def _worker_client(
    session: str, worker: Any, running_spec: Callable[[], remote.TaskSpec | None]
) -> DaskBackend:
    """What a task on a Dask worker submits through (``jf.submit`` there): its kernel's
    session, on the worker's own Dask client (``distributed.get_client()`` in a task; the
    same call from an actor's thread, which Dask does not know). A backend, not a
    ``jf.Client``: ``status()`` and the dashboard are the kernel's alone."""
    return DaskBackend(_client=worker._get_client(), _session=session, _running_spec=running_spec)


remote.set_client_factory(_worker_client)
