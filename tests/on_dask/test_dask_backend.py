"""The public API on a real Dask cluster: scheduler and workers as separate processes, each
worker on its own loopback address (see ``dask_cluster.py``)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import psutil
import pytest
from dask_cluster import DaskCluster, dask_client, dask_cluster  # noqa: F401 - fixtures

import jupyter_futures as jf
from jupyter_futures import errors

pytestmark = pytest.mark.timeout(180)


def make(i: int) -> list[int]:
    return [i, i + 1, i + 2]


def combine(*parts: list[int] | int) -> int:
    return sum(p if isinstance(p, int) else sum(p) for p in parts)


class Box:
    """A custom object holding a future: Dask itself does not look inside it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner


def open_box(box: Box) -> int:
    return sum(box.inner)


def where_am_i() -> str:
    from distributed import get_worker

    return str(get_worker().address)


def boom(x: int) -> float:
    return 1 / x


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start
        self.thread = threading.get_ident()

    def add(self, k: int) -> int:
        assert threading.get_ident() == self.thread, "calls run on the actor's own thread"
        self.n += k
        return self.n

    def slow_add(self, k: int) -> int:
        time.sleep(0.05)
        return self.add(k)


def fan_out(n: int) -> int:
    return sum(jf.gather([jf.submit(pow, 2, i) for i in range(n)]))


