"""Actors inside a worker: each one an instance, a FIFO of calls and a thread of its own.

::

    I/O thread ── CREATE_ACTOR / ACTOR_CALL ──► FIFO ──► actor thread ──► execute.run ──► DONE
                                                         (the constructor, then each method)

The scheduler sends an actor's calls in the order they were submitted, so running them
one at a time from a FIFO keeps that order. Because each actor has its own thread, the
worker goes on running tasks and answering the scheduler while an actor is busy. A call
cancelled before its turn is reported cancelled and never runs; one that runs finishes.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from ...actors import ActorHandle, public_methods
from ..protocol import TaskMsg
from .execute import LoadArgs, report_cancelled, run
from .host import TaskHost


class ActorHost:
    """One actor: created by the first message, then fed calls until killed."""

    def __init__(self, host: TaskHost, create: TaskMsg) -> None:
        assert create.actor is not None
        self.host = host
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
        while True:
            msg = self._calls.get()
            if msg is None:
                break
            if msg.tid in self.cancelled:
                self.cancelled.discard(msg.tid)
                report_cancelled(self.host, msg)
                continue
            run(self.host, msg, self._invoke, self._more)
        self.instance = None
        self.namespace.clear()

    def _more(self) -> bool:  # the call is over; True if more calls wait
        return not self._calls.empty()

    def _invoke(self, msg: TaskMsg, load_args: LoadArgs) -> Any:
        """An actor's invoke: the arguments first, then the constructor (which makes the
        instance and returns its handle) or the method."""
        args, kwargs = load_args(
            what=f"the arguments of actor call {msg.tid} ({msg.method or 'constructor'})"
        )
        if msg.kind == "actor":
            cls = self.host.function(msg.fn_hash)
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
