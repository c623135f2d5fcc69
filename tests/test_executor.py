"""``jf.Executor`` held to the standard library's executor semantics, item by item as
CPython's own suite checks them for ProcessPoolExecutor (Lib/test/test_concurrent_futures:
executor.py, test_shutdown.py, test_process_pool.py), on every engine; and ``jf.map``.

The ``executor`` fixture gives one executor per engine: ``own`` starts the embedded cluster
itself (no ``jf.init()`` before) and stops it at shutdown; ``local``, ``threads`` and
``dask`` run on a cluster that was already running."""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures as cf
import gc
import itertools
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import ENGINES, start_engine
from on_dask.dask_cluster import dask_cluster  # noqa: F401 - the Dask fixture

import jupyter_futures as jf

pytestmark = pytest.mark.timeout(180)

WORKERS = 2


@pytest.fixture(params=["own", *ENGINES])
def executor(request: pytest.FixtureRequest) -> Iterator[cf.Executor]:
    name: str = request.param
    if name != "own":
        start_engine(name, request, WORKERS)
    ex = jf.Executor(max_workers=WORKERS)
    yield ex
    ex.shutdown(wait=True)
    jf.shutdown()


# -- what the calls run (module level: workers import them by reference) --------------------


def mul(x: int, y: int) -> int:
    return x * y


