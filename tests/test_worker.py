"""What runs on a worker: errors and their tracebacks, pickling failures, nested work,
output, and values in shared memory."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import jupyter_futures as jf


class CustomError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def raise_custom() -> None:
    raise CustomError("it broke", 42)


def deep_failure(n: int) -> int:
    if n == 0:
        return 1 // 0
    return deep_failure(n - 1)


def test_remote_exception_is_both_types(shared_client: jf.Client) -> None:
    f = jf.submit(deep_failure, 3)
    with pytest.raises(ZeroDivisionError) as info:
        f.result(30)
    exc = info.value
    assert isinstance(exc, jf.RemoteException)
    assert "deep_failure" in exc.remote_traceback
    assert exc.remote_traceback.count("deep_failure") >= 4  # every remote frame is there
    assert "worker_tasks.py" not in exc.remote_traceback  # framework frames are not
    assert "by zero" in str(exc)
    assert isinstance(f.exception(), ZeroDivisionError)


def test_custom_exception_keeps_its_attributes(shared_client: jf.Client) -> None:
    with pytest.raises(CustomError) as info:
        jf.submit(raise_custom).result(30)
    assert info.value.code == 42
    assert isinstance(info.value, jf.RemoteException)


def test_unpicklable_function_fails_at_submit(shared_client: jf.Client) -> None:
    lock = threading.Lock()

    def uses_lock() -> bool:
        return lock.locked()

    with pytest.raises(jf.SerializationError, match="uses_lock"):
        jf.submit(uses_lock)


def test_unpicklable_argument_fails_at_submit(shared_client: jf.Client) -> None:
    with pytest.raises(jf.SerializationError, match=r"keyword argument 'guard'.*lock"):
        jf.submit(print, 1, guard=threading.Lock())
    with pytest.raises(jf.SerializationError, match="argument 1"):
        jf.submit(print, 1, threading.Lock())


def test_unpicklable_result_is_a_remote_error(shared_client: jf.Client) -> None:
    f = jf.submit(threading.Lock)
    with pytest.raises(jf.RemoteException, match="could not pickle a value of type lock"):
        f.result(30)
    assert isinstance(f.exception(), jf.SerializationError)


class Unpicklable(Exception):
    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise TypeError("no pickling for you")


def raise_unpicklable() -> None:
    raise Unpicklable("bad")


def raise_holding_a_lock() -> None:
    raise ValueError("holds", threading.Lock())


def test_exception_with_its_own_failing_reduce_still_comes_back(shared_client: jf.Client) -> None:
    with pytest.raises(Unpicklable, match="bad"):
        jf.submit(raise_unpicklable).result(30)


def test_unpicklable_exception_still_reports(shared_client: jf.Client) -> None:
    with pytest.raises(jf.RemoteException) as info:
        jf.submit(raise_holding_a_lock).result(30)
    assert not isinstance(info.value, ValueError)
    assert "ValueError" in str(info.value.remote_traceback)
    assert "could not be pickled" in info.value.remote_traceback


def fib(n: int) -> int:
    if n < 2:
        return n
    a, b = jf.submit(fib, n - 1), jf.submit(fib, n - 2)
    return a.result() + b.result()


def test_nested_submission_on_one_worker() -> None:
    with jf.Client(n_workers=1) as c:
        assert c.submit(fib, 7).result(60) == 13


def test_futures_inside_containers_are_resolved(shared_client: jf.Client) -> None:
    a, b = jf.submit(abs, -1), jf.submit(abs, -2)
    f = jf.submit(lambda xs, d, t: xs[0] + d["k"] + t[1], [a], {"k": b}, (0, a))
    assert f.result(30) == 4


def test_futures_returned_from_tasks_are_handles(shared_client: jf.Client) -> None:
    def spawn() -> list[jf.Future]:
        return [jf.submit(pow, 2, i) for i in range(3)]

    inner = jf.submit(spawn).result(30)
    assert [f.result(30) for f in inner] == [1, 2, 4]


def test_numpy_result_is_zero_copy_and_read_only(shared_client: jf.Client) -> None:
    f = jf.submit(np.arange, 1_000_000, dtype=np.float64)
    arr = f.result(30)
    assert arr.sum() == 499999500000.0
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0] = 1
    base = arr
    while getattr(base, "base", None) is not None:
        base = base.base
    assert isinstance(base, memoryview) or "mmap" in type(base).__name__
    copy = f.result(writable=True)
    copy[0] = 42.0
    assert arr[0] == 0.0
    assert f.result() is arr  # decoded once


def test_put_then_use_by_reference(shared_client: jf.Client) -> None:
    data = np.ones(2_000_000)
    ref = jf.put(data)
    assert ref.done()
    assert jf.submit(np.sum, ref).result(30) == 2_000_000
    assert np.shares_memory(ref.result(), ref.result())


def test_large_argument_by_value(shared_client: jf.Client) -> None:
    data = np.full(1_000_000, 2.0)
    assert jf.submit(np.sum, data).result(30) == 2_000_000.0


def test_output_goes_to_the_submitter(shared_client: jf.Client) -> None:
    seen: list[tuple[int, str, str]] = []
    got = threading.Event()
    old = shared_client.output_handler

    def capture(tid: int, stream: str, text: str) -> None:
        seen.append((tid, stream, text))
        if "two" in text:
            got.set()

    shared_client.output_handler = capture
    try:

        def chatty() -> int:
            import sys

            print("one")
            print("two", file=sys.stderr)
            return 3

        f = jf.submit(chatty)
        assert f.result(30) == 3
        assert got.wait(10)
    finally:
        shared_client.output_handler = old
    assert (f.id, "stdout", "one\n") in seen
    assert (f.id, "stderr", "two\n") in seen


def test_output_arrives_while_the_task_runs(shared_client: jf.Client) -> None:
    first = threading.Event()
    old = shared_client.output_handler
    shared_client.output_handler = lambda tid, stream, text: first.set() if "early" in text else None
    try:

        def talk_then_sleep() -> str:
            print("early")
            time.sleep(2)
            return "late"

        f = jf.submit(talk_then_sleep)
        assert first.wait(10)
        assert not f.done()
        assert f.result(30) == "late"
    finally:
        shared_client.output_handler = old


def test_plt_show_in_a_task_is_displayed_in_the_submitter(shared_client: jf.Client) -> None:
    import json

    from jupyter_futures.protocol import DISPLAY_STREAM

    shown: list[dict[str, object]] = []
    got = threading.Event()
    old = shared_client.output_handler

    def capture(tid: int, stream: str, text: str) -> None:
        if stream == DISPLAY_STREAM:
            shown.append(json.loads(text))
            got.set()

    shared_client.output_handler = capture
    try:

        def plot() -> str:
            import matplotlib.pyplot as plt

            plt.plot([1, 2, 3], [1, 4, 9])
            plt.show()
            return plt.get_backend()

        backend = jf.submit(plot).result(60)
        assert got.wait(10)
    finally:
        shared_client.output_handler = old
    assert "jupyter_futures.mpl_backend" in backend
    assert "image/png" in shown[0]["data"]  # type: ignore[operator]
