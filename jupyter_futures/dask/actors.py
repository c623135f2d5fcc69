"""Actors on Dask: the actor half of ``DaskBackend`` (a mixin it inherits).

::

    create_actor(Cls) ─► client.submit(worker.ActorHost, spec, Cls, blob, ..., actor=True)
        ─► started: where it lives goes into the scheduler's metadata (for tasks holding
           its handle) ─► the creation future settles with the ActorHandle
    handle.m(x) ─► an outbox slot, in call order ─► ready (its inputs done) ─► _flush on the
        client's loop ─► one rpc call(caller, seq, ActorCall) per call; the host runs each
        caller's calls in seq order ─► the result settles the call's future (held here)
    its worker leaves (the scheduler's remove-worker event) ─► calls in flight fail with
        ActorDiedError at once ─► created again under a new key while max_restarts allows,
        else dead: later calls fail at once

The record table, the client and the settle path (``_new_record``, ``_finish``, ``_fail``)
are the backend's: these methods run on it (``self`` is the DaskBackend).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cloudpickle

from .. import errors
from ..actors import ActorHandle, public_methods
from ..backend import LocalityRequirement
from ..futures import Future
from . import worker as remote
from .packing import locate, pack
from .records import ActorRecord, Fetched, Held, Record


class ActorsOnDask:
    """create_actor, call_actor, kill_actor and what keeps calls in order and alive."""

    if TYPE_CHECKING:  # what these methods use of the DaskBackend they are part of
        cluster_id: str
        _client: Any  # its distributed.Client
        _lock: threading.RLock
        _actors: dict[int, ActorRecord]
        _caller: str
        _in_worker: bool
        _info: tuple[float, dict[str, Any]]
        _sending: set[asyncio.Future[None]]

        def _new_record(
            self, kind: str, name: str, actor_id: int | None = None
        ) -> tuple[Record, Future[Any]]: ...
        def _placement(
            self,
            min_cpu: float,
            min_ram: float,
            min_gpu: float,
            resources: dict[str, float] | None,
            locality: Any,
        ) -> dict[str, Any]: ...
        def _check_ours(self, deps: list[Future[Any]]) -> None: ...
        def _dask_future(self, f: Future[Any]) -> Any: ...
        def _when_sendable(self, rec: Record, send: Callable[[], None]) -> None: ...
        def _settled(self, rec: Record, dfut: Any, fetched: Fetched | None = None) -> None: ...
        def _upstream(self, fid: int | None, cause: BaseException | None) -> BaseException: ...
        def _finish(self, rec: Record, payload: Any = None, cancelled: bool = False) -> None: ...
        def _fail(self, rec: Record, exc: BaseException) -> None: ...

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
        if not isinstance(cls, type):
            raise TypeError(f"create_actor() needs a class, got {type(cls).__name__}")
        if not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be a non-negative integer, got {max_restarts!r}")
        options = self._placement(min_cpu, min_ram, min_gpu, resources, None)
        blob, deps = pack((args, kwargs))
        self._check_ours(deps)
        rec, f = self._new_record("actor", cls.__name__)
        rec.actor = rec.fid
        f.actor_id = rec.fid
        rec.deps = deps
        actor = ActorRecord(rec.fid, cls.__name__, rec.key, max_restarts)
        with self._lock:
            self._actors[rec.fid] = actor
        handle = ActorHandle(rec.fid, cls.__name__, public_methods(cls), self)
        spec = remote.TaskSpec(self.cluster_id, rec.fid, rec.root, cls.__name__, rec.key)

        def send() -> None:
            where, inputs, values = locate(deps, self._dask_future)
            key = rec.key if not actor.restarts else f"{rec.key}-restart{actor.restarts}"
            actor.key = key
            actor.dfut = self._client.submit(
                remote.ActorHost,
                spec,
                cls,
                blob,
                where,
                values,
                *inputs,
                key=key,
                pure=False,
                actor=True,
                **options,
            )
            if not actor.restarts:
                rec.dfut = actor.dfut
            actor.dfut.add_done_callback(lambda d: self._actor_started(rec, actor, handle, d))

        actor.create = send
        self._when_sendable(rec, send)
        return f

    def _actor_started(self, rec: Record, actor: ActorRecord, handle: ActorHandle, dfut: Any) -> None:
        if dfut.status != "finished":
            actor.state = "dead"
            if actor.restarts:
                actor.death = f"it could not be created again: {dfut.exception()!r}"
                self._fail_outbox(actor)
                return
            self._settled(rec, dfut)
            actor.death = f"its constructor failed: {rec.error}"
            return
        try:
            actor.address = self._holder(dfut)
        except Exception as exc:
            actor.state, actor.death = "dead", f"it could not be reached: {exc!r}"
            self._fail(rec, errors.ActorDiedError(f"actor {actor.aid} ({actor.cls_name}) {actor.death}"))
            return
        actor.seq = 0  # a new incarnation numbers its callers' calls from 0
        actor.state = "alive"
        rec.worker = actor.address
        with contextlib.suppress(Exception):  # where tasks holding its handle find it
            self._client.set_metadata(
                ["jupyter-futures", self.cluster_id, "actors", str(actor.aid)],
                {"key": actor.key, "address": actor.address, "class": actor.cls_name},
            )
        self._finish(rec, payload=Held(handle))  # once: a restart finds it settled
        self._client.loop.add_callback(self._flush, actor)

    def _holder(self, dfut: Any) -> str:
        """The worker that holds ``dfut``'s value (an actor: the one it lives on)."""
        who = self._client.who_has([dfut]).get(dfut.key, ())
        if not who:
            raise errors.ObjectLost(f"no Dask worker holds {dfut.key}")
        return str(who[0])

    def _actor_of(self, actor: Any) -> ActorRecord:
        aid = actor.id if isinstance(actor, ActorHandle) else getattr(actor, "actor_id", None)
        record = self._actors.get(aid) if aid is not None else None
        if record is None and self._in_worker and isinstance(aid, int):
            record = self._actor_from_kernel(aid)
        if record is None:
            raise TypeError(f"expected an actor handle (from create_actor), got {type(actor).__name__}")
        return record

    def _actor_from_kernel(self, aid: int) -> ActorRecord | None:
        """A handle that came into a task: where its kernel said the actor lives."""
        try:
            info = self._client.get_metadata(["jupyter-futures", self.cluster_id, "actors", str(aid)])
        except KeyError:
            return None
        a = ActorRecord(
            aid, str(info["class"]), str(info["key"]), 0, address=str(info["address"]), state="alive"
        )
        with self._lock:
            return self._actors.setdefault(aid, a)

    def call_actor(self, actor: Any, method: str, *args: Any, **kwargs: Any) -> Future[Any]:
        if isinstance(actor, Future):
            actor = actor.result()
        a = self._actor_of(actor)
        if not isinstance(method, str) or not method:
            raise TypeError("the method must be named by a non-empty string")
        blob, deps = pack((args, kwargs))
        self._check_ours(deps)
        rec, f = self._new_record("call", f"{a.cls_name}.{method}")
        rec.actor = a.aid
        rec.deps = deps
        if a.state == "dead":
            self._fail(rec, errors.ActorDiedError(f"actor {a.aid} ({a.cls_name}) is dead: {a.death}"))
            return f
        slot: list[Any] = [None]
        with self._lock:
            a.outbox.append(slot)
            a.queued += 1

        def ready(_f: Any = None) -> None:
            if slot[0] is None and all(d.done() for d in deps):
                if a.state == "dead":
                    self._fail(rec, errors.ActorDiedError(f"actor {a.aid} ({a.cls_name}) is dead: {a.death}"))
                failed = next((d for d in deps if d.cancelled() or d.exception() is not None), None)
                if a.state == "dead" or failed is not None:
                    if failed is not None:
                        cause = None if failed.cancelled() else failed.exception()
                        self._fail(rec, self._upstream(failed.id, cause))
                    slot[0] = (rec, None)
                else:
                    where, _inputs, values = locate(deps, lambda d: None)
                    slot[0] = (rec, remote.ActorCall(rec.fid, rec.root, method, blob, where, tuple(values)))
                self._client.loop.add_callback(self._flush, a)

        if not deps:
            ready()
        for d in deps:
            d.add_done_callback(ready)
        return f

    def _flush(self, a: ActorRecord) -> None:
        """On the client's loop: send the calls that are ready, in call order, each as its
        own rpc numbered by this caller's sequence (the actor runs them in that order)."""
        if a.state != "alive":
            return
        with self._lock:
            ready = []
            while a.outbox and a.outbox[0][0] is not None:
                ready.append((a.seq, a.outbox.pop(0)[0]))
                a.seq += 1
        for seq, (rec, call) in ready:
            if call is not None:
                a.inflight[rec.fid] = rec
            else:  # its turn is skipped (it failed before it was sent)
                call = remote.ActorCall(rec.fid, rec.root, None)
            task = asyncio.ensure_future(self._send_call(a, rec, seq, call))
            self._sending.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._sending.discard)

    async def _actor_rpc(self, a: ActorRecord, function: str, *args: str | int | bytes) -> Any:
        """``function(*args)`` of the actor's host; plain arguments (msgpack carries them
        as they are, with no serializer negotiation per argument)."""
        from distributed.actor import ProxyRPC

        assert a.address is not None
        rpc = (
            self._client.rpc(a.address)
            if self._client.direct_to_workers
            else ProxyRPC(self._client.scheduler, a.address)
        )
        answer = await rpc.actor_execute(
            actor=a.key,
            function=function,
            args=list(args),
            kwargs={"separate_thread": False},
        )
        if answer["status"] != "OK":
            raise answer["exception"]
        return answer["result"]

    async def _send_call(self, a: ActorRecord, rec: Record, seq: int, call: remote.ActorCall) -> None:
        rec.started = rec.started or time.monotonic()  # queued behind earlier calls, maybe
        try:
            value = await self._actor_rpc(a, "call", self._caller, seq, cloudpickle.dumps(call, protocol=5))
        except errors.TaskFailed as exc:
            self._fail(rec, exc.error)
        except Exception as exc:
            self._actor_lost(a, exc)
            self._fail(
                rec, errors.ActorDiedError(f"actor {a.aid} ({a.cls_name}) died during this call: {a.death}")
            )
        else:
            if call.method is not None:
                self._finish(rec, payload=Held(value))
        with self._lock:
            a.inflight.pop(rec.fid, None)
            if call.method is not None:
                a.queued -= 1
                a.calls_done += 1

    def _actor_lost(self, a: ActorRecord, exc: BaseException) -> None:
        if a.state in ("dead", "restarting"):
            return
        why = f"its Dask worker {a.address} is gone ({type(exc).__name__}: {exc})"
        for r in list(a.inflight.values()):  # calls in flight fail now, not when their rpc times out
            self._fail(r, errors.ActorDiedError(f"actor {a.aid} ({a.cls_name}) died during this call: {why}"))
        if a.restarts < a.max_restarts:
            a.restarts += 1
            a.state = "restarting"
            self._client.loop.add_callback(self._restart_actor, a)
            return
        a.state, a.death = "dead", why
        self._fail_outbox(a)
        if a.dfut is not None:
            self._client.loop.add_callback(self._client._cancel, [a.dfut])  # else Dask makes it again

    def _fail_outbox(self, a: ActorRecord) -> None:
        """The calls of a dead actor not sent yet fail (later ones fail at once)."""
        with self._lock:
            left, a.outbox = a.outbox, []
            a.queued -= len(left)
        for slot in left:
            if slot[0] is not None and slot[0][1] is not None:
                self._fail(
                    slot[0][0], errors.ActorDiedError(f"actor {a.aid} ({a.cls_name}) is dead: {a.death}")
                )

    async def _restart_actor(self, a: ActorRecord) -> None:
        """Dask does not make an actor again when its worker dies (its key errs), so it is
        created again here, from its constructor arguments, under a new key; calls from
        here on go to the new one once it has started."""
        if a.dfut is not None:
            await self._client._cancel([a.dfut])
        await self._client.loop.run_in_executor(None, a.create)

    def kill_actor(self, actor: Any) -> None:
        a = self._actor_of(actor)
        if a.state == "dead":
            return
        a.state, a.death = "dead", "it was killed with kill_actor()"

        async def stop() -> None:
            with contextlib.suppress(Exception):
                await self._actor_rpc(a, "stop", a.death)
            if a.dfut is not None:
                await self._client._cancel([a.dfut])

        if a.address is not None:
            self._client.sync(stop)
        self._fail_outbox(a)

    def actor_locality(self, actor: ActorHandle) -> LocalityRequirement | None:
        a = self._actors.get(actor.id)
        if a is None or a.state == "dead" or a.address is None:
            return None
        return LocalityRequirement(a.address, a.aid)

    def _on_cluster_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """The scheduler's own events: a worker that leaves takes its actors with it (Dask
        errs an actor's key then), so their calls fail, or they restart, at once."""
        msg = event[1]
        if msg.get("action") != "remove-worker":
            return
        gone = str(msg.get("worker"))
        self._info = (0.0, {})
        for a in list(self._actors.values()):
            if a.address == gone and a.state == "alive":
                self._actor_lost(a, ConnectionError(f"worker {gone} left the cluster"))
