"""The scheduler's rules for actors: calls queue per actor and go out in order, one
creation per life, and death (or a kill) fails what is queued.

Functions over :class:`~jupyter_futures.core.scheduler.SchedulerState`, split out to keep that
module readable; they use its internal helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..local import protocol as P
from .records import ASSIGNED, DONE, FINISHED, WAITING, ActorState, TaskState, framework_error

if TYPE_CHECKING:
    from .scheduler import SchedulerState


def enqueue_call(state: SchedulerState, t: TaskState) -> None:
    actor = state.actors.get(t.spec.actor or -1)
    if actor is None or actor.status == "dead":
        why = actor.death if actor is not None else "no such actor"
        state._fail(t, framework_error("ActorDiedError", f"actor {t.spec.actor} is dead: {why}"))
        return
    if not state._link_inputs(t):
        return
    actor.queue.append(t.spec.tid)
    state._pump_actor(actor)


def pump(state: SchedulerState, actor: ActorState) -> None:
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
        state._send(w.wid, (P.ACTOR_CALL, state._task_msg(t, w)))


def started(state: SchedulerState, t: TaskState, wid: int) -> None:
    actor = state.actors[t.spec.actor or -1]
    if actor.status == "dead":  # killed while it was being created
        state._send(wid, (P.KILL_ACTOR, actor.aid))
        return
    actor.status = "alive"
    actor.worker = wid
    state.workers[wid].actors.add(actor.aid)
    state._pump_actor(actor)


def dead(state: SchedulerState, aid: int | None, why: str, code: int | None = None) -> None:
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
                state._send(create.worker, (P.KILL_ACTOR, actor.aid))
            if create.state not in FINISHED:
                state._fail(create, err)
        state._unassign(create)
        create.holds -= 1
        state._maybe_free(create)
