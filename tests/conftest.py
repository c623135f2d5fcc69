"""Shared fixtures. Every test proves it cleaned up: no child process, no shared-memory
segment, no socket directory and no jupyter_futures thread outlives it.

Only what this test run started counts, never another program's cluster on the machine.
The run's processes are marked by construction, through the environment they inherit::

    pytest ── TMPDIR=<basetemp>/tmp ──► kernels, notebooks, scripts, workers (inherited)
                  │
                  ├─ <tmp>/jf-<cluster>/   every cluster of the run makes its socket
                  │     ▲                  directory here, and no other program's does:
                  │     └─ inotify         the names created here are the run's cluster ids,
                  │                        even of a cluster that lived and died between checks
                  ▼
    leftovers(): /dev/shm/jf-<id>/ (objects and lock), <tmp>/jf-<id>/ for those ids;
                 processes: descendants, and any process whose environment has that TMPDIR
                 (a killed kernel's workers are re-parented away from us, not forgotten)
    at the end of the run: no file of any cluster the run saw (notebooks under nbval, which
                 have no per-test check, included)
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from kernels import SETUP, Kernel, start, stop

import jupyter_futures as jf
from jupyter_futures.current import current_client_or_none
from jupyter_futures.local.store import fallback_dir

SHM = Path("/dev/shm")


# A cluster's id in the names of what it leaves: jf-<id> (its object directory in /dev/shm,
# and its private directory in <tmp>), .jf-staging-<id> (being made).
_CLUSTER_ID = re.compile(r"^\.?jf[_-](?:staging-)?([0-9a-f]{6,32})(?=[_.-]|$)")

_IN_MOVED_TO, _IN_CREATE, _IN_Q_OVERFLOW = 0x80, 0x100, 0x4000
_EVENT = struct.Struct("iIII")  # struct inotify_event, then `len` bytes of name


class _Created:
    """The names created in one directory, from inotify: the kernel queues them until read,
    so a directory made and removed between two reads is still seen."""

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if (
            self._fd < 0
            or libc.inotify_add_watch(self._fd, os.fsencode(directory), _IN_CREATE | _IN_MOVED_TO) < 0
        ):
            raise OSError(ctypes.get_errno(), f"cannot watch {directory}")

    def read(self) -> list[str]:
        names: list[str] = []
        while True:
            try:
                buf = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return names
            offset = 0
            while offset < len(buf):
                _, mask, _, length = _EVENT.unpack_from(buf, offset)
                start = offset + _EVENT.size
                offset = start + length
                # On overflow names are lost, but the directory's listing still has the
                # clusters that left something there.
                if length and not mask & _IN_Q_OVERFLOW:
                    names.append(os.fsdecode(buf[start:offset].rstrip(b"\0")))

    def close(self) -> None:
        os.close(self._fd)


class Run:
    """What this test run started: its cluster ids and its processes (see the module doc)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started = time.time()
        self._created = _Created(tmp)
        self._ids: set[str] = set()
        self._before: set[str] = set()

    def _update(self) -> None:
        for name in [*self._created.read(), *os.listdir(self.tmp)]:
            if m := _CLUSTER_ID.match(name):
                self._ids.add(m[1])

    def begin(self) -> None:
        """From here on, ``cluster_ids`` are those of clusters started after this call."""
        self._update()
        self._before = set(self._ids)

    def cluster_ids(self) -> set[str]:
        self._update()
        return self._ids - self._before

    def all_cluster_ids(self) -> set[str]:
        """Every cluster the run started, in tests, notebooks, kernels and scripts alike."""
        self._update()
        return set(self._ids)

    def processes(self) -> list[psutil.Process]:
        me = psutil.Process()
        kept = {pid for pids in kept_processes for pid in pids()}
        found = {p.pid: p for p in me.children(recursive=True) if p.pid not in kept}
        for p in psutil.process_iter(["create_time"]):
            if p.pid in found or p.pid in kept or p.pid == me.pid or p.info["create_time"] < self.started - 1:
                continue
            try:
                if p.environ().get("TMPDIR") == str(self.tmp):
                    found[p.pid] = p
            except (psutil.Error, OSError):  # gone, or another user's
                pass
        return list(found.values())

    def close(self) -> None:
        self._created.close()


_run: list[Run] = []

kept_processes: list[Callable[[], set[int]]] = []
"""Processes a module-wide fixture keeps across its tests (a Dask cluster): not leaks
while it lives; the fixture checks they are gone when it ends."""


@pytest.fixture(scope="session", autouse=True)
def run_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Give the whole run, and every process it starts, a temporary directory of its own."""
    tmp = tmp_path_factory.mktemp("tmp", numbered=False)
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = str(tmp)
    run = Run(tmp)
    _run.append(run)
    yield run
    # Last, over the whole run: what no test's own check sees (a notebook's kernel under
    # nbval, a kernel killed at the end of a test) must be gone too.
    deadline = time.monotonic() + 10.0
    while (left := files_of(run.all_cluster_ids(), tmp)) and time.monotonic() < deadline:
        time.sleep(0.1)
    _run.remove(run)
    run.close()
    if left:
        pytest.fail(f"the test run left files of its clusters behind: {left[:10]}")
    if saved[0] is None:
        del os.environ["TMPDIR"]
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]


def _describe(p: psutil.Process) -> str | None:
    try:
        if p.status() != psutil.STATUS_ZOMBIE:
            return f"{p.pid} {' '.join(p.cmdline()[:4])}"
    except psutil.NoSuchProcess:
        pass
    return None


def leftovers() -> dict[str, list[str]]:
    """What the clusters and processes this test started have left behind."""
    run = _run[0]
    children = [d for d in map(_describe, run.processes()) if d is not None]
    ids = run.cluster_ids()
    threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("jupyter-futures"))
    return {
        "children": children,
        "segments": _named(SHM, ids) + _named(fallback_dir(), ids),
        "dirs": _named(run.tmp, ids),
        "threads": threads,
    }


def _named(directory: Path, ids: set[str]) -> list[str]:
    """The names in ``directory`` that belong to one of the clusters ``ids``."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if (m := _CLUSTER_ID.match(n)) and m[1] in ids)


def files_of(ids: set[str], tmp: Path) -> list[str]:
    """Segments, locks and directories of the clusters ``ids`` that still exist."""
    return _named(SHM, ids) + _named(fallback_dir(), ids) + _named(tmp, ids)


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
def no_leaks(run_tmp: Run) -> Iterator[None]:
    """Fail any test that leaves a process, segment, directory or thread behind."""
    if current_client_or_none() is None:  # else a module-wide cluster started before: keep its ids
        run_tmp.begin()
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
        # Our own idle writer: the pipe never reads as end-of-file between two task
        # writers (a killed one and its resubmitted copy), so select() wakes only for data.
        self._keep = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
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
                try:
                    self._buf += os.read(self._fd, 4096)
                except BlockingIOError:  # woken, but another reader's turn took it
                    continue
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        os.close(self._keep)
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


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    """A real kernel (jupyter_client) with the extension loaded and a two-worker cluster."""
    k = start()
    try:
        k.run(SETUP)
        yield k
    finally:
        stop(k)
