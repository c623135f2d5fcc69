"""Widgets with a real cluster: their states as work moves, and the snapshots they leave.

No kernel here: ipywidgets talks to no front end, which changes nothing for the widgets'
state, text and HTML. What a front end receives is checked in ``test_kernel.py``.
"""

from __future__ import annotations

import gc
import re
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import jupyter_futures as jf
from jupyter_futures.futures import _UNDECODED
from jupyter_futures.jupyter.widgets.actor_widget import ActorWidget
from jupyter_futures.jupyter.widgets.client_card import card
from jupyter_futures.jupyter.widgets.dashboard import Dashboard, holders
from jupyter_futures.jupyter.widgets.future_widget import FutureWidget, preview
from jupyter_futures.jupyter.widgets.html import nbytes
from jupyter_futures.jupyter.widgets.progress import CellProgress, Progress
from jupyter_futures.jupyter.widgets.ticker import Tick, Ticker, wake_all

pytest.importorskip("ipywidgets")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns something true (widgets update on their own thread)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s")
        time.sleep(0.05)


def wait_on(path: str) -> str:
    """A task that blocks until the test writes to the named pipe ``path``."""
    with open(path) as f:
        return f.read().strip()


def fail(message: str) -> None:
    raise ValueError(message)


class Echo:
    def echo(self, x: Any) -> Any:
        return x

    def wait(self, path: str) -> str:
        return wait_on(path)


@pytest.fixture
def gate(tmp_path: Any) -> Any:
    """A named pipe: tasks reading it block until ``release()``."""
    import os

    path = str(tmp_path / "gate")
    os.mkfifo(path, 0o600)

    class Gate:
        def __init__(self) -> None:
            self.path = path

        def release(self, text: str = "go") -> None:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, text.encode())
            os.close(fd)

    return Gate()


def test_future_widget_follows_the_future(client: jf.Client, gate: Any) -> None:
    blocker = jf.submit(wait_on, gate.path)
    dependent = jf.submit(lambda a, b: f"{a}+{b}", blocker, blocker, name="joined")
    waiting = FutureWidget(dependent)
    running = FutureWidget(blocker)
    assert waiting.state == "pending"
    assert "waiting on 1 input" in waiting.text  # the same future twice is one input
    eventually(lambda: running.state == "running")
    assert "running on worker" in running.text
    gate.release("go")
    eventually(lambda: waiting.state == "done")
    assert running.state == "done"
    assert "joined (future" in waiting.text and "done in" in waiting.text and "'go+go'" in waiting.text
    html = waiting.snapshot()["text/html"]
    assert "var(--jp-ui-font-color1, black)" in html and "joined" in html and "&#x27;go+go&#x27;" in html


def test_future_widget_shows_failures_and_cancellations(client: jf.Client, gate: Any) -> None:
    failed = FutureWidget(jf.submit(fail, "no <good>"))
    eventually(lambda: failed.state == "failed")
    assert "failed: ValueError: no <good>" in failed.text
    assert "no &lt;good&gt;" in failed.value  # user text is escaped in the HTML
    slow = jf.submit(wait_on, gate.path)
    cancelled = FutureWidget(slow)
    eventually(lambda: cancelled.state == "running")
    slow.cancel()
    eventually(lambda: cancelled.state == "cancelled")
    assert "cancelled" in cancelled.text


def test_settled_widget_lets_go_of_the_future(client: jf.Client) -> None:
    f = jf.submit(bytes, 10)
    widget = FutureWidget(f)
    eventually(lambda: widget.state == "done")
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None, "a widget keeps its future (and its value) alive"
    assert "b'\\x00" in widget.text


def test_large_results_are_described_not_read(client: jf.Client) -> None:
    import numpy as np

    f = jf.submit(np.zeros, 1_000_000)
    widget = FutureWidget(f)
    eventually(lambda: widget.state == "done")
    assert "7.6 MiB in shared memory" in widget.text  # 8,000,000 bytes and a header
    assert f._value is _UNDECODED  # never read in the kernel


