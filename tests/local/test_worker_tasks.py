"""A worker's runners: as many tasks at once as it has slots, however they arrive."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jupyter_futures as jf

MEET_WITHIN = 10.0  # seconds a task waits for its partner before it gives up


def wait_for(path: str, within: float = MEET_WITHIN) -> bool:
    deadline = time.monotonic() + within
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def meet(mine: str, partners: str, _after: object = None) -> bool:
    """Say I am here, then wait (bounded) until my partner is too: True if we met."""
    Path(mine).touch()
    return wait_for(partners)


def test_two_slots_run_two_tasks_that_arrive_together(tmp_path: Path) -> None:
    jf.init(1, cpus_per_worker=2)
    try:
        go = tmp_path / "go"
        gate = jf.submit(wait_for, str(go), 30.0)
        # Both wait on the gate, so they become ready, and reach the worker, in one message.
        a, b = str(tmp_path / "a"), str(tmp_path / "b")
        first, second = jf.submit(meet, a, b, gate), jf.submit(meet, b, a, gate)
        go.touch()
        assert gate.result(60)
        assert first.result(60) and second.result(60), "the worker ran the two tasks one after the other"
    finally:
        jf.shutdown()
