"""The scheduler: a pure state machine over futures, workers and actors.

Events go in as method calls; each returns a list of instructions for the I/O shell
(:mod:`jupyter_futures.local.cluster`), which performs them. Nothing here touches a socket, a
process or a clock of its own, so the logic is tested without processes.

::

    submit / done / worker_died / acquire / release / cancel / tick ...
                     │
                     ▼
            SchedulerState ──► [("send", proc, msg), ("resolve", proc, tid, Outcome),
                                 ("kill", wid, reason), ("spawn", wid), ("free_local", names)]

A future's life::

    submit ─► WAITING ─inputs done─► READY ─placed─► ASSIGNED ─► DONE ─(copy lost / freed)─► LOST
                 ▲                     ▲               │  │                                  │
                 │                     └── retry ──────┘  └─► FAILED / CANCELLED             │
                 └──────────────── rebuilt from lineage when someone needs it ──────────────┘

Invariants: a future's id never changes; it is assigned to at most one worker at a time; a
ready future is in exactly one ready queue; a result whose worker died is LOST and is
rebuilt (or its dependents fail) before anyone uses it.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from typing import Any

from ..errors import UnsatisfiableRequirementError, WorkerDiedException
from ..local import protocol as P
from ..local.protocol import DRIVER, Outcome, TaskMsg, TaskSpec
from . import actor_rules as scheduler_actors
from . import views as scheduler_views
from .placement import (
    PLAIN,
    WorkerState,
    describe_capacity,
    largest_capacity,
    prefetch_depth,
    shape_of,
)
from .records import (
    ASSIGNED,
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    LOST,
    PUBLIC_STATE,
    READY,
    WAITING,
    ActorState,
    TaskState,
    framework_error,
    upstream_outcome,
)

Instr = tuple[Any, ...]
BATCH_TASKS = 64  # tasks held back for a busy worker before they are sent anyway


class SchedulerState:
    """Every future, worker and actor of one cluster, and the rules that move them."""

    def __init__(
        self,
        *,
        heartbeat_timeout: float = 10.0,
        start_timeout: float = 60.0,
        cancel_grace: float = 2.0,
        max_worker_deaths: int = 5,
    ) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self.start_timeout = start_timeout
        self.cancel_grace = cancel_grace
        self.max_worker_deaths = max_worker_deaths
        self.tasks: dict[int, TaskState] = {}
        self.workers: dict[int, WorkerState] = {}
        self.actors: dict[int, ActorState] = {}
        self.ready: dict[Any, deque[int]] = {}
        self.counts: Counter[str] = Counter()
        self.cancelling: dict[int, float] = {}  # tid -> deadline
        self.mean_duration = 0.0
        self.now = 0.0
        self._out: list[Instr] = []
        self._runs: defaultdict[int, list[TaskMsg]] = defaultdict(list)
        self._resolves: defaultdict[int, list[tuple[int, Outcome]]] = defaultdict(list)
        self._wake_workers: set[int] = set()  # workers whose held tasks go out in this flush
        self._satisfiable: set[Any] = set()  # requirement shapes some live worker can meet

    # -- plumbing -------------------------------------------------------------------
    def _flush(self) -> list[Instr]:
        self._dispatch()
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
            out.append(("send", wid, (P.RUN, msgs)))
        for w in self.workers.values():
            if len(w.unsent) >= BATCH_TASKS:
                out.append(("send", w.wid, (P.RUN, w.unsent)))
                w.unsent = []
        for proc, items in self._resolves.items():
            if proc == DRIVER:
                out.extend(("resolve", DRIVER, tid, o) for tid, o in items)
            else:
                out.append(("send", proc, (P.RESOLVED, items)))
        self._out = []
        self._runs.clear()
        self._resolves.clear()
        self._wake_workers.clear()
        self._attach_functions(out)
        return out

    def _attach_functions(self, out: list[Instr]) -> None:
        """Give each task message its function's pickle if its worker has not had it yet.

        Decided here, over the final instructions in the order they will be sent, and never
        when a task is placed: a task placed earlier may be sent later (held for a batch),
        or never (cancelled, its worker died), so what a worker holds is exactly what was
        sent to it, and the shell sends these in this order on one ordered pipe."""
        for ins in out:
            if ins[0] != "send":
                continue
            kind, body = ins[2][0], ins[2][1]
            if kind == P.RUN:
                msgs: list[TaskMsg] = body
            elif kind in (P.CREATE_ACTOR, P.ACTOR_CALL):
                msgs = [body]
            else:
                continue
            w = self.workers.get(ins[1])
            if w is None:
                continue
            for msg in msgs:
                if msg.fn_hash and msg.fn_hash not in w.functions:
                    msg.fn_bytes = self.tasks[msg.tid].spec.fn_bytes
                    w.functions.add(msg.fn_hash)

    def _set(self, t: TaskState, state: str) -> None:
        self.counts[PUBLIC_STATE[t.state]] -= 1
        self.counts[PUBLIC_STATE[state]] += 1
        t.state = state

    def _send(self, proc: int, msg: tuple[Any, ...]) -> None:
        self._out.append(("send", proc, msg))

    def _resolve(self, t: TaskState, procs: set[int] | None = None) -> None:
        assert t.outcome is not None
        for proc in t.holders if procs is None else procs:
            self._resolves[proc].append((t.spec.tid, t.outcome))
        if procs is None:
            t.resolved = True

    # -- workers --------------------------------------------------------------------
    def add_worker(self, wid: int, capacity: dict[str, float], now: float) -> None:
        """A worker process was started; it takes work once it says hello."""
        self.workers[wid] = WorkerState(wid=wid, capacity=dict(capacity), last_seen=now)
        self._satisfiable.clear()

    def worker_ready(self, wid: int, pid: int, now: float) -> list[Instr]:
        w = self.workers.get(wid)
        if w is None or w.status == "dead":
            return []
        w.status, w.pid, w.last_seen = "alive", pid, now
        return self._flush()

    def heartbeat(self, wid: int, stats: P.WorkerStats, now: float) -> None:
        w = self.workers.get(wid)
        if w is not None and w.status != "dead":
            w.last_seen = now
            w.stats = stats

    def check_requirements(self, req: dict[str, float]) -> None:
        """Raise UnsatisfiableRequirementError if no worker could ever run ``req``."""
        shape = shape_of(req)
        if shape in self._satisfiable:
            return
        live = [w for w in self.workers.values() if w.status != "dead"]
        if any(w.could_ever_fit(req) for w in live):
            self._satisfiable.add(shape)
            return
        wanted = describe_capacity(req)
        if live:
            kinds = sorted({describe_capacity(w.capacity) for w in live})
            offers = (
                "the largest worker offers " + kinds[0]
                if len(kinds) == 1
                else ("the workers offer " + "; ".join(kinds))
            )
            offers += (
                f" (most of each: {describe_capacity(largest_capacity(live))})" if len(kinds) > 1 else ""
            )
        else:
            offers = "there are no live workers"
        raise UnsatisfiableRequirementError(f"no worker can ever meet the requirement ({wanted}); {offers}")

    # -- submission -----------------------------------------------------------------
    def submit(self, spec: TaskSpec, holder: int, now: float) -> list[Instr]:
        """A new future. Raises UnsatisfiableRequirementError for the kernel's own calls."""
        self.now = now
        if spec.kind == "put":
            raise ValueError("stored objects are registered with put(), not submit()")
        req = spec.requirements.as_dict()
        if spec.kind == "task":
            req["cpu"] = max(req.get("cpu", 0.0), 1.0)
        t = TaskState(spec=spec, req=req, retries_left=spec.max_retries, submitted=now)
        t.holders.add(holder)
        error = None
        if spec.kind in ("task", "actor"):
            try:
                self.check_requirements(req)
            except UnsatisfiableRequirementError as exc:
                if holder == DRIVER:
                    raise
                error = str(exc)
        self.tasks[spec.tid] = t
        self.counts[PUBLIC_STATE[WAITING]] += 1
        for d in t.inputs:
            dep = self.tasks.get(d)
            if dep is not None:
                dep.lineage_users += 1
        if error is not None:
            self._fail(t, framework_error("UnsatisfiableRequirementError", error))
        elif spec.kind == "call":
            self._enqueue_call(t)
        else:
            if spec.kind == "actor":
                assert spec.actor is not None
                self.actors[spec.actor] = ActorState(
                    aid=spec.actor,
                    create_tid=spec.tid,
                    cls_name=spec.name,
                    restarts_left=spec.max_restarts,
                )
                t.holds += 1  # the creation record lives as long as the actor
            self._prepare(t)
        return self._flush()

    def put(self, tid: int, outcome: Outcome, holder: int, now: float) -> list[Instr]:
        """An object stored by a client; it is done from the start and never rebuilt."""
        spec = TaskSpec(tid=tid, kind="put", allow_reconstruction=False, owner=holder)
        t = TaskState(spec=spec, req={}, state=DONE, outcome=outcome, submitted=now, finished=now)
        t.holders.add(holder)
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
        t.waiting_on.clear()
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
                self._fail_upstream(t, dep)
                return False
            dep.consumers.add(t.spec.tid)
            if dep.state != DONE:
                t.waiting_on.add(d)
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
        t.avoid.clear()
        self._set(t, WAITING)
        self._prepare(t)

    def _make_ready(self, t: TaskState) -> None:
        self._set(t, READY)
        loc = t.spec.locality
        if loc is not None:
            key: Any = ("@", loc[1])
        elif t.avoid:
            key = ("retry", t.spec.tid)
        else:
            key = shape_of(t.req)
        q = self.ready.get(key)
        if q is None:
            q = self.ready[key] = deque()
        q.append(t.spec.tid)

    # -- placement ------------------------------------------------------------------
    def _dispatch(self) -> None:
        if not self.ready:
            return
        alive = [w for w in self.workers.values() if w.status == "alive"]
        if not alive:
            return
        depth = prefetch_depth(self.mean_duration)
        seen: set[Any] = set()
        while keys := [k for k in self.ready if k not in seen]:
            seen.update(keys)
            self._dispatch_keys(keys, alive, depth)

    def _dispatch_keys(self, keys: list[Any], alive: list[WorkerState], depth: int) -> None:
        for key in keys:
            if key not in self.ready:
                continue
            q = self.ready[key]
            while q:
                t = self.tasks.get(q[0])
                if t is None or t.state != READY:
                    q.popleft()
                    continue
                choice = self._pick(t, alive, depth)
                if choice is None:
                    break
                q.popleft()
                self._assign(t, *choice)
            if not q:
                del self.ready[key]

    def _pick(self, t: TaskState, alive: list[WorkerState], depth: int) -> tuple[WorkerState, bool] | None:
        req = t.req
        candidates = alive
        loc = t.spec.locality
        if loc is not None:
            obj = self.tasks.get(loc[1])
            if obj is None or obj.state != DONE:
                # The copy it must run beside is gone: rebuild it first.
                self._set(t, WAITING)
                self._prepare(t)
                return None
            assert obj.outcome is not None
            where = self.workers.get(obj.outcome.where or -1)
            if where is not None and where.status == "alive":
                candidates = [where]
        if t.avoid and any(w.wid not in t.avoid and w.could_ever_fit(req) for w in alive):
            candidates = [w for w in candidates if w.wid not in t.avoid]
        plain = depth > 0 and shape_of(req) == PLAIN
        best: tuple[Any, ...] | None = None
        chosen: tuple[WorkerState, bool] | None = None
        for w in candidates:
            if w.fits(req):
                prefetch = False
            elif plain and w.prefetched < depth:
                prefetch = True
            else:
                continue
            score = (not prefetch, self._local_bytes(t, w.wid), -len(w.assigned))
            if best is None or score > best:
                best, chosen = score, (w, prefetch)
        return chosen

    def _local_bytes(self, t: TaskState, wid: int) -> int:
        total = 0
        for d in t.spec.deps:
            o = self.tasks[d].outcome
            if o is not None and o.where == wid and o.segment is not None:
                total += o.nbytes
        return total

    def _task_msg(self, t: TaskState, w: WorkerState) -> TaskMsg:
        spec = t.spec
        inputs = {}
        for d in spec.deps:
            o = self.tasks[d].outcome
            if o is not None:
                inputs[d] = o
        return TaskMsg(
            tid=spec.tid,
            attempt=t.attempt,
            kind=spec.kind,
            fn_hash=spec.fn_hash,
            fn_bytes=None,  # attached when it is sent (_attach_functions)
            args=spec.args,
            inputs=inputs,
            actor=spec.actor,
            method=spec.method,
            name=spec.name,
        )

    def _assign(self, t: TaskState, w: WorkerState, prefetch: bool) -> None:
        self._set(t, ASSIGNED)
        t.worker = w.wid
        t.attempt += 1
        t.started = self.now
        if prefetch:
            t.prefetched = True
            w.prefetched += 1
        else:
            w.reserve(t.req)
            t.reserved = True
        w.assigned.add(t.spec.tid)
        if t.spec.kind == "actor":
            self._send(w.wid, (P.CREATE_ACTOR, self._task_msg(t, w)))
        elif prefetch:
            w.unsent.append(self._task_msg(t, w))
        else:
            self._runs[w.wid].append(self._task_msg(t, w))

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
    def done(self, wid: int, results: list[tuple[int, int, Outcome]], now: float) -> list[Instr]:
        """A batch of results from one worker."""
        self.now = now
        for tid, attempt, outcome in results:
            self._done_one(wid, tid, attempt, outcome)
        self._wake_workers.add(wid)
        return self._flush()

    def _done_one(self, wid: int, tid: int, attempt: int, outcome: Outcome) -> None:
        t = self.tasks.get(tid)
        if t is None or t.worker != wid or t.attempt != attempt:
            if outcome.segment is not None:  # a stale copy nobody will read
                self._send(wid, (P.FREE, [outcome.segment]))
            return
        kind = t.spec.kind
        if kind == "call":
            actor = self.actors.get(t.spec.actor or -1)
            if actor is not None:
                actor.inflight.discard(tid)
                actor.calls_done += 1
        if t.state == CANCELLED:
            self._unassign(t)
            self.cancelling.pop(tid, None)
            if outcome.segment is not None:
                self._send(wid, (P.FREE, [outcome.segment]))
            self._after_finish(t)
            return
        if kind == "task" and outcome.duration:
            self.mean_duration = (
                outcome.duration
                if not self.mean_duration
                else (0.8 * self.mean_duration + 0.2 * outcome.duration)
            )
        if kind != "actor" or outcome.status != "ok":
            self._unassign(t)
        if outcome.status == "ok":
            t.outcome = outcome
            t.finished = self.now
            self._set(t, DONE)
            self._hold_contained(outcome)
            if kind == "actor":
                self._actor_started(t, wid)
            if not t.resolved:
                self._resolve(t)
            self._wake_consumers(t)
            self._after_finish(t)
        elif outcome.status == "cancelled":
            t.outcome = outcome
            self._set(t, CANCELLED)
            self._resolve(t)
            self._fail_consumers(t)
            self._after_finish(t)
        elif outcome.error_type == "jf:ObjectLost" and t.deaths < self.max_worker_deaths:
            t.deaths += 1  # an input vanished under it: rebuild the input, then run again
            self._set(t, WAITING)
            self._prepare(t)
        elif kind == "task" and t.retries_left > 0:
            t.retries_left -= 1
            t.avoid.add(wid)
            self._set(t, WAITING)
            self._prepare(t)
        else:
            self._fail(t, outcome)

    def _wake_consumers(self, t: TaskState) -> None:
        tid = t.spec.tid
        for c in list(t.consumers):
            ct = self.tasks.get(c)
            if ct is None or ct.state != WAITING or tid not in ct.waiting_on:
                continue
            ct.waiting_on.discard(tid)
            if not ct.waiting_on:
                if ct.spec.kind == "call":
                    self._pump_actor(self.actors[ct.spec.actor or -1])
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
                self._actor_dead(cur.spec.actor, f"it failed to start ({out.error_type.removeprefix('jf:')})")
            if cur.spec.kind == "call":
                actor = self.actors.get(cur.spec.actor or -1)
                if actor is not None:
                    actor.inflight.discard(cur.spec.tid)
            for c in list(cur.consumers):
                ct = self.tasks.get(c)
                if ct is not None and ct.state in (WAITING, READY):
                    stack.append((ct, upstream_outcome(cur)))
            self._after_finish(cur)

    def _fail_upstream(self, t: TaskState, dep: TaskState) -> None:
        self._fail(t, upstream_outcome(dep))

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
                dep.consumers.discard(t.spec.tid)
                self._maybe_free(dep)
        self._maybe_free(t)

    # -- references and freeing -----------------------------------------------------
    def acquire(self, proc: int, tids: list[int]) -> list[Instr]:
        for tid in tids:
            t = self.tasks.get(tid)
            if t is None:
                out = framework_error("UpstreamDependencyFailedException", f"future {tid} no longer exists")
                self._resolves[proc].append((tid, out))
                continue
            t.holders.add(proc)
            if t.state == LOST:
                self._rebuild(t)
            if t.state in (DONE, FAILED, CANCELLED) and t.outcome is not None:
                self._resolve(t, {proc})
        return self._flush()

    def release(self, proc: int, tids: list[int]) -> list[Instr]:
        for tid in tids:
            t = self.tasks.get(tid)
            if t is not None:
                t.holders.discard(proc)
                self._maybe_free(t)
        return self._flush()

    def copy_missing(self, tid: int) -> list[Instr]:
        """A client found a value's copy gone before it read it: rebuild it (or fail)."""
        t = self.tasks.get(tid)
        if t is not None and t.state == DONE and t.outcome is not None and t.outcome.segment:
            self._drop_value(t, free=False)
            self._set(t, LOST)
            t.resolved = False
            self._rebuild(t)
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
        if free and o.segment is not None:
            w = self.workers.get(o.where) if o.where is not None else None
            if o.where == DRIVER:
                self._out.append(("free_local", [o.segment]))
            elif w is not None and w.status != "dead":
                self._send(w.wid, (P.FREE, [o.segment]))
        for c in o.contained:
            inner = self.tasks.get(c)
            if inner is not None:
                inner.holds -= 1
                self._maybe_free(inner)
        t.outcome = None

    # -- cancellation -----------------------------------------------------------------
    def cancel(self, tid: int, now: float) -> tuple[bool, list[Instr]]:
        self.now = now
        t = self.tasks.get(tid)
        if t is None or t.state in FINISHED:
            return False, []
        was = t.state
        t.outcome = Outcome(status="cancelled")
        self._set(t, CANCELLED)
        self._resolve(t)
        self._fail_consumers(t)
        if t.spec.kind == "actor":
            self._actor_dead(t.spec.actor, "its creation was cancelled")
        elif was == ASSIGNED and t.worker is not None and self._drop_unsent(t):
            self._unassign(t)
            self._after_finish(t)
        elif was == ASSIGNED and t.worker is not None:
            self._send(t.worker, (P.CANCEL, tid))
            if t.spec.kind == "task":
                self.cancelling[tid] = now + self.cancel_grace
        else:
            self._after_finish(t)
        return True, self._flush()

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
    def blocked(self, wid: int, tid: int) -> list[Instr]:
        t = self.tasks.get(tid)
        if t is not None and t.worker == wid and t.reserved:
            self.workers[wid].unreserve(t.req)
            t.reserved = False
        self._wake_workers.add(wid)
        return self._flush()

    def unblocked(self, wid: int, tid: int) -> list[Instr]:
        t = self.tasks.get(tid)
        if t is not None and t.worker == wid and not t.reserved and not t.prefetched:
            self.workers[wid].reserve(t.req)
            t.reserved = True
        return []

    # -- actors (scheduler_actors.py) -----------------------------------------------
    def _enqueue_call(self, t: TaskState) -> None:
        scheduler_actors.enqueue_call(self, t)

    def _pump_actor(self, actor: ActorState) -> None:
        scheduler_actors.pump(self, actor)

    def _actor_started(self, t: TaskState, wid: int) -> None:
        scheduler_actors.started(self, t, wid)

    def _actor_dead(self, aid: int | None, why: str, code: int | None = None) -> None:
        scheduler_actors.dead(self, aid, why, code)

    def kill_actor(self, aid: int) -> list[Instr]:
        actor = self.actors.get(aid)
        if actor is None or actor.status == "dead":
            return []
        if actor.worker is not None:
            self._send(actor.worker, (P.KILL_ACTOR, aid))
        self._actor_dead(aid, "it was killed with kill_actor()")
        return self._flush()

    # -- failures and time ------------------------------------------------------------
    def worker_died(self, wid: int, exitcode: int | None, now: float) -> list[Instr]:
        """A worker exited or was presumed dead: resubmit, mark lost, restart actors."""
        self.now = now
        w = self.workers.get(wid)
        if w is None or w.status == "dead":
            return []
        w.status = "dead"
        w.exitcode = exitcode
        self._satisfiable.clear()
        w.unsent = []
        why = f"worker {wid} (pid {w.pid}) {WorkerDiedException.describe_exit(exitcode)}"
        for tid in list(w.assigned):
            t = self.tasks[tid]
            self._unassign(t)
            self.cancelling.pop(tid, None)
            if t.state == CANCELLED:
                self._after_finish(t)
            elif t.spec.kind == "call":
                self._fail(
                    t, framework_error("ActorDiedError", f"the actor's {why} during this call", exitcode)
                )
            elif t.spec.kind == "actor" and t.state == DONE:
                continue  # handled with the worker's actors below
            else:
                t.deaths += 1
                if t.deaths > self.max_worker_deaths:
                    self._fail(
                        t,
                        framework_error(
                            "WorkerDiedException",
                            f"{why}; the workers running this task died {t.deaths} times "
                            f"(a task is resubmitted at most {self.max_worker_deaths} times)",
                            exitcode,
                        ),
                    )
                else:
                    self._set(t, WAITING)
                    self._prepare(t)
        for aid in list(w.actors):
            actor = self.actors[aid]
            for tid in list(actor.inflight):
                ct = self.tasks.get(tid)
                if ct is not None and ct.state not in FINISHED:
                    self._fail(
                        ct, framework_error("ActorDiedError", f"the actor's {why} during this call", exitcode)
                    )
            actor.inflight.clear()
            w.actors.discard(aid)
            if actor.restarts_left > 0 and actor.status != "dead":
                actor.restarts_left -= 1
                actor.status = "restarting"
                actor.worker = None
                create = self.tasks[actor.create_tid]
                self._unassign(create)
                self._set(create, WAITING)
                self._prepare(create)
            else:
                self._actor_dead(aid, f"its {why}", exitcode)
        lost = []
        orphaned = []
        for t in list(self.tasks.values()):
            if wid in t.holders:
                t.holders.discard(wid)
                orphaned.append(t)
            o = t.outcome
            if t.state == DONE and o is not None and o.where == wid and o.segment is not None:
                self._drop_value(t, free=False)
                self._set(t, LOST)
                lost.append(t)
        for t in lost:
            needed = [
                self.tasks[c]
                for c in t.consumers
                if c in self.tasks and self.tasks[c].state in (WAITING, READY)
            ]
            for ct in needed:
                if ct.state == READY:
                    self._set(ct, WAITING)
                self._prepare(ct)
            self._maybe_free(t)
        for t in orphaned:
            self._maybe_free(t)
        self._out.append(("spawn", wid))
        return self._flush()

    def tick(self, now: float) -> list[Instr]:
        """Time passes: presume silent workers dead, kill workers that ignore a cancel."""
        self.now = now
        doomed: dict[int, str] = {}
        for w in self.workers.values():
            if w.status == "alive" and now - w.last_seen > self.heartbeat_timeout:
                doomed[w.wid] = f"missed heartbeats for {now - w.last_seen:.1f} s"
            elif w.status == "starting" and now - w.last_seen > self.start_timeout:
                doomed[w.wid] = f"did not start within {self.start_timeout:.0f} s"
        for tid, deadline in list(self.cancelling.items()):
            t = self.tasks.get(tid)
            if t is None or t.worker is None:
                self.cancelling.pop(tid, None)
            elif now > deadline:
                doomed.setdefault(
                    t.worker, f"task {tid} ignored its cancellation for {self.cancel_grace:.1f} s"
                )
        out: list[Instr] = []
        for wid, why in doomed.items():
            out.append(("kill", wid, why))
            out.extend(self.worker_died(wid, None, now))
        out.extend(self._flush())
        return out

    # -- views (scheduler_views.py) ---------------------------------------------------
    def future_state(self, tid: int) -> str:
        return scheduler_views.future_state(self, tid)

    def locality(self, tid: int) -> list[int]:
        return scheduler_views.locality(self, tid)

    def snapshot(self) -> dict[str, Any]:
        """The cheap part of ``status()``: counters kept up to date as states change."""
        return scheduler_views.snapshot(self)
