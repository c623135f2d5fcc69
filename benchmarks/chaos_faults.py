"""The chaos soak's fault thread: SIGKILL a random worker every period, SIGSTOP one now and
then, and note when each is gone from the cluster.

::

    every `every` s ─► jf.status()["workers"]: live workers that said hello, not stopped
                       ├─ SIGKILL one at random                 (through a pidfd: never a reused pid)
                       └─ every `stop_every`-th period: SIGSTOP another; the engine must
                          find it silent (heartbeat_timeout) and kill it itself
    always           ─► a pidfd per worker (select): readable the moment it exits, with
                        its cause (kill, stop, or "other": a worker the engine killed on its
                        own); every POLL s the cluster's pid list is read, for new workers
                        and for when the engine let go of a killed one
    the engine's log ─► "killing worker N": the moment it killed a silent worker (KillLog)

The deaths are what :mod:`benchmarks.chaos_model` replays against the execution log. The
thread is bounded by a deadline and by a count of polls, and is stopped (``finish``) before
the soak checks its results; a worker it stopped and the engine has not yet declared dead
is waited for (bounded), so every stop is accounted for before the cluster shuts down.
"""

from __future__ import annotations

import logging
import os
import random
import select
import signal
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import jupyter_futures as jf
from benchmarks.chaos_model import Death

POLL = 0.02  # seconds between looks at the cluster's pid list (deaths come through pidfds)


