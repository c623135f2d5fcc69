"""The scheduler state machine, driven event by event: workers are 1, 2, ..., the kernel 0."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

import pytest

from jupyter_futures.core.instructions import (
    AdoptObjects,
    CallActor,
    CancelTask,
    CreateActor,
    FreeObjects,
    Instruction,
    KillActor,
    KillWorker,
    NoReplacement,
    Resolved,
    RetireWorker,
    RunTasks,
    SpawnWorker,
)
from jupyter_futures.core.placement import prefetch_depth
from jupyter_futures.core.scheduler import SchedulerState
from jupyter_futures.core.specs import DRIVER, Outcome, Requirements, TaskMsg, TaskSpec, WorkerStats
from jupyter_futures.errors import UnsatisfiableRequirementError

Ins = TypeVar("Ins", bound=Instruction)

CPU1 = {"cpu": 1.0}
UPSTREAM = "jf:UpstreamDependencyFailedException"
ACTOR_DIED = "jf:ActorDiedError"

# -- helpers ---------------------------------------------------------------------------


def task(tid: int, *deps: int, fn: bytes = b"f", **fields: Any) -> TaskSpec:
    return TaskSpec(tid=tid, kind="task", fn_hash=fn, fn_bytes=b"code:" + fn, args=b"", deps=deps, **fields)


def actor(tid: int, aid: int, **fields: Any) -> TaskSpec:
    return TaskSpec(
        tid=tid,
        kind="actor",
        fn_hash=b"cls",
        fn_bytes=b"code:cls",
        actor=aid,
        name="Counter",
        allow_reconstruction=False,
        **fields,
    )


def call(tid: int, aid: int, *deps: int) -> TaskSpec:
    return TaskSpec(tid=tid, kind="call", actor=aid, method="incr", deps=deps, allow_reconstruction=False)


def cluster(*caps: dict[str, float], **options: Any) -> SchedulerState:
    """A scheduler with one ready worker per capacity (two one-CPU workers by default)."""
    s = SchedulerState(**options)
    for wid, cap in enumerate(caps or (CPU1, CPU1), start=1):
        s.add_worker(wid, cap, 0.0)
        assert s.worker_ready(wid, 1000 + wid, 0.0) == []
    return s


def sent(instrs: list[Instruction], kind: type[Ins]) -> list[Ins]:
    """Every instruction of ``kind``, in order."""
    return [i for i in instrs if isinstance(i, kind)]


def runs(instrs: list[Instruction]) -> dict[int, tuple[int, TaskMsg]]:
    """tid -> (worker, TaskMsg) of every task started with RunTasks."""
    return {m.tid: (i.worker, m) for i in sent(instrs, RunTasks) for m in i.tasks}


def resolved(instrs: list[Instruction]) -> dict[int, Outcome]:
    """tid -> outcome of every future resolved in the kernel."""
    return {tid: o for i in sent(instrs, Resolved) if i.proc == DRIVER for tid, o in i.results}


def to_workers(instrs: list[Instruction]) -> list[Resolved]:
    """The resolves sent to workers (for futures their tasks hold)."""
    return [i for i in sent(instrs, Resolved) if i.proc != DRIVER]


STATS = WorkerStats(
    pid=1001, rss=0, cpu_percent=0.0, store_used=0, store_capacity=0, spilled=0, objects=0, running=[1]
)


def ok(segment: str | None = None, duration: float = 0.0) -> Outcome:
    if segment is None:
        return Outcome(status="ok", data=b"value", nbytes=5, duration=duration)
    return Outcome(status="ok", segment=segment, nbytes=1000, duration=duration)


def error(text: str = "boom") -> Outcome:
    return Outcome(status="error", data=b"pickled exception", text=text, error_type="ValueError")


def finish(
    s: SchedulerState, run: tuple[int, TaskMsg], outcome: Outcome | None = None, now: float = 1.0
) -> list[Any]:
    """The worker of ``run`` reports its result (``ok()`` by default), made there."""
    wid, msg = run
    outcome = dataclasses.replace(outcome or ok(), where=wid)
    return s.done(wid, [(msg.tid, msg.attempt, outcome)], now)


# -- submission and dependencies -------------------------------------------------------


def test_function_bytes_go_to_each_worker_once():
    s = cluster({"cpu": 2.0}, CPU1)
    first = runs(s.submit(task(1), DRIVER, 0.0))
    second = runs(s.submit(task(2), DRIVER, 0.0))
    third = runs(s.submit(task(3), DRIVER, 0.0))
    assert first[1][0] == 1 and first[1][1].fn_bytes == b"code:f"
    assert second[2][0] == 2 and second[2][1].fn_bytes == b"code:f"  # new worker: gets the bytes
    assert third[3][0] == 1 and third[3][1].fn_bytes is None  # worker 1 has it already
    assert third[3][1].fn_hash == b"f"


def test_task_waits_for_inputs_and_receives_their_outcomes():
    s = cluster({"cpu": 2.0})
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    r2 = runs(s.submit(task(2), DRIVER, 0.0))
    assert runs(s.submit(task(3, 1, 2), DRIVER, 0.0)) == {}
    assert s.future_state(3) == "pending"
    out = finish(s, r1[1], ok(segment="seg1"))
    assert resolved(out)[1].segment == "seg1"
    assert 3 not in runs(out)
    out = finish(s, r2[2])
    msg = runs(out)[3][1]
    assert set(msg.inputs) == {1, 2}
    assert msg.inputs[1].segment == "seg1" and msg.inputs[1].where == 1
    assert msg.inputs[2].data == b"value"


def test_failed_input_fails_dependents_transitively():
    s = cluster()
    r1 = runs(s.submit(task(1, name="load"), DRIVER, 0.0))
    s.submit(task(2, 1), DRIVER, 0.0)
    s.submit(task(3, 2), DRIVER, 0.0)
    out = finish(s, r1[1], error("disk on fire"))
    res = resolved(out)
    assert res[1].error_type == "ValueError"
    assert res[2].error_type == UPSTREAM and "input future 1 (load)" in res[2].text
    assert "disk on fire" in res[2].text
    assert res[3].error_type == UPSTREAM
    assert runs(out) == {}
    late = s.submit(task(4, 3), DRIVER, 1.0)  # submitted after its input failed
    assert resolved(late)[4].error_type == UPSTREAM


# -- requirements ------------------------------------------------------------------------


def test_impossible_requirement_raises_naming_the_largest_worker():
    s = cluster({"cpu": 4.0, "gpu": 1.0}, {"cpu": 2.0})
    with pytest.raises(UnsatisfiableRequirementError, match="gpu=2") as info:
        s.check_requirements({"cpu": 1.0, "gpu": 2.0})
    assert "cpu=4, gpu=1" in str(info.value)
    with pytest.raises(UnsatisfiableRequirementError, match="cpu=4, gpu=1"):
        s.submit(task(1, requirements=Requirements(cpu=8)), DRIVER, 0.0)
    assert 1 not in s.tasks and s.snapshot()["futures"] == {}


def test_unsatisfiable_message_does_not_describe_a_worker_that_does_not_exist():
    # No single worker has both 8 CPUs and a GPU; the message must not say one does.
    s = cluster({"cpu": 8.0}, {"cpu": 1.0, "gpu": 1.0})
    with pytest.raises(UnsatisfiableRequirementError) as info:
        s.submit(task(1, requirements=Requirements(cpu=8, gpu=1)), DRIVER, 0.0)
    assert "offers cpu=8, gpu=1" not in str(info.value)


def test_impossible_requirement_from_a_worker_fails_the_future():
    s = cluster()
    out = s.submit(task(1, requirements=Requirements(gpu=1), owner=1), 1, 0.0)
    [r] = to_workers(out)
    proc, items = r.proc, r.results
    assert proc == 1 and items[0][0] == 1
    assert items[0][1].error_type == "jf:UnsatisfiableRequirementError"
    assert "gpu=1" in items[0][1].text
    assert s.future_state(1) == "failed"


def test_custom_resource_sends_task_to_the_worker_that_has_it():
    s = cluster(CPU1, {"cpu": 1.0, "licence": 1.0})
    r = runs(s.submit(task(1, requirements=Requirements(custom={"licence": 1.0})), DRIVER, 0.0))
    assert r[1][0] == 2


def test_gpu_is_reserved_until_its_task_finishes():
    s = cluster({"cpu": 4.0, "gpu": 1.0})
    r1 = runs(s.submit(task(1, requirements=Requirements(gpu=1)), DRIVER, 0.0))
    assert r1[1][0] == 1
    assert runs(s.submit(task(2, requirements=Requirements(gpu=1)), DRIVER, 0.0)) == {}
    assert 3 in runs(s.submit(task(3), DRIVER, 0.0))  # CPUs are still free
    assert runs(finish(s, r1[1]))[2][0] == 1


def test_futures_of_one_shape_share_a_reservation_that_running_them_never_changes():
    s = cluster({"cpu": 4.0, "gpu": 1.0})
    specs = [
        task(1),
        task(2),
        task(3, requirements=Requirements(gpu=1)),
        task(4, requirements=Requirements(gpu=1)),
    ]
    r = {}
    for spec in specs:
        r.update(runs(s.submit(spec, DRIVER, 0.0)))
    plain, gpu = s.tasks[1].req, s.tasks[3].req
    assert s.tasks[2].req is plain and s.tasks[4].req is gpu and plain is not gpu
    for tid in (1, 3):
        finish(s, r[tid])
    assert plain == {"cpu": 1.0} and gpu == {"cpu": 1.0, "gpu": 1.0}
    assert s.tasks[2].consumers == s.tasks[2].waiting_on == s.tasks[2].avoid == set()


# -- retries -----------------------------------------------------------------------------


def test_retry_goes_to_the_other_worker_then_fails_with_the_last_error():
    s = cluster()
    first = runs(s.submit(task(1, max_retries=1), DRIVER, 0.0))[1]
    out = finish(s, first, error("first"))
    assert resolved(out) == {}
    second = runs(out)[1]
    assert second[0] != first[0] and second[1].attempt == first[1].attempt + 1
    out = finish(s, second, error("second"))
    assert resolved(out)[1].text == "second"
    assert s.future_state(1) == "failed"


def test_result_of_a_superseded_attempt_is_ignored_and_its_copy_freed():
    s = cluster()
    first = runs(s.submit(task(1, max_retries=1), DRIVER, 0.0))[1]
    second = runs(finish(s, first, error()))[1]
    late = s.done(first[0], [(1, first[1].attempt, ok(segment="stale"))], 1.0)
    assert resolved(late) == {}
    assert sent(late, FreeObjects) == [FreeObjects(first[0], ["stale"])]
    assert resolved(finish(s, second))[1].status == "ok"


# -- worker deaths and lineage ----------------------------------------------------------


def test_workers_that_keep_dying_before_they_start_are_not_replaced_for_ever():
    from jupyter_futures.core.worker_deaths import MAX_EARLY_DEATHS

    s = cluster()
    wid = 3
    for n in range(1, MAX_EARLY_DEATHS + 2):
        s.add_worker(wid, CPU1, float(n))  # started, never says hello (pid stays 0)
        out = s.worker_died(wid, 1, float(n))
        if n <= MAX_EARLY_DEATHS:
            assert SpawnWorker(wid) in out
        else:
            assert sent(out, SpawnWorker) == [] and sent(out, NoReplacement)[0].dead == wid
        wid += 1
    s.add_worker(wid, CPU1, 20.0)  # one that starts resets the count
    s.worker_ready(wid, 4242, 20.0)
    assert SpawnWorker(wid) in s.worker_died(wid, -9, 21.0)


def test_worker_death_resubmits_its_tasks_and_asks_for_a_replacement():
    s = cluster()
    assert runs(s.submit(task(1), DRIVER, 0.0))[1][0] == 1
    out = s.worker_died(1, -9, 1.0)
    assert SpawnWorker(1) in out and resolved(out) == {}
    rerun = runs(out)[1]
    assert rerun[0] == 2 and rerun[1].attempt == 2


def test_worker_death_loses_shared_memory_results_but_not_inline_ones():
    s = cluster()
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    finish(s, r1[1], ok(segment="seg1"))
    r2 = runs(s.submit(task(2), DRIVER, 0.0))
    assert r2[2][0] == 1
    finish(s, r2[2])
    out = s.worker_died(1, -9, 2.0)
    assert s.tasks[1].state == "lost" and s.tasks[2].state == "done"
    assert s.future_state(1) == "done"  # nobody needs it yet: nothing is rebuilt
    assert runs(out) == {} and sent(out, FreeObjects) == []


def test_a_dead_workers_copies_are_adopted_by_the_kernel_where_they_outlive_it():
    s = cluster(salvage_copies=True)
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    assert r1[1][0] == 1
    finish(s, r1[1], ok(segment="seg1"))
    pending = s.submit(task(3, 1), DRIVER, 1.0)  # reads 1: placed beside it, on worker 1
    assert runs(pending)[3][0] == 1
    out = s.worker_died(1, -9, 2.0)
    assert sent(out, AdoptObjects) == [AdoptObjects(1, [(1, "seg1")])]
    assert s.tasks[1].state == "done" and s.tasks[1].outcome.where == DRIVER  # type: ignore[union-attr]
    again = runs(out)
    assert set(again) == {3}  # only what was running runs again: nothing is rebuilt
    assert again[3][1].inputs[1].segment == "seg1" and again[3][1].inputs[1].where == DRIVER
    assert s.locality(1) == []


def test_a_copy_the_kernel_did_not_find_is_lost_and_rebuilt_once_when_needed():
    s = cluster(salvage_copies=True)
    finish(s, runs(s.submit(task(1), DRIVER, 0.0))[1], ok(segment="seg1"))
    s.worker_died(1, -9, 1.0)
    assert s.copies_lost([1], 2.0) == [] and s.tasks[1].state == "lost"
    assert s.copies_lost([1], 2.5) == []  # reported twice: nothing more
    out = s.submit(task(2, 1), DRIVER, 3.0)
    assert set(runs(out)) == {1}  # rebuilt first, once
    assert set(runs(s.submit(task(3, 1), DRIVER, 3.5))) == set()


def test_a_restarted_workers_copies_are_not_adopted():
    s = cluster(salvage_copies=True)
    finish(s, runs(s.submit(task(1), DRIVER, 0.0))[1], ok(segment="seg1"))
    s.restart_workers(1.0)
    out = s.worker_died(1, -9, 2.0)
    assert sent(out, AdoptObjects) == [] and s.tasks[1].state == "lost"


def test_pending_dependent_rebuilds_a_lost_input_at_once():
    s = cluster(CPU1, {"cpu": 2.0})
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    r2 = runs(s.submit(task(2), DRIVER, 0.0))
    assert r1[1][0] == 1 and r2[2][0] == 2
    finish(s, r1[1], ok(segment="seg1"))
    assert runs(s.submit(task(3, 1, 2), DRIVER, 1.0)) == {}
    out = s.worker_died(1, -9, 2.0)
    rebuild = runs(out)[1]
    assert rebuild[0] == 2 and resolved(out) == {}
    finish(s, rebuild, ok(segment="seg1b"))
    msg = runs(finish(s, r2[2]))[3][1]
    assert msg.inputs[1].segment == "seg1b" and msg.inputs[1].where == 2


def test_lost_results_are_rebuilt_through_two_levels():
    s = cluster()
    finish(s, runs(s.submit(task(1), DRIVER, 0.0))[1], ok(segment="a"))
    r2 = runs(s.submit(task(2, 1), DRIVER, 1.0))
    assert r2[2][0] == 1  # runs beside its input
    finish(s, r2[2], ok(segment="b"))
    s.worker_died(1, -9, 2.0)
    assert s.tasks[1].state == s.tasks[2].state == "lost"
    out = s.submit(task(3, 2), DRIVER, 3.0)
    assert set(runs(out)) == {1}
    out = finish(s, runs(out)[1], ok(segment="a2"))
    assert set(runs(out)) == {2}
    assert runs(out)[2][1].inputs[1].segment == "a2"
    out = finish(s, runs(out)[2], ok(segment="b2"))
    assert runs(out)[3][1].inputs[2].segment == "b2"
    assert resolved(out) == {}  # the driver had both results already


def test_lost_input_without_reconstruction_fails_the_dependent():
    s = cluster()
    finish(s, runs(s.submit(task(1, allow_reconstruction=False), DRIVER, 0.0))[1], ok(segment="a"))
    s.worker_died(1, -9, 1.0)
    out = s.submit(task(2, 1), DRIVER, 2.0)
    assert runs(out) == {}
    assert resolved(out)[2].error_type == "jf:UpstreamDependencyFailedNoReconstructionAllowed"


# -- locality ----------------------------------------------------------------------------


def test_locality_runs_the_task_beside_the_object():
    s = cluster()
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    r2 = runs(s.submit(task(2), DRIVER, 0.0))
    finish(s, r1[1])
    finish(s, r2[2], ok(segment="obj"))
    assert runs(s.submit(task(3, locality=(2, 2)), DRIVER, 1.0))[3][0] == 2
    assert runs(s.submit(task(4), DRIVER, 1.0))[4][0] == 1


def test_locality_waits_for_the_rebuild_and_follows_the_new_copy():
    s = cluster()
    r1 = runs(s.submit(task(1), DRIVER, 0.0))  # keeps worker 1 busy
    r2 = runs(s.submit(task(2), DRIVER, 0.0))
    finish(s, r2[2], ok(segment="obj"))
    s.worker_died(2, -9, 1.0)
    s.add_worker(3, CPU1, 1.0)
    s.worker_ready(3, 1003, 1.0)
    out = s.submit(task(3, locality=(2, 2)), DRIVER, 2.0)
    assert set(runs(out)) == {2} and runs(out)[2][0] == 3
    assert runs(finish(s, r1[1])) == {}  # worker 1 is free, but the copy is not there
    out = finish(s, runs(out)[2], ok(segment="obj2"))
    assert runs(out)[3][0] == 3


# -- references --------------------------------------------------------------------------


def test_release_frees_the_copy_where_it_lives_and_drops_the_record():
    s = cluster()
    finish(s, runs(s.submit(task(1), DRIVER, 0.0))[1], ok(segment="seg1"))
    s.put(7, Outcome(status="ok", segment="jf_x_w0_7", nbytes=10, where=DRIVER), DRIVER, 0.0)
    assert sent(s.release(DRIVER, [1], 0.0), FreeObjects) == [FreeObjects(1, ["seg1"])]
    assert FreeObjects(DRIVER, ["jf_x_w0_7"]) in s.release(DRIVER, [7], 0.0)  # the kernel's own object
    assert s.tasks == {} and s.future_state(1) == s.future_state(7) == "released"


def test_released_input_record_is_kept_for_lineage_until_its_user_goes():
    s = cluster()
    finish(s, runs(s.submit(task(1), DRIVER, 0.0))[1], ok(segment="a"))
    finish(s, runs(s.submit(task(2, 1), DRIVER, 1.0))[2], ok(segment="b"))
    out = s.release(DRIVER, [1], 1.0)
    assert sent(out, FreeObjects) == [FreeObjects(1, ["a"])]
    assert 1 in s.tasks  # 2 may need to be rebuilt from it
    out = s.release(DRIVER, [2], 1.0)
    assert sent(out, FreeObjects) == [FreeObjects(1, ["b"])]
    assert s.tasks == {}


def test_value_with_a_pending_consumer_is_freed_only_after_it_ran():
    s = cluster()
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    r2 = runs(s.submit(task(2), DRIVER, 0.0))
    finish(s, r1[1], ok(segment="a"))
    s.submit(task(3, 1, 2), DRIVER, 1.0)
    assert sent(s.release(DRIVER, [1], 1.0), FreeObjects) == []
    run3 = runs(finish(s, r2[2]))[3]
    assert run3[1].inputs[1].segment == "a"
    assert sent(finish(s, run3), FreeObjects) == [FreeObjects(1, ["a"])]


def test_values_held_only_by_a_dead_worker_are_freed():
    s = cluster()
    runs(s.submit(task(1), DRIVER, 0.0))
    child = runs(s.submit(task(5, owner=1), 1, 0.0))[5]  # submitted by the task on worker 1
    assert child[0] == 2
    out = finish(s, child, ok(segment="seg5"))
    assert to_workers(out) == [Resolved(1, [(5, dataclasses.replace(ok(segment="seg5"), where=2))])]
    out = s.worker_died(1, -9, 2.0)
    assert sent(out, FreeObjects) == [FreeObjects(2, ["seg5"])]
    assert 5 not in s.tasks


# -- resizing ----------------------------------------------------------------------------


def test_a_retired_worker_drains_hands_its_objects_over_and_is_not_replaced():
    s = cluster()
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    assert r1[1][0] == 1
    finish(s, r1[1], ok(segment="seg1"))  # a value stored on worker 1
    r2 = runs(s.submit(task(2), DRIVER, 0.0))
    assert r2[2][0] == 1  # worker 1 runs task 2 when it is told to retire
    out = s.retire_workers([1], 1.0)
    assert sent(out, RetireWorker) == []  # it still runs task 2
    later = runs(s.submit(task(3), DRIVER, 1.0))
    assert later[3][0] == 2, "no new work goes to a retiring worker"
    out = finish(s, r2[2], ok(segment="seg2"))
    assert sent(out, RetireWorker) == [RetireWorker(1, ["seg1", "seg2"])]
    assert s.tasks[1].outcome.where == DRIVER and s.locality(1) == []  # the kernel has them now
    out = s.worker_died(1, 0, 2.0)
    assert sent(out, SpawnWorker) == [] and s.tasks[1].state == "done" and s.tasks[2].state == "done"
    with pytest.raises(UnsatisfiableRequirementError):
        s.submit(task(9, requirements=Requirements(cpu=2.0)), DRIVER, 3.0)


def test_a_retired_workers_actor_starts_again_elsewhere():
    s = cluster()
    wid = start_actor(s, max_restarts=1)
    out = s.retire_workers([wid], 1.0)
    assert sent(out, RetireWorker) == [RetireWorker(wid, [])]  # only a live actor there: drained
    out = s.worker_died(wid, 0, 2.0)
    [again] = sent(out, CreateActor)
    assert again.worker != wid


def test_restart_replaces_every_worker_and_does_not_charge_the_tasks():
    s = cluster(max_worker_deaths=0)  # any death of its own doing would fail the task
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    out = s.restart_workers(1.0)
    assert sorted(k.worker for k in sent(out, KillWorker)) == [1, 2]
    assert sorted(sp.replacing for sp in sent(out, SpawnWorker)) == [1, 2]
    assert s.tasks[1].state != "failed" and s.tasks[1].deaths == 0
    assert r1[1][0] in (1, 2)
    s.add_worker(3, CPU1, 2.0)
    rerun = runs(s.worker_ready(3, 3003, 2.0))
    assert rerun[1][0] == 3 and rerun[1][1].attempt == 2


# -- actors ------------------------------------------------------------------------------


def start_actor(s: SchedulerState, tid: int = 10, aid: int = 7, **fields: Any) -> int:
    """Create actor ``aid`` and let its worker confirm it; returns that worker."""
    [c] = sent(s.submit(actor(tid, aid, **fields), DRIVER, 0.0), CreateActor)
    wid, msg = c.worker, c.task
    s.done(wid, [(tid, msg.attempt, Outcome(status="ok", data=b"handle", where=wid))], 0.0)
    return wid


def test_actor_calls_queue_until_it_is_alive_then_go_in_order():
    s = cluster()
    [c] = sent(s.submit(actor(10, 7), DRIVER, 0.0), CreateActor)
    wid, create = c.worker, c.task
    assert create.kind == "actor" and create.actor == 7 and create.fn_bytes == b"code:cls"
    assert s.submit(call(11, 7), DRIVER, 0.0) == []
    assert s.submit(call(12, 7), DRIVER, 0.0) == []
    out = s.done(wid, [(10, create.attempt, Outcome(status="ok", data=b"handle", where=wid))], 0.1)
    assert [(i.worker, i.task.tid) for i in sent(out, CallActor)] == [(wid, 11), (wid, 12)]
    assert sent(out, CallActor)[0].task.method == "incr"
    out = s.submit(call(13, 7), DRIVER, 0.2)
    assert [(i.worker, i.task.tid) for i in sent(out, CallActor)] == [(wid, 13)]
    [a] = s.snapshot()["actors"]
    assert a["state"] == "alive" and a["worker"] == wid and a["calls_queued"] == 3


def test_actor_worker_death_fails_calls_in_flight_and_restarts_elsewhere():
    s = cluster()
    wid = start_actor(s, max_restarts=1)
    s.submit(call(11, 7), DRIVER, 0.1)
    out = s.worker_died(wid, -9, 1.0)
    assert resolved(out)[11].error_type == ACTOR_DIED
    [c] = sent(out, CreateActor)
    new, create = c.worker, c.task
    assert new != wid and create.tid == 10
    assert s.submit(call(12, 7), DRIVER, 1.1) == []  # queued while it restarts
    out = s.done(new, [(10, create.attempt, Outcome(status="ok", data=b"handle", where=new))], 1.2)
    assert [(i.worker, i.task.tid) for i in sent(out, CallActor)] == [(new, 12)]


def test_actor_without_restarts_dies_with_its_worker():
    s = cluster()
    wid = start_actor(s)
    s.worker_died(wid, -9, 1.0)
    out = s.submit(call(11, 7), DRIVER, 2.0)
    assert resolved(out)[11].error_type == ACTOR_DIED
    assert "SIGKILL" in resolved(out)[11].text


def test_kill_actor_fails_calls_in_flight_and_queued():
    s = cluster({"cpu": 2.0})
    wid = start_actor(s)
    runs(s.submit(task(5), DRIVER, 0.0))
    s.submit(call(11, 7), DRIVER, 0.0)
    s.submit(call(12, 7, 5), DRIVER, 0.0)  # waits for its input
    out = s.kill_actor(7, 0.0)
    assert sent(out, KillActor) == [KillActor(wid, 7)]
    res = resolved(out)
    assert res[11].error_type == res[12].error_type == ACTOR_DIED
    assert "kill_actor" in res[12].text


def test_kill_of_a_starting_actor_stops_its_creation():
    s = cluster()
    [c] = sent(s.submit(actor(10, 7), DRIVER, 0.0), CreateActor)
    wid = c.worker
    s.submit(call(11, 7), DRIVER, 0.0)
    out = s.kill_actor(7, 0.0)
    assert resolved(out)[11].error_type == ACTOR_DIED
    assert sent(out, KillActor) == [KillActor(wid, 7)]  # the worker is creating it right now
    assert s.future_state(10) not in ("pending", "running")


def test_killed_actor_is_not_created_later():
    s = cluster({"cpu": 1.0})
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    assert s.submit(actor(10, 7, requirements=Requirements(cpu=1)), DRIVER, 0.0) == []
    s.kill_actor(7, 0.0)
    out = finish(s, r1[1])  # the worker is free now
    assert sent(out, CreateActor) == []
    assert resolved(s.submit(call(11, 7), DRIVER, 1.0))[11].error_type == ACTOR_DIED


def test_cancelled_actor_creation_fails_its_calls():
    s = cluster()
    s.submit(actor(10, 7), DRIVER, 0.0)
    s.submit(call(11, 7), DRIVER, 0.0)
    out = s.cancel(10, 0.5)
    assert resolved(out)[10].status == "cancelled"
    assert s.future_state(11) == "failed"
    assert resolved(s.submit(call(12, 7), DRIVER, 1.0))[12].error_type == ACTOR_DIED


# -- cancellation ------------------------------------------------------------------------


def test_cancel_of_a_pending_task_resolves_it_and_it_never_runs():
    s = cluster({"cpu": 1.0})
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    s.submit(task(2), DRIVER, 0.0)
    s.submit(task(3, 2), DRIVER, 0.0)
    assert s.cancellable(2)
    out = s.cancel(2, 0.5)
    assert resolved(out)[2].status == "cancelled"
    assert resolved(out)[3].error_type == UPSTREAM and "cancelled" in resolved(out)[3].text
    assert sent(out, CancelTask) == []
    assert runs(finish(s, r1[1])) == {}
    assert not s.cancellable(2) and s.cancel(2, 1.0) == []


def test_unconfirmed_cancel_kills_the_worker_after_the_grace_period():
    s = cluster(cancel_grace=2.0)
    run = runs(s.submit(task(1), DRIVER, 0.0))[1]
    out = s.cancel(1, 1.0)
    assert sent(out, CancelTask) == [CancelTask(run[0], 1)]
    assert resolved(out)[1].status == "cancelled"
    assert s.tick(2.5) == []
    out = s.tick(3.5)
    assert [i.worker for i in sent(out, KillWorker)] == [run[0]]
    assert SpawnWorker(run[0]) in out
    assert runs(out) == {}


def test_confirmed_cancel_kills_nothing_and_frees_the_slot():
    s = cluster({"cpu": 1.0}, cancel_grace=2.0)
    run = runs(s.submit(task(1), DRIVER, 0.0))[1]
    s.cancel(1, 1.0)
    finish(s, run, Outcome(status="cancelled"), now=1.5)
    assert s.tick(5.0) == []
    assert runs(s.submit(task(2), DRIVER, 5.0))[2][0] == 1


def test_released_cancelled_task_gives_its_slot_back_once_confirmed():
    s = cluster({"cpu": 1.0})
    run = runs(s.submit(task(1), DRIVER, 0.0))[1]
    s.cancel(1, 1.0)
    s.release(DRIVER, [1], 1.0)  # the kernel dropped its Future right after cancelling
    finish(s, run, Outcome(status="cancelled"), now=1.5)
    assert set(runs(s.submit(task(2), DRIVER, 2.0))) == {2}


def test_worker_death_after_a_released_cancel_is_handled():
    s = cluster()
    run = runs(s.submit(task(1), DRIVER, 0.0))[1]
    s.cancel(1, 1.0)
    s.release(DRIVER, [1], 1.0)
    assert SpawnWorker(run[0]) in s.worker_died(run[0], -9, 2.0)
    assert [w["running"] for w in s.snapshot()["workers"]] == [[]]


# -- time ----------------------------------------------------------------------------------


def test_tick_presumes_a_silent_worker_dead_and_replaces_it():
    s = cluster(heartbeat_timeout=5.0)
    runs(s.submit(task(1), DRIVER, 0.0))
    runs(s.submit(task(2), DRIVER, 0.0))
    s.heartbeat(1, STATS, 4.0)
    assert s.tick(4.5) == []
    out = s.tick(6.0)
    kills = sent(out, KillWorker)
    assert [k.worker for k in kills] == [2] and "heartbeat" in kills[0].why
    assert SpawnWorker(2) in out
    assert s.tasks[2].state == "ready"  # waits for a free worker


def test_tick_kills_a_worker_that_never_said_hello():
    s = SchedulerState(start_timeout=30.0)
    s.add_worker(1, CPU1, 0.0)
    assert s.tick(20.0) == []
    out = s.tick(31.0)
    assert isinstance(out[0], KillWorker) and out[0].worker == 1 and SpawnWorker(1) in out


# -- prefetch ------------------------------------------------------------------------------


def test_prefetch_depth_grows_as_tasks_get_shorter():
    assert [prefetch_depth(d) for d in (0.0, 0.01, 1e-4, 1e-7)] == [0, 0, 20, 64]


def test_short_plain_tasks_are_queued_beyond_the_slots():
    s = cluster(CPU1)
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    assert runs(s.submit(task(2), DRIVER, 0.0)) == {}  # no durations known yet: no prefetch
    r2 = runs(finish(s, r1[1], ok(duration=1e-4)))
    assert set(r2) == {2}
    placed = [runs(s.submit(task(t), DRIVER, 1.0)) for t in range(3, 8)]
    # Placed on the busy worker but held back, to go out together in one message...
    assert placed == [{}] * 5
    assert s.workers[1].prefetched == 5
    assert [m.tid for m in s.workers[1].unsent] == [3, 4, 5, 6, 7]
    # ...when that worker reports its next result.
    assert set(runs(finish(s, r2[2], ok(duration=1e-4)))) >= {3, 4, 5, 6, 7}
    assert s.workers[1].unsent == []


def test_a_held_task_that_is_cancelled_is_never_sent():
    s = cluster(CPU1)
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    s.submit(task(2), DRIVER, 0.0)
    finish(s, r1[1], ok(duration=1e-4))  # task 2 now runs; durations are known
    s.submit(task(3), DRIVER, 1.0)
    assert [m.tid for m in s.workers[1].unsent] == [3]
    assert s.cancellable(3)
    out = s.cancel(3, 1.0)
    assert s.workers[1].unsent == []
    assert sent(out, CancelTask) == []


def test_tasks_with_special_requirements_are_never_prefetched():
    s = cluster({"cpu": 1.0, "gpu": 2.0})
    finish(s, runs(s.submit(task(1), DRIVER, 0.0))[1], ok(duration=1e-4))
    assert 2 in runs(s.submit(task(2, requirements=Requirements(gpu=1)), DRIVER, 1.0))
    assert runs(s.submit(task(3, requirements=Requirements(gpu=1)), DRIVER, 1.0)) == {}


# -- views ---------------------------------------------------------------------------------


def test_snapshot_counts_futures_by_public_state():
    s = cluster({"cpu": 1.0})
    r1 = runs(s.submit(task(1), DRIVER, 0.0))
    s.submit(task(2), DRIVER, 0.0)
    s.submit(task(3), DRIVER, 0.0)
    snap = s.snapshot()
    assert snap["futures"] == {"running": 1, "pending": 2}
    assert snap["workers"][0]["running"] == [1] and snap["workers"][0]["pid"] == 1001
    out = finish(s, r1[1])
    assert s.snapshot()["futures"] == {"done": 1, "running": 1, "pending": 1}
    assert s.snapshot()["workers"][0]["running"] == list(runs(out))
    s.release(DRIVER, [1], 1.0)
    assert s.snapshot()["futures"] == {"running": 1, "pending": 1}


def test_submit_of_a_put_spec_is_refused_without_leaving_a_record():
    s = cluster()
    with pytest.raises(ValueError):
        s.submit(TaskSpec(tid=1, kind="put"), DRIVER, 0.0)
    assert 1 not in s.tasks
    assert s.snapshot()["futures"] == {}


# -- decisions the shell asks for ------------------------------------------------------------


def test_silent_worker_is_presumed_dead_killed_and_its_task_moved():
    s = cluster()
    run = runs(s.submit(task(1), DRIVER, 0.0))[1]
    assert s.presume_dead_if_silent(1, 5.0, 4.0) == []  # heard from 4 s ago: not yet
    out = s.presume_dead_if_silent(1, 5.0, 6.0)
    assert isinstance(out[0], KillWorker) and out[0].worker == run[0] and "silent for 6.0 s" in out[0].why
    assert SpawnWorker(run[0]) in out
    other = runs(out)[1][0]
    assert other != run[0]  # resubmitted to the other worker
    s.heartbeat(other, STATS, 6.5)
    assert s.presume_dead_if_silent(1, 5.0, 7.0) == []  # its new worker was just heard from


def test_presume_dead_of_a_finished_or_unknown_future_does_nothing():
    s = cluster()
    finish(s, runs(s.submit(task(1), DRIVER, 0.0))[1])
    assert s.presume_dead_if_silent(1, 1.0, 100.0) == []
    assert s.presume_dead_if_silent(99, 1.0, 100.0) == []
    assert s.alive_workers() == 2


def test_cancel_returns_only_instructions_and_cancellable_says_whether_it_will_cancel():
    s = cluster()
    finish(s, runs(s.submit(task(1), DRIVER, 0.0))[1])
    s.submit(task(2), DRIVER, 1.0)
    assert not s.cancellable(1) and not s.cancellable(99) and s.cancellable(2)
    out = s.cancel(2, 1.0)
    assert isinstance(out, list) and resolved(out)[2].status == "cancelled"
    assert s.cancel(1, 1.0) == [] and s.future_state(1) == "done"


# -- time: every event says when it happened ---------------------------------------------

EVENTS = {
    "add_worker",
    "worker_ready",
    "heartbeat",
    "submit",
    "submit_many",
    "put",
    "done",
    "acquire",
    "release",
    "copy_missing",
    "copies_lost",
    "cancel",
    "blocked",
    "unblocked",
    "kill_actor",
    "worker_died",
    "presume_dead_if_silent",
    "tick",
    "retire_workers",
    "restart_workers",
}
QUERIES = {"check_requirements", "cancellable", "future_state", "locality", "alive_workers", "snapshot"}


def test_every_event_takes_now_and_every_public_method_is_an_event_or_a_query():
    public = {n for n in dir(SchedulerState) if not n.startswith("_")}
    assert public == EVENTS | QUERIES
    for name in EVENTS:
        params = list(inspect.signature(getattr(SchedulerState, name)).parameters)
        assert params[-1] == "now", name


def test_submit_many_places_a_batch_in_one_message_per_worker():
    s = cluster()
    instrs = s.submit_many([task(t) for t in range(1, 9)], DRIVER, 1.0)
    batches = sent(instrs, RunTasks)
    assert sorted(b.worker for b in batches) == [1, 2]  # one RUN per worker, not one per task
    started = runs(instrs)
    assert len(started) == min(8, 2 * (1 + prefetch_depth(1)))  # what the two can hold now
    assert {w for w, _ in started.values()} == {1, 2}
    one_by_one = cluster()
    alone = {}
    for t in range(1, 9):
        alone.update(runs(one_by_one.submit(task(t), DRIVER, 1.0)))
    assert {t: w for t, (w, _) in alone.items()} == {t: w for t, (w, _) in started.items()}


def test_a_task_placed_when_a_worker_says_hello_starts_at_that_time():
    s = SchedulerState()
    s.add_worker(1, CPU1, 0.0)
    assert s.submit(task(1), DRIVER, 1.0) == []  # the worker has not started yet: it waits
    assert set(runs(s.worker_ready(1, 1001, 5.0))) == {1}
    assert s.tasks[1].started == 5.0


def test_a_task_placed_in_a_lent_slot_starts_when_the_slot_is_lent():
    s = cluster(CPU1)
    run = runs(s.submit(task(1), DRIVER, 0.0))[1]
    s.submit(task(2), DRIVER, 1.0)
    assert set(runs(s.blocked(run[0], 1, 7.0))) == {2}  # task 1 waits on nested work
    assert s.tasks[2].started == 7.0
    assert s.unblocked(run[0], 1, 8.0) == []


# -- priorities and turns between groups (cells) ------------------------------------------


def test_a_higher_priority_starts_next_without_stopping_what_runs():
    s = cluster(CPU1)
    first = runs(s.submit(task(1), DRIVER, 0.0))[1]
    s.submit_many([task(t) for t in range(2, 1002)], DRIVER, 0.0)  # a long batch, queued
    assert runs(s.submit(task(5000, priority=1), DRIVER, 1.0)) == {}  # the slot is taken
    assert s.snapshot()["queued"] == [
        {"group": 0, "priority": 1, "tasks": 1},
        {"group": 0, "priority": 0, "tasks": 1000},
    ]
    out = finish(s, first)
    assert sent(out, CancelTask) == []
    assert set(runs(out)) == {5000}  # before the 1,000 queued ahead of it
    assert set(runs(finish(s, runs(out)[5000]))) == {2}  # then the batch, in order


def test_a_newer_group_takes_turns_with_an_older_groups_long_queue():
    s = cluster(CPU1)
    first = runs(s.submit(task(1, group=3), DRIVER, 0.0))[1]
    s.submit_many([task(t, group=3) for t in range(2, 1002)], DRIVER, 0.0)  # In[3]'s batch
    s.submit_many([task(t, group=7) for t in (5000, 5001)], DRIVER, 1.0)  # In[7], later
    order = []
    run = first
    for _ in range(5):
        started = runs(finish(s, run))
        [tid] = started
        order.append(tid)
        run = started[tid]
    # In turn, one each: In[7] joins the round behind In[3]'s head and never waits for the rest.
    assert order == [2, 5000, 3, 5001, 4]
    assert s.snapshot()["queued"] == [{"group": 3, "priority": 0, "tasks": 997}]


def test_urgent_work_of_another_shape_is_placed_before_plain_work():
    s = cluster({"cpu": 2.0})
    held = runs(s.submit_many([task(1), task(2)], DRIVER, 0.0))
    s.submit_many([task(t) for t in range(3, 10)], DRIVER, 0.0)
    s.submit(task(100, requirements=Requirements(cpu=2), priority=1), DRIVER, 0.0)
    both = [(tid, msg.attempt, dataclasses.replace(ok(), where=1)) for tid, (_, msg) in held.items()]
    out = s.done(1, both, 1.0)  # two CPUs free at once: the 2-CPU task first, not two plain ones
    assert set(runs(out)) == {100}


def test_queued_counts_follow_every_way_out_of_the_queue():
    s = cluster(CPU1)
    r = runs(s.submit(task(1, group=2), DRIVER, 0.0))
    s.submit(task(2, 1, group=2), DRIVER, 0.0)  # waits on 1
    s.submit(task(3, group=4, priority=-1), DRIVER, 0.0)
    s.submit(task(4, group=4, priority=-1), DRIVER, 0.0)
    assert s.snapshot()["queued"] == [
        {"group": 2, "priority": 0, "tasks": 1},
        {"group": 4, "priority": -1, "tasks": 2},
    ]
    s.cancel(3, 1.0)
    out = finish(s, r[1], error())  # 2 fails upstream
    assert resolved(out)[2].error_type == UPSTREAM
    assert set(runs(out)) == {4}  # 3 was cancelled in the queue: skipped, 4 placed
    assert s.snapshot()["queued"] == [] and s.queued == {}


# -- reports that arrive twice or late (found by test_scheduler_simulation.py) --------------


def test_a_result_delivered_twice_is_taken_once_and_never_frees_the_value():
    s = cluster()
    run = runs(s.submit(task(1), DRIVER, 0.0))[1]
    report = (1, run[1].attempt, dataclasses.replace(ok(segment="seg1"), where=run[0]))
    assert resolved(s.done(run[0], [report], 1.0))[1].segment == "seg1"
    again = s.done(run[0], [report], 2.0)  # the same report once more
    assert again == []  # nothing resolved again, and seg1, the value, is not freed
    assert s.tasks[1].outcome.segment == "seg1" and s.future_state(1) == "done"
    assert sent(s.release(DRIVER, [1], 3.0), FreeObjects) == [FreeObjects(run[0], ["seg1"])]


def test_an_actors_creation_reported_twice_starts_it_once():
    s = cluster()
    s.put(50, ok(segment="held"), DRIVER, 0.0)
    create = sent(s.submit(actor(1, 100), DRIVER, 0.0), CreateActor)[0]
    report = (
        1,
        create.task.attempt,
        Outcome(status="ok", data=b"handle", contained=(50,), where=create.worker),
    )
    s.done(create.worker, [report], 1.0)
    assert s.tasks[50].holds == 1  # the handle's value refers to future 50
    assert s.done(create.worker, [report], 2.0) == []
    assert s.tasks[50].holds == 1 and s.actors[100].status == "alive"


def test_a_value_resolved_as_its_worker_retires_is_said_to_be_in_the_kernel():
    s = cluster()
    run = runs(s.submit(task(1), DRIVER, 0.0))[1]
    s.retire_workers([run[0]], 0.5)
    out = finish(s, run, ok(segment="seg1"))  # its last task: it hands its objects over now
    assert sent(out, RetireWorker) == [RetireWorker(run[0], ["seg1"])]
    assert resolved(out)[1].where == DRIVER  # not the worker that is about to stop
    assert s.tasks[1].outcome.where == DRIVER


def test_locality_to_a_worker_that_could_never_run_the_task_runs_it_elsewhere():
    s = cluster(CPU1, {"cpu": 1.0, "gpu": 1.0})
    first = runs(s.submit(task(1), DRIVER, 0.0))[1]
    assert first[0] == 1
    finish(s, first, ok(segment="obj"))  # its value lives on worker 1, which has no GPU
    needs_gpu = task(2, requirements=Requirements(gpu=1), locality=(1, 1))
    assert runs(s.submit(needs_gpu, DRIVER, 1.0))[2][0] == 2  # not READY for ever
