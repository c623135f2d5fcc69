"""Fault tolerance and lifecycle of the local cluster, with real processes and signals:
dead and hung workers, lineage, locality, requirements, retries, the store's limits,
a killed kernel, and what shutdown leaves (nothing)."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import zmq
from conftest import Beacon, assert_clean, signal_beacon
from test_actors import Counter

import jupyter_futures as jf


def wait_until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def pid_then_sleep(path: str, seconds: float) -> int:
    signal_beacon(path, os.getpid())
    time.sleep(seconds)
    return os.getpid()


def test_sigkill_mid_task_resubmits(client: jf.Client, beacon: Beacon) -> None:
    f = jf.submit(pid_then_sleep, beacon.path, 2.0)
    first = int(beacon.wait())
    os.kill(first, signal.SIGKILL)
    second = int(beacon.wait())  # the task started again, elsewhere
    assert second != first
    assert f.result(30) == second
    client.wait_for_workers(2)  # and a replacement worker came up
    assert all(w["alive"] for w in jf.status()["workers"])


def note_run_then_exit(path: str, code: int) -> None:
    with open(path, "a") as f:
        f.write("run\n")
    os._exit(code)


def test_task_that_kills_its_worker_fails_in_the_end(client: jf.Client, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    f = jf.submit(note_run_then_exit, str(runs), 3)
    with pytest.raises(jf.WorkerDiedException) as info:
        f.result(60)
    assert info.value.exitcode == 3
    assert "exited with code 3" in str(info.value)
    # What the README promises, the error says and the engine does are one number.
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    promised = int(re.search(r"resubmitted, up to (\d+) times", readme)[1])  # type: ignore[index]
    assert len(runs.read_text().splitlines()) == promised + 1
    assert f"died {promised + 1} times" in str(info.value)
    assert f"resubmitted at most {promised} times" in str(info.value)


def make_block(seed: int) -> np.ndarray:
    return np.full(200_000, float(seed))  # 1.6 MB: lives in shared memory, not inline


def worker_pid() -> int:
    return os.getpid()


def lose_and_kill(client: jf.Client, wid: int) -> int:
    """Kill worker ``wid`` and lose what it stored with it (its files go first: a SIGKILL
    alone leaves them, and the kernel would adopt them); returns its pid."""
    store = client.backend.cluster.store  # type: ignore[attr-defined]
    for directory in (store.obj_dir, store.spill_dir):
        for path in directory.glob(f"w{wid}_*") if directory.exists() else []:
            path.unlink()
    pid = next(w["pid"] for w in jf.status()["workers"] if w["id"] == wid)
    os.kill(pid, signal.SIGKILL)
    return int(pid)


def count_run(path: str, n: int) -> np.ndarray:
    with open(path, "a") as f:
        f.write("x")
    return np.full(n, 1.0)


def test_a_killed_workers_values_outlive_it_in_the_kernel(client: jf.Client, tmp_path: Path) -> None:
    """Its objects are files: the kernel adopts them, nothing is rebuilt."""
    runs = tmp_path / "runs"
    made = jf.submit(count_run, str(runs), 200_000)
    made.result(30)
    [where] = jf.locality(made)
    pid = next(w["pid"] for w in jf.status()["workers"] if w["id"] == where.worker)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: where.worker not in [w["id"] for w in jf.status()["workers"]])
    assert float(jf.submit(np.sum, made).result(30)) == 200_000.0
    assert runs.read_text() == "x"  # ran once: the copy was adopted, not rebuilt
    assert jf.locality(made) == []  # it lives in the kernel now
    client.wait_for_workers()


def test_lost_object_is_rebuilt_from_lineage(client: jf.Client) -> None:
    base = jf.submit(make_block, 2)
    double = jf.submit(np.multiply, base, 2.0)
    assert double.result(30)[0] == 4.0
    holder = jf.locality(double)[0].worker
    lose_and_kill(client, holder)
    wait_until(lambda: holder not in [w["id"] for w in jf.status()["workers"]])
    total = jf.submit(np.sum, double)  # needs double's lost copy: rebuilt first
    assert total.result(30) == 4.0 * 200_000


def test_locality_runs_beside_the_object_and_follows_a_rebuild(client: jf.Client) -> None:
    block = jf.submit(make_block, 1)
    block.result(30)
    [where] = jf.locality(block)
    holder_pid = next(w["pid"] for w in jf.status()["workers"] if w["id"] == where.worker)
    for _ in range(3):
        assert jf.submit(worker_pid, locality=where).result(30) == holder_pid
    lose_and_kill(client, where.worker)
    wait_until(lambda: where.worker not in [w["id"] for w in jf.status()["workers"]])
    moved = jf.submit(worker_pid, locality=where)
    new_pid = moved.result(30)
    assert new_pid != holder_pid
    [now] = jf.locality(block)
    assert next(w["pid"] for w in jf.status()["workers"] if w["id"] == now.worker) == new_pid


def test_no_reconstruction_allowed(client: jf.Client) -> None:
    block = jf.submit(make_block, 3, allow_reconstruction=False)
    block.result(30)
    [where] = jf.locality(block)
    lose_and_kill(client, where.worker)
    wait_until(lambda: where.worker not in [w["id"] for w in jf.status()["workers"]])
    with pytest.raises(jf.UpstreamDependencyFailedNoReconstructionAllowed):
        jf.submit(np.sum, block).result(30)


def test_hung_worker_is_detected_and_replaced(beacon: Beacon) -> None:
    with jf.init(n_workers=2, heartbeat_interval=0.1, heartbeat_timeout=1.0) as c:
        assert isinstance(c, jf.Client)
        c.wait_for_workers()
        f = jf.submit(pid_then_sleep, beacon.path, 1.0)
        stopped = int(beacon.wait())
        os.kill(stopped, signal.SIGSTOP)
        started = time.monotonic()
        rerun = int(beacon.wait(timeout=20))
        assert rerun != stopped
        assert time.monotonic() - started < 5
        assert f.result(30) == rerun
        wait_until(
            lambda: not psutil.pid_exists(stopped) or psutil.Process(stopped).status() == psutil.STATUS_ZOMBIE
        )


def test_requirements_use_declared_capacities() -> None:
    with jf.init(n_workers=2, gpus_per_worker=1, resources={"licence": 1}) as c:
        assert isinstance(c, jf.Client)
        with pytest.raises(jf.UnsatisfiableRequirementError, match=r"gpu=1"):
            jf.submit(abs, 1, min_gpu=2)
        with pytest.raises(jf.UnsatisfiableRequirementError, match="largest worker"):
            jf.submit(abs, 1, min_ram=10 * 2**50)
        with pytest.raises(jf.UnsatisfiableRequirementError, match="dongle"):
            jf.submit(abs, 1, resources={"dongle": 1})
        with pytest.raises(ValueError):
            jf.submit(abs, 1, min_cpu=-1)
        # two gpu tasks run at once (one per worker); a third waits for a free gpu
        t0 = time.monotonic()
        fs = [jf.submit(time.sleep, 0.6, min_gpu=1) for _ in range(3)]
        jf.wait(fs, timeout=30)
        assert time.monotonic() - t0 >= 1.2
        assert jf.submit(abs, -1, resources={"licence": 1}).result(30) == 1


def flaky(path: str) -> int:
    seen = Path(path).read_text().split() if Path(path).exists() else []
    with open(path, "a") as f:
        f.write(f"{os.getpid()} ")
    if not seen:
        raise RuntimeError("first attempt fails")
    return os.getpid()


def test_retry_goes_to_another_worker(client: jf.Client, tmp_path: Path) -> None:
    path = str(tmp_path / "attempts")
    assert jf.submit(flaky, path, max_retries=1).result(30) != int(Path(path).read_text().split()[0])
    pids = Path(path).read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]


def always_fails(path: str) -> None:
    with open(path, "a") as f:
        f.write("x")
    raise ValueError(f"attempt {len(Path(path).read_text())}")


def test_retries_exhausted_raise_the_last_error(client: jf.Client, tmp_path: Path) -> None:
    path = str(tmp_path / "attempts")
    with pytest.raises(ValueError, match="attempt 3"):
        jf.submit(always_fails, path, max_retries=2).result(30)


def test_store_spills_past_capacity() -> None:
    with jf.init(n_workers=1, store_capacity=8 * 2**20) as c:
        assert isinstance(c, jf.Client)
        fs = [jf.submit(np.full, 500_000, float(i)) for i in range(6)]  # 4 MB each
        values = [f.result(30) for f in fs]
        assert [v[0] for v in values] == [float(i) for i in range(6)]
        wait_until(lambda: jf.status()["objects"]["spilled"] >= 4)
        worker = jf.status()["workers"][0]
        assert worker["store_used"] <= 8 * 2**20
        # spilled objects still serve as inputs (and come back into memory)
        assert jf.submit(np.sum, fs[0]).result(30) == 0.0


def test_deleting_a_future_frees_its_object(client: jf.Client) -> None:
    f = jf.submit(np.ones, 2_000_000)
    f.result(30)
    wait_until(lambda: jf.status()["objects"]["bytes"] >= 16_000_000)
    del f
    wait_until(lambda: jf.status()["objects"]["bytes"] < 1_000_000)
    assert jf.status()["futures"].get("done", 0) == 0


def test_unsigned_messages_are_dropped(client: jf.Client) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.connect(client.backend.cluster.inbox.address)
    sock.send(b"0" * 32 + b"not a pickle")
    sock.send(b"short")
    wait_until(lambda: client.backend.cluster.inbox.dropped >= 2)
    sock.close(linger=0)
    ctx.term()
    assert jf.submit(abs, -9).result(30) == 9


def test_private_sockets_and_segments(client: jf.Client) -> None:
    sock_dir = client.backend.cluster.sock_dir
    assert stat.S_IMODE(sock_dir.stat().st_mode) == 0o700
    f = jf.submit(make_block, 1)
    f.result(30)
    segment = client.backend.cluster.store.obj_dir / client.backend.segment_of(f.id)  # type: ignore[operator]
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    for proc in [psutil.Process(), *client.backend.cluster.process_tree()]:
        for conn in proc.net_connections(kind="inet"):
            assert conn.status != psutil.CONN_LISTEN, conn
    for proc in client.backend.cluster.process_tree():
        assert client.backend.cluster._key.hex() not in " ".join(proc.cmdline())
        assert client.backend.cluster._key.hex() not in str(proc.environ())


def test_shutdown_is_quick_and_leaves_nothing() -> None:
    c = jf.init(n_workers=2)
    assert isinstance(c, jf.Client)
    c.wait_for_workers()
    refs = [jf.put(np.ones(100_000)), jf.submit(make_block, 1)]
    refs[1].result(30)
    counter = jf.create_actor(Counter).result(30)
    counter.incr().result(30)
    start = time.monotonic()
    jf.shutdown()
    assert time.monotonic() - start < 1.0
    assert_clean(within=0.5)


KERNEL = textwrap.dedent(
    """
    import sys, numpy as np, jupyter_futures as jf
    c = jf.init(n_workers=2)
    c.wait_for_workers()
    keep = [jf.put(np.ones(100_000)), jf.submit(np.ones, 100_000)]
    keep[1].result(30)
    print(c.backend.cluster.id, *c.backend.cluster.pids(), flush=True)
    sys.stdin.read()
    """
)


def test_killed_kernel_leaves_no_workers_and_its_segments_are_swept() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", KERNEL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        cluster, *pids = proc.stdout.readline().split()
        assert len(pids) == 2
        proc.kill()
        proc.wait(10)
    wait_until(lambda: not any(psutil.pid_exists(int(p)) for p in pids), timeout=5)
    # The workers removed their own objects on the way out; a new cluster sweeps the rest.
    with jf.init(n_workers=1) as c:
        assert c.submit(abs, -1).result(30) == 1
    assert not [n for n in os.listdir("/dev/shm") if cluster in n]
    assert not (Path(tempfile.gettempdir()) / f"jf-{cluster}").exists()


KILLED_AT_ONCE = textwrap.dedent(
    """
    import os, signal, sys
    import jupyter_futures as jf
    c = jf.init(2)
    print(c.backend.cluster.id, flush=True)
    os.kill(os.getpid(), int(sys.argv[1]))  # at once: its workers are only just starting
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_kernel_killed_right_after_init_leaves_nothing(sig: int) -> None:
    """Nothing else of ours runs to clean up then: its starting workers must, unaided by
    any later cluster's sweep (the lock in /dev/shm was left behind before)."""
    out = subprocess.run(
        [sys.executable, "-c", KILLED_AT_ONCE, str(int(sig))], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == -sig, out.stderr
    cluster = out.stdout.split()[0]

    def left() -> list[str]:
        shm = [n for n in os.listdir("/dev/shm") if cluster in n]
        tmp = [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"jf-{cluster}")]
        return shm + tmp

    wait_until(lambda: not left(), timeout=10)
    assert not left()
    assert_clean(within=5)


