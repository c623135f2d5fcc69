"""GPUs on a CPU-only machine: detection against recorded NVML and ``nvidia-smi`` answers
(``tests/fake_nvml``: a stand-in for the hardware, not for our code), and real worker
processes that see their own devices in ``CUDA_VISIBLE_DEVICES``, share one by fractions,
keep it when replaced, and report its memory in ``status()``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Beacon, signal_beacon

import jupyter_futures as jf
from jupyter_futures import gpus
from jupyter_futures.gpus import Gpu, GpuSlot

FAKE = Path(__file__).resolve().parents[1] / "fake_nvml"
H100 = "NVIDIA H100 80GB HBM3"
H100_BYTES = 85520809984


@pytest.fixture
def two_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process, and the workers it starts, see a recorded two-H100 machine."""
    machine = tmp_path / "machine.json"
    shutil.copy(FAKE / "two_h100.json", machine)
    monkeypatch.syspath_prepend(str(FAKE))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    monkeypatch.setenv("JF_FAKE_NVML", str(machine))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield machine
    sys.modules.pop("pynvml", None)


def devices_seen(beacon_path: str | None = None, hold: float = 0.0) -> tuple[int, str | None, str | None]:
    """Task code: the worker's pid and the devices CUDA would show it."""
    if beacon_path:
        signal_beacon(beacon_path, os.getpid())
    time.sleep(hold)
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("CUDA_DEVICE_ORDER")


def allocate_on_my_device(machine: str, nbytes: int) -> str:
    """Task code: what a CuPy allocation does to the recorded machine's answers."""
    index = int(os.environ["CUDA_VISIBLE_DEVICES"])
    data = json.loads(Path(machine).read_text())
    data["devices"][index]["memory_used"] += nbytes
    data["devices"][index]["utilization"] = 87
    Path(machine).write_text(json.dumps(data))
    return os.environ["CUDA_VISIBLE_DEVICES"]


def wait_until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- detection ----------------------------------------------------------------------------


