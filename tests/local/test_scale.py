"""A long queue in a notebook: what each queued future costs the kernel, and that a queue of
them still runs right (``python -m benchmarks.scheduler_scale`` measures it at 1,000,000)."""

from __future__ import annotations

import gc
import time
import tracemalloc

import jupyter_futures as jf

QUEUED = 20_000
MAX_BYTES_PER_FUTURE = 1024


def test_a_queued_future_costs_the_kernel_at_most_a_kibibyte() -> None:
    """Everything the kernel's process allocates for a queued ``jf.submit`` (the Future, the
    client's maps, the spec, the scheduler's record, the list holding them), counted exactly
    by tracemalloc on every thread, while the only worker is busy so that all of them queue."""
    with jf.init(1) as client:
        blocker = client.submit(time.sleep, 600, name="blocker")
        deadline = time.monotonic() + 30
        while blocker.state != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert blocker.state == "running"
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            futures = [client.submit(pow, i, 2) for i in range(QUEUED)]
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert client.status()["futures"].get("pending", 0) == QUEUED  # all of them queued
        per_future = grown / QUEUED
        assert per_future <= MAX_BYTES_PER_FUTURE, f"{per_future:.0f} bytes per queued future"
        assert blocker.cancel()
        _done, not_done = jf.wait(futures, timeout=120)
        assert not not_done
        assert [f.result() for f in futures] == [i * i for i in range(QUEUED)]
