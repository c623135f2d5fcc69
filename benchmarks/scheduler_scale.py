"""The scheduler at scale, without processes: ``python -m benchmarks.scheduler_scale
[--futures 10000,100000,1000000] [--json PATH]``.

::

    SchedulerState (core/, pure) with 2 ready one-CPU workers
      submit N plain no-op tasks from the kernel       -> bytes per queued future, us per submit
      the workers finish them, one done() per result   -> us per event (each places the next)
      the kernel releases them                         -> bytes left per future

Memory is the growth of this process's allocations while the futures are queued
(``tracemalloc`` where N <= 100,000, else the RSS growth; a separate pass, so that the
times are not traced), the task specs included: what the kernel holds for each queued
future besides the ``Future`` object itself. Target (issue
"fastest on every row"): at most 1 KiB per future, and the time per event flat in N.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psutil

from jupyter_futures.core.instructions import RunTasks
from jupyter_futures.core.scheduler import SchedulerState
from jupyter_futures.core.specs import DRIVER, Outcome, TaskSpec

TRACE_UP_TO = 100_000  # tracemalloc is exact but slows allocation; RSS beyond that
OK = Outcome(status="ok", data=b"N.", nbytes=2)


def runs_in(instrs: list[Any]) -> list[tuple[int, int, int]]:
    return [(i.worker, m.tid, m.attempt) for i in instrs if isinstance(i, RunTasks) for m in i.tasks]


def _ready_scheduler() -> SchedulerState:
    s = SchedulerState()
    for wid in (1, 2):
        s.add_worker(wid, {"cpu": 1.0}, 0.0)
        s.worker_ready(wid, 1000 + wid, 0.0)
    return s


def _submit_all(s: SchedulerState, n: int) -> list[tuple[int, int, int]]:
    pending: list[tuple[int, int, int]] = []
    for tid in range(1, n + 1):
        spec = TaskSpec(tid=tid, kind="task", fn_hash=b"noop", fn_bytes=b"code" if tid == 1 else None)
        pending += runs_in(s.submit(spec, DRIVER, 0.0))
    return pending


def queued_bytes(n: int) -> tuple[float, str]:
    """Bytes per queued future: exact (tracemalloc) up to TRACE_UP_TO, else RSS growth."""
    gc.collect()
    s = _ready_scheduler()
    if n <= TRACE_UP_TO:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        _submit_all(s, n)
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return grown / n, "tracemalloc"
    rss0 = psutil.Process().memory_info().rss
    _submit_all(s, n)
    return (psutil.Process().memory_info().rss - rss0) / n, "rss"


def measure(n: int) -> dict[str, Any]:
    per_future, how = queued_bytes(n)
    gc.collect()
    s = _ready_scheduler()
    t0 = time.perf_counter()
    pending = _submit_all(s, n)
    submit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    events = 0
    while pending:
        wid, tid, attempt = pending.pop()
        pending += runs_in(s.done(wid, [(tid, attempt, OK)], 1.0))
        events += 1
    done_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    s.release(DRIVER, list(range(1, n + 1)), 2.0)
    release_s = time.perf_counter() - t0
    assert events == n, (events, n)
    return {
        "futures": n,
        "bytes_per_queued_future": per_future,
        "measured_by": how,
        "us_per_submit": submit_s / n * 1e6,
        "us_per_done_event": done_s / n * 1e6,
        "us_per_release": release_s / n * 1e6,
        "tasks_left": len(s.tasks),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scheduler_scale", description=__doc__.split("\n")[0]
    )
    p.add_argument("--futures", default="10000,100000,1000000")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = [measure(int(n)) for n in args.futures.split(",")]
    print("| futures | bytes per queued future | us per submit | us per done event | us per release |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['futures']:,} | {r['bytes_per_queued_future']:,.0f} ({r['measured_by']}) "
            f"| {r['us_per_submit']:.1f} | {r['us_per_done_event']:.1f} | {r['us_per_release']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
