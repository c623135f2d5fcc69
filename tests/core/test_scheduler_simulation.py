"""The pure scheduler under a simulated cluster whose messages are late, reordered and
duplicated (hypothesis), its invariants checked after every step.

::

    rules (random interleavings)                  the simulation (the shell and the workers)
    ───────────────────────────────               ─────────────────────────────────────────────
    submit (deps, priority, group, GPU,   ──► s ──► instructions, carried out in order:
      locality, retries; or nested, from             RunTasks, CreateActor, CallActor ─► inboxes
      a worker) / submit_many / put /                CancelTask ─► a "cancelled" report
      actors / cancel / release /                    FreeObjects ─► stores drop those copies
      copy_missing / worker_holds                    KillWorker, RetireWorker ─► the process ends
                                                     SpawnWorker ─► a new worker (most say hello
                                                                    at once, the rest later)
    workers_run: items of inboxes, in any order ──► reports (DONE) and heartbeats on the wire
    deliver: any messages on the wire, in any order (reordered)
    deliver_again: a DONE delivered before, once more (duplicated; late: after a retry began,
                   after its worker was declared dead, after the future was released)
    fault: a crash / declared dead while running / silence (heartbeats missed) / retire /
           restart;  time_passes, block (a task lends its slot, and takes it back)

Invariants (``SchedulerState``'s docstring, and the bookkeeping behind them): a future's id
never changes; it is assigned to at most one worker, which lists it; a ready future is in
exactly one ready queue; no value names a copy that was freed or lost with its worker, and
what a process is told a value is it can read (a lost value is LOST, and rebuilt or its
dependents fail, before anyone uses it); the counters match the records; what a worker
has in use is what its tasks reserve; a worker is never sent a task without its function.
At the end the faults stop, the wire drains and everything runs (invariants checked along
the way); then every future the kernel holds has ended.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jupyter_futures.core.instructions import (
    AdoptObjects,
    CallActor,
    CancelTask,
    CreateActor,
    FreeObjects,
    Instruction,
    KillActor,
    KillWorker,
    Resolved,
    RetireWorker,
    RunTasks,
    SpawnWorker,
)
from jupyter_futures.core.records import ASSIGNED, DONE, FINISHED, PUBLIC_STATE, READY
from jupyter_futures.core.scheduler import SchedulerState
from jupyter_futures.core.specs import DRIVER, Outcome, Requirements, TaskMsg, TaskSpec, WorkerStats
from jupyter_futures.errors import UnsatisfiableRequirementError

FUNCTIONS = [b"make", b"combine", b"reduce"]
HEARTBEAT_TIMEOUT = 5.0
STEP = 0.01


@dataclass
class SimWorker:
    """A worker process as the simulation plays it."""

    wid: int
    alive: bool = True
    functions: set[bytes] = field(default_factory=set)
    inbox: list[TaskMsg] = field(default_factory=list)  # received, not reported (queued or running)
    objects: set[str] = field(default_factory=set)  # the copies its store holds
    actors: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Report:
    """A worker's message on its way to the scheduler."""

    wid: int
    kind: str  # "done" | "heartbeat"
    tid: int = 0
    attempt: int = 0
    outcome: Outcome | None = None