def test_widget_output_carries_a_snapshot_and_finishes_static(client: jf.Client, gate: Any) -> None:
    f = jf.submit(wait_on, gate.path, name="gated")
    widget = FutureWidget(f)
    live = widget.bundle()
    assert WIDGET_VIEW in live  # the live view, and the snapshot beside it
    assert live["text/plain"] == widget.text and "gated" in widget.text
    assert live["text/html"] == widget.value and "var(--jp-" in live["text/html"]
    gate.release("32")
    eventually(lambda: widget.state == "done")
    final = widget.bundle()
    assert WIDGET_VIEW not in final, "a finished widget leaves only its snapshot"
    assert ": '32'" in final["text/plain"] and final["text/html"] == widget.value
    assert widget.comm is None  # closed: its model is freed


def test_preview_is_bounded() -> None:
    assert preview(list(range(1000))) == "[0, 1, 2, 3, 4, 5, ...]"
    assert len(preview("x" * 10_000)) <= 80

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert "Broken" in preview(Broken())  # a repr that raises does not break the widget


def test_actor_widget(client: jf.Client, gate: Any) -> None:
    actor = jf.create_actor(Echo).result(30)
    widget = ActorWidget(actor, client)
    eventually(lambda: widget.state == "alive")
    blocked = actor.wait(gate.path)
    queued = [actor.echo(i) for i in range(3)]
    eventually(lambda: widget.calls_queued == 4)
    assert "Echo actor" in widget.text and "4 queued" in widget.text and "on worker" in widget.text
    gate.release()
    jf.wait([blocked, *queued])
    eventually(lambda: widget.calls_done == 4 and widget.calls_queued == 0)
    assert "4 calls done" in widget.text
    jf.kill_actor(actor)
    wake_all()  # as a cell starting does: the idle widget looks again
    eventually(lambda: widget.state == "dead")


def test_progress_counts_done_failed_rate_and_time_left(client: jf.Client, gate: Any) -> None:
    fs = [jf.submit(pow, 2, i) for i in range(8)] + [jf.submit(fail, "x") for _ in range(2)]
    held = jf.submit(wait_on, gate.path)
    bar = Progress([*fs, held], label="powers")
    eventually(lambda: bar.done == 10)
    eventually(lambda: "10 / 11 done" in bar.text)
    assert "2 failed" in bar.text and "/s" in bar.text and "left" in bar.text
    gate.release()
    eventually(lambda: bar.finished is not None)
    assert bar.text.startswith("powers: 11 / 11 done · 2 failed · in ")
    assert bar.rate > 0
    assert "var(--jp-error-color1" in bar.value  # the failed part of the bar


def test_progress_counts_cancelled_apart_from_failed(client: jf.Client, gate: Any) -> None:
    done = jf.submit(pow, 2, 2)
    held = jf.submit(wait_on, gate.path)
    jf.wait([done])
    bar = Progress([done, held], label="work")
    eventually(lambda: client.future_state(held.id) == "running")
    held.cancel()
    eventually(lambda: bar.finished is not None)
    assert bar.text.startswith("work: 2 / 2 done · 1 cancelled · in "), bar.text
    assert "failed" not in bar.text and "var(--jp-error-color1" not in bar.value
    assert "var(--jp-warn-color1" in bar.value


def test_cell_progress_is_one_bar_with_the_cells_time(client: jf.Client, gate: Any) -> None:
    import time as clock

    started = clock.monotonic()
    work = jf.submit(wait_on, gate.path)
    result = jf.submit(len, work)
    bar = CellProgress(result, work, "%%remote In[7]", started)
    eventually(lambda: "running on worker" in bar.text)
    first = bar.text
    assert re.fullmatch(r"%%remote In\[7\]: running on worker \d · \d+ ms|.* \d\.\d s", first), first
    eventually(lambda: bar.text != first and "running on worker" in bar.text)  # the time moves on
    gate.release("four")
    eventually(lambda: bar.state == "done")
    assert re.fullmatch(r"%%remote In\[7\]: done in .*", bar.text), bar.text
    assert "var(--jp-success-color1" in bar.value and WIDGET_VIEW not in bar.bundle()

    work = jf.submit(wait_on, gate.path)
    result = jf.submit(len, work)
    bar = CellProgress(result, work, "%%remote In[8]", clock.monotonic())
    eventually(lambda: client.future_state(work.id) == "running")
    result.cancel()
    work.cancel()
    eventually(lambda: bar.state == "cancelled")
    assert bar.text.startswith("%%remote In[8]: cancelled after"), bar.text
    assert "var(--jp-warn-color1" in bar.value


