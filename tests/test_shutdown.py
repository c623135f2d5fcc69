"""Shutting down with work in flight: every unfinished future settles, nothing hangs,
and nothing of ours touches a descriptor after it is closed."""

from __future__ import annotations

import threading
import time

import pytest
from kernels import Kernel

import jupyter_futures as jf


def test_futures_open_at_shutdown_fail_with_cluster_closed() -> None:
    c = jf.init(2)
    running = jf.submit(time.sleep, 100)
    waiting = jf.submit(time.sleep, 0, running)  # depends on the running one
    called: list[BaseException | None] = []
    running.add_done_callback(lambda f: called.append(f.exception()))
    woke: list[BaseException] = []

    def waiter() -> None:
        try:
            waiting.result()
        except BaseException as exc:
            woke.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    jf.submit(pow, 1, 1).result(30)  # workers up and the sleep under way
    c.shutdown()
    started = time.monotonic()
    for f in (running, waiting):
        with pytest.raises(jf.ClusterClosedError, match="shut down before"):
            f.result(timeout=5)
        assert f.done() and f.state == "failed" and "failed" in repr(f)
        assert isinstance(f.exception(), jf.ClusterClosedError)
    assert time.monotonic() - started < 1.0
    t.join(5)
    assert not t.is_alive() and isinstance(woke[0], jf.ClusterClosedError)
    assert isinstance(called[0], jf.ClusterClosedError)  # callbacks ran


def test_interrupting_a_wait_after_shutdown_leaves_the_kernel_working(kernel: Kernel) -> None:
    kernel.run("f = jf.submit(time.sleep, 100)\njf.shutdown()")
    printed = kernel.run(
        "try:\n"
        "    f.result()\n"
        "except jf.ClusterClosedError as exc:\n"
        "    print(type(exc).__name__)\n"
        "print(f.state)"
    )
    assert printed.split() == ["ClusterClosedError", "failed"]
    # An interrupt while waiting on something else, after shutdown: a plain
    # KeyboardInterrupt, and the kernel goes on (its sockets untouched by us).
    msg_id = kernel.execute(
        "import concurrent.futures as cf\nprint('waiting', flush=True)\njf.wait([cf.Future()])"
    )
    kernel.wait_for(lambda: "waiting" in "".join(kernel.stream_text(msg_id)))
    # A second press if the first one landed where Python drops it (a __del__ running on
    # the main thread at that instant swallows the KeyboardInterrupt).
    for _ in range(3):
        kernel.km.interrupt_kernel()
        try:
            reply = kernel.reply(msg_id, timeout=10)
            break
        except AssertionError:
            continue
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert kernel.run("print(1 + 1)").strip() == "2"
    assert kernel.run("c = jf.init(2)\nprint(jf.submit(pow, 2, 5).result(30))\njf.shutdown()").strip() == "32"