def test_actor_worker_death(client: jf.Client) -> None:
    counter = jf.create_actor(Counter).result(30)
    pid = counter.pid().result(30)
    in_flight = counter.sleep(30)
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(jf.ActorDiedError) as info:
        in_flight.result(10)
    assert info.value.exitcode == -signal.SIGKILL
    with pytest.raises(jf.ActorDiedError):
        counter.incr().result(10)
    assert time.monotonic() - started < 5


def test_actor_restarts(client: jf.Client) -> None:
    counter = jf.create_actor(Counter, 100, max_restarts=1).result(30)
    assert counter.incr().result(30) == 101
    pid = counter.pid().result(30)
    [before] = jf.status()["actors"]
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        [actor] = jf.status()["actors"]
        return actor["state"] == "alive" and actor["worker"] != before["worker"]

    wait_until(restarted)
    # The actor was created again from its constructor arguments, on a live worker.
    assert counter.incr().result(30) == 101
    assert counter.pid().result(30) != pid
    os.kill(counter.pid().result(30), signal.SIGKILL)
    with pytest.raises(jf.ActorDiedError):
        counter.incr().result(30)  # no restarts left


def test_actor_call_results_are_not_rebuilt(client: jf.Client, beacon: Beacon) -> None:
    import numpy as np

    class Maker:
        def big(self) -> np.ndarray:
            return np.ones(100_000)

        def pid(self) -> int:
            return os.getpid()

    maker = jf.create_actor(Maker).result(30)
    big = maker.big()
    big.result(30)

    def later(path: str, arr: np.ndarray) -> float:
        return float(arr.sum())

    maker.pid().result(30)
    [where] = jf.locality(big)
    lose_and_kill(client, where.worker)  # the actor's worker, and the call's value with it
    client.wait_for_workers()
    time.sleep(0.2)
    with pytest.raises(jf.UpstreamDependencyFailedNoReconstructionAllowed):
        jf.submit(later, beacon.path, big).result(30)