def test_sizes_are_binary_everywhere(client: jf.Client) -> None:
    from jupyter_futures.jupyter.magics import status_text

    assert [nbytes(n) for n in (0, 1023, 1536, 8_000_000, 150 * 2**20, 3 * 2**30)] == [
        "0 B", "1023 B", "1.5 KiB", "7.6 MiB", "150 MiB", "3.0 GiB"
    ]  # fmt: skip
    kept = jf.put(bytes(3 * 2**20))
    eventually(lambda: all(w["rss"] and w["store_capacity"] for w in client.status()["workers"]))
    text = status_text(client)
    assert re.search(r"\d+(\.\d)? MiB RSS, store .* / \d+(\.\d)? GiB", text), text
    assert re.search(r"objects: 1 \(3\.0 MiB, 0 B spilled\)", text), text
    assert " MB" not in text and " GB" not in text
    del kept


def test_client_card(client: jf.Client) -> None:
    fs = [jf.submit(abs, -i) for i in range(3)]
    jf.wait(fs)
    kept = jf.put(bytes(2 * 2**20))
    eventually(lambda: all(w["rss"] for w in client.status()["workers"]))  # a heartbeat came
    html = card(client)
    assert f"jupyter_futures Client {client.cluster_id}" in html and "2 workers" in html
    for part in ("Workers", "CPUs", "Memory", "Store", "Futures", "Actors", "jf.dashboard()", "Cluster"):
        assert part in html, part
    assert re.search(r"\d+ done", html) and "2.0 MiB / " in html and " GiB in shared memory" in html
    assert "var(--jp-ui-font-color1, black)" in html and "var(--jp-border-color2, #e0e0e0)" in html
    assert "<details" in html  # the per-worker table, folded
    assert repr(client).startswith("<jupyter_futures.Client")  # the text/plain fallback
    del kept, fs
    client.shutdown()
    assert "closed" in card(client)


def test_progress_of_nothing_is_complete() -> None:
    bar = Progress([])
    assert bar.text.startswith("0 / 0 done")


def test_dashboard_sections_and_variables(client: jf.Client) -> None:
    import numpy as np

    namespace: dict[str, Any] = {
        "big": jf.submit(np.ones, 100_000),
        "many": [jf.submit(abs, -i) for i in range(20)],
        "bad": jf.submit(fail, "broken <here>"),
        "_hidden": jf.submit(abs, 1),
        "plain": 3,
    }
    echo = jf.create_actor(Echo).result(30)
    jf.wait([namespace["big"], *namespace["many"], namespace["bad"]])
    board = Dashboard(client, namespace)
    try:
        eventually(lambda: "failed" in board.text and "broken" in board.value)
        html = board.value
        for section in ("Workers", "Futures", "Task stream", "Actors", "Object store"):
            assert section in html
        assert 'class="jf-task-stream"' in html and 'data-name="fail" data-state="failed"' in html
        assert 'data-name="abs"' in html and "Echo #" in html  # the actor's lane
        assert "broken &lt;here&gt;" in html and "ValueError" in html
        assert "Echo" in html and "worker RSS" in html
        assert "<code>big</code>" in html and "<code>many</code>" in html and "_hidden" not in html
        assert holders(namespace)[0][:2] == ("big", 1)
        assert ("many", 20) in [(n, c) for n, c, _ in holders(namespace)]
        assert "var(--jp-ui-font-color1, black)" in html
        assert board.text.startswith(f"jupyter_futures cluster {client.cluster_id}: 2 workers;")
        bundle = board.bundle()
        assert WIDGET_VIEW in bundle and bundle["text/html"] == html
    finally:
        board.close()
        jf.kill_actor(echo)


