"""The local engine's side of the backend views: the scheduler's records read under the
cluster's lock and handed out as :mod:`jupyter_futures.backend` views (``FutureView``,
``ActorView``, ``Origin``), so nothing above the backend sees a record."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..backend import ActorView, FutureView, MessagesStatus
from ..core.records import ASSIGNED, FAILED, PUBLIC_STATE, WAITING
from ..runs import TaskStream, lane_namer
from .protocol import DRIVER

if TYPE_CHECKING:
    from ..core.records import TaskState
    from ..core.scheduler import SchedulerState
    from .cluster import LocalCluster


def messages(cluster: LocalCluster) -> MessagesStatus:
    """The control frames dropped so far, by the kernel's inbox and every worker's (dead
    ones' too, as last reported)."""
    kernel = dict(cluster.inbox.verifier.dropped_by)
    by = dict(kernel)
    workers = 0
    reports = cluster.query(
        lambda st: [w.stats.get("dropped_frames", {}) for w in st.workers.values() if w.stats], cluster.state
    )
    for report in reports:
        for reason, n in report.items():
            by[reason] = by.get(reason, 0) + n
            workers += n
    nk = sum(kernel.values())
    return {"dropped": nk + workers, "dropped_by": by, "kernel": nk, "workers": workers}


def task(cluster: LocalCluster, tid: int) -> FutureView | None:
    """The scheduler's record of ``tid`` (None once it is forgotten)."""

    def read(st: SchedulerState) -> FutureView | None:
        t = st.tasks.get(tid)
        return _view(t, time.monotonic()) if t is not None else None

    return cluster.query(read, cluster.state)  # type: ignore[no-any-return]


def latest(cluster: LocalCluster, n: int) -> list[FutureView]:
    """The ``n`` futures submitted last, newest first."""

    def read(st: SchedulerState) -> list[FutureView]:
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

    return cluster.query(read, cluster.state)  # type: ignore[no-any-return]


def failures(cluster: LocalCluster, n: int) -> list[FutureView]:
    """The ``n`` latest failures, newest first (stops looking once all are found)."""

    def read(st: SchedulerState) -> list[FutureView]:
        left = st.counts.get("failed", 0)
        now = time.monotonic()
        out: list[FutureView] = []
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

    return cluster.query(read, cluster.state)  # type: ignore[no-any-return]


def running_on(cluster: LocalCluster, wid: int) -> list[int]:
    """Futures assigned to worker ``wid`` now (running, or blocked waiting on others)."""

    def read(st: SchedulerState) -> list[int]:
        w = st.workers.get(wid)
        if w is None:
            return []
        return [tid for tid in w.assigned if tid in st.tasks and st.tasks[tid].state == ASSIGNED]

    return cluster.query(read, cluster.state)  # type: ignore[no-any-return]


def submitted(cluster: LocalCluster, tid: int) -> tuple[int, float] | None:
    """``(owner, submission time)`` of ``tid``: the process that submitted it (0: the
    kernel) and its ``time.monotonic()`` then; None once the scheduler forgot it."""

    def read(st: SchedulerState) -> tuple[int, float] | None:
        t = st.tasks.get(tid)
        return (t.spec.owner, t.submitted) if t is not None else None

    return cluster.query(read, cluster.state)  # type: ignore[no-any-return]


def actor(cluster: LocalCluster, aid: int) -> ActorView | None:
    """An actor's class, worker, state, calls done and queued, and why it died."""

    def read(st: SchedulerState) -> ActorView | None:
        a = st.actors.get(aid)
        if a is None:
            return None
        return ActorView(
            id=a.aid,
            class_name=a.cls_name,
            worker=a.worker,
            state=a.status,
            calls_done=a.calls_done,
            calls_queued=len(a.queue) + len(a.inflight),
            death=a.death or "",
        )

    return cluster.query(read, cluster.state)  # type: ignore[no-any-return]


def task_stream(cluster: LocalCluster, after: int) -> TaskStream:
    """Runs finished after cursor ``after``: on lane "worker N", or an actor's own lane
    ("Counter #3") for its creation and its calls."""

    def read(st: SchedulerState) -> TaskStream:
        lane_name = lane_namer(lambda aid: a.cls_name if (a := st.actors.get(aid)) is not None else None)
        cursor, runs = st.runs.since(after, lane_name)
        return TaskStream(time.monotonic(), cursor, runs)

    return cluster.query(read, cluster.state)  # type: ignore[no-any-return]


def _view(t: TaskState, now: float) -> FutureView:
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
    return FutureView(
        id=t.spec.tid,
        name=t.spec.name or t.spec.kind,
        state=PUBLIC_STATE[t.state],
        waiting_on=len(t.waiting_on) if t.state == WAITING else 0,
        worker=worker,
        elapsed=elapsed,
        error=error,
    )
