"""The scheduler at scale: ``python -m benchmarks.scheduler_scale
[--futures 10000,100000,1000000] [--kernel 1000000] [--json PATH]``.

::

    SchedulerState (core/, pure) with 2 ready one-CPU workers, no processes
      submit N plain no-op tasks from the kernel       -> bytes per queued future, us per submit
      the workers finish them, one done() per result   -> us per event (each places the next)
      the kernel releases them                         -> us per release
      a worker dies with N queued (a pass of its own)  -> ms (it scans every record)

    the whole kernel side, in a fresh process: jf.init(1), its one worker held busy
      jf.submit(pow, i, 2) N times (all queue)          -> bytes per queued future (RSS), us per submit
      the worker freed: all run, jf.wait(all)           -> us per future finished
      the futures dropped                               -> the scheduler's records left

Memory of the pure scheduler is the growth of this process's allocations while the futures
are queued (``tracemalloc`` where N <= 100,000, else the RSS growth; a separate pass, so that
the times are not traced), the task specs included. The kernel row is everything a queued
future costs a notebook: the ``Future``, the client's maps, the spec, the scheduler's record,
the list holding the futures. Targets: at most 1 KiB per queued future at 1,000,000, and the
time per event flat in N.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
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


def worker_death_ms(n: int) -> float:
    """One worker's death while ``n`` futures are queued (its work goes back to the queue).
    A pass of its own: in the memory pass, records laid out among tracemalloc's own traces
    scan 3x slower."""
    gc.collect()
    s = _ready_scheduler()
    _submit_all(s, n)
    t0 = time.perf_counter()
    s.worker_died(1, -9, 1.0)
    return (time.perf_counter() - t0) * 1e3


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
    death_ms = worker_death_ms(n)
    return {
        "futures": n,
        "bytes_per_queued_future": per_future,
        "measured_by": how,
        "us_per_submit": submit_s / n * 1e6,
        "us_per_done_event": done_s / n * 1e6,
        "us_per_release": release_s / n * 1e6,
        "ms_per_worker_death": death_ms,
        "tasks_left": len(s.tasks),
    }


def in_kernel(n: int) -> dict[str, Any]:
    """N futures queued behind a busy worker, in this process (run it in a fresh one)."""
    import jupyter_futures as jf

    proc = psutil.Process()
    with jf.init(1):
        blocker = jf.submit(time.sleep, 3600, name="blocker")
        deadline = time.monotonic() + 60
        while blocker.state != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        gc.collect()
        rss0 = proc.memory_info().rss
        t0 = time.perf_counter()
        futures = [jf.submit(pow, i, 2) for i in range(n)]
        submit_s = time.perf_counter() - t0
        gc.collect()
        per_future = (proc.memory_info().rss - rss0) / n
        queued = jf.status()["futures"].get("pending", 0)
        t0 = time.perf_counter()
        blocker.cancel()
        done, not_done = jf.wait(futures, timeout=max(60.0, n / 1000))
        drain_s = time.perf_counter() - t0
        right = sum(1 for i, f in enumerate(futures) if f.result() == i * i) if not not_done else 0
        del futures, done, not_done, blocker
        gc.collect()
        deadline = time.monotonic() + 60  # releases reach the scheduler in batches
        while (left := sum(jf.status()["futures"].values())) and time.monotonic() < deadline:
            time.sleep(0.05)
    return {
        "futures": n,
        "queued": queued,
        "bytes_per_queued_future": per_future,
        "us_per_submit": submit_s / n * 1e6,
        "us_per_finished_future": drain_s / n * 1e6,
        "right_results": right,
        "records_left": left,
    }


def kernel_row(n: int, timeout: float = 1800.0) -> dict[str, Any]:
    """``in_kernel(n)`` in a fresh interpreter, so that nothing else is in its memory."""
    with tempfile.TemporaryDirectory(prefix="jf-scale-") as tmp:
        out = Path(tmp) / "kernel.json"
        cmd = [sys.executable, "-m", "benchmarks.scheduler_scale", "--in-kernel", str(n), "--json", str(out)]
        subprocess.run(cmd, check=True, timeout=timeout)
        row: dict[str, Any] = json.loads(out.read_text())
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scheduler_scale", description=__doc__.split("\n")[0]
    )
    p.add_argument("--futures", default="10000,100000,1000000", help="pure-scheduler sizes ('' for none)")
    p.add_argument("--kernel", type=int, default=1_000_000, help="futures in the kernel row (0: none)")
    p.add_argument("--in-kernel", type=int, help=argparse.SUPPRESS)  # the kernel row's child
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.in_kernel:
        assert args.json is not None
        args.json.write_text(json.dumps(in_kernel(args.in_kernel)))
        return 0
    rows = [measure(int(n)) for n in args.futures.split(",") if n]
    print("the pure scheduler (core/), two ready workers, no processes:")
    print("| futures | bytes per queued future | us per submit | us per done | us per release | death |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['futures']:,} | {r['bytes_per_queued_future']:,.0f} ({r['measured_by']}) "
            f"| {r['us_per_submit']:.1f} | {r['us_per_done_event']:.1f} | {r['us_per_release']:.1f} "
            f"| {r['ms_per_worker_death']:.1f} ms |"
        )
    kernel = kernel_row(args.kernel) if args.kernel else None
    if kernel is not None:
        k = kernel
        print("\nthe kernel side, jf.init(1) with its worker busy, jf.submit(pow, i, 2):")
        print("| futures | bytes per queued future (RSS) | us per submit | us per finished | right | left |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {k['futures']:,} | {k['bytes_per_queued_future']:,.0f} | {k['us_per_submit']:.1f} "
            f"| {k['us_per_finished_future']:.1f} | {k['right_results']:,} | {k['records_left']} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"scheduler": rows, "kernel": kernel}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
