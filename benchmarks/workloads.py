"""The measurements, written once against :class:`benchmarks.systems.base.System`.

Each workload group returns one sample per metric: a number, or an :class:`Outcome`
saying why there is none (``n/a`` for a missing feature, an error text otherwise).  A
failing metric never stops the others of its group unless they depend on it.
"""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as cf_wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import tasks
from benchmarks.config import Sizes
from benchmarks.procs import MemorySampler
from benchmarks.systems.base import NotSupported, System


@dataclass(frozen=True)
class Outcome:
    """Why a metric has no number: ``na`` (feature missing) or an error text."""

    na: str | None = None
    error: str | None = None


Sample = float | Outcome
Samples = dict[str, Sample]


def error_text(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame, short enough for a table cell."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}{where}"[:400]


def outcome_of(exc: BaseException) -> Outcome:
    if isinstance(exc, NotSupported):
        return Outcome(na=str(exc) or "not supported")
    return Outcome(error=error_text(exc))


def _measure(out: Samples, name: str, fn: Callable[[], float]) -> bool:
    """Store ``fn()`` under ``name``, or why it failed; tell whether it worked."""
    try:
        out[name] = fn()
        return True
    except Exception as exc:  # reported in the results, never raised
        out[name] = outcome_of(exc)
        return False


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(f"wrong result: {what}")


class Workloads:
    """Runs the workload groups on one started system, keeping its actor between runs."""

    def __init__(self, system: System, tag: str | None) -> None:
        self.system = system
        self.tag = tag
        self._actor: Any = None

    def run(self, group: str, sizes: Sizes) -> Samples:
        fn: Callable[[Sizes], Samples] = getattr(self, f"group_{group}")
        return fn(sizes)

    # -- tasks -----------------------------------------------------------------------------
    def group_tasks(self, sizes: Sizes) -> Samples:
        out: Samples = {}
        _measure(out, "task_rtt", lambda: self._task_rtt(sizes.rtt_calls))
        _measure(out, "tasks_10k", lambda: self._task_burst(sizes.burst))
        return out

    def _task_rtt(self, n: int) -> float:
        s = self.system
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            s.result(s.submit(tasks.noop))
            lat.append(time.perf_counter() - t0)
        return statistics.median(lat) * 1e6

    def _task_burst(self, n: int) -> float:
        s = self.system
        t0 = time.perf_counter()
        handles = [s.submit(tasks.noop) for _ in range(n)]
        s.wait(handles)
        return n / (time.perf_counter() - t0)

    # -- actors ----------------------------------------------------------------------------
    def group_actors(self, sizes: Sizes) -> Samples:
        out: Samples = {}
        try:
            if self._actor is None:
                self._actor = self.system.create_actor(tasks.Counter)
        except Exception as exc:
            return {"actor_rtt": outcome_of(exc), "actor_10k": outcome_of(exc)}
        _measure(out, "actor_rtt", lambda: self._actor_rtt(sizes.rtt_calls))
        _measure(out, "actor_10k", lambda: self._actor_burst(sizes.burst))
        return out

    def _actor_rtt(self, n: int) -> float:
        s, a = self.system, self._actor
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            s.result(s.actor_call(a, "incr"))
            lat.append(time.perf_counter() - t0)
        return statistics.median(lat) * 1e6

    def _actor_burst(self, n: int) -> float:
        s, a = self.system, self._actor
        t0 = time.perf_counter()
        handles = [s.actor_call(a, "incr") for _ in range(n)]
        s.wait(handles)
        rate = n / (time.perf_counter() - t0)
        # Each call ran exactly once.  Not that they ran in submission order: Dask, for one,
        # does not promise that for calls in flight together.
        counts = sorted(s.result(h) for h in handles)
        _check(counts == list(range(counts[0], counts[0] + n)), "an actor call was lost or ran twice")
        return rate

    # -- data ------------------------------------------------------------------------------
    def group_data(self, sizes: Sizes) -> Samples:
        s, n = self.system, sizes.array_len
        out: Samples = {}
        arr = np.ones(n)
        with MemorySampler(self.tag) as mem:
            self._stored(out, arr)
            _measure(
                out, "byvalue_arg_sum", lambda: self._sum_task(lambda: s.submit(tasks.array_sum, arr), n)
            )
            _measure(out, "result_256", lambda: self._result(n))
        out["peak_mem_driver_rss"] = mem.peak_driver_rss
        out["peak_mem_total_rss"] = mem.peak_total_rss
        out["peak_mem_total_pss"] = mem.peak_total_pss
        return out

    def _stored(self, out: Samples, arr: np.ndarray) -> None:
        s, n = self.system, arr.size
        dependents = ("get_256", "stored_arg_sum")
        try:
            t0 = time.perf_counter()
            ref = s.put(arr)
            out["put_256"] = (time.perf_counter() - t0) * 1e3
        except Exception as exc:
            why = outcome_of(exc)
            out["put_256"] = why
            for m in dependents:
                out[m] = why if why.na else Outcome(error="put failed")
            return
        try:
            _measure(out, "get_256", lambda: self._get(ref, n))
            _measure(
                out,
                "stored_arg_sum",
                lambda: self._sum_task(lambda: s.submit_stored(tasks.array_sum, ref), n),
            )
        finally:
            s.free(ref)

    def _get(self, ref: Any, n: int) -> float:
        t0 = time.perf_counter()
        value = self.system.get(ref)
        ms = (time.perf_counter() - t0) * 1e3
        _check(value.shape == (n,) and value[-1] == 1.0, "get returned another array")
        return ms

    def _sum_task(self, submit: Callable[[], Any], n: int) -> float:
        t0 = time.perf_counter()
        total = self.system.result(submit())
        ms = (time.perf_counter() - t0) * 1e3
        _check(total == n, f"sum is {total}, expected {n}")
        return ms

    def _result(self, n: int) -> float:
        s = self.system
        t0 = time.perf_counter()
        value = s.result(s.submit(tasks.make_array, n))
        ms = (time.perf_counter() - t0) * 1e3
        _check(value.shape == (n,) and value[-1] == 1.0, "task returned another array")
        return ms

    # -- tree ------------------------------------------------------------------------------
    def group_tree(self, sizes: Sizes) -> Samples:
        out: Samples = {}
        _measure(out, "tree_reduce", lambda: self._tree(sizes.tree_leaves, sizes.leaf_len))
        return out

    def _tree(self, leaves: int, leaf_len: int) -> float:
        s = self.system
        t0 = time.perf_counter()
        level = [s.submit(tasks.leaf, leaf_len, 1.0) for _ in range(leaves)]
        if s.handles_as_args:
            # The whole graph at once: the engine resolves futures on the workers.
            while len(level) > 1:
                pairs = [s.submit(tasks.add, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
                level = pairs + level[len(pairs) * 2 :]
            root = s.result(level[0])
        else:
            root = self._tree_through_driver(level)
        elapsed = time.perf_counter() - t0
        _check(root.shape == (leaf_len,) and root[0] == leaves, f"root is {root[0]}, expected {leaves}")
        return elapsed

    def _tree_through_driver(self, pending_list: list[Any]) -> Any:
        """Sum any two finished values as soon as they exist (engines without future args)."""
        s = self.system
        pending = set(pending_list)
        ready: list[Any] = []
        while True:
            while len(ready) >= 2:
                pending.add(s.submit(tasks.add, ready.pop(), ready.pop()))
            if not pending:
                return ready[0]
            done, pending = cf_wait(pending, return_when=FIRST_COMPLETED)
            ready.extend(s.result(h) for h in done)
