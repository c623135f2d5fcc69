"""The scheduler's rules for actors: calls queue per actor and go out in order, one
creation per life, and death (or a kill) fails what is queued, or restarts the actor.

::

    submit(actor) ─► register ─► created on a worker ─► started ─► pump: CallActor, in order
    submit(call)  ─► enqueue_call ──(queue)──────────────────────────┘
    worker_lost ─► calls in flight fail; restart (re-create elsewhere) or dead
    dead ─► queued and in-flight calls fail; its creation is stopped (KillActor) or freed

Functions over the scheduler as :class:`~jupyter_futures.core.host.Scheduler` describes it.
"""

from __future__ import annotations

from .host import Scheduler
from .instructions import CallActor, KillActor
from .placement import WorkerState
from .records import ASSIGNED, DONE, FINISHED, WAITING, ActorState, TaskState, framework_error, task_msg


def register(state: Scheduler, t: TaskState) -> None:
    """``t`` creates a new actor: its record lives as long as the actor does."""
    spec = t.spec
    assert spec.actor is not None
    state.actors[spec.actor] = ActorState(
        aid=spec.actor, create_tid=spec.tid, cls_name=spec.name, restarts_left=spec.max_restarts
    )
    t.holds += 1


def enqueue_call(state: Scheduler, t: TaskState) -> None:
    actor = state.actors.get(t.spec.actor or -1)
    if actor is None or actor.status == "dead":
        why = actor.death if actor is not None else "no such actor"
        state._fail(t, framework_error("ActorDiedError", f"actor {t.spec.actor} is dead: {why}"))
        return
    if not state._link_inputs(t):
        return
    actor.queue.append(t.spec.tid)
    pump(state, actor)


def pump(state: Scheduler, actor: ActorState) -> None:
    """Send the actor's queued calls whose inputs are ready, in order, up to the first not."""
    if actor.status != "alive" or actor.worker is None:
        return
    w = state.workers[actor.worker]
    while actor.queue:
        t = state.tasks.get(actor.queue[0])
        if t is None or t.state != WAITING:
            actor.queue.popleft()
            continue
        if t.waiting_on:
            break
        actor.queue.popleft()
        state._set(t, ASSIGNED)
        t.worker = w.wid
        t.attempt += 1
        t.started = state.now
        w.assigned.add(t.spec.tid)
        actor.inflight.add(t.spec.tid)
        state._emit(CallActor(w.wid, task_msg(t, state.tasks)))


def started(state: Scheduler, t: TaskState, wid: int) -> None:
    actor = state.actors[t.spec.actor or -1]
    if actor.status == "dead":  # killed while it was being created
        state._emit(KillActor(wid, actor.aid))
        return
    actor.status = "alive"
    actor.worker = wid
    state.workers[wid].actors.add(actor.aid)
    pump(state, actor)


def call_finished(state: Scheduler, t: TaskState) -> None:
    """Its worker reported on call ``t`` (whatever the outcome)."""
    actor = state.actors.get(t.spec.actor or -1)
    if actor is not None:
        actor.inflight.discard(t.spec.tid)
        actor.calls_done += 1


def call_failed(state: Scheduler, t: TaskState) -> None:
    actor = state.actors.get(t.spec.actor or -1)
    if actor is not None:
        actor.inflight.discard(t.spec.tid)


def worker_lost(state: Scheduler, w: WorkerState, why: str, code: int | None) -> None:
    """The actors of dead worker ``w``: their calls in flight fail; each restarts or dies."""
    for aid in list(w.actors):
        actor = state.actors[aid]
        for tid in list(actor.inflight):
            ct = state.tasks.get(tid)
            if ct is not None and ct.state not in FINISHED:
                state._fail(
                    ct, framework_error("ActorDiedError", f"the actor's {why} during this call", code)
                )
        actor.inflight.clear()
        w.actors.discard(aid)
        if actor.restarts_left > 0 and actor.status != "dead":
            actor.restarts_left -= 1
            actor.status = "restarting"
            actor.worker = None
            create = state.tasks[actor.create_tid]
            state._unassign(create)
            state._requeue(create)
        else:
            dead(state, aid, f"its {why}", code)


def dead(state: Scheduler, aid: int | None, why: str, code: int | None = None) -> None:
    actor = state.actors.get(aid if aid is not None else -1)
    if actor is None or actor.status == "dead":
        return
    actor.status = "dead"
    actor.death = why
    if actor.worker is not None and actor.worker in state.workers:
        state.workers[actor.worker].actors.discard(actor.aid)
    err = framework_error("ActorDiedError", f"actor {actor.aid} ({actor.cls_name}) is dead: {why}", code)
    for tid in list(actor.inflight) + list(actor.queue):
        ct = state.tasks.get(tid)
        if ct is not None and ct.state not in FINISHED:
            state._fail(ct, err)
    actor.inflight.clear()
    actor.queue.clear()
    create = state.tasks.get(actor.create_tid)
    if create is not None:
        if create.state != DONE:  # not started yet, or being re-created
            if create.worker is not None:
                state._emit(KillActor(create.worker, actor.aid))
            if create.state not in FINISHED:
                state._fail(create, err)
        state._unassign(create)
        create.holds -= 1
        state._maybe_free(create)