def test_nvml_finds_the_recorded_devices_within_cuda_visible_devices(two_gpus: Path) -> None:
    found = gpus.detect({})
    assert [(g.index, g.name, g.memory_total) for g in found] == [(i, H100, H100_BYTES) for i in (0, 1)]
    assert found[1].uuid.startswith("GPU-c0a9")
    assert [g.index for g in gpus.detect({"CUDA_VISIBLE_DEVICES": "1"})] == [1]
    assert [g.index for g in gpus.detect({"CUDA_VISIBLE_DEVICES": found[1].uuid})] == [1]
    assert gpus.detect({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert gpus.detect({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_without_nvml_cuda_visible_devices_then_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(FAKE)])
    assert [g.index for g in gpus.detect({"CUDA_VISIBLE_DEVICES": "0,2"})] == [0, 2]
    smi = tmp_path / "nvidia-smi"  # what `nvidia-smi -L` printed on the recorded machine
    smi.write_text(
        "#!/bin/sh\n"
        f"echo 'GPU 0: {H100} (UUID: GPU-5b1f2f3e-6c8d-4f1e-9a57-0d4c2b7e9a11)'\n"
        f"echo 'GPU 1: {H100} (UUID: GPU-c0a9e3d2-71b4-4e55-8d0a-6f3e1b2c4d22)'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    found = gpus.detect({})
    assert [(g.index, g.name) for g in found] == [(0, H100), (1, H100)]
    assert found[0].uuid == "GPU-5b1f2f3e-6c8d-4f1e-9a57-0d4c2b7e9a11"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpus.detect({}) == []  # no NVML, no nvidia-smi: no GPU offered


def test_plan_shares_devices_out() -> None:
    two = [Gpu(0), Gpu(1)]
    assert gpus.plan(None, None, two) == [GpuSlot((0,), 1.0), GpuSlot((1,), 1.0)]  # one worker each
    assert gpus.plan(None, [1], two) == [GpuSlot((1,), 1.0)]
    assert gpus.plan(2, None, two) == [GpuSlot((0, 1), 2.0)]
    assert gpus.plan(0.5, None, two) == [GpuSlot((0,), 0.5)] * 2 + [GpuSlot((1,), 0.5)] * 2
    assert gpus.plan(0, None, two) == []
    assert gpus.plan(None, None, []) == []  # none found, none declared
    assert gpus.plan(1, None, []) == [GpuSlot((), 1.0)]  # declared: every worker, pinned to nothing
    with pytest.raises(ValueError, match=r"no GPU \[5\]"):
        gpus.plan(None, [5], two)
    with pytest.raises(ValueError, match="whole number"):
        gpus.plan(1.5, None, two)
    with pytest.raises(ValueError, match="1/n"):
        gpus.plan(0.3, None, two)


# -- real workers -------------------------------------------------------------------------


def test_each_gpu_worker_sees_its_own_device_and_the_rest_see_none(two_gpus: Path, tmp_path: Path) -> None:
    with jf.init(3) as client:
        client.wait_for_workers()
        caps = {w["id"]: w["capacity"].get("gpu", 0) for w in client.status()["workers"]}
        assert sorted(caps.values()) == [0, 1, 1]
        # two min_gpu=1 tasks at once: both run together, on different devices
        a, b = Beacon(tmp_path), Beacon(tmp_path)
        try:
            fa = client.submit(devices_seen, a.path, 1.0, min_gpu=1)
            fb = client.submit(devices_seen, b.path, 1.0, min_gpu=1)
            a.wait(), b.wait()
        finally:
            a.close(), b.close()
        (pid_a, dev_a, order_a), (pid_b, dev_b, order_b) = fa.result(30), fb.result(30)
        assert {dev_a, dev_b} == {"0", "1"} and pid_a != pid_b
        assert order_a == order_b == "PCI_BUS_ID"
        # plain work may run anywhere; the CPU-only worker sees no device at all
        plain = [client.submit(devices_seen, None, 0.2) for _ in range(9)]
        seen = {r[1] for r in jf.gather(plain, timeout=60)}
        assert "" in seen and seen <= {"", "0", "1"}
        # a third GPU task waits for a device rather than landing on the CPU-only worker
        gpu_only = jf.gather([client.submit(devices_seen, min_gpu=1) for _ in range(6)], timeout=60)
        assert {r[1] for r in gpu_only} <= {"0", "1"}


def test_fractions_of_a_device_run_side_by_side(two_gpus: Path, tmp_path: Path) -> None:
    with jf.init(1, cpus_per_worker=3, gpus=[1]) as client:
        beacons = [Beacon(tmp_path) for _ in range(2)]
        try:
            halves = [client.submit(devices_seen, b.path, 2.0, min_gpu=0.5) for b in beacons]
            for b in beacons:
                b.wait()  # both halves started before either ended
        finally:
            for b in beacons:
                b.close()
        assert {f.result(30)[1] for f in halves} == {"1"}
        third = client.submit(devices_seen, None, 0.0, min_gpu=0.5)
        assert third.result(30)[1] == "1"
        with pytest.raises(jf.UnsatisfiableRequirementError):
            client.submit(devices_seen, min_gpu=2).result(30)


def test_workers_sharing_devices_by_halves(two_gpus: Path, tmp_path: Path) -> None:
    with jf.init(4, gpus_per_worker=0.5) as client:
        beacons = [Beacon(tmp_path) for _ in range(4)]
        try:  # four at once, one per worker (one slot each)
            fs = [client.submit(devices_seen, b.path, 1.0, min_gpu=0.5) for b in beacons]
            for b in beacons:
                b.wait()
        finally:
            for b in beacons:
                b.close()
        seen = dict(f.result(30)[:2] for f in fs)
        assert sorted(seen.values()) == ["0", "0", "1", "1"]


def test_a_replaced_worker_keeps_its_device(two_gpus: Path) -> None:
    with jf.init(2, gpus=[1]) as client:
        pid, dev, _ = client.submit(devices_seen, min_gpu=1).result(30)
        assert dev == "1"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: pid not in {w["pid"] for w in client.status()["workers"]}, 20)
        client.wait_for_workers()
        new_pid, new_dev, _ = client.submit(devices_seen, min_gpu=1).result(30)
        assert new_pid != pid and new_dev == "1"


def test_workers_added_later_take_the_free_devices(two_gpus: Path) -> None:
    with jf.init(1) as client:
        client.wait_for_workers()
        client.scale(3)
        client.wait_for_workers(3)
        assert sorted(w["capacity"].get("gpu", 0) for w in client.status()["workers"]) == [0, 1, 1]
        seen = {client.submit(devices_seen, min_gpu=1).result(30)[1] for _ in range(3)}
        assert seen <= {"0", "1"}
        client.scale(1)  # two retire, their devices free again
        wait_until(lambda: len(client.status()["workers"]) == 1, 30)
        client.scale(3)
        client.wait_for_workers(3)
        assert sorted(w["capacity"].get("gpu", 0) for w in client.status()["workers"]) == [0, 1, 1]


def test_status_shows_each_workers_device_memory(two_gpus: Path) -> None:
    with jf.init(2) as client:
        client.wait_for_workers()

        def rows() -> dict[str, dict[str, object]]:
            return {str(g["index"]): dict(g) for w in client.status()["workers"] for g in w["gpus"]}

        wait_until(lambda: set(rows()) == {"0", "1"})
        before = rows()
        assert before["0"]["name"] == H100 and before["0"]["memory_total"] == H100_BYTES
        assert before["0"]["memory_used"] == 565182464 and before["0"]["utilization"] == 0.0
        device = client.submit(allocate_on_my_device, str(two_gpus), 2 << 30, min_gpu=1).result(30)
        wait_until(lambda: rows()[device]["memory_used"] == 565182464 + (2 << 30))
        assert rows()[device]["utilization"] == 87.0
        # the dashboard's GPUs section: one row per device, its memory and how busy it is
        from jupyter_futures.jupyter.widgets.dashboard import Dashboard

        board = Dashboard(client, {})
        try:
            wait_until(lambda: "GPUs" in board.value and "87%" in board.value)
            assert board.value.count(H100) == 2
            assert "2.5 GiB / 79.6 GiB" in board.value  # 539 MiB + 2 GiB on the busy one
        finally:
            board.close()


def test_without_gpus_a_declared_count_pins_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(FAKE)])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no nvidia-smi here either
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with jf.init(2, gpus_per_worker=1) as client:
        client.wait_for_workers()
        assert all(w["capacity"]["gpu"] == 1 and w["gpus"] == [] for w in client.status()["workers"])
        _pid, dev, order = client.submit(devices_seen, min_gpu=1).result(30)
        assert dev is None and order is None  # the environment is the kernel's, as before
        client.scale(3)  # a worker added later offers the declared GPU too
        client.wait_for_workers(3)
        assert [w["capacity"]["gpu"] for w in client.status()["workers"]] == [1, 1, 1]
    with jf.init(2) as client:
        assert all("gpu" not in w["capacity"] for w in client.status()["workers"])
        from jupyter_futures.jupyter.widgets.dashboard import Dashboard

        board = Dashboard(client, {})
        try:
            wait_until(lambda: "Workers" in board.value)
            assert "GPUs" not in board.value  # no section where no worker has one
        finally:
            board.close()
