"""The in-process backend, ``jf.init(processes=False)``: the same API on threads of this
process, for debugging with breakpoint() and pdb."""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Iterator

import numpy as np
import pytest
from kernels import SETUP, Kernel, start, stop

import jupyter_futures as jf


@pytest.fixture
def threads() -> Iterator[jf.Client]:
    c = jf.init(2, processes=False)
    yield c
    jf.shutdown()


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def add(self, k: int) -> int:
        self.n += k
        return self.n


def fails() -> None:
    local_variable = 42  # noqa: F841  # pdb shows it
    raise KeyError("missing")


def test_the_api_on_threads(threads: jf.Client) -> None:
    assert "threads" in repr(threads)
    assert jf.submit(pow, 2, 10).result(10) == 1024
    squares = [jf.submit(lambda x: x * x, i) for i in range(10)]
    assert jf.submit(sum, squares).result(10) == 285
    nested = jf.submit(lambda d: d["a"][0] + 1, {"a": [jf.submit(pow, 3, 2)]})
    assert nested.result(10) == 10
    arr = np.arange(10)
    assert jf.submit(lambda a: a, arr).result(10) is arr  # no copy, no pickle
    done, _ = jf.wait([jf.submit(time.sleep, 0.01) for _ in range(5)], timeout=10)
    assert len(done) == 5
    assert jf.put([1, 2]).result() == [1, 2]
    st = jf.status()
    assert len(st["workers"]) == 2 and st["futures"]["done"] >= 15


def test_actors_keep_order_and_state(threads: jf.Client) -> None:
    counter = jf.create_actor(Counter, 10).result(10)
    calls = [counter.add(i) for i in range(100)]
    assert calls[-1].result(10) == 10 + sum(range(100))
    assert [c.result() for c in calls[:3]] == [10, 11, 13]
    jf.kill_actor(counter)
    with pytest.raises(jf.ActorDiedError):
        counter.add(1).result(10)


def test_errors_keep_their_own_traceback_for_pdb(threads: jf.Client) -> None:
    f = jf.submit(fails)
    with pytest.raises(KeyError) as info:
        f.result(10)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "fails"  # pdb.post_mortem(exc.__traceback__) lands in the task
    tb = info.value.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_locals["local_variable"] == 42


def test_breakpoint_runs_in_the_task(threads: jf.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    stops: list[tuple[str, int]] = []

    def hook(*_a: object, **_k: object) -> None:  # what pdb.set_trace would be handed
        frame = sys._getframe(1)
        stops.append((frame.f_code.co_name, frame.f_locals["x"]))

    monkeypatch.setattr(sys, "breakpointhook", hook)

    def debug_me(x: int) -> int:
        breakpoint()
        return x + 1

    assert jf.submit(debug_me, 41).result(10) == 42
    assert stops == [("debug_me", 41)]


def test_nested_waits_on_one_thread_do_not_deadlock() -> None:
    jf.init(1, processes=False)
    try:

        def fib(n: int) -> int:
            if n < 2:
                return n
            a, b = jf.submit(fib, n - 1), jf.submit(fib, n - 2)
            return a.result() + b.result()

        assert jf.submit(fib, 8).result(30) == 21
    finally:
        jf.shutdown()


def test_cancel_and_shutdown_settle_everything(threads: jf.Client) -> None:
    gate = threading.Event()
    blocker = [jf.submit(gate.wait, 10) for _ in range(2)]
    queued = jf.submit(pow, 2, 2)
    assert queued.cancel() and queued.cancelled()

    def spin() -> None:
        while True:
            pass

    gate.set()
    jf.wait(blocker, timeout=10)
    looping = jf.submit(spin)
    deadline = time.monotonic() + 10
    while looping.state != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert looping.cancel()
    pending = jf.submit(gate.wait, 0)
    jf.shutdown()
    assert pending.done()


def test_impossible_requirements_fail_at_once(threads: jf.Client) -> None:
    with pytest.raises(jf.UnsatisfiableRequirementError, match="gpu=1"):
        jf.submit(pow, 1, 1, min_gpu=1)


def test_remote_cells_future_widgets_and_the_dashboard_on_threads() -> None:
    k: Kernel = start()
    try:
        k.run(SETUP.replace("jf.init(2)", "jf.init(2, processes=False)"))
        assert "threads" in k.run("print(repr(client))")
        msg_id = k.execute("%%remote total --block\nx = 20\nx + 22")
        reply = k.reply(msg_id)
        assert reply["status"] == "ok"
        k.wait_for(
            lambda: any(
                m["msg_type"] == "execute_result" and "42" in m["content"]["data"]["text/plain"]
                for m in k.of("execute_result")
            )
        )
        k.run("%%remote doubled\ny = x * 2")
        assert k.run("print(doubled.result(10), y.result(10))").split() == ["None", "40"]
        k.run("f = jf.submit(pow, 2, 5)\nf")  # a future widget
        k.wait_for(lambda: any("done" in str(m["content"]) for m in k.of("comm_msg")), timeout=30)
        k.run("d = jf.dashboard()\nd")
        snapshot = k.run("d.tick()\nprint(d.text)")
        assert "worker" in snapshot.lower()
        k.run("jf.shutdown()")
    finally:
        stop(k)
