"""The scheduler's rules for a worker that died (or is presumed dead), and for deadlines.

::

    worker_died(w) ─► mark it dead (no more placement, requirements re-checked)
                   ─► its assigned work: cancelled ones finish, actor calls fail,
                      tasks go back to the queue (or fail after max_worker_deaths)
                   ─► its actors restart elsewhere or die (actor_rules.worker_lost)
                   ─► values stored only there: where copies outlive their process
                      (``salvage_copies``: the local engine's files), the kernel adopts
                      them (AdoptObjects), and only those it does not find are LOST
                      (copies_lost); else all are LOST. Consumers of a LOST value waiting
                      for it re-prepare (which rebuilds it from lineage, once); what only
                      the dead worker held is released
                   ─► SpawnWorker(wid), or NoReplacement once more than
                      MAX_EARLY_DEATHS workers in a row died before they started
    overdue_workers(now) ─► silent, never started, or ignoring a cancel: to be killed
    retire_drained() ─► a retiring worker that runs nothing: its objects become the
                        kernel's (RetireWorker), it stops; its death is then no failure
                        (no replacement, its actors restart elsewhere or fail); values
                        resolved in the same flush are told where they live now
    a restarted worker (restart_workers) dies like any, but is replaced without counting
    against its tasks' resubmissions or the early deaths

Functions over the scheduler as :class:`~jupyter_futures.core.host.Scheduler` describes it.
"""

from __future__ import annotations

import dataclasses

from ..errors import WorkerDiedException
from . import actor_rules
from .host import Scheduler
from .instructions import AdoptObjects, NoReplacement, RetireWorker, SpawnWorker
from .placement import WorkerState
from .records import CANCELLED, DONE, LOST, READY, WAITING, TaskState, framework_error, removed
from .specs import DRIVER

MAX_EARLY_DEATHS = 8  # consecutive workers dying before they said hello: stop replacing them


def worker_died(state: Scheduler, w: WorkerState, exitcode: int | None) -> None:
    """Everything that follows from ``w``'s death, up to asking for its replacement (none
    for a retired worker; a restarted one's work is not charged with its death)."""
    w.status = "dead"
    w.exitcode = exitcode
    w.unsent = []
    state._satisfiable.clear()  # what only it could run no longer fits anywhere
    state._retiring.discard(w.wid)
    if w.leaving == "retire":
        why = f"worker {w.wid} (pid {w.pid}) was retired (the cluster was scaled down)"
    elif w.leaving == "restart":
        why = f"worker {w.wid} (pid {w.pid}) was restarted (jf.restart())"
    else:
        why = f"worker {w.wid} (pid {w.pid}) {WorkerDiedException.describe_exit(exitcode)}"
    resubmit_assigned(state, w, why, exitcode, charged=not w.leaving)
    actor_rules.worker_lost(state, w, why, exitcode)
    # A restart asks for fresh workers: what they stored goes with them, by request.
    forget_values_on(state, w.wid, salvage=state.salvage_copies and w.leaving != "restart")
    if w.leaving == "retire":
        return
    if w.leaving == "restart":
        state._emit(SpawnWorker(w.wid))
        return
    state.early_deaths = state.early_deaths + 1 if w.pid == 0 else 0
    if state.early_deaths > MAX_EARLY_DEATHS:
        state._emit(NoReplacement(w.wid, f"{state.early_deaths} workers in a row died before they started"))
    else:
        state._emit(SpawnWorker(w.wid))


def retire_drained(state: Scheduler) -> set[str]:
    """Each retiring worker that runs nothing any more (a live actor's creation aside):
    the kernel takes over the objects it stored, and it is told to stop. Returns the names
    of the objects handed over (their values now live in the kernel)."""
    tasks = state.tasks
    every: set[str] = set()
    for wid in list(state._retiring):
        w = state.workers[wid]
        if w.unsent or any(
            not (tasks[t].spec.kind == "actor" and tasks[t].state == DONE) for t in w.assigned
        ):
            continue
        handed = []
        for t in tasks.values():
            o = t.outcome
            if t.state == DONE and o is not None and o.where == wid and o.segment is not None:
                t.outcome = dataclasses.replace(o, where=DRIVER)
                handed.append(o.segment)
        state._retiring.discard(wid)
        state._emit(RetireWorker(wid, handed))
        every.update(handed)
    return every


