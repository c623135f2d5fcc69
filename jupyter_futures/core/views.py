"""Read-only views of the scheduler's state: cheap enough for a dashboard twice a second.

They read the scheduler's tables (``SchedulerState.tasks``, ``.workers``, ``.actors``,
``.counts``, ``.queued``), passed in, and return plain data.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .placement import WorkerState
from .records import ASSIGNED, PUBLIC_STATE, ActorState, TaskState
from .specs import DRIVER


def future_state(tasks: dict[int, TaskState], tid: int) -> str:
    t = tasks.get(tid)
    return PUBLIC_STATE[t.state] if t is not None else "released"


def locality(tasks: dict[int, TaskState], workers: dict[int, WorkerState], tid: int) -> list[int]:
    t = tasks.get(tid)
    if t is None or t.outcome is None or t.outcome.where in (None, DRIVER):
        return []
    w = workers.get(t.outcome.where)
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


def snapshot(
    tasks: dict[int, TaskState],
    workers: dict[int, WorkerState],
    actors: dict[int, ActorState],
    counts: Counter[str],
    queued: dict[tuple[int, int], int],
) -> dict[str, Any]:
    """The cheap part of ``status()``: counters kept up to date as states change."""
    shown = []
    for w in workers.values():
        if w.status == "dead":
            continue
        s: dict[str, Any] = dict(w.stats or {})
        shown.append(
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
                "running": sorted(t for t in w.assigned if tasks[t].state == ASSIGNED),
                "capacity": dict(w.capacity),
                "gpus": list(s.get("gpus", [])),
            }
        )
    futures = {k: v for k, v in counts.items() if v}
    return {
        "workers": shown,
        "futures": futures,
        "actors": [actor_view(a) for a in actors.values()],
        "queued": queue_rows(queued),
    }


def queue_rows(queued: dict[tuple[int, int], int]) -> list[dict[str, int]]:
    """Pending futures per group and priority, as ``status()["queued"]`` lists them: the
    highest priority first, then the newest group."""
    return [
        {"group": g, "priority": p, "tasks": n}
        for (g, p), n in sorted(queued.items(), key=lambda kv: (-kv[0][1], -kv[0][0]))
    ]
