"""jupyter_futures on Dask beside plain Dask, on the same Dask cluster, in one run.

::

    python -m benchmarks.on_dask [--repeat N] [--smoke] [--json PATH]

    LocalCluster(2 workers x 1 thread, processes) ─┬─ distributed.Client        plain Dask
                                                   └─ jf.init(address=cluster)  jupyter_futures
    each workload: one sample of each, N times, which goes first alternating; medians and
    jf / Dask ratios

Workloads: a no-op task's round trip, 2,000 no-op tasks submitted at once, an actor call's
round trip, a 64 MiB float64 array scattered (``put``) and gathered back (``result``).
Target: jupyter_futures at most 1.1x plain Dask on each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import tasks

MIB = 1024 * 1024
TARGET = 1.1


def _rtt(submit: Callable[[], Any], wait: Callable[[Any], Any], n: int) -> float:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        wait(submit())
        lat.append(time.perf_counter() - t0)
    return statistics.median(lat) * 1e6


def _rate(submit: Callable[[], Any], wait_all: Callable[[list[Any]], Any], n: int) -> float:
    t0 = time.perf_counter()
    wait_all([submit() for _ in range(n)])
    return n / (time.perf_counter() - t0)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def run(repeat: int, smoke: bool) -> dict[str, Any]:
    import distributed

    import jupyter_futures as jf

    rtt_n, burst, nbytes = (10, 50, MIB) if smoke else (200, 2000, 64 * MIB)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    dask = distributed.Client(cluster)  # the default client, as plain Dask users have it
    ours = jf.init(address=cluster)
    try:
        d_actor = dask.submit(tasks.Counter, actor=True, pure=False).result()
        j_actor = jf.create_actor(tasks.Counter).result()
        arr = np.ones(nbytes // 8)
        d_ref = dask.scatter(arr, hash=False)
        j_ref = jf.put(arr)

        def d_gather(fs: list[Any]) -> None:
            dask.gather(fs)

        workloads: dict[str, tuple[str, bool, Callable[[], float], Callable[[], float]]] = {
            "task_rtt": (
                "us", False,
                lambda: _rtt(lambda: dask.submit(tasks.noop, pure=False), lambda f: f.result(), rtt_n),
                lambda: _rtt(lambda: jf.submit(tasks.noop), lambda f: f.result(), rtt_n),
            ),
            "tasks_2k": (
                "tasks/s", True,
                lambda: _rate(lambda: dask.submit(tasks.noop, pure=False), d_gather, burst),
                lambda: _rate(lambda: jf.submit(tasks.noop), jf.wait, burst),
            ),
            "actor_rtt": (
                "us", False,
                lambda: _rtt(lambda: d_actor.incr(), lambda f: f.result(), rtt_n),
                lambda: _rtt(lambda: jf.call_actor(j_actor, "incr"), lambda f: f.result(), rtt_n),
            ),
            "scatter_64": (
                "ms", False,
                lambda: _timed(lambda: dask.scatter(arr, hash=False)),
                lambda: _timed(lambda: jf.put(arr)),
            ),
            "gather_64": (
                "ms", False,
                lambda: _timed(lambda: dask.gather(d_ref)),
                lambda: _timed(lambda: ours.backend.load(j_ref, writable=False)),
            ),
        }  # fmt: skip
        for _unit, _hib, d_fn, j_fn in workloads.values():  # warm-up
            d_fn(), j_fn()
        rows: dict[str, Any] = {}
        for name, (unit, higher, d_fn, j_fn) in workloads.items():
            d_samples, j_samples = [], []
            for i in range(repeat):  # alternating which goes first: neither inherits the other's cleanup
                if i % 2:
                    j_samples.append(j_fn())
                    d_samples.append(d_fn())
                else:
                    d_samples.append(d_fn())
                    j_samples.append(j_fn())
            d_med, j_med = statistics.median(d_samples), statistics.median(j_samples)
            cost = (d_med / j_med) if higher else (j_med / d_med)  # >1: jupyter_futures slower
            rows[name] = {"unit": unit, "dask": d_med, "jupyter_futures": j_med, "cost": cost}
        return {"repeat": repeat, "smoke": smoke, "rows": rows}
    finally:
        jf.shutdown()
        dask.close()
        cluster.close()


def table(result: dict[str, Any]) -> str:
    lines = [
        "| workload | unit | plain Dask | jupyter_futures on Dask | cost (jf / Dask) | target |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        ok = "met" if r["cost"] <= TARGET else "MISSED"
        lines.append(
            f"| {name} | {r['unit']} | {r['dask']:,.4g} | {r['jupyter_futures']:,.4g} | {r['cost']:.2f}x "
            f"| <= {TARGET}x: {ok} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.on_dask", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    result = run(1 if args.smoke else args.repeat, args.smoke)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