def test_a_view_outliving_its_future_keeps_its_memory(client: jf.Client) -> None:
    """Freed objects' files are recycled; one still mapped here must never be."""
    f = jf.submit(np.full, 1_000_000, 7.0)
    arr = f.result(30)
    tid = f.id
    del f  # the array still maps the object
    for i in range(6):  # free and make objects of the same size: recycling candidates
        jf.submit(np.full, 1_000_000, float(i)).result(30)
    time.sleep(0.6)  # a housekeeping tick drains releases
    assert tid in client.backend.cluster.state.tasks
    assert np.all(arr == 7.0)
    del arr
    wait_until(lambda: tid not in client.backend.cluster.state.tasks)


def test_a_put_right_after_dropping_a_future_writes_over_its_file(client: jf.Client) -> None:
    """The release a dropped future queues is carried out before the next big put, so the
    put copies into the freed file (touched memory, kept mapped) instead of a fresh one;
    and a value read before is never written over while it is held."""
    store = client.backend.cluster.store

    def inode_of(f: jf.Future[np.ndarray]) -> int:
        return os.stat(store.obj_dir / client.backend.segment_of(f.id)).st_ino  # type: ignore[operator]

    first = jf.put(np.full(1_000_000, 1.0))
    inode = inode_of(first)
    del first  # nothing maps it: free to recycle
    second = jf.put(np.full(1_000_000, 2.0))
    assert inode_of(second) == inode
    held = second.result()
    third = jf.put(np.full(1_000_000, 3.0))
    assert inode_of(third) != inode  # held maps it
    assert np.all(held == 2.0) and np.all(third.result() == 3.0)
    assert jf.submit(np.sum, third).result(30) == 3_000_000.0