def capture(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def span(seconds: float) -> tuple[float, float]:
    """When the call ran, on the machine's monotonic clock (the same in every process)."""
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


class MyObject:
    def my_method(self) -> None:
        pass


def make_dummy_object(_: Any) -> MyObject:
    return MyObject()


# -- ExecutorTest -----------------------------------------------------------------------------


def test_submit(executor: cf.Executor) -> None:
    future = executor.submit(pow, 2, 8)
    assert isinstance(future, cf.Future)
    assert future.result(30) == 256


def test_submit_keyword(executor: cf.Executor) -> None:
    assert executor.submit(mul, 2, y=8).result(30) == 16
    # Keywords named like submit's own parameter or options reach the function.
    assert executor.submit(capture, 1, self=2, fn=3).result(30) == ((1,), {"self": 2, "fn": 3})
    assert executor.submit(capture, name="n", locality=1).result(30) == ((), {"name": "n", "locality": 1})
    with pytest.raises(TypeError):
        executor.submit(fn=capture, arg=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        executor.submit(arg=1)  # type: ignore[call-arg]


def test_map(executor: cf.Executor) -> None:
    assert list(executor.map(pow, range(10), range(10))) == list(builtins.map(pow, range(10), range(10)))
    assert list(executor.map(pow, range(10), range(10), chunksize=3)) == list(
        builtins.map(pow, range(10), range(10))
    )


def test_map_exception(executor: cf.Executor) -> None:
    i = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(i) == (0, 1)
    assert next(i) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(i)


def test_map_timeout(executor: cf.Executor) -> None:
    results = []
    with pytest.raises(TimeoutError):
        for r in executor.map(sleep_then, [0, 0, 3], timeout=1):
            results.append(r)
    assert results == [None, None]


def test_map_chunksize(executor: cf.Executor) -> None:
    ref = list(builtins.map(pow, range(40), range(40)))
    assert list(executor.map(pow, range(40), range(40), chunksize=6)) == ref
    assert list(executor.map(pow, range(40), range(40), chunksize=50)) == ref
    with pytest.raises(ValueError, match="chunksize must be >= 1"):
        list(executor.map(pow, range(40), range(40), chunksize=0))


def test_map_submits_without_iteration(executor: cf.Executor) -> None:
    finished = []
    executor.map(lambda x: x, [1, 2])  # never iterated
    futures = [executor.submit(sleep_then, 0.0, i) for i in range(3)]
    for f in futures:
        f.add_done_callback(lambda f: finished.append(f.result()))
    cf.wait(futures, timeout=30)
    assert sorted(finished) == [0, 1, 2]


def test_no_stale_references(executor: cf.Executor) -> None:
    my_object = MyObject()
    collected = threading.Event()
    ref = weakref.ref(my_object, lambda _obj: collected.set())
    executor.submit(my_object.my_method)  # deliberately discarding the future
    del my_object
    for _ in range(300):  # bounded: 30 s
        gc.collect()
        if collected.wait(0.1):
            break
    assert ref() is None, "stale reference not collected"


def test_max_workers_negative() -> None:
    for number in (0, -1):
        with pytest.raises(ValueError, match="max_workers must be greater than 0"):
            jf.Executor(max_workers=number)


def test_free_reference(executor: cf.Executor) -> None:
    # The result iterator does not keep a reference to the results it gave.
    for obj in executor.map(make_dummy_object, range(10)):
        wr = weakref.ref(obj)
        del obj
        for _ in range(100):  # bounded: 10 s
            gc.collect()
            if wr() is None:
                break
            time.sleep(0.1)
        assert wr() is None


# -- shutdown ---------------------------------------------------------------------------------


def test_run_after_shutdown(executor: cf.Executor) -> None:
    executor.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown") as caught:
        executor.submit(pow, 2, 5)
    assert isinstance(caught.value, jf.ClusterClosedError)


def test_hang_issue12364(executor: cf.Executor) -> None:
    fs = [executor.submit(time.sleep, 0.01) for _ in range(50)]
    executor.shutdown()
    for f in fs:
        f.result(0)  # shutdown(wait=True) returned: every call is over


def test_cancel_futures(executor: cf.Executor) -> None:
    fs = [executor.submit(time.sleep, 0.1) for _ in range(50)]
    executor.shutdown(cancel_futures=True)
    cancelled = [f for f in fs if f.cancelled()]
    assert len(cancelled) > 20  # what was still queued
    others = [f for f in fs if not f.cancelled()]
    assert others, "what was running is never cancelled"
    for f in others:
        assert f.done()
        assert f.exception() is None


def test_shutdown_no_wait(executor: cf.Executor) -> None:
    res = executor.map(abs, range(-5, 5))
    executor.shutdown(wait=False)
    assert list(res) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]


def test_a_running_call_is_not_cancelled(executor: cf.Executor) -> None:
    f = executor.submit(sleep_then, 0.5, "done")
    for _ in range(100):
        if f.running():
            break
        time.sleep(0.01)
    assert not f.cancel()
    assert f.result(30) == "done"


# -- futures mixed with others, asyncio -------------------------------------------------------


def test_wait_and_as_completed_take_any_mix(executor: cf.Executor) -> None:
    plain: cf.Future[int] = cf.Future()
    plain.set_result(7)
    ours = jf.submit(pow, 2, 3) if jf.get_client() is not None else None
    theirs = executor.submit(pow, 3, 2)
    done, not_done = cf.wait([plain, ours, theirs], timeout=30)
    assert not not_done and {f.result() for f in done} == {7, 8, 9}
    done, not_done = jf.wait([plain, ours, theirs], timeout=30)
    assert not not_done
    assert sorted(f.result() for f in jf.as_completed([plain, ours, theirs], timeout=30)) == [7, 8, 9]
    assert jf.gather([plain, ours, theirs], timeout=30) == [7, 8, 9]


def test_asyncio(executor: cf.Executor) -> None:
    async def main() -> list[int]:
        wrapped = await asyncio.wrap_future(executor.submit(pow, 2, 4))
        ours = await jf.submit(pow, 2, 5)
        return [wrapped, ours]

    assert asyncio.run(main()) == [16, 32]


# -- what the executor adds -------------------------------------------------------------------


def test_at_most_max_workers_calls_in_flight_on_a_running_cluster(client: jf.Client) -> None:
    with jf.Executor(max_workers=1) as ex:
        spans = sorted(ex.map(span, [0.2] * 4))
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans
    with client.executor(max_workers=2) as ex:
        spans = sorted(ex.map(span, [0.5] * 2))
    assert spans[1][0] < spans[0][1], "two calls in flight run side by side"
    assert not client.closed, "an executor never stops a cluster it did not start"


def test_submit_options_apply_to_every_call(client: jf.Client) -> None:
    with pytest.raises(TypeError, match="unknown submit option"):
        jf.Executor(max_workers=1, retries=3)
    with client.executor(min_cpu=64) as ex, pytest.raises(jf.UnsatisfiableRequirementError):
        ex.submit(pow, 2, 2).result(30)
    with client.executor(max_retries=-1) as ex, pytest.raises(ValueError, match="max_retries"):
        ex.submit(pow, 2, 2).result(30)


def test_unpicklable_calls_fail_their_own_future(client: jf.Client) -> None:
    lock = threading.Lock()
    with client.executor() as ex:
        bad = ex.submit(capture, lock)
        good = ex.submit(pow, 2, 3)
        with pytest.raises(jf.SerializationError):
            bad.result(30)
        assert good.result(30) == 8


def test_dropping_an_executor_stops_the_cluster_it_started() -> None:
    ex = jf.Executor(max_workers=2)
    client = ex.client
    res = ex.map(abs, range(-5, 5))
    del ex
    gc.collect()
    assert list(res) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    for _ in range(200):  # bounded: 20 s
        if client.closed:
            break
        time.sleep(0.1)
    assert client.closed


def squares_with_an_executor(n: int) -> list[int]:
    with jf.Executor(max_workers=2) as ex:  # inside a task: the worker's own client
        return list(ex.map(pow, range(n), [2] * n))


def test_an_executor_inside_a_task_lends_its_slot() -> None:
    jf.init(1)  # one worker with one slot: the calls can only run if the waiting task lends it
    try:
        assert jf.submit(squares_with_an_executor, 4).result(60) == [0, 1, 4, 9]
    finally:
        jf.shutdown()


def test_remote_errors_keep_their_type_and_traceback(executor: cf.Executor) -> None:
    f = executor.submit(divmod, 1, 0)
    exc = f.exception(30)
    assert isinstance(exc, ZeroDivisionError)


# -- at interpreter exit (a script run from elsewhere, its helper module outside the repo) ----


HELPER = """
import time

def sleep_and_print(t, msg):
    time.sleep(t)
    print(msg, flush=True)
"""


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helpers.py").write_text(HELPER)
    script = tmp_path / "script.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(lib)!r})\n" + textwrap.dedent(body))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    return subprocess.run(
        [sys.executable, str(script)], cwd=elsewhere, capture_output=True, text=True, timeout=120
    )


