"""The Dask backend's task stream: runs as Dask's scheduler saw them, and actor calls.

::

    connect ── get_task_stream_index ──► Dask's TaskStreamPlugin starts recording (if no
                                          dashboard did already); where we start reading
    task_stream(after) ── get_task_stream(start_index) ──► each record of a key of this
        kernel (``{name}-{cluster}-{fid}``): its "compute" start and stop on its worker
        (wall-clock seconds, moved onto this kernel's monotonic clock), its worker, OK or
        error ──► RunLog, lane "worker host:port" (an actor's creation: the actor's lane)
    an actor call settles (actors.py) ──► call_ran: from when it was sent, or when the
        actor's previous call ended, to its answer, on the actor's lane

Dask records a task's last run only: a task retried after failing shows as its final
attempt. Keys of other clients of the cluster are not shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..runs import RunLog, TaskStream
from .records import Record


class DaskRuns:
    """The runs of one kernel's futures on a Dask cluster."""

    def __init__(self, client: Any, cluster_id: str) -> None:
        self._client = client
        self._marker = f"-{cluster_id}-"
        self._lock = threading.Lock()
        self.log = RunLog()
        self._index: int | None = None
        self._pulling = False
        self._actor_free: dict[int, float] = {}  # actor id -> when its last call ended

    def start(self) -> None:
        """Have the scheduler record the task stream, and read from here on."""
        self._index = int(self._client.sync(self._client.scheduler.get_task_stream_index))

    def pull(self, record_of: Callable[[int], Record | None]) -> None:
        """Take what the scheduler recorded since the last pull (one pull at a time; one
        asked for meanwhile is skipped). The lock is not held while the scheduler answers:
        the client's loop, which carries the answer, also settles actor calls here."""
        with self._lock:
            start = self._index
            if start is None or self._pulling:
                return
            self._pulling = True
        try:
            index, records = self._client.sync(self._fetch, start)
        except BaseException:
            with self._lock:
                self._pulling = False
            raise
        now = time.monotonic()
        offset = time.time() - now
        with self._lock:
            self._pulling = False
            self._index = max(index, start + len(records))
            for msg in records:
                self._add(msg, offset, now, record_of)

    async def _fetch(self, start: int) -> tuple[int, list[dict[str, Any]]]:
        index = await self._client.scheduler.get_task_stream_index()
        records = await self._client.scheduler.get_task_stream(start_index=start)
        return int(index), list(records)

    def _add(
        self, msg: dict[str, Any], offset: float, now: float, record_of: Callable[[int], Record | None]
    ) -> None:
        key = msg.get("key")
        if not isinstance(key, str) or self._marker not in key:
            return
        prefix, _, tail = key.partition(self._marker)
        fid = tail.split("-", 1)[0]  # "{fid}" or "{fid}-restart{n}" (a restarted actor)
        rec = record_of(int(fid)) if fid.isdigit() else None
        name = rec.name if rec is not None else prefix
        lane: Any = ("actor", rec.actor) if rec is not None and rec.kind == "actor" else msg.get("worker")
        if msg.get("status") == "OK":
            state = "done"
        else:
            state = "cancelled" if rec is not None and rec.state == "cancelled" else "failed"
        for ss in msg.get("startstops", ()):
            if ss.get("action") == "compute":
                run_start, run_stop = ss["start"] - offset, ss["stop"] - offset
                # Dask moves a worker's times by its estimate of that worker's clock offset,
                # off by some ms on a busy machine: a run never starts before this kernel
                # submitted it, nor ends after it was read (its length is kept).
                shift = max(0.0, rec.submitted - run_start) if rec is not None else 0.0
                shift -= max(0.0, run_stop + shift - now)
                self.log.add(run_start + shift, run_stop + shift, lane, name, state)

    def call_ran(self, rec: Record, ended: float) -> None:
        """An actor call settled: its run, as this kernel saw it."""
        if not rec.started or rec.actor is None:
            return
        with self._lock:
            start = max(rec.started, self._actor_free.get(rec.actor, 0.0))
            self._actor_free[rec.actor] = ended
            self.log.add(start, max(start, ended), ("actor", rec.actor), rec.name, rec.state)

    def since(self, after: int, lane_name: Callable[[Any], str]) -> TaskStream:
        with self._lock:
            cursor, runs = self.log.since(after, lane_name)
        return TaskStream(time.monotonic(), cursor, runs)
