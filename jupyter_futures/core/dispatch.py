"""Placement: ready futures go to workers, each ready queue in turn, until none fits.

::

    ready queues (one per requirement shape; per object for locality; per task for a retry),
    the queue with the highest priority first; within one, its head (ready.py: the highest
    priority, then the group whose turn it is)
        │  _flush() ─► dispatch ─► pick (placement.best_worker) ─► assign
        ▼
    assign ─► CreateActor now   (an actor's creation)
           ─► the flush's RunTasks for that worker        (a free slot)
           ─► the worker's held tasks (WorkerState.unsent) (prefetched: sent in a batch later)

Functions over the scheduler as :class:`~jupyter_futures.core.host.Scheduler` describes it.
"""

from __future__ import annotations

from typing import Any

from .host import Scheduler
from .instructions import CreateActor
from .placement import PLAIN, WorkerState, best_worker, prefetch_depth, shape_of
from .records import ASSIGNED, DONE, READY, TaskState, task_msg


def dispatch(state: Scheduler) -> None:
    """Place every ready future that fits somewhere now."""
    if not state.ready:
        return
    alive = [w for w in state.workers.values() if w.status == "alive" and not w.leaving]
    if not alive:
        return
    depth = prefetch_depth(state.mean_duration)
    seen: set[Any] = set()
    # A placement may make new queues (a locality whose object must be rebuilt first).
    while keys := [k for k in state.ready if k not in seen]:
        seen.update(keys)
        if len(keys) > 1:  # urgent work of another shape is placed before what fills the slots
            ready = state.ready
            keys.sort(key=lambda k: -ready[k].top)
        _dispatch_keys(state, keys, alive, depth)


def _dispatch_keys(state: Scheduler, keys: list[Any], alive: list[WorkerState], depth: int) -> None:
    for key in keys:
        if key not in state.ready:
            continue
        q = state.ready[key]
        while (tid := q.head()) is not None:
            t = state.tasks.get(tid)
            if t is None or t.state != READY:
                q.skip()  # cancelled, failed or waiting again since it was queued
                continue
            choice = pick(state, t, alive, depth)
            if choice is None:
                break
            q.served()
            assign(state, t, *choice)
        if not q:
            del state.ready[key]


def pick(
    state: Scheduler, t: TaskState, alive: list[WorkerState], depth: int
) -> tuple[WorkerState, bool] | None:
    """The worker for ``t`` now, and whether it is only prefetched there; None: not yet."""
    candidates = alive
    loc = t.spec.locality
    if loc is not None:
        obj = state.tasks.get(loc[1])
        if obj is None or obj.state != DONE:
            # The copy it must run beside is gone: rebuild it first.
            state._requeue(t)
            return None
        assert obj.outcome is not None
        where = state.workers.get(obj.outcome.where or -1)
        # Beside the object, unless that worker is gone, leaving, or could never run it.
        if (
            where is not None
            and where.status == "alive"
            and not where.leaving
            and where.could_ever_fit(t.req)
        ):
            candidates = [where]
    if t.avoid and any(w.wid not in t.avoid and w.could_ever_fit(t.req) for w in alive):
        candidates = [w for w in candidates if w.wid not in t.avoid]
    plain = depth > 0 and shape_of(t.req) == PLAIN
    deps = t.spec.deps
    inputs = [state.tasks[d].outcome for d in deps] if deps else ()
    return best_worker(candidates, t.req, plain, depth, inputs)


def assign(state: Scheduler, t: TaskState, w: WorkerState, prefetch: bool) -> None:
    state._set(t, ASSIGNED)
    t.worker = w.wid
    t.attempt += 1
    t.started = state.now
    if prefetch:
        t.prefetched = True
        w.prefetched += 1
    else:
        w.reserve(t.req)
        t.reserved = True
    w.assigned.add(t.spec.tid)
    if t.spec.kind == "actor":
        state._emit(CreateActor(w.wid, task_msg(t, state.tasks)))
    elif prefetch:
        w.unsent.append(task_msg(t, state.tasks))
    else:
        state._runs[w.wid].append(task_msg(t, state.tasks))
