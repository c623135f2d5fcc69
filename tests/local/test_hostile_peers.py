"""Hostile processes of the same user against a running cluster: frames recorded on their
way and sent again (replays), floods of garbage, oversized frames, and an error in the
kernel's housekeeping. Real workers, real sockets; the frames are recorded as they pass
(the only instrumentation), then sent from a raw zmq socket, as another process would.

::

    kernel ── RUN (recorded) ──► worker inbox ◄── the same RUN again, from a raw PUSH
    worker ── DONE, HEARTBEAT (recorded at the kernel's inbox) ──► kernel inbox ◄── again
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

import jupyter_futures as jf
from jupyter_futures.local import cluster as cluster_module
from jupyter_futures.local import protocol as P
from jupyter_futures.local import transport


def wait_until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Raw:
    """A process of the same user: connects to any inbox it can see, sends raw bytes."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.socks: list[zmq.Socket[Any]] = []

    def send(self, address: str, frames: list[bytes]) -> None:
        sock = self.ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.connect(address)
        for frame in frames:
            sock.send(frame)
        self.socks.append(sock)

    def close(self) -> None:
        for sock in self.socks:
            sock.close(linger=1000)
        self.ctx.term()


@pytest.fixture
def raw() -> Iterator[Raw]:
    r = Raw()
    yield r
    r.close()


class Recorder:
    """Keeps a copy of every frame a socket sends (set in place of an outbox's socket)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.frames: list[bytes] = []

    def send(self, data: bytes, flags: int = 0) -> None:
        self.frames.append(bytes(data))
        self._sock.send(data, flags=flags)

    def close(self, linger: int | None = None) -> None:
        self._sock.close(linger=linger)


DECODE = P.Verifier.decode


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every frame the kernel's inbox (or any inbox in this process) checks, recorded."""
    frames: list[bytes] = []

    def recording(self: P.Verifier, data: bytes) -> tuple[Any, ...]:
        frames.append(bytes(data))
        return DECODE(self, data)

    monkeypatch.setattr(P.Verifier, "decode", recording)
    return frames


def note(path: str, x: int) -> int:
    with open(path, "a") as f:
        f.write(f"{x}\n")
    return x


def kinds(cluster: Any, frames: list[bytes], address: str) -> list[int]:
    """The kinds of recorded frames, read with the cluster's key (as the receiver would)."""
    verifier = P.Codec(cluster._key).verifier(address)
    return [DECODE(verifier, f)[0] for f in frames]


def test_a_replayed_run_does_not_run_the_task_again(raw: Raw, tmp_path: Path) -> None:
    with jf.init(1) as client:
        client.wait_for_workers()
        cluster = client.backend.cluster  # type: ignore[attr-defined]
        (wid,) = cluster.outboxes
        recorder = Recorder(cluster.outboxes[wid]._sock)
        cluster.outboxes[wid]._sock = recorder
        runs = tmp_path / "runs"
        assert jf.submit(note, str(runs), 1).result(30) == 1
        address = f"ipc://{cluster.sock_dir / f'w{wid}'}"
        assert P.RUN in kinds(cluster, recorder.frames, address)
        replayed = list(recorder.frames)
        raw.send(address, replayed)  # every frame the worker got, again
        assert jf.submit(note, str(runs), 2).result(30) == 2
        wait_until(lambda: "replayed" in client.logs().get(wid, ""))
        assert runs.read_text().split() == ["1", "2"]
        wait_until(lambda: jf.status()["messages"]["workers"] >= len(replayed))


def test_a_replayed_done_or_heartbeat_is_dropped_by_the_kernel(raw: Raw, received: list[bytes]) -> None:
    with jf.init(1, heartbeat_interval=0.1) as client:
        client.wait_for_workers()
        cluster = client.backend.cluster  # type: ignore[attr-defined]
        held = jf.submit(np.full, 2**18, 7.0)  # 2 MiB: in the worker's shared memory
        value = held.result(30)
        wait_until(lambda: P.HEARTBEAT in kinds(cluster, list(received), cluster.inbox.address))
        frames = list(received)
        before = cluster.inbox.verifier.dropped_by.get("replayed", 0)
        raw.send(cluster.inbox.address, frames)
        wait_until(lambda: cluster.inbox.verifier.dropped_by.get("replayed", 0) >= before + len(frames))
        assert float(jf.submit(np.sum, held).result(30)) == 7.0 * 2**18  # still there, still right
        assert value[0] == 7.0
        status = jf.status()
        assert status["messages"]["dropped"] >= len(frames)
        assert status["messages"]["dropped_by"]["replayed"] >= len(frames)


