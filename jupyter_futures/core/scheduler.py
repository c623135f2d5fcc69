"""The scheduler: a pure state machine over futures, workers and actors.

Events go in as method calls, each with the time it happened (``now``); each returns a list
of typed instructions (:mod:`~jupyter_futures.core.instructions`) for the I/O shell, which
carries them out (the local engine's is :mod:`jupyter_futures.local.cluster`). Nothing here
touches a socket, a process or a clock of its own, so the logic is tested without processes.

::

    submit / put / done / worker_ready / heartbeat / acquire / release / copy_missing
    blocked / unblocked / cancel / kill_actor / worker_died / presume_dead_if_silent / tick
    retire_workers / restart_workers (resizing: drain, hand objects over, stop; or replace)
                     │  (..., now)
                     ▼
            SchedulerState ──► [RunTasks, CreateActor, CallActor, CancelTask, KillActor,
                                FreeObjects, Resolved, KillWorker, SpawnWorker, NoReplacement]

A future's life::

    submit ─► WAITING ─inputs done─► READY ─placed─► ASSIGNED ─► DONE ─(copy lost / freed)─► LOST
                 ▲                     ▲               │  │                                  │
                 │                     └── retry ──────┘  └─► FAILED / CANCELLED             │
                 └──────────────── rebuilt from lineage when someone needs it ──────────────┘

Invariants: a future's id never changes; it is assigned to at most one worker at a time; a
ready future is in exactly one ready queue; a result whose worker died is LOST and is
rebuilt (or its dependents fail) before anyone uses it. ``self.now`` is the time of the
event being handled: every event sets it first, so no rule reads an older one. A report
is taken only from the worker and attempt the future is assigned to: one for an older
attempt, from a worker declared dead, or delivered twice is ignored, and its copy freed
unless it is the very copy the future's value names (``tests/core/test_scheduler_simulation.py``
checks these under late, reordered and duplicated messages).

Ready futures wait in ready queues (``ready.py``): the highest ``TaskSpec.priority`` first,
then the groups (``TaskSpec.group``: in a kernel, the cell that submitted them) in turn;
``queued`` counts the pending futures per (group, priority) for ``snapshot()``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from typing import Any

from ..errors import UnsatisfiableRequirementError
from ..runs import RunLog
from . import actor_rules, dispatch, worker_deaths
from . import views as scheduler_views
from .instructions import (
    CallActor,
    CancelTask,
    CreateActor,
    FreeObjects,
    Instruction,
    KillActor,
    KillWorker,
    Resolved,
    RunTasks,
)
from .placement import WorkerState, shape_of, unsatisfiable_message
from .ready import ReadyQueue
from .records import (
    ASSIGNED,
    CANCELLED,
    DONE,
    EMPTY,
    FAILED,
    FINISHED,
    LOST,
    PUBLIC_STATE,
    READY,
    WAITING,
    ActorState,
    TaskState,
    added,
    framework_error,
    only,
    removed,
    upstream_outcome,
)
from .specs import DRIVER, Outcome, TaskMsg, TaskSpec, WorkerStats

BATCH_TASKS = 64  # tasks held back for a busy worker before they are sent anyway
MAX_REQ_SHAPES = 1024  # requirement shapes whose reservation dict is shared
NO_REQ: dict[str, float] = {}  # a stored object reserves nothing (shared, never written)
RUN_STATE = {"ok": "done", "error": "failed", "cancelled": "cancelled"}  # an outcome's, as a run's
PENDING = PUBLIC_STATE[WAITING]  # == PUBLIC_STATE[READY]: submitted, not started


def _moved_to_kernel(o: Outcome, handed: set[str]) -> Outcome:
    return dataclasses.replace(o, where=DRIVER) if o.segment in handed else o


class SchedulerState:
    """Every future, worker and actor of one cluster, and the rules that move them."""

    def __init__(
        self,
        *,
        heartbeat_timeout: float = 10.0,
        start_timeout: float = 60.0,
        cancel_grace: float = 2.0,
        max_worker_deaths: int = 5,
        salvage_copies: bool = False,
    ) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self.start_timeout = start_timeout
        self.cancel_grace = cancel_grace
        self.max_worker_deaths = max_worker_deaths
        # Whether a dead worker's stored objects may outlive it, as files do: the kernel
        # then adopts them instead of having them rebuilt (worker_deaths.forget_values_on).
        self.salvage_copies = salvage_copies
        self.early_deaths = 0
        self.tasks: dict[int, TaskState] = {}
        self.workers: dict[int, WorkerState] = {}
        self.actors: dict[int, ActorState] = {}
        self.ready: dict[Any, ReadyQueue[int]] = {}  # queue key -> ready tids (ready.py)
        self.counts: Counter[str] = Counter()
        self.queued: dict[tuple[int, int], int] = {}  # (group, priority) -> pending futures
        self.cancelling: dict[int, float] = {}  # tid -> deadline
        self.mean_duration = 0.0
        self.now = 0.0  # the time of the event being handled
        self._out: list[Instruction] = []
        self._runs: defaultdict[int, list[TaskMsg]] = defaultdict(list)
        self._resolves: defaultdict[int, list[tuple[int, Outcome]]] = defaultdict(list)
        self._wake_workers: set[int] = set()  # workers whose held tasks go out in this flush
        self._satisfiable: set[Any] = set()  # requirement shapes some live worker can meet
        self._req_shapes: dict[tuple[Any, ...], dict[str, float]] = {}
        self._retiring: set[int] = set()  # workers draining before they stop
        self.runs = RunLog()  # finished runs, for the task stream

    # -- plumbing -------------------------------------------------------------------
    def _flush(self) -> list[Instruction]:
        dispatch.dispatch(self)
        handed = worker_deaths.retire_drained(self) if self._retiring else None
        out = self._out
        # Tasks that have a free slot go now. Prefetched ones (they would only queue on the
        # worker) wait here until that worker reports results or blocks, and then go
        # together in one message: one wake-up for many tasks.
        for wid in self._wake_workers:
            w = self.workers.get(wid)
            if w is not None and w.unsent:
                self._runs[wid].extend(w.unsent)
                w.unsent = []
        for wid, msgs in self._runs.items():
            out.append(RunTasks(wid, msgs))
        for w in self.workers.values():
            if len(w.unsent) >= BATCH_TASKS:
                out.append(RunTasks(w.wid, w.unsent))
                w.unsent = []
        for proc, items in self._resolves.items():
            if handed:  # resolved as its worker retired: the value is the kernel's now
                items = [(tid, _moved_to_kernel(o, handed)) for tid, o in items]
            out.append(Resolved(proc, items))
        self._out = []
        self._runs.clear()
        self._resolves.clear()
        self._wake_workers.clear()
        self._attach_functions(out)
        return out

    def _attach_functions(self, out: list[Instruction]) -> None:
        """Give each task its function's pickle if its worker has not had it yet.

        Decided here, over the final instructions in the order they will be carried out, and
        never when a task is placed: a task placed earlier may be sent later (held for a
        batch), or never (cancelled, its worker died), so what a worker holds is exactly what
        was sent to it, and the shell carries these out in this order on one ordered pipe."""
        for ins in out:
            if isinstance(ins, RunTasks):
                msgs = ins.tasks
            elif isinstance(ins, (CreateActor, CallActor)):
                msgs = [ins.task]
            else:
                continue
            w = self.workers.get(ins.worker)
            if w is None:
                continue
            for msg in msgs:
                if msg.fn_hash and msg.fn_hash not in w.functions:
                    msg.fn_bytes = self.tasks[msg.tid].spec.fn_bytes
                    w.functions.add(msg.fn_hash)

    def _set(self, t: TaskState, state: str) -> None:
        was, now = PUBLIC_STATE[t.state], PUBLIC_STATE[state]
        t.state = state
        if was == now:  # waiting -> ready, the commonest change, moves no counter
            return
        counts = self.counts
        counts[was] -= 1
        counts[now] += 1
        if was == PENDING or now == PENDING:
            # Pending futures per (group, priority), for the dashboard: kept as states
            # change (twice in a future's usual life), never counted over the tasks.
            spec = t.spec
            key = (spec.group, spec.priority)
            n = self.queued.get(key, 0) + (1 if now == PENDING else -1)
            if n:
                self.queued[key] = n
            else:
                del self.queued[key]

    def _emit(self, ins: Instruction) -> None:
        self._out.append(ins)

    def _resolve(self, t: TaskState, procs: set[int] | None = None) -> None:
        assert t.outcome is not None
        for proc in t.holders if procs is None else procs:
            self._resolves[proc].append((t.spec.tid, t.outcome))
        if procs is None:
            t.resolved = True

    # -- workers --------------------------------------------------------------------
    def add_worker(self, wid: int, capacity: dict[str, float], now: float) -> None:
        """A worker process was started; it takes work once it says hello."""
        self.now = now
        self.workers[wid] = WorkerState(wid=wid, capacity=dict(capacity), last_seen=now)
        self._satisfiable.clear()

    def worker_ready(self, wid: int, pid: int, now: float) -> list[Instruction]:
        self.now = now
        w = self.workers.get(wid)
        if w is None or w.status == "dead":
            return []
        w.status, w.pid, w.last_seen = "alive", pid, now
        return self._flush()

    def heartbeat(self, wid: int, stats: WorkerStats, now: float) -> None:
        self.now = now
        w = self.workers.get(wid)
        if w is not None and w.status != "dead":
            w.last_seen = now
            w.stats = stats

    def check_requirements(self, req: dict[str, float]) -> None:
        """Raise UnsatisfiableRequirementError if no worker could ever run ``req``."""
        shape = shape_of(req)
        if shape in self._satisfiable:
            return
        live = [w for w in self.workers.values() if w.status != "dead" and not w.leaving]
        if any(w.could_ever_fit(req) for w in live):
            self._satisfiable.add(shape)
            return
        raise UnsatisfiableRequirementError(unsatisfiable_message(req, live))

    # -- submission -----------------------------------------------------------------
    def submit(self, spec: TaskSpec, holder: int, now: float) -> list[Instruction]:
        """A new future. Raises UnsatisfiableRequirementError for the kernel's own calls."""
        self.now = now
        self._add(spec, holder)
        return self._flush()

    def submit_many(self, specs: list[TaskSpec], holder: int, now: float) -> list[Instruction]:
        """New futures, placed together: one flush, so one message per worker."""
        self.now = now
        for spec in specs:
            self._add(spec, holder)
        return self._flush()

    def _add(self, spec: TaskSpec, holder: int) -> None:
        now = self.now
        if spec.kind == "put":
            raise ValueError("stored objects are registered with put(), not submit()")
        req = self._req_of(spec)
        t = TaskState(spec=spec, req=req, holders=only(holder), retries_left=spec.max_retries, submitted=now)
        error = self._requirement_error(t, holder)
        self._register(t)
        if error is not None:
            self._fail(t, framework_error("UnsatisfiableRequirementError", error))
        elif spec.kind == "call":
            actor_rules.enqueue_call(self, t)
        else:
            if spec.kind == "actor":
                actor_rules.register(self, t)
            self._prepare(t)

    def _req_of(self, spec: TaskSpec) -> dict[str, float]:
        """What ``spec`` reserves on its worker while it runs (a plain task: one CPU).

        One shared, read-only dict per requirement shape: futures of the same shape (almost
        all of them) hold the same dict, not a copy each."""
        r = spec.requirements
        key = (spec.kind == "task", r.cpu, r.ram, r.gpu, tuple(sorted(r.custom.items())) if r.custom else ())
        req = self._req_shapes.get(key)
        if req is None:
            req = r.as_dict()
            if spec.kind == "task":
                req["cpu"] = max(req.get("cpu", 0.0), 1.0)
            if len(self._req_shapes) < MAX_REQ_SHAPES:
                self._req_shapes[key] = req
        return req

    def _requirement_error(self, t: TaskState, holder: int) -> str | None:
        """Why no worker could ever run ``t`` (None if one could); raised at the kernel."""
        if t.spec.kind not in ("task", "actor"):
            return None
        try:
            self.check_requirements(t.req)
        except UnsatisfiableRequirementError as exc:
            if holder == DRIVER:
                raise
            return str(exc)
        return None

    def _register(self, t: TaskState) -> None:
        spec = t.spec
        self.tasks[spec.tid] = t
        self.counts[PENDING] += 1
        key = (spec.group, spec.priority)
        self.queued[key] = self.queued.get(key, 0) + 1
        for d in t.inputs:
            dep = self.tasks.get(d)
            if dep is not None:
                dep.lineage_users += 1

    def put(self, tid: int, outcome: Outcome, holder: int, now: float) -> list[Instruction]:
        """An object stored by a client; it is done from the start and never rebuilt."""
        self.now = now
        spec = TaskSpec(tid=tid, kind="put", allow_reconstruction=False, owner=holder)
        t = TaskState(
            spec=spec,
            req=NO_REQ,
            holders=only(holder),
            state=DONE,
            outcome=outcome,
            submitted=now,
            finished=now,
        )
        t.resolved = True
        self.tasks[tid] = t
        self.counts["done"] += 1
        self._hold_contained(outcome)
        return self._flush()

    def _hold_contained(self, outcome: Outcome) -> None:
        for c in outcome.contained:
            inner = self.tasks.get(c)
            if inner is not None:
                inner.holds += 1

    def _prepare(self, t: TaskState) -> None:
        """Link a task to its inputs; rebuild lost ones; make it ready when all are done."""
        if not self._link_inputs(t):
            return
        if t.waiting_on:
            if t.state != WAITING:
                self._set(t, WAITING)
        else:
            self._make_ready(t)

    def _link_inputs(self, t: TaskState) -> bool:
        t.waiting_on = EMPTY
        for d in t.inputs:
            dep = self.tasks.get(d)
            if dep is None:
                self._fail(
                    t,
                    framework_error(
                        "UpstreamDependencyFailedException", f"input future {d} no longer exists"
                    ),
                )
                return False
            if dep.state == LOST:
                self._rebuild(dep)
            if dep.state in (FAILED, CANCELLED):
                self._fail(t, upstream_outcome(dep))
                return False
            dep.consumers = added(dep.consumers, t.spec.tid)
            if dep.state != DONE:
                t.waiting_on = added(t.waiting_on, d)
        return True

    def _rebuild(self, t: TaskState) -> None:
        """Re-run a future whose value was lost or freed, from its lineage."""
        if t.state != LOST:
            return
        if not t.spec.allow_reconstruction or t.spec.kind != "task":
            self._fail(
                t,
                framework_error(
                    "UpstreamDependencyFailedNoReconstructionAllowed",
                    f"the only copy of future {t.spec.tid} ({t.spec.name or t.spec.kind}) was "
                    "lost with its worker, and it may not be rebuilt "
                    "(allow_reconstruction=False; every actor call's result is)",
                ),
                keep_resolved=True,
            )
            return
        t.outcome = None
        t.retries_left = t.spec.max_retries
        t.avoid = EMPTY
        self._requeue(t)

    def _requeue(self, t: TaskState) -> None:
        """Run ``t`` (again) once its inputs are there."""
        self._set(t, WAITING)
        self._prepare(t)

    def _make_ready(self, t: TaskState) -> None:
        self._set(t, READY)
        spec = t.spec
        loc = spec.locality
        if loc is not None:
            key: Any = ("@", loc[1])
        elif t.avoid:
            key = ("retry", spec.tid)
        else:
            key = shape_of(t.req)
        q = self.ready.get(key)
        if q is None:
            q = self.ready[key] = ReadyQueue()
        q.push(spec.tid, spec.priority, spec.group)

    # -- placement (dispatch.py places ready futures) -----------------------------------
    def _unassign(self, t: TaskState) -> None:
        w = self.workers.get(t.worker) if t.worker is not None else None
        if w is not None:
            if t.reserved:
                w.unreserve(t.req)
            if t.prefetched:
                w.prefetched -= 1
            w.assigned.discard(t.spec.tid)
        t.reserved = t.prefetched = False
        t.worker = None

    # -- results --------------------------------------------------------------------
    def done(self, wid: int, results: list[tuple[int, int, Outcome]], now: float) -> list[Instruction]:
        """A batch of results from one worker."""
        self.now = now
        for tid, attempt, outcome in results:
            self._done_one(wid, tid, attempt, outcome)
        self._wake_workers.add(wid)
        return self._flush()

    def _done_one(self, wid: int, tid: int, attempt: int, outcome: Outcome) -> None:
        t = self.tasks.get(tid)
        if t is None or t.worker != wid or t.attempt != attempt or t.state not in (ASSIGNED, CANCELLED):
            self._drop_stale(t, wid, outcome)
            return
        kind = t.spec.kind
        if outcome.duration:  # it ran (a task cancelled before it started did not)
            lane = wid if kind == "task" else ("actor", t.spec.actor)
            state = RUN_STATE.get(outcome.status, "failed")
            self.runs.add(outcome.started, outcome.started + outcome.duration, lane, t.spec.name, state)
        if kind == "call":
            actor_rules.call_finished(self, t)
        if t.state == CANCELLED:
            self._cancel_confirmed(t, wid, outcome)
            return
        if kind == "task" and outcome.duration:
            self._learn_duration(outcome.duration)
        if kind != "actor" or outcome.status != "ok":
            self._unassign(t)
        if outcome.status == "ok":
            self._succeeded(t, wid, outcome)
        elif outcome.status == "cancelled":
            t.outcome = outcome
            self._set(t, CANCELLED)
            self._resolve(t)
            self._fail_consumers(t)
            self._after_finish(t)
        else:
            self._failed_on(t, wid, outcome)

    def _drop_stale(self, t: TaskState | None, wid: int, outcome: Outcome) -> None:
        """A report nobody awaits: an older attempt's, one from a worker declared dead, or a
        second delivery of one already taken. Its copy is freed, unless it is the very copy
        that the future's value names (the report taken was this one)."""
        seg = outcome.segment
        if seg is not None and t is not None and t.outcome is not None and t.outcome.segment == seg:
            return
        self._free_copy(wid, outcome)

    def _free_copy(self, wid: int, outcome: Outcome) -> None:
        if outcome.segment is not None:
            self._emit(FreeObjects(wid, [outcome.segment]))

    def _cancel_confirmed(self, t: TaskState, wid: int, outcome: Outcome) -> None:
        """The worker of a cancelled task is done with it (whatever it reports)."""
        self._unassign(t)
        self.cancelling.pop(t.spec.tid, None)
        self._free_copy(wid, outcome)
        self._after_finish(t)

    def _learn_duration(self, duration: float) -> None:
        m = self.mean_duration
        self.mean_duration = duration if not m else 0.8 * m + 0.2 * duration

    def _succeeded(self, t: TaskState, wid: int, outcome: Outcome) -> None:
        t.outcome = outcome
        t.finished = self.now
        self._set(t, DONE)
        self._hold_contained(outcome)
        if t.spec.kind == "actor":
            actor_rules.started(self, t, wid)
        if not t.resolved:
            self._resolve(t)
        self._wake_consumers(t)
        self._after_finish(t)

    def _failed_on(self, t: TaskState, wid: int, outcome: Outcome) -> None:
        """``t`` raised (or lost an input) on ``wid``: run it again if it may, else fail it."""
        if outcome.error_type == "jf:ObjectLost" and t.deaths < self.max_worker_deaths:
            t.deaths += 1  # an input vanished under it: rebuild the input, then run again
            self._requeue(t)
        elif t.spec.kind == "task" and t.retries_left > 0:
            t.retries_left -= 1
            t.avoid = added(t.avoid, wid)
            self._requeue(t)
        else:
            self._fail(t, outcome)

    def _wake_consumers(self, t: TaskState) -> None:
        tid = t.spec.tid
        for c in list(t.consumers):
            ct = self.tasks.get(c)
            if ct is None or ct.state != WAITING or tid not in ct.waiting_on:
                continue
            ct.waiting_on = removed(ct.waiting_on, tid)
            if not ct.waiting_on:
                if ct.spec.kind == "call":
                    actor_rules.pump(self, self.actors[ct.spec.actor or -1])
                else:
                    self._make_ready(ct)

    def _fail(self, t: TaskState, outcome: Outcome, keep_resolved: bool = False) -> None:
        """Fail ``t`` and, transitively, everything waiting on it."""
        stack = [(t, outcome)]
        while stack:
            cur, out = stack.pop()
            if cur.state in (FAILED, CANCELLED):
                continue
            self._unassign(cur)
            cur.outcome = out
            cur.finished = self.now
            self._set(cur, FAILED)
            if not (keep_resolved and cur.resolved):
                self._resolve(cur)
            if cur.spec.kind == "actor":
                actor_rules.dead(
                    self, cur.spec.actor, f"it failed to start ({out.error_type.removeprefix('jf:')})"
                )
            if cur.spec.kind == "call":
                actor_rules.call_failed(self, cur)
            for c in list(cur.consumers):
                ct = self.tasks.get(c)
                if ct is not None and ct.state in (WAITING, READY):
                    stack.append((ct, upstream_outcome(cur)))
            self._after_finish(cur)

    def _fail_consumers(self, t: TaskState) -> None:
        for c in list(t.consumers):
            ct = self.tasks.get(c)
            if ct is not None and ct.state in (WAITING, READY):
                self._fail(ct, upstream_outcome(t))

    def _after_finish(self, t: TaskState) -> None:
        """A task will not run again for now: its inputs may be freed."""
        for d in t.inputs:
            dep = self.tasks.get(d)
            if dep is not None:
                dep.consumers = removed(dep.consumers, t.spec.tid)
                self._maybe_free(dep)
        self._maybe_free(t)

    # -- references and freeing -----------------------------------------------------
    def acquire(self, proc: int, tids: list[int], now: float) -> list[Instruction]:
        """``proc`` holds futures ``tids``: tell it of those that have ended."""
        self.now = now
        for tid in tids:
            t = self.tasks.get(tid)
            if t is None:
                out = framework_error("UpstreamDependencyFailedException", f"future {tid} no longer exists")
                self._resolves[proc].append((tid, out))
                continue
            t.holders = added(t.holders, proc)
            if t.state == LOST:
                self._rebuild(t)
            if t.state in (DONE, FAILED, CANCELLED) and t.outcome is not None:
                self._resolve(t, {proc})
        return self._flush()

    def release(self, proc: int, tids: list[int], now: float) -> list[Instruction]:
        """``proc`` dropped its futures ``tids``: values nobody can read are freed."""
        self.now = now
        for tid in tids:
            t = self.tasks.get(tid)
            if t is not None:
                t.holders = removed(t.holders, proc)
                self._maybe_free(t)
        return self._flush()

    def copy_missing(self, tid: int, now: float) -> list[Instruction]:
        """A client found a value's copy gone before it read it: rebuild it (or fail)."""
        self.now = now
        t = self.tasks.get(tid)
        if t is not None and t.state == DONE and t.outcome is not None and t.outcome.segment:
            self._drop_value(t, free=False)
            self._set(t, LOST)
            t.resolved = False
            self._rebuild(t)
        elif t is not None and t.state == LOST:  # lost with its worker: someone needs it now
            t.resolved = False
            self._rebuild(t)
        elif t is not None and t.state not in FINISHED:  # being rebuilt: tell its holders again
            t.resolved = False
        return self._flush()

    def _maybe_free(self, t: TaskState) -> None:
        """Drop the value nobody can read any more, and the record nobody can rebuild from."""
        stack = [t]
        while stack:
            cur = stack.pop()
            if cur.holders or cur.holds or cur.consumers or cur.spec.tid not in self.tasks:
                continue
            if cur.worker is not None:  # a worker still has it (a cancel not yet confirmed)
                continue
            if cur.state not in FINISHED:
                continue
            keep_for_lineage = cur.lineage_users and not cur.spec.allow_reconstruction
            if cur.state == DONE and not keep_for_lineage:
                self._drop_value(cur)
                self._set(cur, LOST)
            if cur.lineage_users:
                continue
            del self.tasks[cur.spec.tid]
            self.counts[PUBLIC_STATE[cur.state]] -= 1
            for d in cur.inputs:
                dep = self.tasks.get(d)
                if dep is not None:
                    dep.lineage_users -= 1
                    stack.append(dep)
            if cur.state == DONE:
                self._drop_value(cur)

    def _drop_value(self, t: TaskState, free: bool = True) -> None:
        """Forget a value; ``free`` also removes its copy (False: the copy is already gone)."""
        o = t.outcome
        if o is None:
            return
        if free and o.segment is not None and o.where is not None:
            w = self.workers.get(o.where)
            if o.where == DRIVER or (w is not None and w.status != "dead"):
                self._emit(FreeObjects(o.where, [o.segment]))
        for c in o.contained:
            inner = self.tasks.get(c)
            if inner is not None:
                inner.holds -= 1
                self._maybe_free(inner)
        t.outcome = None

    # -- cancellation -----------------------------------------------------------------
    def cancellable(self, tid: int) -> bool:
        """Whether ``cancel(tid)`` would cancel it now: it exists and has not finished."""
        t = self.tasks.get(tid)
        return t is not None and t.state not in FINISHED

    def cancel(self, tid: int, now: float) -> list[Instruction]:
        """Cancel ``tid`` if it has not finished (see ``cancellable``); else nothing."""
        self.now = now
        t = self.tasks.get(tid)
        if t is None or t.state in FINISHED:
            return []
        was = t.state
        t.outcome = Outcome(status="cancelled")
        self._set(t, CANCELLED)
        self._resolve(t)
        self._fail_consumers(t)
        if t.spec.kind == "actor":
            actor_rules.dead(self, t.spec.actor, "its creation was cancelled")
        elif was == ASSIGNED and t.worker is not None and self._drop_unsent(t):
            self._unassign(t)
            self._after_finish(t)
        elif was == ASSIGNED and t.worker is not None:
            self._emit(CancelTask(t.worker, tid))
            if t.spec.kind == "task":
                self.cancelling[tid] = now + self.cancel_grace
        else:
            self._after_finish(t)
        return self._flush()

    def _drop_unsent(self, t: TaskState) -> bool:
        """Take a held task back before it was ever sent; True if it was held."""
        w = self.workers.get(t.worker) if t.worker is not None else None
        if w is None:
            return False
        for i, msg in enumerate(w.unsent):
            if msg.tid == t.spec.tid:
                del w.unsent[i]
                return True
        return False

    # -- nested waits -----------------------------------------------------------------
    def blocked(self, wid: int, tid: int, now: float) -> list[Instruction]:
        """Task ``tid`` on ``wid`` waits on other futures: its slot goes to other work."""
        self.now = now
        t = self.tasks.get(tid)
        if t is not None and t.worker == wid and t.reserved:
            self.workers[wid].unreserve(t.req)
            t.reserved = False
        self._wake_workers.add(wid)
        return self._flush()

    def unblocked(self, wid: int, tid: int, now: float) -> list[Instruction]:
        """Task ``tid`` on ``wid`` runs again: it takes its slot back."""
        self.now = now
        t = self.tasks.get(tid)
        if t is not None and t.worker == wid and not t.reserved and not t.prefetched:
            self.workers[wid].reserve(t.req)
            t.reserved = True
        return []

    # -- actors (actor_rules.py) ------------------------------------------------------
    def kill_actor(self, aid: int, now: float) -> list[Instruction]:
        self.now = now
        actor = self.actors.get(aid)
        if actor is None or actor.status == "dead":
            return []
        if actor.worker is not None:
            self._emit(KillActor(actor.worker, aid))
        actor_rules.dead(self, aid, "it was killed with kill_actor()")
        return self._flush()

    # -- resizing (worker_deaths.py) ----------------------------------------------------
    def retire_workers(self, wids: list[int], now: float) -> list[Instruction]:
        """Take ``wids`` out of the cluster: no new work goes there; once what they run is
        done, the kernel takes over their objects and they stop, not replaced. Their actors
        start again elsewhere (``max_restarts``) or fail then."""
        self.now = now
        for wid in wids:
            w = self.workers.get(wid)
            if w is not None and w.status != "dead" and not w.leaving:
                w.leaving = "retire"
                self._retiring.add(wid)
        self._satisfiable.clear()
        return self._flush()

    def restart_workers(self, now: float) -> list[Instruction]:
        """Replace every worker with a fresh one now: what ran runs again (not counted as a
        death of the task's doing), values are rebuilt from lineage when needed, actors
        start again or fail (``max_restarts``)."""
        self.now = now
        doomed = [w for w in self.workers.values() if w.status != "dead" and w.leaving != "retire"]
        for w in doomed:  # all first: work they give back never goes to one of them
            w.leaving = "restart"
        out: list[Instruction] = []
        for w in doomed:
            out += [KillWorker(w.wid, "restarted with jf.restart()"), *self.worker_died(w.wid, None, now)]
        return out + self._flush()

    # -- failures and time (worker_deaths.py) ------------------------------------------
    def worker_died(self, wid: int, exitcode: int | None, now: float) -> list[Instruction]:
        """A worker exited or was presumed dead: resubmit, mark lost, restart actors."""
        self.now = now
        w = self.workers.get(wid)
        if w is None or w.status == "dead":
            return []
        worker_deaths.worker_died(self, w, exitcode)
        return self._flush()

    def copies_lost(self, tids: list[int], now: float) -> list[Instruction]:
        """Copies an ``AdoptObjects`` named were not found (their files were gone with
        their worker): those values are LOST, and rebuilt if someone needs them."""
        self.now = now
        lost = []
        for tid in tids:
            t = self.tasks.get(tid)
            if t is not None and t.state == DONE and t.outcome is not None and t.outcome.where == DRIVER:
                lost.append(t)
        worker_deaths.values_lost(self, lost)
        return self._flush()

    def presume_dead_if_silent(self, tid: int, seconds: float, now: float) -> list[Instruction]:
        """If the worker running ``tid`` has been silent for ``seconds``, kill it as dead."""
        self.now = now
        t = self.tasks.get(tid)
        w = self.workers.get(t.worker) if t is not None and t.worker is not None else None
        if w is None or w.status != "alive" or now - w.last_seen < seconds:
            return []
        return self._presume_dead(w.wid, f"silent for {now - w.last_seen:.1f} s", now)

    def tick(self, now: float) -> list[Instruction]:
        """Time passes: presume silent workers dead, kill workers that ignore a cancel."""
        self.now = now
        out: list[Instruction] = []
        for wid, why in worker_deaths.overdue_workers(self, now).items():
            out.extend(self._presume_dead(wid, why, now))
        out.extend(self._flush())
        return out

    def _presume_dead(self, wid: int, why: str, now: float) -> list[Instruction]:
        return [KillWorker(wid, why), *self.worker_died(wid, None, now)]

    # -- views (views.py) -------------------------------------------------------------
    def future_state(self, tid: int) -> str:
        return scheduler_views.future_state(self.tasks, tid)

    def locality(self, tid: int) -> list[int]:
        return scheduler_views.locality(self.tasks, self.workers, tid)

    def alive_workers(self) -> int:
        """How many workers have said hello and not died."""
        return sum(1 for w in self.workers.values() if w.status == "alive")

    def snapshot(self) -> dict[str, Any]:
        """The cheap part of ``status()``: counters kept up to date as states change."""
        return scheduler_views.snapshot(self.tasks, self.workers, self.actors, self.counts, self.queued)