def test_interpreter_shutdown(tmp_path: Path) -> None:
    # Work submitted before the interpreter exits completes, and its output is printed.
    out = run_script(
        tmp_path,
        """
        import jupyter_futures as jf
        from helpers import sleep_and_print
        if __name__ == "__main__":
            t = jf.Executor(2)
            t.submit(sleep_and_print, 1.0, "apple")
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert out.stdout.strip() == "apple"


def test_submit_after_interpreter_shutdown(tmp_path: Path) -> None:
    out = run_script(
        tmp_path,
        """
        import atexit

        @atexit.register
        def run_last():
            try:
                t.submit(id, None)
            except RuntimeError:
                print("runtime-error")
                raise

        import jupyter_futures as jf
        if __name__ == "__main__":
            t = jf.Executor(2)
            t.submit(id, 42).result()
        """,
    )
    # ClusterClosedError is a RuntimeError, as the standard library's executors raise
    assert "ClusterClosedError: cannot schedule new futures after interpreter shutdown" in out.stderr
    assert out.stdout.strip() == "runtime-error"


# -- jf.map -----------------------------------------------------------------------------------


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    start_engine(name, request, WORKERS)
    yield name
    jf.shutdown()


def test_map_gives_one_future_per_item(engine: str) -> None:
    futures = jf.map(pow, [1, 2, 3, 4], [2, 2, 2])  # the shortest iterable decides
    assert all(isinstance(f, jf.Future) for f in futures)
    assert jf.gather(futures, timeout=30) == [1, 4, 9]
    assert {f.name for f in futures} == {"pow"}
    named = jf.map(mul, range(5), range(5), name="square", max_retries=1)
    assert [f.name for f in named] == ["square"] * 5
    assert jf.gather(named, timeout=30) == [0, 1, 4, 9, 16]


def test_map_in_batches(engine: str) -> None:
    futures = jf.get_client().map(mul, range(1000), range(1000), batch_size=128)
    assert len(futures) == 1000
    assert jf.gather(futures, timeout=60) == [i * i for i in range(1000)]
    # futures are dependencies, like submit's
    doubled = jf.map(mul, futures[:3], [2, 2, 2])
    assert jf.gather(doubled, timeout=30) == [0, 2, 8]


def test_map_errors_belong_to_their_item(engine: str) -> None:
    futures = jf.map(divmod, [1, 1, 1], [1, 0, 2])
    assert futures[0].result(30) == (1, 0)
    with pytest.raises(ZeroDivisionError):
        futures[1].result(30)
    assert futures[2].result(30) == (0, 1)
    with pytest.raises(ValueError, match="batch_size"):
        jf.map(pow, [1], [1], batch_size=0)
    with pytest.raises(TypeError, match="unknown submit option"):
        jf.map(pow, [1], [1], retries=2)