class KillLog(logging.Handler):
    """When the engine killed each worker it found silent, from its own log record (made
    just before its signal): exact, where this thread sees the pidfd only once it next gets
    the GIL, which the kernel's I/O thread may hold a few ms while it already resubmits."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._offset = time.time() - time.monotonic()  # log records carry time.time()
        self.at: dict[int, float] = {}  # wid -> time.monotonic() of its kill

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("killing worker ") and record.args:
            wid = record.args[0] if isinstance(record.args, tuple) else None
            if isinstance(wid, int):
                self.at[wid] = record.created - self._offset


@dataclass
class Fault:
    kind: str  # "kill" or "stop"
    pid: int
    wid: int
    at: float  # time.monotonic() of the signal
    objects: int  # objects in its store then, as jf.status() reported (last heartbeat)
    running: int  # futures jf.status() showed running there
    gone: float | None = None  # kill: when the engine let go of it; stop: when it was killed


class FaultInjector(threading.Thread):
    """Kills and stops workers of ``client``'s cluster until ``finish`` (see the module doc)."""

    def __init__(
        self, client: jf.Client, every: float, stop_every: int, seconds: float, seed: int = 0
    ) -> None:
        super().__init__(name="chaos-faults", daemon=True)
        self._cluster: Any = client.backend.cluster  # type: ignore[attr-defined]
        self.every = every
        self.stop_every = stop_every
        self.seconds = seconds
        self._rng = random.Random(seed)
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        self.deaths: list[Death] = []
        self.skipped = 0  # periods with no worker to fault (all starting)
        self.error: str | None = None
        self._known: set[int] = set()  # in the cluster's pid list at the last look
        self._fds: dict[int, int] = {}  # pid -> pidfd, until it exits
        self._by_pid: dict[int, Fault] = {}
        self._wids: dict[int, int] = {}  # pid -> worker id
        self._kill_log = KillLog()
        logging.getLogger("jupyter_futures").addHandler(self._kill_log)
        self.observe()

    # -- the thread --------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # reported in the soak's results, never silent
            self.error = f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        started = time.monotonic()
        next_fault = started + self.every
        period = 0
        for _ in range(int(self.seconds / POLL) + 1):
            now = time.monotonic()
            if self._halt.is_set() or now - started > self.seconds:
                return
            self.observe()
            if now >= next_fault:
                self._fault(period)
                period += 1
                next_fault += self.every
            # Timed on purpose: this thread injects faults on a clock; what it waits for in
            # between is a worker's exit, which wakes it at once.
            self.wait_deaths(POLL)

    def _fault(self, period: int) -> None:
        """One period's faults, among the workers that have said hello (killing one that
        is still starting would test the engine's start-up limits, not its recovery)."""
        with self._lock:
            stopped = {f.pid for f in self.faults if f.kind == "stop"}
        alive = set(self._cluster.pids())
        workers: list[dict[str, Any]] = [
            dict(w)
            for w in jf.status()["workers"]
            if w["alive"] and w["pid"] in alive and w["pid"] not in stopped
        ]
        if not workers:
            self.skipped += 1
            return
        victim = self._rng.choice(workers)
        self._signal("kill", signal.SIGKILL, victim)
        if self.stop_every and period % self.stop_every == self.stop_every - 1:
            others = [w for w in workers if w is not victim]
            if others:
                self._signal("stop", signal.SIGSTOP, self._rng.choice(others))

    def _signal(self, kind: str, sig: int, worker: dict[str, Any]) -> None:
        pid = int(worker["pid"])
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        # Timed before the signal: after it, this thread may wait for the GIL while the
        # engine already reacts (an instant too early is the smaller error of the two).
        at = time.monotonic()
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            return
        finally:
            os.close(fd)
        fault = Fault(kind, pid, int(worker["id"]), at, worker["objects"], len(worker["running"]))
        with self._lock:
            self.faults.append(fault)
            self._by_pid[pid] = fault

    def observe(self) -> None:
        """Watch new workers (a pidfd each), and note when the engine let go of killed ones."""
        now = time.monotonic()
        pids = set(self._cluster.pids())
        wids = {p.pid: wid for wid, p in list(self._cluster.procs.items())}
        with self._lock:
            self._wids.update(wids)
            for pid in pids - self._known:
                if pid not in self._fds:
                    try:
                        self._fds[pid] = os.pidfd_open(pid)
                    except ProcessLookupError:  # gone already: a death, seen now
                        self._died(pid, now)
            for pid in self._known - pids:
                fault = self._by_pid.get(pid)
                if fault is not None and fault.kind == "kill" and fault.gone is None:
                    fault.gone = now
            self._known = pids

    def wait_deaths(self, timeout: float) -> None:
        """Up to ``timeout`` s for a watched worker to exit; note each that has."""
        with self._lock:
            fds = {fd: pid for pid, fd in self._fds.items()}
        if not fds:
            self._halt.wait(timeout)
            return
        ready, _, _ = select.select(list(fds), [], [], timeout)
        now = time.monotonic()
        with self._lock:
            for fd in ready:
                pid = fds[fd]
                os.close(self._fds.pop(pid))
                self._died(pid, now)

    def _died(self, pid: int, now: float) -> None:
        """``pid`` exited, seen at ``now`` (lock held): its values were gone by then, or, for
        one the engine killed (a stopped one), by the engine's log line about it."""
        fault = self._by_pid.get(pid)
        wid = self._wids.get(pid)
        killed = self._kill_log.at.get(wid) if wid is not None else None
        start = fault.at if fault is not None else 0.0
        gone = killed if killed is not None and start <= killed <= now else now
        if fault is None:
            self.deaths.append(Death(pid, gone, gone, "other"))
        elif fault.kind == "kill":
            self.deaths.append(Death(pid, fault.at, now, "kill"))
        else:
            fault.gone = gone
            self.deaths.append(Death(pid, fault.at, gone, "stop"))

    # -- the end -----------------------------------------------------------------------
    def finish(self, stopped_wait: float) -> None:
        """Stop injecting, then wait (at most ``stopped_wait`` s) for the workers we stopped
        to be declared dead and killed by the engine; stop watching."""
        self._halt.set()
        self.join(timeout=10)
        deadline = time.monotonic() + stopped_wait
        for _ in range(int(stopped_wait / POLL) + 2):
            self.observe()
            with self._lock:
                waiting = any(f.gone is None for f in self.faults if f.kind == "stop")
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                break
            self.wait_deaths(min(POLL, left))
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
        logging.getLogger("jupyter_futures").removeHandler(self._kill_log)

    def summary(self, started: float) -> dict[str, Any]:
        with self._lock:
            faults = [asdict(f) for f in self.faults]
            deaths = [asdict(d) for d in self.deaths]
        for f in faults:
            f["detected_after"] = None if f["gone"] is None else f["gone"] - f["at"]
            f["at"] -= started
            if f["gone"] is not None:
                f["gone"] -= started
        for d in deaths:
            d["frozen"] -= started
            d["gone"] -= started

        def detected(kind: str) -> list[float]:
            return [
                f["detected_after"] for f in faults if f["kind"] == kind and f["detected_after"] is not None
            ]

        return {
            "kills": sum(f["kind"] == "kill" for f in faults),
            "kills_detected": len(detected("kill")),
            "stops": sum(f["kind"] == "stop" for f in faults),
            "stops_detected": len(detected("stop")),
            "max_kill_detection_s": max(detected("kill"), default=None),
            "max_stop_detection_s": max(detected("stop"), default=None),
            "other_deaths": sum(d["cause"] == "other" for d in deaths),
            "objects_on_faulted_workers": sum(f["objects"] for f in faults),
            "skipped_periods": self.skipped,
            "injector_error": self.error,
            "faults": faults,
            "deaths": deaths,
        }
