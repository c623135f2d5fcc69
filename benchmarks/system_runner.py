"""One engine in one process: ``python -m benchmarks.system_runner SYSTEM --out PATH ...``.

Started by :mod:`benchmarks.runner` in a session of its own.  Sequence::

    startup   import + init + first no-op task          (timed)
    warm-up   50 no-op tasks, then idle_pss              (PSS of the process tree)
    groups    for each: one run at warm-up size, then up to --repeat measured runs
              (no new one once the group has used --budget seconds), each group
              bounded by --workload-timeout (SIGALRM)
    shutdown  shutdown() until no process of the tree is left (timed)

After every group the samples so far are written to ``--out`` (atomically), so a run killed
on timeout still reports what it measured.  ``--lifecycle`` stops after the warm-up and
only measures startup, idle_pss and shutdown; ``SYSTEM=floors`` measures the floors.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import config, floors, procs, report, tasks
from benchmarks.profile import profiling
from benchmarks.systems import System, load
from benchmarks.workloads import Outcome, Sample, Workloads, error_text

SHUTDOWN_TIMEOUT = 30.0


class WorkloadTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so no per-metric handler swallows it."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise WorkloadTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Recorder:
    """The system runner's result file, rewritten after every step."""

    def __init__(self, path: Path, system: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {"system": system, "pid": os.getpid(), "metrics": {}, "finished": False}

    def _metric(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = self.data["metrics"].setdefault(name, report.new_entry())
        return entry

    def add(self, name: str, sample: Sample, warmup: bool = False) -> None:
        entry = self._metric(name)
        if isinstance(sample, Outcome):
            if sample.na:
                entry["na"] = sample.na
            else:
                entry["error"] = entry["error"] or sample.error
        else:
            entry["warmup" if warmup else "samples"].append(sample)

    def fail_unfinished(self, names: list[str], error: str) -> None:
        """Mark the metrics of an aborted group; those with samples keep them."""
        for name in names:
            entry = self._metric(name)
            if not entry["samples"] and not entry["na"]:
                entry["error"] = entry["error"] or error

    def flush(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


def run_floors(rec: Recorder, sizes: config.Sizes, repeat: int, limit: float) -> None:
    for name, measure in floors.measurements(sizes).items():
        try:
            with time_limit(limit):
                for _ in range(repeat):
                    rec.add(name, measure())
        except (Exception, WorkloadTimeout) as exc:
            rec.add(name, Outcome(error=error_text(exc)))
        rec.flush()


def run_system(rec: Recorder, system: System, args: argparse.Namespace, tag: str | None) -> None:
    sizes = config.SMOKE if args.smoke else config.FULL
    t0 = time.perf_counter()
    try:
        with time_limit(args.workload_timeout):
            system.init(config.N_WORKERS)
            system.result(system.submit(tasks.noop))
            rec.add("startup", time.perf_counter() - t0)
            rec.data["version"] = system.version()
            system.wait([system.submit(tasks.noop) for _ in range(50)])
    except (Exception, WorkloadTimeout) as exc:
        rec.data["fatal"] = error_text(exc)
        rec.flush()
        try:
            system.shutdown()
        except Exception:
            pass
        return
    time.sleep(0.5)  # let the engine go idle before reading its memory
    tree = procs.system_processes(tag)
    rec.add("idle_pss", procs.memory_of(tree)[1])
    rec.data["processes"] = [procs.describe(p) for p in tree]
    rec.flush()

    if not args.lifecycle:
        workloads = Workloads(system, tag)
        for group in args.groups:
            names = [m.name for m in config.metrics_of([group])]
            try:
                with time_limit(args.workload_timeout):
                    if not args.smoke:
                        for name, sample in workloads.run(group, config.WARMUP).items():
                            rec.add(name, sample, warmup=True)
                    started = time.perf_counter()
                    with profiling(args.profile, args.rate):
                        for i in range(args.repeat):
                            if i and time.perf_counter() - started > args.budget:
                                break
                            for name, sample in workloads.run(group, sizes).items():
                                rec.add(name, sample)
            except WorkloadTimeout as exc:
                rec.fail_unfinished(names, f"{group} workloads {exc}")
            except Exception as exc:
                rec.fail_unfinished(names, error_text(exc))
            rec.flush()

    t0 = time.perf_counter()
    try:
        with time_limit(SHUTDOWN_TIMEOUT + 5):
            system.shutdown()
            left = procs.wait_gone(tag, timeout=SHUTDOWN_TIMEOUT)
        if left:
            rec.add("shutdown", Outcome(error=f"{len(left)} processes left: {procs.describe(left[0])}"))
        else:
            rec.add("shutdown", time.perf_counter() - t0)
    except (Exception, WorkloadTimeout) as exc:
        rec.add("shutdown", Outcome(error=error_text(exc)))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.system_runner")
    p.add_argument("system", choices=[*config.SYSTEMS, "floors"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--groups", default=",".join(config.GROUPS[1:]))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--lifecycle", action="store_true", help="startup, idle_pss and shutdown only")
    p.add_argument("--budget", type=float, default=10.0, help="seconds per group before repeating stops")
    p.add_argument("--workload-timeout", type=float, default=180.0)
    p.add_argument("--profile", type=Path, help="a speedscope file: py-spy samples the measured runs")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second (--profile)")
    args = p.parse_args(argv)
    args.groups = [g for g in args.groups.split(",") if g and g != "lifecycle"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rec = Recorder(args.out, args.system)
    rec.flush()
    if args.system == "floors":
        run_floors(rec, config.SMOKE if args.smoke else config.FULL, args.repeat, args.workload_timeout)
    else:
        system = load(args.system)
        rec.data["notes"] = system.notes
        run_system(rec, system, args, os.environ.get(procs.TAG_ENV))
    rec.data["finished"] = True
    rec.flush()
    return 1 if rec.data.get("fatal") else 0


if __name__ == "__main__":
    sys.exit(main())