def test_dashboard_shows_the_work_queued_per_cell_and_priority(client: jf.Client) -> None:
    cell = [3]
    client.backend.set_group_hook(lambda: cell[0])  # the running cell, as a kernel's hook says
    busy = [jf.submit(time.sleep, 0.5) for _ in range(2)]  # both workers
    older = jf.map(abs, range(50))  # In[3]
    cell[0] = 4
    urgent = jf.submit(abs, -1, priority=2)  # In[4]
    rows = jf.status()["queued"]
    assert rows[0] == {"group": 4, "priority": 2, "tasks": 1}, rows
    assert rows[1]["group"] == 3 and rows[1]["priority"] == 0 and rows[1]["tasks"] > 0, rows
    board = Dashboard(client, {})
    try:
        html = board.value
        assert "Queued" in html and "In[4]" in html and "In[3]" in html
        assert html.index("In[4]") < html.index("In[3]")  # the higher priority first
    finally:
        board.close()
        jf.wait([*busy, *older, urgent])


def test_dashboard_ticks_while_work_runs_and_rests_after(client: jf.Client) -> None:
    board = Dashboard(client, {})
    try:
        eventually(lambda: not board.ticker.running)  # nothing runs: the timer thread ends
        before = board.updates
        started = time.monotonic()
        fs = [jf.submit(time.sleep, 0.5) for _ in range(6)]  # ~1.5 s on two workers
        board.ticker.wake()  # what a cell starting does
        eventually(lambda: board.ticker.running)
        jf.wait(fs)
        eventually(lambda: not board.ticker.running)
        took = time.monotonic() - started
        updates = board.updates - before
        assert 1 <= updates <= 2 * took / 0.5 + 2, (updates, took)
        assert "6 done" in board.text or "done" in board.text
        quiet = board.updates
        time.sleep(1.0)  # nothing runs: no updates, no thread
        assert board.updates == quiet and not board.ticker.running
    finally:
        board.close()


def test_task_stream_widget_is_live_then_its_svg_stays(client: jf.Client) -> None:
    import xml.etree.ElementTree as ET

    from jupyter_futures.jupyter.widgets.stream_widget import TaskStreamWidget

    widget = TaskStreamWidget(client)
    try:
        assert "no task finished" in widget.value
        jf.wait([jf.submit(abs, -i) for i in range(300)] + [jf.submit(fail, "no")])

        def runs() -> int:  # "task stream, last 30 s: worker 1: 150 runs; worker 2: 151 runs, 1 failed"
            return sum(int(n.replace(",", "")) for n in re.findall(r": ([\d,]+) runs?", widget.text))

        eventually(lambda: runs() == 301)
        svg = widget.svg()
        root = ET.fromstring(svg)  # a document of its own, as saved
        names = {r.get("data-name") for r in root.iter("{http://www.w3.org/2000/svg}rect")}
        assert {"abs", "fail"} <= names
        bundle = widget.bundle()
        assert bundle["image/svg+xml"] == svg and svg in bundle["text/html"]
        assert "1 failed" in bundle["text/plain"]
    finally:
        widget.close()


def test_ticker_runs_only_while_busy() -> None:
    class Counter:
        def __init__(self, busy_for: int) -> None:
            self.left = busy_for
            self.ticks = 0

        def tick(self) -> Tick:
            self.ticks += 1
            self.left -= 1
            return Tick.BUSY if self.left > 0 else Tick.IDLE

    ticker = Ticker("jupyter-futures-test", interval=0.01)
    sub = Counter(busy_for=5)
    ticker.add(sub)
    eventually(lambda: not ticker.running)
    assert sub.ticks == 5
    sub.left = 3
    ticker.wake()
    eventually(lambda: sub.ticks >= 8 and not ticker.running)
    ticker.close()


def test_dashboard_shows_dropped_messages_only_when_there_are_some(client: jf.Client) -> None:
    import zmq

    board = Dashboard(client, {})
    try:
        assert "Dropped messages" not in board.value
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PUSH)
        sock.connect(client.backend.cluster.inbox.address)  # type: ignore[attr-defined]
        for _ in range(5):
            sock.send(b"x" * 100)  # no valid signature: dropped unread
        sock.close(linger=5000)
        ctx.term()
        deadline = time.monotonic() + 15
        while jf.status()["messages"]["dropped"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        board.tick()
        assert "Dropped messages" in board.value and "5 bad signature" in board.value
    finally:
        board.close()