def resubmit_assigned(
    state: Scheduler, w: WorkerState, why: str, code: int | None, charged: bool = True
) -> None:
    """The work ``w`` was running: it runs again elsewhere, or fails if it may not
    (``charged``: the death counts against the task's resubmissions)."""
    for tid in list(w.assigned):
        t = state.tasks[tid]
        state._unassign(t)
        state.cancelling.pop(tid, None)
        if t.state == CANCELLED:
            state._after_finish(t)
        elif t.spec.kind == "call":
            state._fail(t, framework_error("ActorDiedError", f"the actor's {why} during this call", code))
        elif t.spec.kind == "actor" and t.state == DONE:
            continue  # a live actor's creation: actor_rules.worker_lost decides
        else:
            _resubmit(state, t, why, code, charged)


def _resubmit(state: Scheduler, t: TaskState, why: str, code: int | None, charged: bool = True) -> None:
    t.deaths += charged
    if t.deaths <= state.max_worker_deaths:
        state._requeue(t)
        return
    state._fail(
        t,
        framework_error(
            "WorkerDiedException",
            f"{why}; the workers running this task died {t.deaths} times "
            f"(a task is resubmitted at most {state.max_worker_deaths} times)",
            code,
        ),
    )


def forget_values_on(state: Scheduler, wid: int, salvage: bool = False) -> None:
    """Values stored only in ``wid`` are adopted by the kernel (``salvage``: their copies
    may have outlived the worker) or LOST, and references it held are dropped."""
    lost = []
    orphaned = []
    salvaged: list[tuple[int, str]] = []
    for t in list(state.tasks.values()):
        if wid in t.holders:
            t.holders = removed(t.holders, wid)
            orphaned.append(t)
        o = t.outcome
        if t.state == DONE and o is not None and o.where == wid and o.segment is not None:
            if salvage:  # the kernel's now, if its file is there (else copies_lost says so)
                t.outcome = dataclasses.replace(o, where=DRIVER)
                salvaged.append((t.spec.tid, o.segment))
            else:
                lost.append(t)
    if salvaged:
        state._emit(AdoptObjects(wid, salvaged))
    values_lost(state, lost)
    for t in orphaned:
        state._maybe_free(t)


def values_lost(state: Scheduler, lost: list[TaskState]) -> None:
    """These values' only copies are gone: LOST. A consumer waiting on one is prepared
    again, which rebuilds it from its lineage, once (or fails the consumer); values
    nobody needs any more are freed."""
    for t in lost:
        state._drop_value(t, free=False)
        state._set(t, LOST)
    for t in lost:
        _reprepare_consumers(state, t)
        state._maybe_free(t)


def _reprepare_consumers(state: Scheduler, t: TaskState) -> None:
    tasks = state.tasks
    needed = [tasks[c] for c in t.consumers if c in tasks and tasks[c].state in (WAITING, READY)]
    for ct in needed:
        if ct.state == READY:
            state._set(ct, WAITING)
        state._prepare(ct)


def overdue_workers(state: Scheduler, now: float) -> dict[int, str]:
    """Workers to presume dead at ``now``, and why: silent, not started, or deaf to a cancel."""
    doomed: dict[int, str] = {}
    for w in state.workers.values():
        if w.status == "alive" and now - w.last_seen > state.heartbeat_timeout:
            doomed[w.wid] = f"missed heartbeats for {now - w.last_seen:.1f} s"
        elif w.status == "starting" and now - w.last_seen > state.start_timeout:
            doomed[w.wid] = f"did not start within {state.start_timeout:.0f} s"
    for tid, deadline in list(state.cancelling.items()):
        t = state.tasks.get(tid)
        if t is None or t.worker is None:
            state.cancelling.pop(tid, None)
        elif now > deadline:
            doomed.setdefault(t.worker, f"task {tid} ignored its cancellation for {state.cancel_grace:.1f} s")
    return doomed
