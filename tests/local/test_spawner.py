"""Workers forked by the cluster's zygote: who their parent is, what they inherit from the
kernel at the moment they start, how fast a dead one is replaced, and what happens when the
zygote itself dies or cannot start. Real processes and signals throughout."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import assert_clean

import jupyter_futures as jf
from jupyter_futures.local import spawner


def wait_until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def where_and_what() -> tuple[int, str, str | None, float]:
    return os.getpid(), os.getcwd(), os.environ.get("JF_TEST_LATE"), random.random()


def draws_after(seconds: float) -> tuple[int, float, float]:
    """This worker's first draws of Python's and numpy's global generators."""
    import numpy as np

    time.sleep(seconds)  # so that two of these run at once, one on each worker
    return os.getpid(), random.random(), float(np.random.random())


def replace_one(cluster: Any) -> tuple[int, int]:
    """SIGKILL one worker; (its pid, its replacement's pid) once the replacement is up."""
    before = set(cluster.pids())
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    alive = cluster.state.alive_workers

    def replaced() -> bool:  # the death seen, the replacement started and said hello
        now = set(cluster.pids())
        return victim not in now and len(now - before) == 1 and cluster.query(alive) == len(before)

    wait_until(replaced)
    [new] = set(cluster.pids()) - before
    return victim, new


def test_the_first_workers_start_side_by_side_and_later_ones_are_forked_by_the_zygote() -> None:
    with jf.Client(2) as c:
        c.wait_for_workers()
        cluster = c.backend.cluster
        first = [psutil.Process(p) for p in cluster.pids()]
        assert {w.ppid() for w in first} == {os.getpid()}  # fresh interpreters, in parallel
        assert cluster._spawner.zygote_pid is None  # no worker died: no zygote
        _, fresh = replace_one(cluster)  # the first death starts it, in the background
        assert psutil.Process(fresh).ppid() == os.getpid()
        wait_until(lambda: cluster._spawner.zygote_pid is not None)
        zygote = psutil.Process(cluster._spawner.zygote_pid)
        assert zygote.ppid() == os.getpid()  # the kernel started it; the kernel is never forked
        _, new = replace_one(cluster)
        assert psutil.Process(new).ppid() == zygote.pid  # a fork, not a fresh interpreter
        assert os.getsid(new) == new  # in a session of its own, like the first ones
        _, newer = replace_one(cluster)
        assert psutil.Process(newer).ppid() == zygote.pid
        # two children of one zygote: their random generators are not copies of each other
        (pid1, py1, np1), (pid2, py2, np2) = jf.gather([c.submit(draws_after, 0.3) for _ in range(2)])
        assert {pid1, pid2} == {new, newer}
        assert py1 != py2 and np1 != np2
    assert_clean(within=1.0)


def test_a_replacement_starts_in_the_kernels_directory_and_environment_of_now(tmp_path: Path) -> None:
    here = os.getcwd()
    with jf.Client(1) as c:
        c.wait_for_workers()
        replace_one(c.backend.cluster)
        wait_until(lambda: c.backend.cluster._spawner.zygote_pid is not None)
        pid, cwd, late, _ = c.submit(where_and_what).result(30)
        assert (cwd, late) == (here, None)
        os.chdir(tmp_path)
        os.environ["JF_TEST_LATE"] = "set after init"
        try:
            os.kill(pid, signal.SIGKILL)
            new_pid, cwd, late, _ = c.submit(where_and_what).result(60)
        finally:
            os.chdir(here)
            del os.environ["JF_TEST_LATE"]
        assert new_pid != pid
        assert psutil.Process(new_pid).ppid() == c.backend.cluster._spawner.zygote_pid
        assert (cwd, late) == (str(tmp_path), "set after init")


def test_killing_the_zygote_takes_its_workers_and_the_cluster_carries_on() -> None:
    with jf.Client(2) as c:
        c.wait_for_workers()
        cluster = c.backend.cluster
        replace_one(cluster)
        wait_until(lambda: cluster._spawner.zygote_pid is not None)
        replace_one(cluster)
        replace_one(cluster)  # both workers are the zygote's children now
        old = set(cluster.pids())
        zygote = cluster._spawner.zygote_pid
        os.kill(zygote, signal.SIGKILL)
        wait_until(lambda: not any(psutil.pid_exists(p) for p in old))  # they die with it
        assert c.submit(pow, 2, 10).result(60) == 1024  # on replacements
        assert not set(cluster.pids()) & old
        wait_until(lambda: cluster._spawner.zygote_pid not in (None, zygote))  # and a new zygote
        _, new = replace_one(cluster)
        assert psutil.Process(new).ppid() == cluster._spawner.zygote_pid
    assert_clean(within=1.0)


def test_a_zygote_that_cannot_start_leaves_fresh_interpreters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spawner, "ZYGOTE_MODULE", "jupyter_futures.local.worker.no_such_module")
    with jf.Client(2) as c:
        c.wait_for_workers()
        cluster = c.backend.cluster
        replace_one(cluster)  # starts the zygote, which fails
        wait_until(lambda: not cluster._spawner._use_zygote or cluster._spawner.zygote_pid is not None)
        assert cluster._spawner.zygote_pid is None
        for _ in range(2):  # fresh interpreters, as before; and it is not tried again
            _, new = replace_one(cluster)
            assert psutil.Process(new).ppid() == os.getpid()
        assert c.submit(pow, 3, 2).result(30) == 9
    assert_clean(within=1.0)


KERNEL = textwrap.dedent(
    """
    import sys, jupyter_futures as jf
    c = jf.init(n_workers=2)
    c.wait_for_workers()
    import os, signal, time
    os.kill(c.backend.cluster.pids()[0], signal.SIGKILL)  # a death starts the zygote
    while c.backend.cluster._spawner.zygote_pid is None or len(c.backend.cluster.pids()) < 2:
        time.sleep(0.05)
    print(c.backend.cluster._spawner.zygote_pid, *c.backend.cluster.pids(), flush=True)
    sys.stdin.read()
    """
)


def test_a_killed_kernel_takes_its_zygote_and_workers() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", KERNEL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 3
        proc.kill()
        proc.wait(10)
    wait_until(lambda: not any(psutil.pid_exists(p) for p in pids), timeout=5)