class Keeper:
    def keep(self, arr: np.ndarray) -> float:
        self.arr = arr  # a read-only view of the caller's object, kept past the call
        return float(arr[0])

    def first(self) -> float:
        return float(self.arr[0])


def test_an_actor_keeping_an_input_view_keeps_its_memory(client: jf.Client) -> None:
    keeper = jf.create_actor(Keeper).result(30)
    ref = jf.put(np.full(1_000_000, 3.0))
    assert keeper.keep(ref).result(30) == 3.0
    tid = ref.id
    del ref
    for i in range(6):
        jf.put(np.full(1_000_000, float(i)))
    time.sleep(0.6)
    assert tid in client.backend.cluster.state.tasks  # the actor's worker holds it
    assert keeper.first().result(30) == 3.0


def mapped_objects(obj_dir: Path) -> list[str]:
    """This process's mappings of the cluster's object files (deleted ones included)."""
    with open("/proc/self/maps") as f:
        return [line for line in f if str(obj_dir) in line or "/spill/" in line]


def test_the_store_capacity_bounds_shared_memory_while_the_kernel_holds_futures() -> None:
    """Futures held but not read map nothing here, so objects the workers spill free their
    memory; a value read maps its object for as long as the value lives."""
    mib = 2**20
    with jf.init(2, store_capacity=8 * mib) as c:
        c.wait_for_workers()
        obj_dir = c.backend.cluster.store.obj_dir  # type: ignore[attr-defined]
        held = [jf.submit(np.full, mib // 8, float(i)) for i in range(48)]  # 48 MiB through 16
        jf.wait(held, timeout=60)
        # In memory: what the stores hold (at most their capacity), and nothing else: no
        # mapping here keeps the pages of an object that moved to disk.
        in_memory = sum(p.stat().st_size for p in obj_dir.iterdir())
        assert in_memory <= 2 * 8 * mib + mib, f"{in_memory / mib:.0f} MiB in memory for 16 MiB of stores"
        assert mapped_objects(obj_dir) == []
        wait_until(lambda: jf.status()["objects"]["spilled"] >= 30)  # as the heartbeats tell
        value = held[0].result(30)
        assert value[0] == 0.0 and len(mapped_objects(obj_dir)) == 1
        del value, held[0]  # the value, and the future that keeps what it read
        assert mapped_objects(obj_dir) == []
        assert [float(f.result(30)[-1]) for f in held] == [float(i) for i in range(1, 48)]


def test_a_value_whose_copy_vanished_before_it_was_read_is_rebuilt(client: jf.Client) -> None:
    f = jf.submit(np.full, 2**17, 3.0)
    jf.wait([f], timeout=30)
    [where] = jf.locality(f)
    lose_and_kill(client, where.worker)
    wait_until(lambda: where.worker not in [w["id"] for w in jf.status()["workers"]])
    assert f.result(30)[0] == 3.0  # read only now: rebuilt from its lineage
