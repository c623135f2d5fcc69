"""What runs on a worker: errors and their tracebacks, pickling failures, nested work,
output, and values in shared memory."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

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
    assert os.path.join("local", "worker") not in exc.remote_traceback  # the worker's frames are not
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
    old = shared_client.backend.output_handler

    def capture(tid: int, stream: str, text: str) -> None:
        seen.append((tid, stream, text))
        if "two" in text:
            got.set()

    shared_client.backend.output_handler = capture
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
        shared_client.backend.output_handler = old
    assert (f.id, "stdout", "one\n") in seen
    assert (f.id, "stderr", "two\n") in seen


def test_output_arrives_while_the_task_runs(shared_client: jf.Client) -> None:
    first = threading.Event()
    old = shared_client.backend.output_handler
    shared_client.backend.output_handler = lambda tid, stream, text: first.set() if "early" in text else None
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
        shared_client.backend.output_handler = old


def test_plt_show_in_a_task_is_displayed_in_the_submitter(shared_client: jf.Client) -> None:
    import json

    from jupyter_futures.local.protocol import DISPLAY_STREAM

    shown: list[dict[str, object]] = []
    got = threading.Event()
    old = shared_client.backend.output_handler

    def capture(tid: int, stream: str, text: str) -> None:
        if stream == DISPLAY_STREAM:
            shown.append(json.loads(text))
            got.set()

    shared_client.backend.output_handler = capture
    try:

        def plot() -> str:
            import matplotlib.pyplot as plt

            plt.plot([1, 2, 3], [1, 4, 9])
            plt.show()
            return plt.get_backend()

        backend = jf.submit(plot).result(60)
        assert got.wait(10)
    finally:
        shared_client.backend.output_handler = old
    assert "jupyter_futures.capture.mpl_backend" in backend
    assert "image/png" in shown[0]["data"]  # type: ignore[operator]


def refuse_to_load(reason: str) -> None:
    import pickle

    raise pickle.UnpicklingError(reason)


class LoadsNowhere:
    """Pickles fine; unpickling it calls a function that refuses."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (refuse_to_load, ("this object may not be loaded",))


def make_unloadable() -> LoadsNowhere:
    return LoadsNowhere()


