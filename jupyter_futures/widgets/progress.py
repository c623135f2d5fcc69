"""A progress bar over many futures: done, failed, total, rate and time left.

::

    ████████████░░░░░░  6,120 / 10,000 done · 3 failed · 2,040/s · about 2 s left

Each future's done-callback (on the I/O thread) only counts; the bar is drawn on the
shared ticker, at most twice a second, and once more when the last future resolves.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Iterable
from typing import Any

from ..futures import Future
from . import html as h
from .base import SnapshotWidget
from .ticker import Tick, shared_ticker


class Progress(SnapshotWidget):
    """Progress of ``futures``; see :func:`jupyter_futures.progress`."""

    def __init__(self, futures: Iterable[Future[Any]], label: str = "") -> None:
        super().__init__()
        fs = list(futures)
        self.label = label
        self.total = len(fs)
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.finished: float | None = None
        self._lock = threading.Lock()
        self._clients = {id(f._client): f._client for f in fs}
        ticker = shared_ticker()
        for f in fs:
            f.add_done_callback(self._count)
        if self.tick() is not Tick.DONE:
            ticker.add(self)

    def _count(self, f: cf.Future[Any]) -> None:
        with self._lock:
            self.done += 1
            if f.cancelled() or f.exception() is not None:
                self.failed += 1
            last = self.done == self.total
        if last:
            shared_ticker().wake()

    def tick(self) -> Tick:
        with self._lock:
            done, failed = self.done, self.failed
        complete = done >= self.total
        if complete and self.finished is None:
            self.finished = time.monotonic()
        gone = not complete and all(getattr(c, "closed", False) for c in self._clients.values())
        self._render(done, failed)
        if complete or gone:
            self.finish()
            return Tick.DONE
        return Tick.BUSY

    @property
    def rate(self) -> float:
        """Futures resolved per second so far."""
        elapsed = (self.finished or time.monotonic()) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _render(self, done: int, failed: int) -> None:
        total = max(self.total, 1)
        ok = done - failed
        elapsed = (self.finished or time.monotonic()) - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{done:,} / {self.total:,} done"]
        if failed:
            parts.append(f"{failed:,} failed")
        if done < self.total:
            parts.append(f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s")
            left = (self.total - done) / rate if rate > 0 else None
            parts.append(f"about {h.seconds(left)} left" if left is not None else "starting")
        else:
            parts.append(f"in {h.seconds(elapsed)}")
        label = f"<b>{h.esc(self.label)}</b> " if self.label else ""
        bar = h.stacked_bar([(ok / total, h.COLORS["done"]), (failed / total, h.COLORS["failed"])])
        text = " · ".join(parts)
        self.show(f"{label}{bar} {h.esc(text)}", f"{self.label + ': ' if self.label else ''}{text}")
