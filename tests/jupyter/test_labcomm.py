"""The kernel side of the JupyterLab Cluster panel: the publisher alone, then in a real kernel."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import jupyter_futures as jf
from jupyter_futures.jupyter import labcomm


class FakeComm:
    """Records what the publisher sends; ``sent`` is set on every send."""

    def __init__(self, fail: bool = False) -> None:
        self.comm_id = uuid.uuid4().hex
        self.messages: list[dict[str, Any]] = []
        self.sent = threading.Event()
        self.closed = False
        self.fail = fail
        self.on_msg_cb: Any = None
        self.on_close_cb: Any = None

    def send(self, data: Any = None) -> None:
        if self.fail:
            raise RuntimeError("kernel restarted")
        self.messages.append(data)
        self.sent.set()

    def close(self) -> None:
        self.closed = True

    def on_msg(self, callback: Any) -> None:
        self.on_msg_cb = callback

    def on_close(self, callback: Any) -> None:
        self.on_close_cb = callback

    def receive(self, data: dict[str, Any]) -> None:
        self.on_msg_cb({"content": {"comm_id": self.comm_id, "data": data}})

    def remote_close(self) -> None:
        self.on_close_cb({"content": {"comm_id": self.comm_id, "data": {}}})


class Source:
    """A status the test changes by hand."""

    def __init__(self) -> None:
        self.status: dict[str, Any] | None = None
        self.calls = 0

    def __call__(self) -> dict[str, Any] | None:
        self.calls += 1
        return self.status


def publisher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jupyter-futures-labcomm"]


@pytest.fixture
def source() -> Source:
    return Source()


@pytest.fixture
def publisher(source: Source) -> Iterator[labcomm.StatusPublisher]:
    p = labcomm.StatusPublisher(interval=0.02, source=source)
    yield p
    p.close()
    assert not publisher_threads()


def test_open_sends_the_current_status_at_once(publisher: labcomm.StatusPublisher, source: Source) -> None:
    source.status = {"workers": []}
    comm = FakeComm()
    publisher.open(comm)
    assert comm.messages[0] == {"type": "status", "status": {"workers": []}}
    assert publisher.running


def test_changes_are_sent_and_repeats_are_not(publisher: labcomm.StatusPublisher, source: Source) -> None:
    publisher.stop()  # drive it by hand
    comm = FakeComm()
    with publisher._lock:
        publisher._comms[comm.comm_id] = comm
    assert publisher.publish_once()
    assert not publisher.publish_once()
    source.status = {"workers": [{"id": 1}]}
    assert publisher.publish_once()
    assert [m["status"] for m in comm.messages] == [None, {"workers": [{"id": 1}]}]


def test_the_thread_sends_what_changed(publisher: labcomm.StatusPublisher, source: Source) -> None:
    comm = FakeComm()
    publisher.open(comm)
    comm.sent.clear()
    source.status = {"futures": {"done": 1}}
    assert comm.sent.wait(5), "the change never reached the comm"
    assert comm.messages[-1]["status"] == {"futures": {"done": 1}}


def test_refresh_resends(publisher: labcomm.StatusPublisher) -> None:
    comm = FakeComm()
    publisher.open(comm)
    before = len(comm.messages)
    comm.receive({"type": "refresh"})
    comm.receive({"type": "something else"})
    assert len(comm.messages) == before + 1


def test_logs_are_sent_when_asked(publisher: labcomm.StatusPublisher) -> None:
    comm = FakeComm()
    publisher.open(comm)
    comm.receive({"type": "logs"})
    assert comm.messages[-1] == {"type": "logs", "logs": None}  # no cluster: nothing to show


def stream_messages(comm: FakeComm) -> list[dict[str, Any]]:
    return [m for m in comm.messages if m["type"] == "stream"]


def test_the_task_stream_goes_out_as_bars_made_or_grown(client: jf.Client) -> None:
    publisher = labcomm.StatusPublisher(interval=3600)  # driven by hand
    try:
        first = FakeComm()
        publisher.open(first)
        (opened,) = stream_messages(first)
        assert opened["reset"] and opened["window"] == 30 and opened["bars"] == []
        jf.wait([jf.submit(abs, -i) for i in range(200)] + [jf.submit(pow, 2, 5)], timeout=60)
        assert publisher.publish_stream()
        bars = stream_messages(first)[-1]["bars"]
        assert not stream_messages(first)[-1]["reset"]
        by_name: dict[str, int] = {}
        for _id, lane, row, name, state, colour, start, end, count, busy in bars:
            assert lane in ("worker 1", "worker 2") and row >= 0 and state == "done"
            assert colour.startswith("#") and start <= end
            assert 0 <= busy <= end - start + 3e-6  # both rounded to microseconds
            by_name[name] = by_name.get(name, 0) + count
        assert by_name == {"abs": 200, "pow": 1}  # 201 runs in a handful of bars
        assert len(bars) < 50, len(bars)
        assert not publisher.publish_stream()  # nothing new: nothing sent

        second = FakeComm()  # a comm opened later gets every bar in the window, the first none
        publisher.open(second)
        assert sum(b[8] for b in stream_messages(second)[-1]["bars"]) == 201
        assert stream_messages(second)[-1]["reset"] and len(stream_messages(first)) == 2
    finally:
        publisher.close()


def test_cluster_logs_are_by_worker_id(client: jf.Client) -> None:
    logs = labcomm.cluster_logs()
    assert logs is not None
    assert set(logs) == {str(w["id"]) for w in client.status()["workers"]}


def test_last_close_stops_the_thread(publisher: labcomm.StatusPublisher) -> None:
    a, b = FakeComm(), FakeComm()
    publisher.open(a)
    publisher.open(b)
    a.remote_close()
    assert publisher.running and publisher.comms == [b]
    b.remote_close()
    assert not publisher.running
    assert not publisher_threads()
    publisher.open(FakeComm())  # and it starts again
    assert publisher.running


def test_a_broken_comm_is_forgotten(publisher: labcomm.StatusPublisher, source: Source) -> None:
    good, bad = FakeComm(), FakeComm()
    publisher.open(good)
    publisher.open(bad)
    bad.fail = True
    source.status = {"workers": []}
    good.sent.clear()
    assert good.sent.wait(5)
    deadline = time.monotonic() + 5
    while bad in publisher.comms and time.monotonic() < deadline:
        good.sent.wait(0.1)  # another round of the thread
    assert publisher.comms == [good]


def test_close_closes_every_comm(publisher: labcomm.StatusPublisher) -> None:
    comms = [FakeComm(), FakeComm()]
    for c in comms:
        publisher.open(c)
    publisher.close()
    assert all(c.closed for c in comms)
    assert not publisher.running


def test_cluster_status_only_looks(client: jf.Client) -> None:
    status = labcomm.cluster_status()
    assert status is not None
    assert len(status["workers"]) == 2
    assert status["cluster"] == client.backend.cluster.id


def test_cluster_status_without_a_cluster_is_none() -> None:
    assert labcomm.cluster_status() is None
    assert jf.local.client_base.current_client_or_none() is None  # and it started nothing


class FakeManager:
    def __init__(self) -> None:
        self.targets: dict[str, Any] = {}

    def register_target(self, name: str, f: Any) -> None:
        self.targets[name] = f

    def unregister_target(self, name: str, f: Any) -> None:
        self.targets.pop(name)


class FakeShell:
    def __init__(self, kernel: bool = True) -> None:
        self.kernel = type("Kernel", (), {"comm_manager": FakeManager()})() if kernel else None


def test_register_is_idempotent_and_undone_by_unregister() -> None:
    shell = FakeShell()
    first = labcomm.register_comm_target(shell)
    assert first is not None
    assert labcomm.register_comm_target(shell) is first
    comm = FakeComm()
    shell.kernel.comm_manager.targets[labcomm.TARGET](comm, {})  # type: ignore[union-attr]
    labcomm.unregister_comm_target(shell)
    assert comm.closed and not first.running
    assert labcomm.TARGET not in shell.kernel.comm_manager.targets  # type: ignore[union-attr]


def test_register_outside_a_kernel_does_nothing() -> None:
    assert labcomm.register_comm_target(FakeShell(kernel=False)) is None
    assert labcomm.register_comm_target() is None  # no IPython shell in pytest


# -- in a real kernel, talking the comm protocol as JupyterLab does -----------------------


class Kernel:
    """A kernel client that keeps the comm messages seen while cells run."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc
        self.inbox: list[dict[str, Any]] = []

    def _keep(self, msg: dict[str, Any]) -> bool:
        if msg["msg_type"] in ("comm_msg", "comm_close"):
            self.inbox.append(msg)
            return True
        return False

    def run(self, code: str) -> str:
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if self._keep(msg):
                return
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = self.kc.execute_interactive(code, timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok", "".join(out)
        return "".join(out)

    def send(self, msg_type: str, comm_id: str, data: dict[str, Any], **extra: Any) -> None:
        content = {"comm_id": comm_id, "data": data, **extra}
        self.kc.shell_channel.send(self.kc.session.msg(msg_type, content))

    def next_message(self, comm_id: str, timeout: float = 30) -> dict[str, Any]:
        """The next comm_msg or comm_close for ``comm_id``."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.inbox:
                if msg["content"]["comm_id"] == comm_id:
                    self.inbox.remove(msg)
                    return msg
            left = deadline - time.monotonic()
            assert left > 0, "no comm message from the kernel"
            self._keep(self.kc.get_iopub_msg(timeout=left))


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        yield Kernel(kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_kernel_streams_status_until_the_comm_closes(kernel: Kernel) -> None:
    kernel.run(
        "import jupyter_futures as jf\nfrom jupyter_futures.jupyter import labcomm\n"
        "labcomm.register_comm_target()\nc = jf.init(n_workers=1)\nc.wait_for_workers()"
    )
    comm_id = uuid.uuid4().hex
    kernel.send("comm_open", comm_id, {"type": "hello"}, target_name=labcomm.TARGET)
    first = kernel.next_message(comm_id)
    assert first["msg_type"] == "comm_msg"
    data = first["content"]["data"]
    assert data["type"] == "status" and len(data["status"]["workers"]) == 1

    kernel.run("f = jf.submit(pow, 2, 10)\nf.result()")
    deadline = time.monotonic() + 30
    bars: list[list[Any]] = []
    while not (data.get("status") and data["status"]["futures"].get("done") and bars):
        assert time.monotonic() < deadline, data  # both sent by the publishing thread, unasked
        data = kernel.next_message(comm_id)["content"]["data"]
        if data["type"] == "stream":
            bars += data["bars"]
    assert [bar[3] for bar in bars] == ["pow"] and bars[0][1] == "worker 1", bars

    kernel.send("comm_msg", comm_id, {"type": "refresh"})
    assert kernel.next_message(comm_id)["content"]["data"]["type"] == "status"

    kernel.send("comm_close", comm_id, {})
    out = kernel.run(
        "import threading\n"
        "for t in threading.enumerate():\n"
        "    if t.name == 'jupyter-futures-labcomm':\n"
        "        t.join(5)\n"
        "print(sum(t.name == 'jupyter-futures-labcomm' for t in threading.enumerate()))\n"
        "jf.shutdown()"
    )
    assert out.strip() == "0"


def test_kernel_without_the_target_closes_the_comm(kernel: Kernel) -> None:
    """What the panel reads as "jupyter_futures is not loaded in this kernel"."""
    comm_id = uuid.uuid4().hex
    kernel.send("comm_open", comm_id, {"type": "hello"}, target_name=labcomm.TARGET)
    assert kernel.next_message(comm_id)["msg_type"] == "comm_close"
