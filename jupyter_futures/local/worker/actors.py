"""Actors inside a worker: each one an instance, a FIFO of calls and a thread of its own.

The scheduler sends an actor's calls in the order they were submitted, so running them
one at a time from a FIFO keeps that order. Because each actor has its own thread, the
worker goes on running tasks and answering the scheduler while an actor is busy.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from ...actors import ActorHandle, public_methods
from ...core.records import framework_error
from ..protocol import Outcome, TaskMsg
from ..serialize import unpack_args
from .tasks import ObjectLost, error_outcome

if TYPE_CHECKING:
    from .process import Worker


class ActorHost:
    """One actor: created by the first message, then fed calls until killed."""

    def __init__(self, worker: Worker, create: TaskMsg) -> None:
        assert create.actor is not None
        self.worker = worker
        self.aid = create.actor
        self.instance: Any = None
        self.namespace: dict[str, Any] = {}  # for cells run "inside" the actor
        self.cancelled: set[int] = set()
        self._calls: queue.SimpleQueue[TaskMsg | None] = queue.SimpleQueue()
        self._calls.put(create)
        self._thread = threading.Thread(target=self._run, name=f"jf-actor-{self.aid}", daemon=True)
        self._thread.start()

    def call(self, msg: TaskMsg) -> None:
        self._calls.put(msg)

    def cancel(self, tid: int) -> None:
        self.cancelled.add(tid)

    def kill(self) -> None:
        self._calls.put(None)

    def _run(self) -> None:
        runners = self.worker.runners
        while True:
            msg = self._calls.get()
            if msg is None:
                break
            if msg.tid in self.cancelled:
                self.cancelled.discard(msg.tid)
                self.worker.report_done(msg.tid, msg.attempt, Outcome(status="cancelled"), more=False)
                continue
            runners.tls.tid = msg.tid
            start = time.perf_counter()
            value = None
            runners.tls.mapped = []
            try:
                value = self._invoke(msg)
                outcome = self.worker.pack_result(msg.tid, value)
            except ObjectLost as exc:
                outcome = framework_error("ObjectLost", str(exc))
            except BaseException as exc:
                outcome = error_outcome(exc, skip_frames=2)
            finally:
                runners.tls.tid = None
            outcome.duration = time.perf_counter() - start
            outcome.where = self.worker.wid
            self.worker.output.end_task(msg.tid)
            self.worker.keep_mapped_inputs()
            self.worker.report_done(msg.tid, msg.attempt, outcome, more=not self._calls.empty(), keep=value)
            del value
        self.instance = None
        self.namespace.clear()

    def _invoke(self, msg: TaskMsg) -> Any:
        args, kwargs = unpack_args(
            msg.args,
            lambda d: self.worker.input_value(msg.inputs, d),
            what=f"the arguments of actor call {msg.tid} ({msg.method or 'constructor'})",
        )
        if msg.kind == "actor":
            cls = self.worker.function(msg.fn_hash)
            self.instance = cls(*args, **kwargs)
            return ActorHandle(self.aid, cls.__name__, public_methods(cls))
        return self._method(msg.method)(*args, **kwargs)

    def _method(self, name: str) -> Any:
        if name == "__jf_run__":  # run a function with the actor (and its namespace) at hand
            return lambda fn, *a, **k: fn(self.instance, self.namespace, *a, **k)
        try:
            return getattr(self.instance, name)
        except AttributeError:
            raise AttributeError(f"{type(self.instance).__name__} actor has no method {name!r}") from None
