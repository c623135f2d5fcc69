"""The scheduler against a model of its workers, under random events (hypothesis).

The model plays the I/O shell and the workers: it carries out every instruction in order,
each worker keeps the functions it was sent and runs what it receives in any order, and
workers die and are replaced at random. Whatever happens, what the scheduler believes a
worker holds must be what that worker was sent: no task may reach a worker without its
function, and every future ends settled once the events stop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jupyter_futures.core.instructions import CallActor, CreateActor, Instruction, RunTasks, SpawnWorker
from jupyter_futures.core.records import FINISHED
from jupyter_futures.core.scheduler import SchedulerState
from jupyter_futures.core.specs import DRIVER, Outcome, TaskMsg, TaskSpec

FUNCTIONS = [b"make", b"combine", b"reduce"]


@dataclass
class ModelWorker:
    wid: int
    functions: set[bytes] = field(default_factory=set)
    queue: list[tuple[int, int]] = field(default_factory=list)  # (tid, attempt) received
    actors: set[int] = field(default_factory=set)


class SchedulerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.s = SchedulerState(max_worker_deaths=3)
        self.now = 0.0
        self.workers: dict[int, ModelWorker] = {}
        self.next_wid = 1
        self.next_tid = 1
        self.submitted: list[int] = []
        self.actors: list[int] = []
        self.rng = random.Random(0)
        for _ in range(2):
            self._start_worker()

    # -- the shell and the workers -----------------------------------------------------
    def _tick(self) -> float:
        self.now += 0.01
        return self.now

    def _start_worker(self) -> None:
        wid = self.next_wid
        self.next_wid += 1
        self.s.add_worker(wid, {"cpu": 2.0}, self._tick())
        self.workers[wid] = ModelWorker(wid)
        self._execute(self.s.worker_ready(wid, 1000 + wid, self._tick()))

    def _execute(self, instrs: list[Instruction]) -> None:
        for ins in instrs:
            if isinstance(ins, RunTasks):
                self._deliver(ins.worker, ins.tasks)
            elif isinstance(ins, (CreateActor, CallActor)):
                self._deliver(ins.worker, [ins.task], creates=isinstance(ins, CreateActor))
            elif isinstance(ins, SpawnWorker):
                self._start_worker()

    def _deliver(self, wid: int, tasks: list[TaskMsg], creates: bool = False) -> None:
        w = self.workers.get(wid)
        if w is None:
            return  # a dead worker's pipe: nothing arrives
        for t in tasks:
            if t.fn_bytes is not None:
                assert t.fn_bytes == b"code:" + t.fn_hash
                w.functions.add(t.fn_hash)
            if t.fn_hash:
                assert t.fn_hash in w.functions, f"task {t.tid} reached worker {wid} without its function"
            if creates:
                assert t.actor is not None
                w.actors.add(t.actor)
            w.queue.append((t.tid, t.attempt))

    def _busy(self) -> list[ModelWorker]:
        return [w for w in self.workers.values() if w.queue]

    # -- events ------------------------------------------------------------------------
    @rule(fn=st.sampled_from(FUNCTIONS), picks=st.lists(st.integers(0, 10_000), max_size=3))
    def submit(self, fn: bytes, picks: list[int]) -> None:
        pool = self.submitted
        deps = tuple(sorted({pool[p % len(pool)] for p in picks})) if pool else ()
        tid = self.next_tid
        self.next_tid += 1
        spec = TaskSpec(tid=tid, kind="task", fn_hash=fn, fn_bytes=b"code:" + fn, args=b"", deps=deps)
        self.submitted.append(tid)
        self._execute(self.s.submit(spec, DRIVER, self._tick()))

    @rule()
    def create_actor(self) -> None:
        tid = self.next_tid
        self.next_tid += 2
        spec = TaskSpec(
            tid=tid,
            kind="actor",
            fn_hash=b"cls",
            fn_bytes=b"code:cls",
            actor=tid + 1,
            allow_reconstruction=False,
            name="A",
        )
        self.actors.append(tid + 1)
        self._execute(self.s.submit(spec, DRIVER, self._tick()))

    @precondition(lambda self: self.actors)
    @rule(pick=st.integers(0, 10_000))
    def call_actor(self, pick: int) -> None:
        tid = self.next_tid
        self.next_tid += 1
        aid = self.actors[pick % len(self.actors)]
        spec = TaskSpec(tid=tid, kind="call", actor=aid, method="m", allow_reconstruction=False)
        self._execute(self.s.submit(spec, DRIVER, self._tick()))

    @precondition(lambda self: any(w.queue for w in self.workers.values()))
    @rule(
        pick=st.integers(0, 10_000),
        big=st.booleans(),
        fail=st.booleans(),
        duration=st.sampled_from([0.0001, 0.001, 0.05]),  # short ones make the scheduler prefetch
    )
    def finish(self, pick: int, big: bool, fail: bool, duration: float) -> None:
        busy = self._busy()
        w = busy[pick % len(busy)]
        tid, attempt = w.queue.pop(pick % len(w.queue))  # runners finish in any order
        if fail:
            outcome = Outcome(
                status="error", data=b"exc", text="boom", error_type="ValueError", duration=duration
            )
        elif big:
            outcome = Outcome(
                status="ok", segment=f"seg{tid}.{attempt}", nbytes=2**20, where=w.wid, duration=duration
            )
        else:
            outcome = Outcome(status="ok", data=b"v", nbytes=1, where=w.wid, duration=duration)
        self._execute(self.s.done(w.wid, [(tid, attempt, outcome)], self._tick()))

    @precondition(lambda self: any(w.queue for w in self.workers.values()))
    @rule(pick=st.integers(0, 10_000))
    def block(self, pick: int) -> None:
        """A running task waits on nested work and lends its slot."""
        busy = self._busy()
        w = busy[pick % len(busy)]
        tid, _ = w.queue[pick % len(w.queue)]
        self._execute(self.s.blocked(w.wid, tid, self._tick()))

    @precondition(lambda self: len(self.workers) > 0)
    @rule(pick=st.integers(0, 10_000))
    def kill_worker(self, pick: int) -> None:
        wid = sorted(self.workers)[pick % len(self.workers)]
        del self.workers[wid]
        self._execute(self.s.worker_died(wid, -9, self._tick()))

    @precondition(lambda self: self.submitted)
    @rule(pick=st.integers(0, 10_000))
    def cancel(self, pick: int) -> None:
        tid = self.submitted[pick % len(self.submitted)]
        self._execute(self.s.cancel(tid, self._tick()))

    @precondition(lambda self: self.submitted)
    @rule(pick=st.integers(0, 10_000))
    def release(self, pick: int) -> None:
        """The kernel drops its Future: the value may be freed, and rebuilt if needed."""
        tid = self.submitted.pop(pick % len(self.submitted))
        self._execute(self.s.release(DRIVER, [tid], self._tick()))

    @rule()
    def tick(self) -> None:
        self._execute(self.s.tick(self._tick()))

    # -- what must hold ----------------------------------------------------------------
    @invariant()
    def scheduler_knows_what_workers_hold(self) -> None:
        for wid, w in self.workers.items():
            believed = self.s.workers[wid].functions
            assert believed == w.functions, (wid, believed, w.functions)

    def teardown(self) -> None:
        # Run everything out: every task the kernel still holds a Future of must settle.
        for _ in range(10_000):
            busy = self._busy()
            if not busy:
                break
            w = busy[0]
            tid, attempt = w.queue.pop(0)
            outcome = Outcome(status="ok", data=b"v", nbytes=1, where=w.wid)
            self._execute(self.s.done(w.wid, [(tid, attempt, outcome)], self._tick()))
        for tid in self.submitted:
            t = self.s.tasks.get(tid)
            assert t is None or t.state in FINISHED, (tid, t.state if t else None)


SchedulerModel.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_scheduler_against_a_model_of_its_workers = SchedulerModel.TestCase
