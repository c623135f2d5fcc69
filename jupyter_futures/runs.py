"""What the task stream is drawn from: a bounded log of finished runs, one per engine.

::

    engine, as a run ends ── add(start, end, lane, name, state) ──► RunLog (the last RING runs)
        local: the scheduler, from each result (the worker's own start and duration)
        threads: the settle path, from the record's start and end
        dask: Dask's scheduler's own task stream, read when asked (dask/stream.py)
    Backend.task_stream(after) ── since(after) ──► (cursor, runs added after ``after``)
                                                    │ lanes named by the engine
                                                    ▼
             jupyter/stream_bars.py: bars per lane, coalesced ──► the SVG, the panel

A run is one execution of a task, an actor's creation or an actor call, however it ended:
a task that failed and was retried has one failed run and one more for the retry (on Dask,
whose scheduler records the run that ended a task, only the last). Times are
``time.monotonic()`` seconds, the same clock in the kernel and in its local workers.

This module imports nothing of the package, so the pure scheduler (``core``) and every
engine can keep one. A RunLog takes no lock of its own: each engine adds and reads under
the lock that already guards its records.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from itertools import islice
from typing import NamedTuple

RING = 50_000  # runs kept: about 30 s of 1 ms tasks on a few workers

RUN_STATES = ("done", "failed", "cancelled")


class TaskRun(NamedTuple):
    """One finished run, as ``Backend.task_stream`` reports it (a tuple: thousands are made
    a second while work runs)."""

    start: float  # time.monotonic() seconds
    end: float
    lane: str  # "worker 0", "worker 127.0.0.1:40131", "Counter #3" (an actor's own lane)
    name: str  # the future's name: the function's, "Class.method", a cell's
    state: str  # done, failed (raised, or lost its worker), cancelled (interrupted)


TaskRun.__module__ = "jupyter_futures"


class TaskStream(NamedTuple):
    """Runs finished after a cursor: pass ``cursor`` back to get only newer ones."""

    now: float  # the engine's time.monotonic() when asked
    cursor: int
    runs: list[TaskRun]


Entry = tuple[float, float, Hashable, str, str]  # start, end, lane key, name, state


class RunLog:
    """The last ``size`` runs, each numbered (``count`` is the number of the next)."""

    __slots__ = ("_entries", "count")

    def __init__(self, size: int = RING) -> None:
        self._entries: deque[Entry] = deque(maxlen=size)
        self.count = 0

    def add(self, start: float, end: float, lane: Hashable, name: str, state: str) -> None:
        """A run ended. ``lane`` is the engine's own key, named when read (see ``since``)."""
        self._entries.append((start, end, lane, name, state))
        self.count += 1

    def since(self, after: int, lane_name: Callable[[Hashable], str] = str) -> tuple[int, list[TaskRun]]:
        """The runs numbered ``after`` and up that are still kept, and the next cursor.

        A cursor from another log (larger than ``count``) starts over: every run kept."""
        entries = self._entries
        first = self.count - len(entries)  # the number of the oldest run kept
        if after > self.count:
            after = 0
        skip = max(0, after - first)
        names: dict[Hashable, str] = {}
        runs = []
        for start, end, lane, name, state in islice(entries, skip, None):
            label = names.get(lane)
            if label is None:
                label = names[lane] = lane_name(lane)
            runs.append(TaskRun(start, end, label, name, state))
        return self.count, runs

    def __len__(self) -> int:
        return len(self._entries)


def lane_namer(
    actor_class: Callable[[int], str | None], worker: Callable[[Hashable], str] = str
) -> Callable[[Hashable], str]:
    """How every engine names its lane keys: ``("actor", aid)`` is "Counter #3" (the class
    its engine knows, "actor" once forgotten), anything else "worker {worker(key)}"."""

    def name(lane: Hashable) -> str:
        if isinstance(lane, tuple):
            return f"{actor_class(lane[1]) or 'actor'} #{lane[1]}"
        return f"worker {worker(lane)}"

    return name
