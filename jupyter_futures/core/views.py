"""Read-only views of the scheduler's state: cheap enough for a dashboard twice a second."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..local.protocol import DRIVER
from .records import ASSIGNED, PUBLIC_STATE, ActorState

if TYPE_CHECKING:
    from .scheduler import SchedulerState


def future_state(state: SchedulerState, tid: int) -> str:
    t = state.tasks.get(tid)
    return PUBLIC_STATE[t.state] if t is not None else "released"


def locality(state: SchedulerState, tid: int) -> list[int]:
    t = state.tasks.get(tid)
    if t is None or t.outcome is None or t.outcome.where in (None, DRIVER):
        return []
    w = state.workers.get(t.outcome.where)
    return [t.outcome.where] if w is not None and w.status == "alive" else []


def actor_view(a: ActorState) -> dict[str, Any]:
    """An actor as ``status()`` shows it."""
    return {
        "id": a.aid,
        "class": a.cls_name,
        "worker": a.worker,
        "state": a.status,
        "calls_done": a.calls_done,
        "calls_queued": len(a.queue) + len(a.inflight),
    }


def snapshot(state: SchedulerState) -> dict[str, Any]:
    """The cheap part of ``status()``: counters kept up to date as states change."""
    workers = []
    for w in state.workers.values():
        if w.status == "dead":
            continue
        s: dict[str, Any] = dict(w.stats or {})
        workers.append(
            {
                "id": w.wid,
                "pid": w.pid,
                "alive": w.status == "alive",
                "cpu_percent": s.get("cpu_percent", 0.0),
                "rss": s.get("rss", 0),
                "store_used": s.get("store_used", 0),
                "store_capacity": s.get("store_capacity", 0),
                "spilled": s.get("spilled", 0),
                "objects": s.get("objects", 0),
                "actors": sorted(w.actors),
                "running": sorted(t for t in w.assigned if state.tasks[t].state == ASSIGNED),
                "capacity": dict(w.capacity),
            }
        )
    actors = [actor_view(a) for a in state.actors.values()]
    futures = {k: v for k, v in state.counts.items() if v}
    return {"workers": workers, "futures": futures, "actors": actors}
