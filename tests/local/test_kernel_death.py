"""A kernel that dies takes its workers, its zygote and its reaper with it, at once,
whatever the workers are running, and leaves no file. Real processes and SIGKILL.

::

    test ── python -c KERNEL ──► kernel: jf.init(2), a worker killed twice (so one worker is
      │                           fresh, one forked by the zygote), a GIL-holding task on each
      │ ◄── beacon: each task holds the GIL now
      │ ── SIGKILL ──► kernel
      └── polls (bounded): every process gone, no file of the cluster left

Before, a worker holding the GIL outlived the kernel until its C call ended (its SIGTERM
handler, in Python, waited for the GIL): 178 s for the call used here, measured.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
from conftest import Beacon, files_of

import jupyter_futures as jf

GONE_WITHIN = 3.0  # seconds from the kernel's SIGKILL to nothing of it left (measured: ~0.1)
BACKTRACK = 32  # ``(a+)+b`` against this many a's: 2**32 steps, minutes here


def wait_until(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true; the seconds it took (AssertionError past ``timeout``)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)
    return time.monotonic() - start


KERNEL = textwrap.dedent(
    """
    import os, re, signal, sys, threading, time
    import jupyter_futures as jf

    def hold_the_gil(beacon, n):
        def backtrack():
            with open(beacon, "w") as f:
                f.write(f"{os.getpid()}\\n")
            re.match(r"(a+)+b", "a" * n)

        # Off the main thread the match never runs Python signal handlers (only the main
        # thread does) and holds the GIL from start to end: no Python code of this worker,
        # handler or heartbeat, runs until it is over.
        t = threading.Thread(target=backtrack, daemon=True)
        t.start()
        t.join()

    def replace_one(cluster):
        before = set(cluster.pids())
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        alive = cluster.state.alive_workers
        deadline = time.monotonic() + 60
        while not (victim not in cluster.pids() and len(set(cluster.pids()) - before) == 1
                   and cluster.query(alive) == len(before)):
            assert time.monotonic() < deadline, "no replacement"
            time.sleep(0.01)

    c = jf.init(2)
    c.wait_for_workers()
    cluster = c.backend.cluster
    replace_one(cluster)  # the first death starts the zygote; its replacement is fresh
    deadline = time.monotonic() + 60
    while cluster._spawner.zygote_pid is None:
        assert time.monotonic() < deadline, "no zygote"
        time.sleep(0.01)
    replace_one(cluster)  # this replacement is a fork of the zygote
    hogs = [c.submit(hold_the_gil, sys.argv[1], int(sys.argv[2])) for _ in range(2)]
    print(cluster.id, cluster._reaper.proc.pid, cluster._spawner.zygote_pid, flush=True)
    sys.stdin.read()
    """
)


def descendants(pid: int) -> set[int]:
    out = set()
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.add(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def running(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_the_backtrack_lasts_far_longer_than_the_bound() -> None:
    """The call the next test runs would keep its worker alive far past the bound."""
    start = time.perf_counter()
    assert re.match(r"(a+)+b", "a" * 20) is None
    estimate = (time.perf_counter() - start) * 2 ** (BACKTRACK - 20)  # it doubles per a
    assert estimate > 10 * GONE_WITHIN, f"the backtrack would take only ~{estimate:.1f} s"


def test_a_killed_kernel_takes_workers_that_hold_the_gil_at_once(beacon: Beacon) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", KERNEL, beacon.path, str(BACKTRACK)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as kernel:
        everything: set[int] = set()
        try:
            assert kernel.stdout is not None
            cluster, reaper, zygote = kernel.stdout.readline().split()
            workers = {int(beacon.wait(60)), int(beacon.wait(60))}  # both hold the GIL now
            assert len(workers) == 2
            everything = descendants(kernel.pid)
            assert everything == {*workers, int(reaper), int(zygote)}
            parents = sorted(psutil.Process(w).ppid() for w in workers)
            assert parents == sorted([kernel.pid, int(zygote)])  # a fresh worker and a fork

            kernel.kill()
            start = time.monotonic()
            kernel.wait(10)
            wait_until(lambda: not running(everything), timeout=GONE_WITHIN)
            processes = time.monotonic() - start
            tmp = Path(tempfile.gettempdir())
            wait_until(lambda: not files_of({cluster}, tmp), timeout=GONE_WITHIN)
            took = time.monotonic() - start
            print(f"after the kernel's SIGKILL: processes gone in {processes:.3f} s, files in {took:.3f} s")
            assert took < GONE_WITHIN
        finally:
            for pid in running(everything):  # only on failure: a hog holds a CPU for minutes
                os.kill(pid, signal.SIGKILL)


def test_the_reaper_ignores_interrupts_holds_no_secret_and_leaves_with_the_cluster() -> None:
    c = jf.init(n_workers=1)
    assert isinstance(c, jf.Client)
    cluster = c.backend.cluster  # type: ignore[attr-defined]
    reaper = cluster._reaper.proc
    p = psutil.Process(reaper.pid)
    assert os.getsid(reaper.pid) == reaper.pid  # not in the kernel's process group

    def ignores_sigint() -> bool:  # set once it has started (SigIgn: a bit per signal)
        with open(f"/proc/{reaper.pid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
        return bool(mask & 1 << (signal.SIGINT - 1))

    wait_until(ignores_sigint, timeout=30)
    os.kill(reaper.pid, signal.SIGINT)  # what ipykernel sends its process group
    assert c.submit(abs, -3).result(30) == 3
    assert cluster._key.hex() not in " ".join(p.cmdline()) + str(p.environ())
    assert not [f.path for f in p.open_files() if cluster.id in f.path]  # not the lock
    c.shutdown()
    assert reaper.returncode == 0  # it left when told to, not killed
