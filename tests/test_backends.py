"""One suite of the public API, run against every engine: the embedded local engine, the
threads backend (``processes=False``) and a real Dask cluster (scheduler and workers as
separate processes). What an engine cannot do is excluded by name, with the reason, in
``EXCLUDED``; everything else must behave the same."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import ENGINES, start_engine
from on_dask.dask_cluster import dask_cluster  # noqa: F401 - the Dask fixture

import jupyter_futures as jf

pytestmark = pytest.mark.timeout(180)

EXCLUDED: dict[tuple[str, str], str] = {
    ("threads", "test_a_worker_process_runs_the_work"): "threads run in the kernel's own process",
}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    reason = EXCLUDED.get((name, request.node.originalname))
    if reason:
        pytest.skip(f"not on {name}: {reason}")
    start_engine(name, request)
    yield name
    jf.shutdown()


class Holder:
    def __init__(self, inner: Any) -> None:
        self.inner = inner


def total(*parts: Any) -> int:
    out = 0
    for p in parts:
        value = p.inner if isinstance(p, Holder) else p
        out += sum(value) if isinstance(value, list) else value
    return out


def explode(x: int) -> int:
    raise KeyError(f"no {x}")


def nested(n: int) -> int:
    return sum(jf.gather([jf.submit(pow, 3, i) for i in range(n)]))


def pid() -> int:
    import os

    return os.getpid()


def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance
        self.thread = threading.get_ident()

    def deposit(self, k: int) -> int:
        assert threading.get_ident() == self.thread
        self.balance += k
        return self.balance


def test_a_dag_with_fan_in_and_futures_inside_objects(engine: str) -> None:
    leaves = [jf.submit(list, range(i)) for i in range(6)]
    mids = [jf.submit(total, leaves[i], leaves[(i + 2) % 6], Holder(leaves[(i + 3) % 6])) for i in range(6)]
    top = jf.submit(total, *mids)
    sums = [sum(range(i)) for i in range(6)]
    assert top.result(60) == sum(sums[i] + sums[(i + 2) % 6] + sums[(i + 3) % 6] for i in range(6))


def test_errors_keep_their_type_and_dependents_fail_naming_the_input(engine: str) -> None:
    bad = jf.submit(explode, 3)
    with pytest.raises(KeyError, match="no 3"):
        bad.result(30)
    with pytest.raises(jf.UpstreamDependencyFailedException, match=f"input future {bad.id}"):
        jf.submit(total, bad).result(30)


def test_put_wait_as_completed_gather(engine: str) -> None:
    ref = jf.put([1, 2, 3])
    assert ref.done() and jf.submit(total, ref).result(30) == 6
    fs = [jf.submit(pow, 2, i) for i in range(20)]
    done, not_done = jf.wait(fs, timeout=60)
    assert len(done) == 20 and not not_done
    assert sorted(f.result() for f in jf.as_completed(fs, timeout=60)) == [2**i for i in range(20)]
    assert jf.gather(fs) == [2**i for i in range(20)]


def test_actors_keep_state_and_order_on_their_own_thread(engine: str) -> None:
    account = jf.create_actor(Account, 100).result(30)
    calls = [account.deposit(1) for _ in range(50)]
    assert [c.result(60) for c in calls] == list(range(101, 151))
    assert jf.submit(total, calls[-1]).result(30) == 150  # a call's result is an input
    jf.kill_actor(account)
    with pytest.raises(jf.ActorDiedError):
        account.deposit(1).result(30)


def test_nested_submission(engine: str) -> None:
    assert jf.submit(nested, 4).result(60) == 1 + 3 + 9 + 27


def test_impossible_requirements_fail_at_once(engine: str) -> None:
    with pytest.raises(jf.UnsatisfiableRequirementError):
        jf.submit(pow, 2, 2, min_gpu=64)


def test_cancel_before_it_runs_and_timeouts(engine: str) -> None:
    slow = jf.submit(sleepy, 1.0)
    with pytest.raises(jf.FutureTimeoutError):
        slow.result(0.05)
    assert slow.result(30) == "slept"
    blocked = [jf.submit(sleepy, 0.5) for _ in range(6)]
    last = blocked[-1]
    assert last.cancel() and last.cancelled()
    with pytest.raises(jf.FutureCancelledError):
        last.result(1)


def test_shutdown_fails_what_is_unfinished(engine: str) -> None:
    pending = jf.submit(sleepy, 30)
    jf.shutdown()
    with pytest.raises(jf.ClusterClosedError):
        pending.result(5)
    with pytest.raises(jf.ClusterClosedError):
        jf.submit(pow, 2, 2)


def test_a_worker_process_runs_the_work(engine: str) -> None:
    import os

    assert jf.submit(pid).result(30) != os.getpid()


def log_a_line(text: str) -> None:
    import logging
    import threading

    # Outside the task itself: a thread of the worker's own, logging as a library would.
    t = threading.Thread(target=logging.getLogger("distributed.worker").warning, args=(text,))
    t.start()
    t.join()


def test_logs_are_by_worker(engine: str) -> None:
    jf.submit(log_a_line, "a line for the logs").result(30)
    logs: dict[Any, str] = {}
    for _ in range(100):  # bounded: 10 s
        logs = jf.logs()
        if engine == "threads" or any("a line for the logs" in text for text in logs.values()):
            break
        time.sleep(0.1)
    if engine == "threads":
        assert logs == {}, "workers are threads of the kernel: what they write is the kernel's"
        return
    assert any("a line for the logs" in text for text in logs.values()), logs
    ids = {w["id"] for w in jf.status()["workers"]}
    assert ids <= set(logs)
    one = next(iter(ids))
    assert set(jf.logs(one)) == {one}


def test_scale_and_restart(engine: str) -> None:
    if engine == "dask":  # reached by its address: the cluster is scaled where it was started
        with pytest.raises(jf.NotSupportedError, match="scale"):
            jf.scale(3)
        jf.restart()  # through the nannies
        jf.get_client().wait_for_workers(2)
        assert jf.submit(pow, 2, 6).result(60) == 64
        return
    jf.scale(3)
    assert len(jf.status()["workers"]) == 3
    assert jf.gather([jf.submit(pow, 2, i) for i in range(6)], timeout=30) == [1, 2, 4, 8, 16, 32]
    jf.scale(1)
    assert jf.submit(pow, 3, 3).result(30) == 27
    if engine == "threads":
        with pytest.raises(jf.NotSupportedError, match="threads"):
            jf.restart()
        return
    assert len(jf.status()["workers"]) == 1
    jf.restart()
    assert jf.submit(pow, 3, 2).result(30) == 9


def fail_first_time(flag: str) -> str:
    """Raises on its first run (it leaves ``flag`` behind), succeeds on the next."""
    path = Path(flag)
    if not path.exists():
        path.write_text("ran")
        raise RuntimeError("first try")
    return "second try"


def test_the_task_stream_has_every_run_on_its_lane(engine: str, tmp_path: Path) -> None:
    client = jf.get_client()
    before = time.monotonic()
    start = client.task_stream()  # whatever ran before: only the cursor is used
    nap = jf.submit(sleepy, 0.2)
    small = [jf.submit(abs, -i) for i in range(50)]
    bad = jf.submit(explode, 1)
    retried = jf.submit(fail_first_time, str(tmp_path / "flag"), max_retries=1)
    account = jf.create_actor(Account, 0).result(30)
    deposits = [account.deposit(1) for _ in range(3)]
    jf.wait([nap, bad, retried, *small, *deposits], timeout=60)
    assert retried.result() == "second try"

    stream = client.task_stream(start.cursor)
    runs = stream.runs
    names = Counter(r.name for r in runs)
    assert names["abs"] == 50 and names["sleepy"] == 1 and names["Account.deposit"] == 3, names
    assert names["explode"] == 1, names
    assert all(before <= r.start <= r.end <= stream.now for r in runs), runs
    states = {(r.name, r.state) for r in runs}
    assert {("explode", "failed"), ("fail_first_time", "done")} <= states
    if engine == "dask":  # Dask's scheduler records the run that ended a task, not retries
        assert names["fail_first_time"] == 1, names
    else:  # the failed run, then the retry
        assert names["fail_first_time"] == 2 and ("fail_first_time", "failed") in states, names
    assert ("abs", "failed") not in states
    (slept,) = [r for r in runs if r.name == "sleepy"]
    assert 0.19 <= slept.end - slept.start < 30
    workers = {r.lane for r in runs if r.name in ("abs", "sleepy", "explode")}
    assert workers and all(lane.startswith("worker ") for lane in workers), workers
    actor_lanes = {r.lane for r in runs if r.name.startswith("Account")}
    assert actor_lanes == {f"Account #{account.id}"}, actor_lanes  # its creation and its calls

    assert client.task_stream(stream.cursor).runs == []  # the cursor asks for newer runs only
    jf.submit(pow, 2, 3).result(30)
    newer = client.task_stream(stream.cursor)
    assert [r.name for r in newer.runs] == ["pow"] and newer.cursor == stream.cursor + 1


def started_behind(queue: list[jf.Future[Any]], submit_urgent: Any) -> tuple[int, int]:
    """Submit urgent work behind ``queue``; once it is done: (queued futures still not done
    when it was submitted, how many of them finished before it did)."""
    before = sum(f.done() for f in queue)
    urgent = submit_urgent()
    assert urgent.result(60) == 8
    return len(queue) - before, sum(f.done() for f in queue) - before


def test_a_higher_priority_starts_before_a_long_queue_drains(engine: str) -> None:
    queue = jf.map(sleepy, [0.01] * 2000)  # ~10 s of work for two slots
    left, finished = started_behind(queue, lambda: jf.submit(pow, 2, 3, priority=1))
    assert finished < left // 2, (left, finished)  # it did not wait for the queue to drain
    assert all(not f.done() for f in queue[-100:])


def test_a_newer_cells_work_starts_before_an_older_cells_queue_drains(engine: str) -> None:
    cell = [3]
    jf.get_client().backend.set_group_hook(lambda: cell[0])  # the running cell, as in a kernel
    queue = jf.map(sleepy, [0.01] * 2000)  # In[3]
    cell[0] = 4
    left, finished = started_behind(queue, lambda: jf.submit(pow, 2, 3))  # In[4], same priority
    assert finished < left // 2, (left, finished)
    rows = jf.status()["queued"]
    assert [r["group"] for r in rows] == [3] and 0 < rows[0]["tasks"] <= left, rows


def submit_nested(n: int) -> int:
    """A task that fans out work of its own and waits for it."""
    return len(jf.gather(jf.map(sleepy, [0.05] * n), timeout=60))


def test_nested_work_is_of_its_parent_cells_group(engine: str) -> None:
    cell = [5]
    jf.get_client().backend.set_group_hook(lambda: cell[0])
    parent = jf.submit(submit_nested, 40)  # In[5]
    cell[0] = 6  # the kernel runs another cell meanwhile: the nested work is still In[5]'s
    deadline = time.monotonic() + 30
    seen: set[int] = set()
    while not parent.done() and time.monotonic() < deadline:
        seen |= {r["group"] for r in jf.status()["queued"]}
        time.sleep(0.01)
    assert parent.result(60) == 40
    assert seen == {5}, seen