def test_replayed_heartbeats_do_not_keep_a_stopped_worker_alive(raw: Raw, received: list[bytes]) -> None:
    with jf.init(1, heartbeat_interval=0.1, heartbeat_timeout=1.5) as client:
        client.wait_for_workers()
        cluster = client.backend.cluster  # type: ignore[attr-defined]
        wait_until(lambda: kinds(cluster, list(received), cluster.inbox.address).count(P.HEARTBEAT) >= 3)
        heartbeats = list(received)
        (pid,) = client.backend.cluster.pids()  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            while time.monotonic() - started < 10 and pid in client.backend.cluster.pids():  # type: ignore[attr-defined]
                raw.send(cluster.inbox.address, heartbeats)
                time.sleep(0.2)
            took = time.monotonic() - started
            assert pid not in client.backend.cluster.pids(), "the replayed heartbeats kept it alive"  # type: ignore[attr-defined]
            assert took < 6, f"declared dead after {took:.1f} s (timeout 1.5 s)"
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        assert jf.submit(abs, -4).result(30) == 4  # on its replacement


def test_a_flood_of_bad_frames_is_counted_logged_once_and_harmless(
    raw: Raw, caplog: pytest.LogCaptureFixture
) -> None:
    with jf.init(1) as client, caplog.at_level(logging.WARNING, logger="jupyter_futures"):
        client.wait_for_workers()
        cluster = client.backend.cluster  # type: ignore[attr-defined]
        frames = [os.urandom(64 + i % 200) for i in range(20_000)]
        raw.send(cluster.inbox.address, frames)
        wait_until(lambda: cluster.inbox.dropped >= len(frames), timeout=60)
        assert jf.submit(pow, 2, 5).result(30) == 32
        dropped = [r for r in caplog.records if "dropped a control message" in r.getMessage()]
        assert len(dropped) == 1
        assert jf.status()["messages"]["dropped_by"]["bad signature"] == len(frames)


def test_an_oversized_frame_is_refused_and_the_kernel_goes_on(
    raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "MAX_FRAME", 2**20)  # the kernel's inbox, made below
    with jf.init(1) as client:
        client.wait_for_workers()
        cluster = client.backend.cluster  # type: ignore[attr-defined]
        assert cluster.inbox.sock.getsockopt(zmq.MAXMSGSIZE) == 2**20
        raw.send(cluster.inbox.address, [b"x" * (2**20 + 1), b"y" * 100])
        assert jf.submit(pow, 3, 3).result(30) == 27


def print_a_lot(n: int) -> None:
    print("x" * n)


def test_a_task_whose_output_is_over_the_frame_limit_gets_a_clear_error() -> None:
    with jf.init(1) as client:
        client.wait_for_workers()
        f = jf.submit(print_a_lot, P.MAX_FRAME + 1)
        with pytest.raises(Exception, match="limit of a control message"):
            f.result(60)
        assert jf.submit(pow, 2, 2).result(30) == 4


def fail_once(*args: Any, **kwargs: Any) -> int:
    raise PermissionError(1, "Operation not permitted", "/dev/shm/jf-x/w1_1_1")


def test_an_error_in_housekeeping_does_not_stop_the_kernels_io_thread(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A dead worker's files could not be removed: the futures, the replacement and the
    shutdown must go on as if nothing happened (the I/O thread logs it once)."""
    monkeypatch.setattr(cluster_module, "remove_owner_objects", fail_once)
    with caplog.at_level(logging.ERROR, logger="jupyter_futures"):
        client = jf.init(2, heartbeat_timeout=3.0)
        try:
            client.wait_for_workers()
            for _ in range(2):
                pid = client.backend.cluster.pids()[0]  # type: ignore[attr-defined]
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda p=pid: p not in client.backend.cluster.pids())  # type: ignore[attr-defined]
                assert jf.submit(pow, 2, 8).result(30) == 256
            cluster = client.backend.cluster  # type: ignore[attr-defined]
            assert cluster._thread.is_alive()
            assert sum(cluster.housekeeping_errors.values()) == 2
        finally:
            client.shutdown()
    logged = [r.getMessage() for r in caplog.records if "went on after an error" in r.getMessage()]
    assert len(logged) == 2 and "dead worker" in logged[0] and "shutdown" in logged[1]  # once each