def _chain(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__
    return out


def test_result_whose_own_unpickling_raises_says_what_failed(shared_client: jf.Client) -> None:
    f = jf.submit(make_unloadable)
    with pytest.raises(jf.SerializationError) as info:
        f.result(30)
    message = str(info.value)
    assert "corrupt" not in message and "truncated" not in message
    assert "result" in message
    assert "test_worker.refuse_to_load" in message
    assert "this object may not be loaded" in message
    import pickle

    assert any(type(e) is pickle.UnpicklingError for e in _chain(info.value))  # chained, not swallowed


def test_argument_whose_own_unpickling_raises_is_the_tasks_error(shared_client: jf.Client) -> None:
    f = jf.submit(repr, LoadsNowhere())
    with pytest.raises(jf.SerializationError) as info:
        f.result(30)
    message = str(info.value)
    assert "corrupt" not in message and "truncated" not in message
    assert "arguments" in message and "repr" in message
    assert "test_worker.refuse_to_load" in message
    assert isinstance(info.value, jf.RemoteException)
    # the original error is the chained cause on the worker, shown in its traceback
    assert "UnpicklingError: this object may not be loaded" in info.value.remote_traceback
    assert "direct cause" in info.value.remote_traceback


# -- figures belong to the task that made them -------------------------------------------


def figure_left_open(label: str, fail: bool = False) -> list[int]:
    import matplotlib.pyplot as plt

    plt.figure()
    plt.title(label)
    if fail:
        raise RuntimeError("drew, then failed")
    return plt.get_fignums()


def show_own_figure(label: str) -> tuple[list[int], list[str]]:
    import matplotlib.pyplot as plt

    plt.plot([1, 2, 3])
    plt.title(label)
    before = plt.get_fignums()
    titles = [plt.figure(n).axes[0].get_title() for n in before]
    plt.show()
    return before, titles


def draw_on_own_figure(label: str) -> tuple[list[int], str]:
    import matplotlib.pyplot as plt

    plt.figure()
    plt.title(label)
    plt.plot([0, 1])
    seen = (plt.get_fignums(), plt.gca().get_title())
    plt.show()
    return seen


def figure_around_a_nested_task() -> tuple[list[int], str, tuple[list[int], str], str]:
    import matplotlib.pyplot as plt

    fig = plt.figure()
    plt.title("outer")
    # While this task waits, the inner one runs on another thread of this same worker.
    inner = jf.submit(draw_on_own_figure, "inner").result(60)
    plt.plot([0, 1])  # still this task's current figure
    seen = (plt.get_fignums(), plt.gca().get_title(), inner, "same" if plt.gcf() is fig else "other")
    plt.show()
    return seen


class Sketcher:
    def leave_a_figure(self) -> list[int]:
        import matplotlib.pyplot as plt

        plt.figure()
        plt.title("actor")
        return plt.get_fignums()


_made: list[Any] = []  # weak references to figures made by tasks, in the worker


def make_and_forget_a_figure() -> None:
    import weakref

    import matplotlib.pyplot as plt

    _made.append(weakref.ref(plt.figure()))


def figures_still_alive() -> int:
    import gc

    gc.collect()
    return sum(ref() is not None for ref in _made)


class FigureKeeper:
    def make_and_forget(self) -> None:
        make_and_forget_a_figure()

    def alive(self) -> int:
        return figures_still_alive()


def _displays(client: jf.Client) -> tuple[dict[int, int], threading.Condition]:
    from jupyter_futures.local.protocol import DISPLAY_STREAM

    counts: dict[int, int] = {}
    changed = threading.Condition()

    def capture(tid: int, stream: str, text: str) -> None:
        if stream == DISPLAY_STREAM:
            with changed:
                counts[tid] = counts.get(tid, 0) + 1
                changed.notify_all()

    client.backend.output_handler = capture
    return counts, changed


def test_a_figure_left_open_does_not_show_in_a_later_task() -> None:
    with jf.Client(n_workers=1) as c:
        shown, changed = _displays(c)
        assert c.submit(figure_left_open, "left open").result(60) == [1]
        with pytest.raises(RuntimeError):
            c.submit(figure_left_open, "failed", fail=True).result(60)
        f = c.submit(show_own_figure, "mine")
        before, titles = f.result(60)
        assert before == [1] and titles == ["mine"]
        with changed:
            assert changed.wait_for(lambda: shown.get(f.id, 0) >= 1, 10)
        assert shown == {f.id: 1}  # the leftovers were never shown
        assert c.submit(figure_left_open, "again").result(60) == [1]  # numbering starts afresh


def test_an_actors_figure_stays_out_of_other_tasks() -> None:
    with jf.Client(n_workers=1) as c:
        shown, changed = _displays(c)
        sketcher = c.create_actor(Sketcher).result(60)
        assert c.call_actor(sketcher, "leave_a_figure").result(60) == [1]
        f = c.submit(draw_on_own_figure, "task")
        assert f.result(60) == ([1], "task")
        with changed:
            assert changed.wait_for(lambda: shown.get(f.id, 0) >= 1, 10)
        assert shown == {f.id: 1}


def test_tasks_running_at_once_each_draw_on_their_own_figures() -> None:
    with jf.Client(n_workers=1) as c:
        shown, changed = _displays(c)
        f = c.submit(figure_around_a_nested_task)
        assert f.result(60) == ([1], "outer", ([1], "inner"), "same")
        with changed:
            assert changed.wait_for(lambda: sum(shown.values()) >= 2, 10)
        assert shown.get(f.id) == 1 and sum(shown.values()) == 2


def test_a_cells_plt_show_shows_only_that_cells_figures_in_a_kernel() -> None:
    """A %%remote cell that draws without showing, then one that shows: the second cell
    gets its own figure only (one worker, so both ran in the same process)."""
    from kernels import start, stop

    kernel = start()
    try:
        kernel.run("%load_ext jupyter_futures\nimport jupyter_futures as jf\njf.init(1).wait_for_workers()")
        draw = (
            "%%remote --block\nimport matplotlib.pyplot as plt\n_fig, _ax = plt.subplots()\n_ = _ax.plot([1])"
        )
        kernel.run(draw)
        shows = kernel.execute(f"{draw}\nplt.show()")
        assert kernel.reply(shows)["status"] == "ok"
        kernel.wait_for(lambda: kernel._idle(shows))
        kernel.run("jf.shutdown()")  # every output of the cell is in by now
        images = [
            m
            for m in kernel.of("display_data")
            if "image/png" in m["content"]["data"] and m["parent_header"].get("msg_id") == shows
        ]
        assert len(images) == 1, kernel.summary()[-10:]
        assert len([m for m in kernel.of("display_data") if "image/png" in m["content"]["data"]]) == 1
    finally:
        stop(kernel)


def test_the_figures_a_task_left_open_are_closed_when_it_ends() -> None:
    with jf.Client(n_workers=1) as c:
        for _ in range(3):
            c.submit(make_and_forget_a_figure).result(60)
        assert c.submit(figures_still_alive).result(60) == 0


def test_the_figures_an_actor_call_left_open_are_closed_when_it_ends() -> None:
    with jf.Client(n_workers=1) as c:
        keeper = c.create_actor(FigureKeeper).result(60)
        for _ in range(3):
            c.call_actor(keeper, "make_and_forget").result(60)
        assert c.call_actor(keeper, "alive").result(60) == 0