class ClusterSimulation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.s = SchedulerState(
            heartbeat_timeout=HEARTBEAT_TIMEOUT, start_timeout=30.0, cancel_grace=1.0, max_worker_deaths=3
        )
        self.now = 0.0
        self.workers: dict[int, SimWorker] = {}
        self.next_wid = 1
        self.next_tid = 1
        self.next_segment = 1
        self.held: list[int] = []  # futures the kernel holds
        self.every: list[int] = []  # every future ever submitted
        self.actors: list[int] = []
        self.driver_objects: set[str] = set()
        self.wire: list[Report] = []  # sent, not delivered
        self.delivered: list[Report] = []  # delivered DONEs, to deliver again
        self.restarts = 0
        for _ in range(2):
            self._spawn()
            self._hello(self.next_wid - 1)

    # -- the clock, the shell and the workers ------------------------------------------------
    def _tick(self, seconds: float = STEP) -> float:
        self.now += seconds
        return self.now

    def _spawn(self) -> None:
        wid = self.next_wid
        self.next_wid += 1
        self.s.add_worker(wid, {"cpu": 2.0, "gpu": 1.0 if wid % 2 else 0.0}, self._tick())
        self.workers[wid] = SimWorker(wid)

    def _hello(self, wid: int) -> None:
        self._execute(self.s.worker_ready(wid, 1000 + wid, self._tick()))

    def _end_process(self, wid: int) -> None:
        """The process is gone (killed, crashed, or stopped after retiring): its store,
        inbox and actors with it. Reports it sent already stay on the wire."""
        w = self.workers.get(wid)
        if w is not None and w.alive:
            w.alive = False
            w.inbox.clear()
            w.objects.clear()
            w.actors.clear()

    def _execute(self, instrs: list[Instruction]) -> None:
        """Carry the instructions out in order, as the shell does."""
        for ins in instrs:
            if isinstance(ins, RunTasks):
                self._deliver_tasks(ins.worker, ins.tasks)
            elif isinstance(ins, (CreateActor, CallActor)):
                self._deliver_tasks(ins.worker, [ins.task])
            elif isinstance(ins, CancelTask):
                self._cancel_on_worker(ins.worker, ins.tid)
            elif isinstance(ins, KillActor):
                w = self.workers.get(ins.worker)
                if w is not None:
                    w.actors.discard(ins.aid)
            elif isinstance(ins, FreeObjects):
                if ins.proc == DRIVER:
                    self.driver_objects.difference_update(ins.names)
                elif ins.proc in self.workers:
                    self.workers[ins.proc].objects.difference_update(ins.names)
            elif isinstance(ins, Resolved):
                w = self.workers.get(ins.proc)
                if ins.proc == DRIVER or (w is not None and w.alive):
                    for tid, outcome in ins.results:
                        self._check_readable(tid, outcome)
            elif isinstance(ins, KillWorker):
                self._end_process(ins.worker)
            elif isinstance(ins, RetireWorker):
                w = self.workers[ins.worker]
                assert set(ins.handed) <= w.objects, "a retiring worker hands over what it lacks"
                w.objects.difference_update(ins.handed)
                self.driver_objects.update(ins.handed)  # the kernel adopts them, no copy
                self._end_process(ins.worker)
                self._execute(self.s.worker_died(ins.worker, 0, self._tick()))
            elif isinstance(ins, SpawnWorker):
                self._spawn()
                if self.next_wid % 3:  # most start at once; the others when worker_says_hello
                    self._hello(self.next_wid - 1)

    def _deliver_tasks(self, wid: int, msgs: list[TaskMsg]) -> None:
        w = self.workers.get(wid)
        if w is None or not w.alive:
            return  # a dead worker's pipe: nothing arrives
        for m in msgs:
            if m.fn_bytes is not None:
                assert m.fn_bytes == b"code:" + m.fn_hash
                w.functions.add(m.fn_hash)
            if m.fn_hash:
                assert m.fn_hash in w.functions, f"task {m.tid} reached worker {wid} without its function"
            if m.kind == "actor":
                assert m.actor is not None
                w.actors.add(m.actor)
            w.inbox.append(m)

    def _cancel_on_worker(self, wid: int, tid: int) -> None:
        w = self.workers.get(wid)
        if w is None or not w.alive:
            return
        for i, m in enumerate(w.inbox):
            if m.tid == tid:  # stopped (before or while it ran): the worker confirms
                del w.inbox[i]
                self.wire.append(Report(wid, "done", tid, m.attempt, Outcome(status="cancelled")))
                return

    def _holder_has(self, outcome: Outcome) -> bool:
        if outcome.segment is None:
            return True
        if outcome.where == DRIVER:
            return outcome.segment in self.driver_objects
        w = self.workers.get(outcome.where if outcome.where is not None else -1)
        return w is not None and w.alive and outcome.segment in w.objects

    def _check_readable(self, tid: int, outcome: Outcome) -> None:
        """What a process (the kernel, a worker holding a future) is told a value is, it
        can read."""
        assert self._holder_has(outcome), f"future {tid} resolved to a copy that is gone: {outcome}"

    def _new_tid(self) -> int:
        tid = self.next_tid
        self.next_tid += 1
        return tid

    def _run(self, w: SimWorker, m: TaskMsg, big: bool, fail: bool, duration: float) -> Report:
        """``w`` runs ``m`` and reports: an input whose copy is gone fails it as
        ObjectLost (as the real worker does), else a value (inline or in its store) or an
        error."""
        if any(not self._holder_has(o) for o in m.inputs.values()):
            outcome = Outcome(status="error", text="gone", error_type="jf:ObjectLost", duration=duration)
        elif fail and m.kind != "actor":
            outcome = Outcome(
                status="error", data=b"e", text="boom", error_type="ValueError", duration=duration
            )
        elif big and m.kind == "task":
            seg = f"w{w.wid}-t{m.tid}-a{m.attempt}-{self.next_segment}"
            self.next_segment += 1
            w.objects.add(seg)
            outcome = Outcome(status="ok", segment=seg, nbytes=2**20, where=w.wid, duration=duration)
        else:
            outcome = Outcome(status="ok", data=b"v", nbytes=1, where=w.wid, duration=duration)
        return Report(w.wid, "done", m.tid, m.attempt, outcome)

    def _deliver(self, r: Report, again: bool = False) -> None:
        if r.kind == "heartbeat":
            stats = WorkerStats(
                pid=1000 + r.wid,
                rss=0,
                cpu_percent=0.0,
                store_used=0,
                store_capacity=0,
                spilled=0,
                objects=0,
                running=[],
                dropped_frames={},
            )
            self.s.heartbeat(r.wid, stats, self._tick())
            return
        assert r.outcome is not None
        if not again:
            self.delivered.append(r)
        self._execute(self.s.done(r.wid, [(r.tid, r.attempt, r.outcome)], self._tick()))

    def _live(self) -> list[SimWorker]:
        return [w for w in self.workers.values() if w.alive]

    def _busy(self) -> list[SimWorker]:
        return [w for w in self.workers.values() if w.alive and w.inbox]

    # -- the kernel ----------------------------------------------------------------------------
    @rule(
        fn=st.sampled_from(FUNCTIONS),
        picks=st.lists(st.integers(0, 10_000), max_size=3),
        priority=st.integers(-1, 2),
        group=st.integers(0, 3),
        gpu=st.booleans(),
        retries=st.integers(0, 1),
        beside=st.none() | st.integers(0, 10_000),
        rebuild=st.booleans(),
        nested=st.booleans(),
    )
    def submit(
        self,
        fn: bytes,
        picks: list[int],
        priority: int,
        group: int,
        gpu: bool,
        retries: int,
        beside: int | None,
        rebuild: bool,
        nested: bool,
    ) -> None:
        """The kernel submits a task; or (``nested``) a task on a live worker does, which
        then holds its future (the kernel holds none of it)."""
        pool = [t for t in self.held if t in self.s.tasks]
        deps = tuple(sorted({pool[p % len(pool)] for p in picks})) if pool else ()
        locality = None
        if beside is not None and pool:
            obj = pool[beside % len(pool)]
            locality = (-1, obj)
        spec = TaskSpec(
            tid=self._new_tid(),
            kind="task",
            fn_hash=fn,
            fn_bytes=b"code:" + fn,
            deps=deps,
            requirements=Requirements(gpu=1.0 if gpu else 0.0),
            locality=locality,
            max_retries=retries,
            allow_reconstruction=rebuild,
            priority=priority,
            group=group,
        )
        live = self._live()
        if nested and live:
            owner = live[(beside or 0) % len(live)]
            spec.owner = owner.wid
            self.every.append(spec.tid)
            self._execute(self.s.submit(spec, owner.wid, self._tick()))  # fails, never raises
            return
        try:
            out = self.s.submit(spec, DRIVER, self._tick())
        except UnsatisfiableRequirementError:  # no live worker has a GPU: raised at submit
            assert spec.tid not in self.s.tasks
            return
        self.held.append(spec.tid)
        self.every.append(spec.tid)
        self._execute(out)

    @precondition(lambda self: self.every and any(w.alive for w in self.workers.values()))
    @rule(pick=st.integers(0, 10_000), keep=st.booleans())
    def worker_holds(self, pick: int, keep: bool) -> None:
        """A task on a worker unpickles a future (its client acquires it), and may drop it."""
        live = self._live()
        w = live[pick % len(live)]
        tid = self.every[pick % len(self.every)]
        self._execute(self.s.acquire(w.wid, [tid], self._tick()))
        if not keep:
            self._execute(self.s.release(w.wid, [tid], self._tick()))

    @rule(n=st.integers(1, 20), priority=st.integers(-1, 2), group=st.integers(0, 3))
    def submit_many(self, n: int, priority: int, group: int) -> None:
        specs = [
            TaskSpec(
                tid=self._new_tid(),
                kind="task",
                fn_hash=b"make",
                fn_bytes=b"code:make",
                priority=priority,
                group=group,
            )
            for _ in range(n)
        ]
        try:
            out = self.s.submit_many(specs, DRIVER, self._tick())
        except UnsatisfiableRequirementError:  # no worker stays: raised at submit
            assert specs[0].tid not in self.s.tasks
            return
        self.held += [s.tid for s in specs]
        self.every += [s.tid for s in specs]
        self._execute(out)

    @rule(big=st.booleans())
    def put(self, big: bool) -> None:
        tid = self._new_tid()
        if big:
            seg = f"driver-t{tid}"
            self.driver_objects.add(seg)
            outcome = Outcome(status="ok", segment=seg, nbytes=2**20, where=DRIVER)
        else:
            outcome = Outcome(status="ok", data=b"v", nbytes=1)
        self.held.append(tid)
        self.every.append(tid)
        self._execute(self.s.put(tid, outcome, DRIVER, self._tick()))

    @rule(restarts=st.integers(0, 1))
    def create_actor(self, restarts: int) -> None:
        tid = self._new_tid()
        aid = self._new_tid()
        spec = TaskSpec(
            tid=tid,
            kind="actor",
            fn_hash=b"cls",
            fn_bytes=b"code:cls",
            actor=aid,
            allow_reconstruction=False,
            max_restarts=restarts,
            name="A",
        )
        try:
            out = self.s.submit(spec, DRIVER, self._tick())
        except UnsatisfiableRequirementError:  # every worker is leaving: raised at submit
            assert tid not in self.s.tasks
            return
        self.actors.append(aid)
        self.held.append(tid)
        self.every.append(tid)
        self._execute(out)

    @precondition(lambda self: self.actors)
    @rule(pick=st.integers(0, 10_000), group=st.integers(0, 3))
    def call_actor(self, pick: int, group: int) -> None:
        aid = self.actors[pick % len(self.actors)]
        spec = TaskSpec(
            tid=self._new_tid(), kind="call", actor=aid, method="m", allow_reconstruction=False, group=group
        )
        self.held.append(spec.tid)
        self.every.append(spec.tid)
        self._execute(self.s.submit(spec, DRIVER, self._tick()))

    @precondition(lambda self: self.actors)
    @rule(pick=st.integers(0, 10_000))
    def kill_actor(self, pick: int) -> None:
        self._execute(self.s.kill_actor(self.actors[pick % len(self.actors)], self._tick()))

    @precondition(lambda self: self.every)
    @rule(pick=st.integers(0, 10_000))
    def cancel(self, pick: int) -> None:
        self._execute(self.s.cancel(self.every[pick % len(self.every)], self._tick()))

    @precondition(lambda self: self.held)
    @rule(pick=st.integers(0, 10_000))
    def release(self, pick: int) -> None:
        """The kernel drops its Future: the value may be freed, and rebuilt if needed."""
        tid = self.held.pop(pick % len(self.held))
        self._execute(self.s.release(DRIVER, [tid], self._tick()))

    @precondition(lambda self: self.held)
    @rule(pick=st.integers(0, 10_000))
    def copy_missing(self, pick: int) -> None:
        """The kernel found a value's copy gone (it claims so; the scheduler rebuilds)."""
        self._execute(self.s.copy_missing(self.held[pick % len(self.held)], self._tick()))

    # -- the workers and the wire --------------------------------------------------------------
    @precondition(lambda self: any(w.alive and w.inbox for w in self.workers.values()))
    @rule(
        picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
        big=st.booleans(),
        fail=st.booleans(),
        duration=st.sampled_from([0.0001, 0.001, 0.05]),  # short ones make the scheduler prefetch
    )
    def workers_run(self, picks: list[int], big: bool, fail: bool, duration: float) -> None:
        """Workers finish items of their inboxes (in any order) and report; the reports
        wait on the wire."""
        for pick in picks:
            busy = self._busy()
            if not busy:
                return
            w = busy[pick % len(busy)]
            m = w.inbox.pop(pick % len(w.inbox))
            self.wire.append(self._run(w, m, big and pick % 2 == 0, fail and pick % 3 == 0, duration))
            self.wire.append(Report(w.wid, "heartbeat"))

    @precondition(lambda self: self.wire)
    @rule(picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=6))
    def deliver(self, picks: list[int]) -> None:
        """Any messages on the wire arrive next, in any order: reports are reordered."""
        for pick in picks:
            if self.wire:
                self._deliver(self.wire.pop(pick % len(self.wire)))

    @precondition(lambda self: self.delivered)
    @rule(pick=st.integers(0, 10_000))
    def deliver_again(self, pick: int) -> None:
        """A report already delivered arrives once more: now, after a retry began, after
        its worker was declared dead, after the future was released."""
        self._deliver(self.delivered[pick % len(self.delivered)], again=True)

    @precondition(lambda self: any(w.alive for w in self.workers.values()))
    @rule(pick=st.integers(0, 10_000))
    def heartbeat(self, pick: int) -> None:
        live = self._live()
        self.wire.append(Report(live[pick % len(live)].wid, "heartbeat"))

    @precondition(lambda self: any(w.alive and w.inbox for w in self.workers.values()))
    @rule(pick=st.integers(0, 10_000), again=st.booleans())
    def block(self, pick: int, again: bool) -> None:
        """A running task waits on nested work and lends its slot (and takes it back)."""
        busy = self._busy()
        w = busy[pick % len(busy)]
        m = w.inbox[pick % len(w.inbox)]
        self._execute(self.s.blocked(w.wid, m.tid, self._tick()))
        if again:
            self._execute(self.s.unblocked(w.wid, m.tid, self._tick()))

    @precondition(lambda self: any(w.alive for w in self.workers.values()))
    @rule(
        kind=st.sampled_from(["crash", "presumed dead", "silence", "retire", "restart"]),
        pick=st.integers(0, 10_000),
        code=st.sampled_from([-9, 1, None]),
    )
    def fault(self, kind: str, pick: int, code: int | None) -> None:
        """Something goes wrong (one rule, so that faults stay a small part of the steps):
        a worker crashes; one is declared dead while it still runs, its reports in flight
        arriving after its work moved; time passes with no heartbeat, so every silent
        worker is presumed dead; one is retired (scaled down); every one is restarted."""
        live = self._live()
        wid = live[pick % len(live)].wid
        if kind == "crash":
            self._end_process(wid)
            self._execute(self.s.worker_died(wid, code, self._tick()))
        elif kind == "presumed dead":
            for tid in self.s.workers[wid].assigned:
                self._execute(self.s.presume_dead_if_silent(tid, 0.0, self._tick()))
                break
        elif kind == "silence":
            self._execute(self.s.tick(self._tick(2 * HEARTBEAT_TIMEOUT)))
        elif kind == "retire" and len(live) > 1:
            self._execute(self.s.retire_workers([wid], self._tick()))
        elif kind == "restart" and self.restarts < 3:
            self.restarts += 1
            self._execute(self.s.restart_workers(self._tick()))

    @precondition(lambda self: any(w.alive and not self.s.workers[w.wid].pid for w in self.workers.values()))
    @rule(pick=st.integers(0, 10_000))
    def worker_says_hello(self, pick: int) -> None:
        new = [w for w in self.workers.values() if w.alive and not self.s.workers[w.wid].pid]
        self._hello(new[pick % len(new)].wid)

    @rule(seconds=st.sampled_from([STEP, 0.5, 1.5]))
    def time_passes(self, seconds: float) -> None:
        """Time passes: ignored cancels kill workers (silence is a fault, above)."""
        self._execute(self.s.tick(self._tick(seconds)))

    # -- what must hold after every step -------------------------------------------------------
    @invariant()
    def ids_never_change(self) -> None:
        for tid, t in self.s.tasks.items():
            assert t.spec.tid == tid

    @invariant()
    def assigned_to_at_most_one_worker_which_lists_it(self) -> None:
        where: dict[int, int] = {}
        for wid, w in self.s.workers.items():
            for tid in w.assigned:
                assert tid not in where, f"future {tid} assigned to workers {where[tid]} and {wid}"
                where[tid] = wid
                assert self.s.tasks[tid].worker == wid, (tid, wid, self.s.tasks[tid].worker)
        for tid, t in self.s.tasks.items():
            if t.worker is not None:
                assert where.get(tid) == t.worker, (tid, t.worker, t.state)
            if t.state == ASSIGNED:
                assert t.worker is not None and self.s.workers[t.worker].status != "dead", (tid, t.worker)

    @invariant()
    def a_ready_future_is_in_exactly_one_ready_queue(self) -> None:
        queues_of: dict[int, set[object]] = {}
        for key, q in self.s.ready.items():
            assert q, f"an empty ready queue is kept: {key}"
            for _priority, _group, tid in q.items():
                t = self.s.tasks.get(tid)
                if t is not None and t.state == READY:
                    queues_of.setdefault(tid, set()).add(key)
        ready = {tid for tid, t in self.s.tasks.items() if t.state == READY}
        assert set(queues_of) == ready, ready ^ set(queues_of)
        assert all(len(keys) == 1 for keys in queues_of.values()), queues_of

    @invariant()
    def counts_match_the_records(self) -> None:
        by_state = Counter(PUBLIC_STATE[t.state] for t in self.s.tasks.values())
        assert {k: v for k, v in self.s.counts.items() if v} == +by_state
        pending = Counter(
            (t.spec.group, t.spec.priority)
            for t in self.s.tasks.values()
            if PUBLIC_STATE[t.state] == "pending"
        )
        assert self.s.queued == dict(pending)

    @invariant()
    def no_value_names_a_copy_that_is_gone(self) -> None:
        for tid, t in self.s.tasks.items():
            if t.state == DONE and t.outcome is not None:
                assert self._holder_has(t.outcome), f"future {tid} names a freed or lost copy: {t.outcome}"

    @invariant()
    def reservations_are_what_the_reserving_tasks_hold(self) -> None:
        """What a live worker has in use is the sum of its tasks' reservations (a task that
        waits on nested work lends its slot, and takes it back even if that oversubscribes)."""
        for w in self.s.workers.values():
            if w.status == "dead":
                continue
            held: Counter[str] = Counter()
            for tid in w.assigned:
                t = self.s.tasks[tid]
                if t.reserved:
                    held.update(t.req)
            for k, cap in w.capacity.items():
                assert abs(cap - w.free.get(k, 0.0) - held[k]) < 1e-9, (w.wid, k, w.free, cap, held)

    @invariant()
    def scheduler_knows_what_workers_hold(self) -> None:
        for wid, w in self.workers.items():
            if w.alive:
                assert self.s.workers[wid].functions == w.functions, wid

    def check_everything(self) -> None:
        """The invariants, also between the steps of the teardown's drain."""
        self.ids_never_change()
        self.assigned_to_at_most_one_worker_which_lists_it()
        self.a_ready_future_is_in_exactly_one_ready_queue()
        self.counts_match_the_records()
        self.no_value_names_a_copy_that_is_gone()
        self.reservations_are_what_the_reserving_tasks_hold()
        self.scheduler_knows_what_workers_hold()

    def teardown(self) -> None:
        """No more faults: every worker starts, the wire drains, everything runs; then every
        future the kernel holds has ended."""
        for _ in range(4):  # the user scales up again: a worker of each kind that stays
            staying = [w for w in self.s.workers.values() if w.status != "dead" and not w.leaving]
            if {w.capacity["gpu"] for w in staying} == {0.0, 1.0}:
                break
            self._spawn()  # (workers that kept dying before they started were not replaced)
        for step in range(20_000):
            if step % 16 == 0:
                self.check_everything()
            for w in [w for w in self.workers.values() if w.alive and not self.s.workers[w.wid].pid]:
                self._hello(w.wid)
            if self.wire:
                self._deliver(self.wire.pop(0))
                continue
            busy = self._busy()
            if not busy:
                break
            w = busy[0]
            m = w.inbox.pop(0)
            self.wire.append(self._run(w, m, big=False, fail=False, duration=0.001))
        self.check_everything()
        for tid in self.held:
            t = self.s.tasks.get(tid)
            assert t is None or t.state in FINISHED, (tid, t.state if t else None)


