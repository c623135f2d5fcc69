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


def test_wait_and_as_completed_with_futures_already_done(shared_client: jf.Client) -> None:
    """Futures already done are counted without waiting (and without taking their locks);
    each return_when still means what concurrent.futures.wait means."""
    ok, failed = jf.submit(abs, -1), jf.submit(divmod, 1, 0)
    jf.wait([ok, failed], timeout=30)
    late = jf.submit(slow, 30.0)
    started = time.monotonic()
    done, not_done = jf.wait([ok, ok, late], timeout=30, return_when=jf.FIRST_COMPLETED)
    assert done == {ok} and not_done == {late}
    done, not_done = jf.wait([ok, failed, late], timeout=30, return_when=jf.FIRST_EXCEPTION)
    assert done == {ok, failed} and not_done == {late}
    done, not_done = jf.wait([ok, failed, late], timeout=0.2)
    assert done == {ok, failed} and not_done == {late}
    with pytest.raises(jf.FutureTimeoutError):
        for f in jf.as_completed([ok, late], timeout=0.2):
            assert f is ok
    assert time.monotonic() - started < 20
    assert late.cancel()
    done, not_done = jf.wait([ok, failed, late], timeout=30, return_when=jf.FIRST_EXCEPTION)
    assert done == {ok, failed, late} and not not_done
    assert set(jf.as_completed([ok, late, failed], timeout=30)) == {ok, late, failed}


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


def test_waits_and_callbacks_started_while_futures_settle_all_wake(shared_client: jf.Client) -> None:
    """A future gets the lock it waits on when someone first waits on it or adds a callback
    (a queued one has none): threads that start waiting, add callbacks or call wait() and
    as_completed() just as the I/O thread settles each future miss no wake-up, and every
    callback runs exactly once."""
    import concurrent.futures as cf
    import random

    n = 3_000
    fs = [jf.submit(pow, 2, i) for i in range(n)]
    calls = [0] * n
    calls_lock = threading.Lock()
    errors: list[BaseException] = []

    def count(i: int) -> None:
        with calls_lock:
            calls[i] += 1

    def results(order: list[int]) -> None:
        for i in order:
            assert fs[i].result(60) == 2**i

    def callbacks() -> None:
        for i in range(n):
            fs[i].add_done_callback(lambda f, i=i: count(i))

    def waits() -> None:
        for start in range(0, n, 100):
            done, not_done = cf.wait(fs[start : start + 100], timeout=60)
            assert not not_done and len(done) == 100

    def as_completed() -> None:
        assert len(list(jf.as_completed(fs[::-1], timeout=60))) == n

    def exceptions() -> None:
        for f in fs[1::2]:
            assert f.exception(60) is None

    def guarded(target, *args):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # reported below
                errors.append(exc)

        return threading.Thread(target=run)

    shuffled = random.Random(7).sample(range(n), n)
    threads = [
        guarded(results, list(range(n))),
        guarded(results, shuffled),
        guarded(callbacks),
        guarded(waits),
        guarded(as_completed),
        guarded(exceptions),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a waiter missed its wake-up"
    assert not errors, errors
    assert calls == [1] * n
    assert all(f.done() and not f.cancelled() and f.state == "done" for f in fs)
