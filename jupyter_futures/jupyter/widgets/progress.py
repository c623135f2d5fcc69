"""Progress bars: over many futures, and over one ``%%remote --block`` cell.

::

    ████████████░░░░░░  6,120 / 10,000 done · 3 failed · 2,040/s · about 2 s left
    ██████████████████  %%remote In[12] · running on worker 2 · 3.5 s

``Progress``: each future's done-callback (on the I/O thread) only counts; the bar is
drawn on the shared ticker, at most twice a second, and once more when the last future
resolves. Cancelled futures are counted as such, not as failures.

``CellProgress``: the cell as the user wrote it, not the tasks it is made of: the state
of the cell's run (waiting on inputs, running on worker N) from the scheduler, and the
time since the cell started, redrawn on the shared ticker until its result settles as
done, failed or cancelled.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Iterable
from typing import Any

from ...futures import Future
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
        self.cancelled = 0
        self.started = time.monotonic()
        self.finished: float | None = None
        self._lock = threading.Lock()
        self._clients = {id(f.backend): f.backend for f in fs}
        ticker = shared_ticker()
        for f in fs:
            f.add_done_callback(self._count)
        if self.tick() is not Tick.DONE:
            ticker.add(self)

    def _count(self, f: cf.Future[Any]) -> None:
        with self._lock:
            self.done += 1
            if f.cancelled():
                self.cancelled += 1
            elif f.exception() is not None:
                self.failed += 1
            last = self.done == self.total
        if last:
            shared_ticker().wake()

    def tick(self) -> Tick:
        with self._lock:
            done, failed, cancelled = self.done, self.failed, self.cancelled
        complete = done >= self.total
        if complete and self.finished is None:
            self.finished = time.monotonic()
        gone = not complete and all(getattr(c, "closed", False) for c in self._clients.values())
        self._render(done, failed, cancelled)
        if complete or gone:
            self.finish()
            return Tick.DONE
        return Tick.BUSY

    @property
    def rate(self) -> float:
        """Futures resolved per second so far."""
        elapsed = (self.finished or time.monotonic()) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _render(self, done: int, failed: int, cancelled: int) -> None:
        total = max(self.total, 1)
        ok = done - failed - cancelled
        elapsed = (self.finished or time.monotonic()) - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{done:,} / {self.total:,} done"]
        if failed:
            parts.append(f"{failed:,} failed")
        if cancelled:
            parts.append(f"{cancelled:,} cancelled")
        if done < self.total:
            parts.append(f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s")
            left = (self.total - done) / rate if rate > 0 else None
            parts.append(f"about {h.seconds(left)} left" if left is not None else "starting")
        else:
            parts.append(f"in {h.seconds(elapsed)}")
        label = f"<b>{h.esc(self.label)}</b> " if self.label else ""
        bar = h.stacked_bar(
            [
                (ok / total, h.COLORS["done"]),
                (failed / total, h.COLORS["failed"]),
                (cancelled / total, h.COLORS["cancelled"]),
            ]
        )
        text = " · ".join(parts)
        self.show(f"{label}{bar} {h.esc(text)}", f"{self.label + ': ' if self.label else ''}{text}")


class CellProgress(SnapshotWidget):
    """One bar for a ``%%remote --block`` cell: its state and the time since it started.

    Parameters
    ----------
    result
        The cell's future (its last expression): the cell is over when it settles.
    work
        The future of the cell's run, whose state the scheduler reports while it runs.
    label
        The cell's name, ``%%remote In[n]`` (or the name its result is bound to).
    started
        ``time.monotonic()`` when the cell was submitted.
    """

    def __init__(self, result: Future[Any], work: Future[Any], label: str, started: float) -> None:
        super().__init__()
        self.label = label
        self.started = started
        self.state = "pending"
        self._result: Future[Any] | None = result
        self._work: Future[Any] | None = work
        self._client: Any = result.backend
        self._lock = threading.Lock()  # the ticker's thread, or the cell's own at its end
        ticker = shared_ticker()
        result.add_done_callback(lambda _f: ticker.wake())
        if self.tick() is not Tick.DONE:
            ticker.add(self)

    def settle(self, interrupted: bool = False) -> None:
        """Draw the current state now, from the cell's thread (the final one if it is over).

        ``interrupted``: the user interrupted the cell and its work was cancelled; it reads
        so whatever the engine has reported yet, and is published from the cell's own
        thread, so the saved output ends in that state."""
        if not interrupted:
            self.tick()
            return
        with self._lock:
            self.state = "cancelled"
            detail = f"cancelled after {h.seconds(time.monotonic() - self.started)}"
            bar = h.stacked_bar([(1.0, h.COLORS[self.state])], width="12em")
            self.show(f"{bar} <b>{h.esc(self.label)}</b> {h.esc('· ' + detail)}", f"{self.label}: {detail}")
            self._result = self._work = None
            self.finish()

    def tick(self) -> Tick:
        with self._lock:
            return self._tick()

    def _tick(self) -> Tick:
        result, work = self._result, self._work
        if result is None or work is None:
            return Tick.DONE
        elapsed = time.monotonic() - self.started
        if result.done():
            if result.cancelled():
                self.state, detail = "cancelled", f"cancelled after {h.seconds(elapsed)}"
            elif result.exception() is not None:
                self.state, detail = "failed", f"failed after {h.seconds(elapsed)}"
            else:
                self.state, detail = "done", f"done in {h.seconds(elapsed)}"
        elif getattr(self._client, "closed", True):
            self.state, detail = "cancelled", "the cluster was shut down"
        else:
            view = self._client.future_view(work.id) if not work.done() else None
            if view is not None and view.state == "pending":
                self.state = "pending"
                detail = f"waiting on {view.waiting_on} input{'s' if view.waiting_on != 1 else ''}"
                detail = detail if view.waiting_on else "waiting for a worker"
            else:
                self.state = "running"
                where = view.worker if view is not None else None
                detail = f"running on worker {where}" if where is not None else "running"
            detail += f" · {h.seconds(elapsed)}"
        bar = h.stacked_bar([(1.0, h.COLORS[self.state])], width="12em")
        self.show(f"{bar} <b>{h.esc(self.label)}</b> {h.esc('· ' + detail)}", f"{self.label}: {detail}")
        if self.state in ("pending", "running"):
            return Tick.BUSY
        self._result = self._work = None  # the bar must not keep the cell's values alive
        self.finish()
        return Tick.DONE
