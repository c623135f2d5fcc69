"""Resizing the local cluster with real worker processes: ``jf.scale(n)`` starts workers
or retires them (each first finishes what it runs and hands its objects to the kernel, no
copy), ``jf.restart()`` replaces every worker; the dashboard's buttons do the same."""

from __future__ import annotations

import os
import time

import numpy as np
import psutil
import pytest

import jupyter_futures as jf

pytestmark = pytest.mark.timeout(120)


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> int:
        self.n += k
        return self.n

    def pid(self) -> int:
        return os.getpid()


def slow(seconds: float, value: int) -> tuple[int, int]:
    time.sleep(seconds)
    return value, os.getpid()


def live_ids() -> list[int]:
    return sorted(w["id"] for w in jf.status()["workers"])


def test_scale_up_then_down_keeps_every_value_and_lets_running_work_finish(client: jf.Client) -> None:
    values = [jf.submit(np.full, 2**17, i) for i in range(6)]  # 1 MiB each, in the workers' stores
    jf.wait(values, timeout=30)
    files = {f.id: os.stat(client.backend.cluster.store.obj_dir / _segment(client, f)).st_ino for f in values}  # type: ignore[attr-defined]
    jf.scale(4)
    assert len(live_ids()) == 4
    assert len({pid for _, pid in jf.gather([jf.submit(slow, 0.3, i) for i in range(4)], timeout=30)}) == 4
    running = [jf.submit(slow, 0.5, i) for i in range(4)]
    time.sleep(0.2)  # all four run now
    before = {w["pid"] for w in jf.status()["workers"]}
    started = time.monotonic()
    jf.scale(1)
    assert time.monotonic() - started >= 0.2, "retiring waits for what runs"
    assert len(live_ids()) == 1
    assert [v for v, _ in jf.gather(running, timeout=30)] == [0, 1, 2, 3]  # nothing ran twice or failed
    assert all(f.result()[0] == i for i, f in enumerate(values))
    for f in values:  # handed to the kernel's store under the same file: no copy, no rebuild
        assert os.stat(client.backend.cluster.store.obj_dir / _segment(client, f)).st_ino == files[f.id]  # type: ignore[attr-defined]
    gone = before - {w["pid"] for w in jf.status()["workers"]}
    assert len(gone) == 3 and not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in gone
    )
    assert float(jf.submit(np.sum, values[4]).result(30)) == 4 * 2**17
    with pytest.raises(ValueError, match="positive number"):
        jf.scale(0)


def _segment(client: jf.Client, f: jf.Future) -> str:
    outcome = client.backend.cluster.query(lambda st: st.tasks[f.id].outcome, client.backend.cluster.state)  # type: ignore[attr-defined]
    assert outcome.segment is not None
    return outcome.segment


def test_a_retired_workers_actor_starts_again_elsewhere_or_fails(client: jf.Client) -> None:
    # One CPU each, so the two actors live on the two workers, one each.
    keeps = jf.create_actor(Counter, min_cpu=1, max_restarts=1).result(30)
    plain = jf.create_actor(Counter, min_cpu=1).result(30)
    assert keeps.add(2).result(30) == 2 and plain.add(3).result(30) == 3
    where = {a["id"]: a["worker"] for a in jf.status()["actors"]}
    assert len(set(where.values())) == 2
    jf.scale(1)  # one worker goes, and the actor it had with it
    [staying] = live_ids()
    if where[keeps.id] == staying:  # the other one went: it had no restarts left
        assert keeps.add(1).result(30) == 3
        with pytest.raises(jf.ActorDiedError):
            plain.add(1).result(30)
    else:  # it went: created again on the worker that stays, from scratch
        assert keeps.add(1).result(30) == 1
        assert plain.add(1).result(30) == 4
    assert {a["worker"] for a in jf.status()["actors"] if a["state"] == "alive"} == {staying}


def test_restart_replaces_every_worker_and_reruns_what_ran(client: jf.Client) -> None:
    stored = jf.submit(np.full, 2**17, 7)
    assert stored.result(30)[0] == 7
    before = {w["id"]: w["pid"] for w in jf.status()["workers"]}
    running = jf.submit(slow, 1.0, 42)
    time.sleep(0.3)
    jf.restart()
    after = {w["id"]: w["pid"] for w in jf.status()["workers"]}
    assert len(after) == 2 and not set(after) & set(before) and not set(after.values()) & set(before.values())
    value, pid = running.result(30)
    assert value == 42 and pid in after.values(), "what was running ran again on a new worker"
    assert float(jf.submit(np.sum, stored).result(30)) == 7 * 2**17  # rebuilt from lineage
    for p in before.values():
        assert not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie"


def test_the_dashboard_buttons_scale_and_restart(client: jf.Client) -> None:
    from jupyter_futures.jupyter.widgets.dashboard import Dashboard

    board = Dashboard(client, {})
    try:
        controls = board.controls
        controls.workers.value = 3
        controls.scale_button.click()
        assert controls.done.wait(60)
        assert len(live_ids()) == 3 and controls.message.value == "3 workers"
        before = live_ids()
        controls.restart_button.click()
        assert controls.done.wait(60)
        assert len(live_ids()) == 3 and not set(live_ids()) & set(before)
        controls.workers.value = 2
        controls.scale_button.click()
        assert controls.done.wait(60)
        assert len(live_ids()) == 2
    finally:
        board.close()


def test_scaling_right_after_init_retires_workers_that_are_still_starting() -> None:
    jf.init(3)  # workers start in the background: some may not exist yet
    try:
        jf.scale(1)
        assert len(live_ids()) == 1
        assert jf.submit(pow, 2, 3).result(30) == 8
    finally:
        jf.shutdown()