ClusterSimulation.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=200,  # ~30,000 steps in all (runs end at random), ~20 s here
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_the_scheduler_under_late_reordered_and_duplicated_messages = ClusterSimulation.TestCase


class SalvagingClusterSimulation(ClusterSimulation):
    """The same, where a dead worker's copies outlive it (the local engine's files): the
    kernel adopts them (AdoptObjects) and finds them all, so nothing of theirs is rebuilt;
    a restarted worker's are gone with it."""

    def __init__(self) -> None:
        super().__init__()
        self.s.salvage_copies = True
        self.files: dict[int, set[str]] = {}  # a dead worker's copies, still there

    def _end_process(self, wid: int) -> None:
        w = self.workers.get(wid)
        if w is not None and w.alive:
            self.files[wid] = set(w.objects)
        super()._end_process(wid)

    def _execute(self, instrs: list[Instruction]) -> None:
        for ins in instrs:  # one at a time, in order, as the shell does
            if not isinstance(ins, AdoptObjects):
                super()._execute([ins])
                continue
            names = {name for _, name in ins.copies}
            left = self.files.get(ins.dead, set())
            assert names <= left, "adopting what the dead worker never had"
            left.difference_update(names)
            self.driver_objects.update(names)


SalvagingClusterSimulation.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_the_scheduler_adopting_dead_workers_copies = SalvagingClusterSimulation.TestCase
