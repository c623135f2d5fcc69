"""Read-only views of the scheduler's state, for widgets and output routing.

Everything the Jupyter layer reads from the scheduler beyond ``Client.status()`` goes
through here, under the cluster's lock, and comes back as plain data: one place to change
when the scheduler's records change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.records import ASSIGNED, FAILED, PUBLIC_STATE, WAITING
from ..core.views import actor_view
from .protocol import DRIVER

if TYPE_CHECKING:
    from ..client import Client
    from ..core.records import TaskState
    from ..core.scheduler import SchedulerState


@dataclass(frozen=True)
class TaskView:
    """One future as the scheduler sees it now."""

    tid: int
    name: str
    state: str  # pending, running, done, failed, cancelled
    waiting_on: int  # inputs not done yet
    worker: int | None  # where it runs (while running) or where its value lives (when done)
    elapsed: float  # seconds running so far, or the run's duration once finished
    error: str  # "Type: message" of a failure


def task(client: Client, tid: int) -> TaskView | None:
    """The scheduler's record of ``tid`` (None once it is forgotten)."""

    def read(st: SchedulerState) -> TaskView | None:
        t = st.tasks.get(tid)
        return _view(t, time.monotonic()) if t is not None else None

    return client.cluster.query(read, client.cluster.state)  # type: ignore[no-any-return]


def latest(client: Client, n: int) -> list[TaskView]:
    """The ``n`` futures submitted last, newest first."""

    def read(st: SchedulerState) -> list[TaskView]:
        now = time.monotonic()
        out = []
        for tid in reversed(st.tasks):
            t = st.tasks[tid]
            if t.spec.kind == "put":
                continue
            out.append(_view(t, now))
            if len(out) == n:
                break
        return out

    return client.cluster.query(read, client.cluster.state)  # type: ignore[no-any-return]


def failures(client: Client, n: int) -> list[TaskView]:
    """The ``n`` latest failures, newest first (stops looking once all are found)."""

    def read(st: SchedulerState) -> list[TaskView]:
        left = st.counts.get("failed", 0)
        now = time.monotonic()
        out: list[TaskView] = []
        if left <= 0:
            return out
        for tid in reversed(st.tasks):
            t = st.tasks[tid]
            if t.state == FAILED:
                out.append(_view(t, now))
                left -= 1
                if len(out) == n or left == 0:
                    break
        return out

    return client.cluster.query(read, client.cluster.state)  # type: ignore[no-any-return]


def running_on(client: Client, wid: int) -> list[int]:
    """Futures assigned to worker ``wid`` now (running, or blocked waiting on others)."""

    def read(st: SchedulerState) -> list[int]:
        w = st.workers.get(wid)
        if w is None:
            return []
        return [tid for tid in w.assigned if tid in st.tasks and st.tasks[tid].state == ASSIGNED]

    return client.cluster.query(read, client.cluster.state)  # type: ignore[no-any-return]


def submitted(client: Client, tid: int) -> tuple[int, float] | None:
    """``(owner, submission time)`` of ``tid``: the process that submitted it (0: the
    kernel) and its ``time.monotonic()`` then; None once the scheduler forgot it."""

    def read(st: SchedulerState) -> tuple[int, float] | None:
        t = st.tasks.get(tid)
        return (t.spec.owner, t.submitted) if t is not None else None

    return client.cluster.query(read, client.cluster.state)  # type: ignore[no-any-return]


def actor(client: Client, aid: int) -> dict[str, Any] | None:
    """An actor's class, worker, state, calls done and queued, and its creation future."""

    def read(st: SchedulerState) -> dict[str, Any] | None:
        a = st.actors.get(aid)
        if a is None:
            return None
        return {**actor_view(a), "create_tid": a.create_tid, "death": a.death}

    return client.cluster.query(read, client.cluster.state)  # type: ignore[no-any-return]


def _view(t: TaskState, now: float) -> TaskView:
    o = t.outcome
    if t.state == ASSIGNED:
        worker = t.worker
        elapsed = now - t.started
    else:
        worker = o.where if o is not None and o.where not in (None, DRIVER) else None
        elapsed = o.duration if o is not None else 0.0
    error = ""
    if t.state == FAILED and o is not None:
        kind = o.error_type.removeprefix("jf:")
        lines = o.text.strip().splitlines()
        message = lines[-1] if lines else ""
        remote = message.startswith((kind, kind.rsplit(".", 1)[-1]))
        error = (
            message
            if remote and not o.error_type.startswith("jf:")
            else f"{kind}: {lines[0] if lines else ''}"
        )
    return TaskView(
        tid=t.spec.tid,
        name=t.spec.name or t.spec.kind,
        state=PUBLIC_STATE[t.state],
        waiting_on=len(t.waiting_on) if t.state == WAITING else 0,
        worker=worker,
        elapsed=elapsed,
        error=error,
    )
