"""Shared fixtures. Every test proves it cleaned up: no child process, no shared-memory
segment, no socket directory and no jupyter_futures thread outlives it."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import jupyter_futures as jf
from jupyter_futures.client_base import current_client_or_none

SHM = Path("/dev/shm")



def _ours() -> tuple[set[str], set[str]]:
    segments = {n for n in os.listdir(SHM) if n.startswith("jf_")} if SHM.is_dir() else set()
    tmp = Path(tempfile.gettempdir())
    dirs = {n for n in os.listdir(tmp) if n.startswith("jf-") and not n.startswith("jf-bench")}
    return segments, dirs


_baseline: list[tuple[set[str], set[str]]] = [(set(), set())]


def leftovers() -> dict[str, list[str]]:
    """What jupyter_futures may have left behind since the test started.

    Segments and directories are compared with a snapshot taken before the test, so
    clusters of other programs on this machine do not count.
    """
    me = psutil.Process()
    children = [
        f"{p.pid} {' '.join(p.cmdline()[:4])}"
        for p in me.children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
    segments, dirs = _ours()
    old_segments, old_dirs = _baseline[0]
    threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("jupyter-futures"))
    return {
        "children": children,
        "segments": sorted(segments - old_segments),
        "dirs": sorted(dirs - old_dirs),
        "threads": threads,
    }


def assert_clean(within: float = 2.0) -> None:
    """Fail unless nothing is left behind (after giving exiting processes ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        left = leftovers()
        if not any(left.values()):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"left behind: { {k: v[:10] for k, v in left.items() if v} }")
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test that leaves a process, segment, directory or thread behind."""
    if current_client_or_none() is None:
        _baseline[0] = _ours()
    yield
    client = current_client_or_none()
    if client is not None and not client.closed and client in _shared:
        return  # a module-wide cluster is checked when the module ends
    if client is not None and not client.closed:
        client_shutdown = getattr(client, "shutdown", None)
        if client_shutdown is not None:
            client_shutdown()
        pytest.fail("the test left its cluster running")
    assert_clean()


@pytest.fixture
def client() -> Iterator[jf.Client]:
    """A fresh two-worker cluster for one test."""
    c = jf.init(n_workers=2, heartbeat_timeout=3.0)
    assert isinstance(c, jf.Client)
    c.wait_for_workers()
    yield c
    started = time.monotonic()
    c.shutdown()
    assert time.monotonic() - started < 1.5, "shutdown took too long"


_shared: list[jf.Client] = []


@pytest.fixture(scope="module")
def shared_client() -> Iterator[jf.Client]:
    """One cluster for a module of tests that do not harm it."""
    c = jf.init(n_workers=2)
    assert isinstance(c, jf.Client)
    c.wait_for_workers()
    _shared.append(c)
    yield c
    _shared.remove(c)
    c.shutdown()
    assert_clean()


class Beacon:
    """A named pipe a task writes to, so a test knows exactly when the task got there.

    ``beacon.path`` goes to the task, which calls ``jf_tests_signal(path, text)``; the
    test blocks in ``beacon.wait()`` (bounded) until the text arrives.
    """

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / f"beacon-{id(self)}")
        os.mkfifo(self.path, 0o600)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._buf = b""

    def wait(self, timeout: float = 15.0) -> str:
        import select

        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the task never signalled")
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready:
                chunk = os.read(self._fd, 4096)
                if not chunk:  # writer closed before we read: poll again for the next one
                    time.sleep(0.01)
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        os.close(self._fd)


def signal_beacon(path: str, text: object) -> None:
    """Called inside a task: tell the test we are here."""
    with open(path, "w") as f:
        f.write(f"{text}\n")


@pytest.fixture
def beacon(tmp_path: Path) -> Iterator[Beacon]:
    b = Beacon(tmp_path)
    yield b
    b.close()
