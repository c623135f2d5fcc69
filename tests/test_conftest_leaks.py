"""The leak check itself (``leftovers`` and ``assert_clean`` in conftest.py): it flags what
this test run started, and only that.

Another program's cluster is played by a process outside the run: forked twice (so it is
nobody's descendant here) with an environment of its own (so it keeps the system's
temporary directory), as a notebook opened next to the tests would be.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import SHM, _run, assert_clean, files_of, leftovers

import jupyter_futures as jf
from jupyter_futures.local.store import ClusterLock

# The first process exits at once: its child, in a session of its own, is the program.
DETACHED = """
import os, sys
if os.fork():
    os._exit(0)
os.setsid()
"""

OUTSIDER = (
    DETACHED
    + """
import jupyter_futures as jf
with jf.init(n_workers=1) as client:
    client.wait_for_workers()
    block = jf.put(bytes(1 << 20))  # an object in shared memory
    workers = [w["pid"] for w in jf.status()["workers"]]
    print(client.cluster_id, os.getpid(), *workers, flush=True)
    sys.stdin.read()  # until the test closes the pipe
"""
)


class Detached:
    """A program started from here that is not a descendant of the test process."""

    def __init__(self, code: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        try:
            self.proc.wait(30)  # the first process, which only forked
            ready, _, _ = select.select([self.proc.stdout], [], [], 60)
            self.words = self.proc.stdout.readline().split() if ready else []
            assert self.words, "the detached program ended or never said it was ready"
        except BaseException:
            self.proc.stdin.close()
            self.proc.stdout.close()
            raise

    def stop(self, pid: int) -> None:
        """Close its stdin, which ends it, and wait (bounded) until ``pid`` is gone."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            psutil.Process(pid).wait(30)
        except psutil.NoSuchProcess:
            pass
        self.proc.stdout.close()


def outside_env() -> dict[str, str]:
    """The environment of a program started by someone else: no TMPDIR of this run."""
    return {k: v for k, v in os.environ.items() if k != "TMPDIR"}


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.fixture
def outsider() -> Iterator[tuple[str, list[int]]]:
    """A live cluster of another program: its cluster id, and its kernel's and workers' pids."""
    program = Detached(OUTSIDER, outside_env())
    cluster, *pids = program.words
    owner = int(pids[0])
    try:
        yield cluster, [int(p) for p in pids]
    finally:
        program.stop(owner)
    assert not [n for n in os.listdir(SHM) if cluster in n], "the outsider left files"


def test_a_cluster_of_another_program_is_not_this_tests(outsider: tuple[str, list[int]]) -> None:
    cluster, pids = outsider
    # What makes it another program's: none of its processes descends from this one, and
    # its files are where such a program keeps them.
    assert not set(pids) & descendants()
    assert (SHM / f"jf-{cluster}" / "lock").exists()
    assert [n for n in os.listdir(SHM / f"jf-{cluster}") if n.startswith("w0_")]
    assert Path(f"/tmp/jf-{cluster}").is_dir()
    left = leftovers()
    assert cluster not in str(left)
    assert not [c for c in left["children"] if int(c.split()[0]) in pids]
    assert_clean(within=0)


def test_a_leak_of_the_tests_own_cluster_is_flagged() -> None:
    client = jf.init(n_workers=1)
    assert isinstance(client, jf.Client)
    cluster = client.cluster_id
    client.shutdown()
    # Its files, as a cluster whose kernel died would leave them: its object directory with
    # the lock file (held here, so that no other program's sweep removes them before the
    # check) and a worker's object, and its private directory on disk with a spilled one.
    lock = ClusterLock(SHM, cluster)
    (lock.dir / "w1_7_1").touch()
    private = Path(tempfile.gettempdir()) / f"jf-{cluster}"
    (private / "spill").mkdir(parents=True)
    try:
        left = leftovers()
        assert left["segments"] == [lock.dir.name]
        assert left["dirs"] == [private.name]
        with pytest.raises(pytest.fail.Exception, match=cluster):
            assert_clean(within=0.2)
    finally:
        shutil.rmtree(private)
        lock.release()
    assert_clean(within=0)


def test_the_end_of_run_check_sees_what_a_notebook_kernel_left() -> None:
    """A notebook run by nbval has no per-test check; the run's last check (the session
    fixture's teardown, ``files_of`` over every cluster id the run saw) covers it."""
    code = "import jupyter_futures as jf\nc = jf.init(n_workers=1)\nprint(c.cluster_id)\nc.shutdown()\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    cluster = out.stdout.split()[0]
    run = _run[0]
    lock = ClusterLock(SHM, cluster)  # what its kernel would leave if it died without a sweep
    try:
        assert files_of(run.all_cluster_ids(), run.tmp) == [lock.dir.name]
    finally:
        lock.release()
    assert files_of(run.all_cluster_ids(), run.tmp) == []


def test_a_cluster_started_by_a_child_is_the_tests_even_after_the_child_ended() -> None:
    code = "import jupyter_futures as jf\nwith jf.init(n_workers=1) as c:\n    print(c.cluster_id)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    cluster = done.stdout.split()[-1]
    # The child and its workers are gone, so no lock or process says whose the id was;
    # the run's temporary directory, which the child inherited, does.
    lock = ClusterLock(SHM, cluster)
    (lock.dir / "w0_3_1").touch()
    try:
        assert leftovers()["segments"] == [lock.dir.name]
    finally:
        lock.release()


def test_an_orphan_of_the_test_is_still_flagged() -> None:
    # A process of the run's whose parent died is re-parented away from the test process
    # (as a killed kernel's workers are); it still carries the run's environment.
    orphan = Detached(DETACHED + "print(os.getpid(), flush=True)\nsys.stdin.read()\n", dict(os.environ))
    pid = int(orphan.words[0])
    try:
        assert pid not in descendants()
        assert [c for c in leftovers()["children"] if int(c.split()[0]) == pid]
    finally:
        orphan.stop(pid)