def spin(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "finished"


def pid_then_sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def chatty(n: int) -> int:
    for i in range(n):
        print(f"line {i}")
    return n


def test_connect_by_address_submit_and_a_dag_with_fan_in(dask_client: jf.Client) -> None:
    assert dask_client.backend.name == "dask" and dask_client.n_workers == 2
    layer = [jf.submit(make, i) for i in range(12)]
    for _ in range(2):
        layer = [jf.submit(combine, layer[i], layer[(i + 1) % 12], layer[(i + 3) % 12]) for i in range(12)]
    first = [sum(make(i)) for i in range(12)]
    second = [first[i] + first[(i + 1) % 12] + first[(i + 3) % 12] for i in range(12)]
    third = [second[i] + second[(i + 1) % 12] + second[(i + 3) % 12] for i in range(12)]
    assert jf.gather(layer, timeout=60) == third


def test_identical_calls_are_separate_futures_and_futures_inside_objects_are_inputs(
    dask_client: jf.Client,
) -> None:
    a, b = jf.submit(make, 1), jf.submit(make, 1)
    assert a.id != b.id and dask_client.backend._records[a.id].key != dask_client.backend._records[b.id].key
    assert jf.submit(open_box, Box(a)).result(30) == 6


def test_remote_errors_keep_their_type_and_dependents_name_the_failed_input(dask_client: jf.Client) -> None:
    bad = jf.submit(boom, 0)
    with pytest.raises(ZeroDivisionError) as info:
        bad.result(30)
    assert isinstance(info.value, jf.RemoteException)
    assert "1 / x" in info.value.remote_traceback and "in boom" in info.value.remote_traceback
    dependent = jf.submit(combine, bad)
    with pytest.raises(jf.UpstreamDependencyFailedException, match=f"input future {bad.id} \\(boom\\)"):
        dependent.result(30)


def test_an_unsatisfiable_requirement_fails_at_once_naming_the_largest_worker(dask_client: jf.Client) -> None:
    started = time.monotonic()
    with pytest.raises(jf.UnsatisfiableRequirementError, match=r"largest Dask worker .*offers cpu=2"):
        jf.submit(make, 1, min_gpu=1)
    with pytest.raises(jf.UnsatisfiableRequirementError):
        jf.submit(make, 1, min_cpu=3)
    assert time.monotonic() - started < 5
    # a custom resource one worker offers: the work runs there
    workers = dask_client.backend._workers(fresh=True)
    [licensed] = [a for a, w in workers.items() if "licence" in w["resources"]]
    assert {jf.submit(where_am_i, resources={"licence": 1}).result(30) for _ in range(4)} == {licensed}


def test_locality_runs_where_the_value_lives(dask_client: jf.Client) -> None:
    block = jf.submit(make, 7)
    [here] = jf.locality(block)
    assert isinstance(here.worker, str) and here.worker.startswith("tcp://127.0.0.")
    assert {jf.submit(where_am_i, locality=here).result(30) for _ in range(4)} == {here.worker}
    # beside a value not made yet: submit does not wait, the work runs where it lands
    pending = jf.submit(spin, 1.0)
    started = time.monotonic()
    beside = [jf.submit(where_am_i, locality=pending) for _ in range(3)]
    assert time.monotonic() - started < 1.0
    [there] = jf.locality(pending)
    assert {f.result(30) for f in beside} == {there.worker}


def test_put_and_wait_and_as_completed(dask_client: jf.Client) -> None:
    ref = jf.put(list(range(100)))
    assert ref.done() and jf.submit(sum, ref).result(30) == 4950
    fs = [jf.submit(pow, 2, i) for i in range(10)]
    done, _ = jf.wait(fs, timeout=60)
    assert len(done) == 10
    assert sorted(f.result() for f in jf.as_completed(fs, timeout=60)) == [2**i for i in range(10)]


def test_actor_calls_run_in_order_on_the_actors_own_thread(dask_client: jf.Client) -> None:
    counter = jf.create_actor(Counter, 10).result(30)
    calls = [counter.slow_add(1) if i % 7 == 0 else counter.add(1) for i in range(200)]
    assert [c.result(60) for c in calls] == list(range(11, 211))
    # actor results are full futures: inputs of tasks and of other calls
    assert jf.submit(combine, [calls[-1].result()], [0]).result(30) == 210
    assert counter.add(calls[0]).result(30) == 221
    bad = counter.add("x")
    with pytest.raises(TypeError):
        bad.result(30)
    assert counter.add(1).result(30) == 222  # the actor survives its call's error
    view = dask_client.backend.actor_view(counter.id)
    assert view is not None and view.state == "alive" and view.calls_done >= 203
    jf.kill_actor(counter)
    with pytest.raises(jf.ActorDiedError):
        counter.add(1).result(30)


def test_nested_submission_on_a_single_threaded_worker_does_not_deadlock(
    dask_cluster: DaskCluster, tmp_path: Any
) -> None:
    one = DaskCluster(tmp_path, n_workers=1, nthreads=1)
    try:
        one.wait_for_workers(1)
        with jf.init(address=one.address):
            assert jf.submit(fan_out, 5).result(60) == 31
    finally:
        one.stop()


def test_cancel_interrupts_running_work(dask_client: jf.Client) -> None:
    f = jf.submit(spin, 60)
    deadline = time.monotonic() + 30
    while f.state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f.state == "running"
    assert f.cancel() and f.cancelled()
    deadline = time.monotonic() + 10
    running: list[str] = ["?"]
    while running and time.monotonic() < deadline:
        from jupyter_futures.dask import worker as remote

        answers = dask_client.backend._client.run(remote.running_keys, dask_client.cluster_id)
        running = [k for keys in answers.values() for k in keys]
        time.sleep(0.1)
    assert running == [], "the task kept running on its worker"


def stubborn(seconds: float) -> str:
    """Swallows every interrupt, as code stuck in a C call would ignore it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
    return "outlived its cancel"


def test_a_task_that_ignores_its_cancel_gets_its_worker_restarted_after_the_grace(
    dask_cluster: DaskCluster,
) -> None:
    dask_cluster.wait_for_workers(2)
    c = jf.init(address=dask_cluster.address, cancel_grace=1.0)
    try:
        f = jf.submit(stubborn, 120)
        deadline = time.monotonic() + 30
        while f.state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        host = _host(c.backend._records[f.id].worker)
        before = {_host(a): p for a, p in dask_cluster.worker_pids().items()}
        stuck = psutil.Process(before[host])
        assert f.cancel() and f.cancelled()
        stuck.wait(timeout=60)  # its nanny stops the stuck process after the grace ...
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # ... and starts a fresh one on the same host
            now = {_host(a): p for a, p in dask_cluster.worker_pids().items()}
            if len(now) == 2 and now.get(host) not in (None, before[host]):
                break
            time.sleep(0.1)
        assert now[host] != before[host], (before, now)
        assert all(now[h] == p for h, p in before.items() if h != host), "only its worker restarts"
        assert jf.submit(pow, 2, 5).result(60) == 32
    finally:
        c.shutdown()


def _host(address: str | None) -> str:
    return str(address).rsplit(":", 1)[0]  # tcp://127.0.0.2:41234 -> tcp://127.0.0.2


def _window(seconds: float) -> tuple[float, float, str]:
    from distributed import get_worker

    start = time.time()
    time.sleep(seconds)
    return start, time.time(), str(get_worker().name)


def test_cpu_and_memory_requirements_use_the_workers_resources(tmp_path: Any) -> None:
    """Workers that advertise CPU and MEMORY resources: min_cpu and min_ram are counted
    against them, so two min_cpu=2 tasks on a 2-CPU worker run one after the other, and
    they never go to a worker offering less."""
    cluster = DaskCluster(tmp_path, n_workers=0, nthreads=4)
    cluster.add_worker(0, resources=["CPU=2 MEMORY=2e9"])
    cluster.add_worker(1, resources=["CPU=1 MEMORY=1e9"])
    try:
        cluster.wait_for_workers(2)
        c = jf.init(address=cluster.address)
        try:
            both = [jf.submit(_window, 1.0, min_cpu=2) for _ in range(2)]
            (_, e1, w1), (s2, _, w2) = sorted(jf.gather(both, timeout=60))
            assert w1 == w2 == "w0", "only w0 offers CPU=2"
            assert s2 >= e1 - 0.05, "the second ran while the first held both CPUs"
            big = [jf.submit(_window, 0.5, min_ram=1.5e9) for _ in range(2)]
            assert {w for _, _, w in jf.gather(big, timeout=60)} == {"w0"}
            assert len(jf.gather([jf.submit(_window, 0.1, min_cpu=1) for _ in range(4)], timeout=60)) == 4
            with pytest.raises(jf.UnsatisfiableRequirementError, match="cpu=3"):
                jf.submit(_window, 0, min_cpu=3)
        finally:
            c.shutdown()
    finally:
        cluster.stop()


Output = list[tuple[int, str, str]]


def collect_output(client: jf.Client) -> Output:
    """What reaches the kernel from tasks, as (future id, stream, text), as it arrives."""
    got: Output = []
    client.backend.set_output_handler(lambda fid, stream, text: got.append((fid, stream, text)))
    return got


def wait_for_output(got: Output, arrived: Any, timeout: float = 10.0) -> None:
    """Until ``arrived(got)`` (bounded: the assertions after it say what is missing)."""
    deadline = time.monotonic() + timeout
    while not arrived(got) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_output_reaches_the_kernel_tagged_with_its_future(dask_client: jf.Client) -> None:
    got = collect_output(dask_client)
    f = jf.submit(chatty, 3)
    assert f.result(30) == 3
    wait_for_output(got, lambda got: "line 2" in "".join(t for _, _, t in got))
    assert {fid for fid, _, _ in got} == {f.id}
    assert "".join(t for _, s, t in got if s == "stdout") == "line 0\nline 1\nline 2\n"


def test_killing_the_worker_mid_task_reruns_it_elsewhere(
    dask_client: jf.Client, dask_cluster: DaskCluster
) -> None:
    f = jf.submit(pid_then_sleep, 3.0, name="victim")
    deadline = time.monotonic() + 30
    while f.state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = dask_client.backend._records[f.id].worker
    os.kill(dask_cluster.worker_pids()[worker], signal.SIGKILL)
    assert isinstance(f.result(90), int)


def test_allow_reconstruction_false_never_runs_twice(
    dask_client: jf.Client, dask_cluster: DaskCluster
) -> None:
    dask_cluster.wait_for_workers(2)
    once = jf.submit(make, 5, allow_reconstruction=False)
    once.result(30)
    [here] = jf.locality(once)
    os.kill(dask_cluster.worker_pids()[here.worker], signal.SIGKILL)
    dependent = jf.submit(combine, once)
    with pytest.raises(jf.UpstreamDependencyFailedNoReconstructionAllowed):
        dependent.result(90)


def test_shutdown_disconnects_without_stopping_the_cluster(dask_cluster: DaskCluster) -> None:
    dask_cluster.wait_for_workers(2)
    c = jf.init(address=dask_cluster.address)
    session = c.cluster_id
    slow = jf.submit(spin, 30)
    c.shutdown()
    with pytest.raises(errors.ClusterClosedError):
        slow.result(5)
    import distributed

    from jupyter_futures.dask import worker as remote

    with distributed.Client(dask_cluster.address, set_as_default=False, timeout=10) as other:
        assert len(other.scheduler_info()["workers"]) == 2  # still running
        assert not any(other.run(remote.forget_session, session).values())  # nothing of ours left
        assert not any(k.startswith("spin-") for k in other.run_on_scheduler(_scheduler_keys))


def _scheduler_keys(dask_scheduler: Any = None) -> list[str]:
    return [str(k) for k in dask_scheduler.tasks]


def test_an_actor_whose_worker_dies_fails_its_calls_or_restarts(
    dask_client: jf.Client, dask_cluster: DaskCluster
) -> None:
    dask_cluster.wait_for_workers(2)
    mortal = jf.create_actor(Counter).result(30)
    phoenix = jf.create_actor(Counter, 100, max_restarts=1).result(30)
    assert mortal.add(1).result(30) == 1 and phoenix.add(1).result(30) == 101
    pids = dask_cluster.worker_pids()
    for actor in (mortal, phoenix):
        where = dask_client.backend.actor_view(actor.id).worker
        if pids.get(where):
            os.kill(pids.pop(where), signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(jf.ActorDiedError):
        mortal.add(1).result(30)
    assert time.monotonic() - started < 15
    with pytest.raises(jf.ActorDiedError):
        mortal.add(1).result(30)  # and every later call
    # created again from its constructor arguments: calls after the restart reach it
    deadline = time.monotonic() + 60
    while True:
        try:
            value = phoenix.add(1).result(30)
            break
        except jf.ActorDiedError:  # the call in flight at its death
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert value == 101
    assert dask_client.backend.actor_view(phoenix.id).state == "alive"


def add_through(counter: Any, k: int) -> int:
    """A task calling an actor whose handle it was given."""
    return int(counter.add(k).result(30))


def test_tasks_call_actors_through_their_handles(dask_client: jf.Client) -> None:
    counter = jf.create_actor(Counter).result(30)
    assert counter.add(1).result(30) == 1
    assert jf.submit(add_through, counter, 10).result(60) == 11
    assert sorted(jf.gather([jf.submit(add_through, counter, 1) for _ in range(5)], timeout=60)) == list(
        range(12, 17)
    )
    assert counter.add(0).result(30) == 16


def test_a_locality_to_a_dead_worker_follows_the_rebuilt_value(
    dask_client: jf.Client, dask_cluster: DaskCluster
) -> None:
    dask_cluster.wait_for_workers(2)
    block = jf.submit(make, 9)
    [here] = jf.locality(block)
    os.kill(dask_cluster.worker_pids()[here.worker], signal.SIGKILL)
    moved = jf.submit(where_am_i, locality=here)
    where = moved.result(90)
    assert where != here.worker
    [now] = jf.locality(block)  # rebuilt, beside the work that asked for it
    assert now.worker == where and block.result() == [9, 10, 11]


def test_connect_names_the_workers_that_cannot_run_this_kernels_work(tmp_path: Any) -> None:
    from dask_cluster import TESTS

    other = tmp_path / "other-version"
    (other / "jupyter_futures-0.0.1.dist-info").mkdir(parents=True)
    (other / "jupyter_futures-0.0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: jupyter_futures\nVersion: 0.0.1\n"
    )
    missing = tmp_path / "missing"
    (missing / "jupyter_futures").mkdir(parents=True)
    (missing / "jupyter_futures" / "__init__.py").write_text(
        "raise ImportError('jupyter_futures is not installed')\n"
    )
    cluster = DaskCluster(tmp_path, n_workers=0)
    try:
        for i, folder in enumerate((other, missing)):
            path = os.pathsep.join(map(str, (folder, TESTS, TESTS / "on_dask")))
            cluster.add_worker(i, env={"PYTHONPATH": path})
        cluster.add_worker(2)
        cluster.wait_for_workers(3)
        with pytest.raises(jf.errors.WorkerEnvironmentError) as info:
            jf.init(address=cluster.address)
        text = str(info.value)
        assert "2 of 4 Dask processes" in text and "127.0.0.2" in text and "127.0.0.3" in text
        assert "127.0.0.4" not in text and "'jupyter_futures': '0.0.1'" in text
        assert (
            "cannot import jupyter_futures" in text
            and f"pip install 'jupyter_futures=={jf.__version__}'" in text
        )
        assert jf.current.current_client_or_none() is None  # nothing half-connected is left
    finally:
        cluster.stop()


def show_things() -> str:
    from IPython.display import display

    print("before")
    display({"text/plain": "a rich value", "text/html": "<b>a rich value</b>"}, raw=True)
    return "shown"


def test_display_in_a_task_reaches_the_kernel_after_what_it_printed(dask_client: jf.Client) -> None:
    got = collect_output(dask_client)
    f = jf.submit(show_things)
    assert f.result(30) == "shown"
    wait_for_output(got, lambda got: any(s == "display" for _, s, _ in got))
    streams = [s for _, s, _ in got]
    assert streams == ["stdout", "display"], got
    bundle = json.loads(got[1][2])
    assert bundle["data"]["text/html"] == "<b>a rich value</b>"


def test_plain_arguments_go_to_dask_as_they_are_and_stay_values(dask_client: jf.Client) -> None:
    existing = jf.submit(make, 1)
    key = dask_client.backend._records[existing.id].key
    # a string that names a Dask key is a string, not that key's value
    assert jf.submit(str.upper, key).result(30) == key.upper()
    assert jf.submit(pow, 2.0, 3).result(30) == 8.0
    assert jf.submit(combine, 1, 2, 3).result(30) == 6
    with pytest.raises(ZeroDivisionError):
        jf.submit(boom, 0).result(30)


def plot_and_show() -> str:
    import matplotlib.pyplot as plt

    plt.plot([1, 2, 3], [1, 4, 9])
    plt.title("from a Dask worker")
    plt.show()
    return "plotted"


def test_matplotlib_figures_of_a_task_reach_the_kernel(dask_client: jf.Client) -> None:
    got = collect_output(dask_client)
    f = jf.submit(plot_and_show)
    assert f.result(60) == "plotted"
    wait_for_output(got, lambda got: any(s == "display" for _, s, _ in got))
    [figure] = [json.loads(t) for fid, s, t in got if s == "display" and fid == f.id]
    assert figure["data"]["image/png"] and "Figure" in figure["data"]["text/plain"]


def test_scale_goes_to_the_cluster_object_it_was_given() -> None:
    """``jf.init(address=cluster)`` with a Dask cluster object: ``jf.scale(n)`` is that
    cluster's ``scale(n)``, and returns once the workers are there (or gone)."""
    from multiprocessing import resource_tracker

    from distributed import LocalCluster

    tracker = resource_tracker._resource_tracker  # started by LocalCluster(processes=True)
    tracker_before = tracker._pid
    cluster = LocalCluster(  # everything on loopback, on ports the system picks
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
    )
    try:
        c = jf.init(address=cluster)
        try:
            jf.scale(2)
            assert len(jf.status()["workers"]) == 2
            assert jf.gather([jf.submit(pow, 2, i) for i in range(4)], timeout=60) == [1, 2, 4, 8]
            jf.scale(1)
            assert len(jf.status()["workers"]) == 1
            assert jf.submit(pow, 3, 2).result(60) == 9
        finally:
            c.shutdown()
    finally:
        cluster.close()
        if tracker_before is None:  # it would live as long as this interpreter: not a leak, but ours
            tracker._stop()


def test_min_gpu_runs_on_the_workers_that_advertise_a_gpu(tmp_path: Any) -> None:
    """A GPU worker started the dask-cuda way (one GPU each, advertised as the ``GPU``
    resource): ``min_gpu`` work runs there and only there, and status() shows it."""
    cluster = DaskCluster(tmp_path, n_workers=0)
    try:
        cluster.add_worker(0, resources=["GPU=1"])
        cluster.add_worker(1)
        cluster.wait_for_workers(2)
        with jf.init(address=cluster.address) as client:
            workers = client.backend._workers(fresh=True)  # type: ignore[attr-defined]
            [gpu_worker] = [a for a, w in workers.items() if w["resources"].get("GPU") == 1]
            ran = {f.result(30) for f in [jf.submit(where_am_i, min_gpu=1) for _ in range(6)]}
            assert ran == {gpu_worker}
            rows = {w["id"]: w for w in client.status()["workers"]}
            assert rows[gpu_worker]["capacity"]["GPU"] == 1.0
            assert all(w["gpus"] == [] for w in rows.values())  # no NVML on these workers
            with pytest.raises(jf.UnsatisfiableRequirementError):
                jf.submit(where_am_i, min_gpu=2)
    finally:
        cluster.stop()


def test_a_dask_workers_own_gpu_monitor_is_shown() -> None:
    """What distributed's SystemMonitor adds to a worker's metrics when pynvml finds a GPU
    (the key names of distributed/system_monitor.py), as status() rows."""
    from jupyter_futures.dask.records import dask_gpus

    metrics = {"cpu": 3.0, "gpu-memory-total": 85520809984, "gpu_utilization": 41, "gpu_memory_used": 2 << 30}
    assert dask_gpus({"gpu": {"name": "NVIDIA H100 80GB HBM3"}}, metrics) == [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "utilization": 41.0,
            "memory_used": 2 << 30,
            "memory_total": 85520809984,
        }
    ]
    assert dask_gpus({}, {"cpu": 3.0}) == []
