"""Future behaviour: results, waits, timeouts, callbacks, await, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest import Beacon, signal_beacon

import jupyter_futures as jf


def slow(seconds: float, value: object = None) -> object:
    time.sleep(seconds)
    return value


def test_result_and_done(shared_client: jf.Client) -> None:
    f = jf.submit(pow, 3, 4)
    assert f.result(30) == 81
    assert f.done() and not f.cancelled()
    assert f.exception() is None
    assert f.state == "done"
    assert "done" in repr(f)


def test_keyword_arguments(shared_client: jf.Client) -> None:
    assert jf.submit(sorted, [3, 1, 2], reverse=True).result(30) == [3, 2, 1]


def test_result_timeout_is_a_timeout_error(shared_client: jf.Client) -> None:
    f = jf.submit(slow, 1.0, "late")
    with pytest.raises(TimeoutError):
        f.result(timeout=0.05)
    with pytest.raises(jf.FutureTimeoutError):
        f.result(timeout=0.05)
    assert f.result(30) == "late"  # the work went on


def test_done_callback_runs_and_may_submit(shared_client: jf.Client) -> None:
    seen: list[object] = []
    done = threading.Event()

    def callback(fut: jf.Future) -> None:
        seen.append(fut.result())
        seen.append(jf.submit(abs, -7))  # submitting from a callback must not deadlock
        done.set()

    jf.submit(abs, -5).add_done_callback(callback)
    assert done.wait(30)
    assert seen[0] == 5
    assert seen[1].result(30) == 7  # type: ignore[attr-defined]


def test_await_in_async_code(shared_client: jf.Client) -> None:
    async def main() -> list[int]:
        a = jf.submit(pow, 2, 5)
        b = jf.submit(pow, 2, 6)
        return [await a, await b]

    assert asyncio.run(main()) == [32, 64]


def test_wait_and_as_completed(shared_client: jf.Client) -> None:
    fs = [jf.submit(slow, 0.3 * i, i) for i in range(3)]
    done, not_done = jf.wait(fs, timeout=30)
    assert len(done) == 3 and not not_done
    order = [
        f.result()
        for f in jf.as_completed([jf.submit(slow, 0.4, "b"), jf.submit(slow, 0.0, "a")], timeout=30)
    ]
    assert order == ["a", "b"]


def test_wait_first_completed(shared_client: jf.Client) -> None:
    fast, late = jf.submit(slow, 0.0, 1), jf.submit(slow, 2.0, 2)
    done, not_done = jf.wait([fast, late], timeout=30, return_when=jf.FIRST_COMPLETED)
    assert fast in done and late in not_done
    late.result(30)


def test_as_completed_timeout(shared_client: jf.Client) -> None:
    f = jf.submit(slow, 1.0)
    with pytest.raises(jf.FutureTimeoutError):
        list(jf.as_completed([f], timeout=0.05))
    f.result(30)


def test_gather(shared_client: jf.Client) -> None:
    assert jf.gather([jf.submit(abs, -i) for i in range(5)]) == [0, 1, 2, 3, 4]


def test_gather_raises_first_error(shared_client: jf.Client) -> None:
    with pytest.raises(ZeroDivisionError):
        jf.gather([jf.submit(abs, 1), jf.submit(divmod, 1, 0)], timeout=30)


def test_await_future_seed_api(shared_client: jf.Client) -> None:
    assert jf.await_future(jf.submit(abs, -1), time_limit_secs=30) == 1
    with pytest.raises(jf.FutureTimeoutError):
        jf.await_future(jf.submit(slow, 1.0), time_limit_secs=0.1)


def test_cancel_pending(shared_client: jf.Client) -> None:
    blockers = [jf.submit(slow, 1.0) for _ in range(2)]
    queued = jf.submit(slow, 0, "never")
    assert queued.cancel()
    assert queued.cancelled() and queued.done()
    with pytest.raises(jf.FutureCancelledError):
        queued.result()
    jf.wait(blockers)


def test_cancel_running_interrupts_it(shared_client: jf.Client, beacon: Beacon) -> None:
    def sleeper(path: str) -> str:
        signal_beacon(path, "started")
        time.sleep(60)
        return "finished"

    f = jf.submit(sleeper, beacon.path)
    assert beacon.wait() == "started"
    started = time.monotonic()
    assert f.cancel()
    with pytest.raises(jf.FutureCancelledError):
        f.result(5)
    # the worker is free again well before the 60 s sleep would have ended
    assert jf.submit(abs, -1).result(10) == 1
    assert jf.submit(abs, -2).result(10) == 2
    assert time.monotonic() - started < 10


def test_cancel_running_pure_python_loop(shared_client: jf.Client, beacon: Beacon) -> None:
    def spin(path: str) -> int:
        signal_beacon(path, "spinning")
        n = 0
        while True:
            n += 1

    fs = [jf.submit(spin, beacon.path) for _ in range(2)]
    beacon.wait()
    beacon.wait()
    for f in fs:
        assert f.cancel()
    assert jf.gather([jf.submit(abs, -3), jf.submit(abs, -4)], timeout=15) == [3, 4]


def test_cancel_done_future_is_false(shared_client: jf.Client) -> None:
    f = jf.submit(abs, -1)
    f.result(30)
    assert not f.cancel()


def test_wait_as_completed_and_gather_take_plain_futures_too(shared_client: jf.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        local = pool.submit(slow, 0.2, "local")
        remote = jf.submit(slow, 0.1, "remote")
        done, not_done = jf.wait([local, remote], timeout=30)
        assert done == {local, remote} and not not_done
        mixed = [pool.submit(slow, 0.05, 1), jf.submit(pow, 2, 1)]
        assert {f.result() for f in jf.as_completed(mixed)} == {1, 2}
        assert jf.gather([pool.submit(slow, 0.05, "a"), jf.submit(slow, 0.05, "b")], timeout=30) == ["a", "b"]
        only_plain = pool.submit(slow, 5.0)
        with pytest.raises(jf.FutureTimeoutError):
            jf.gather([only_plain], timeout=0.05)
        with pytest.raises(jf.FutureTimeoutError):
            list(jf.as_completed([only_plain], timeout=0.05))
        only_plain.cancel()
