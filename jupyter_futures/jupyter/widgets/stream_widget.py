"""``jf.task_stream()``: the task stream as a live widget whose snapshot is its SVG.

::

    TaskStreamWidget ── shared ticker, every 0.5 s while work runs ──► StreamBuffer.pull
        │                                                                (backend.task_stream)
        └── svg() + legend ──► the widget's HTML (live) and the output's text/html and
            image/svg+xml (saved notebooks, nbconvert) ── nothing new, nothing pending and no
            cell running for two ticks: it rests, the snapshot stays; a cell wakes it

The dashboard draws the same picture in its "Task stream" section from a buffer of its own.
"""

from __future__ import annotations

from typing import Any

from ..stream_bars import WINDOW, StreamBuffer
from . import task_stream as ts
from .base import SnapshotWidget
from .ticker import Tick, cell_running, shared_ticker

IDLE_TICKS = 2


class TaskStreamWidget(SnapshotWidget):
    """The last ``window`` seconds of runs; see :func:`jupyter_futures.task_stream`."""

    def __init__(self, client: Any, window: float = WINDOW, width: int = 720) -> None:
        super().__init__()
        self.client = client
        self.width = width
        self.buffer = StreamBuffer(window)
        self.updates = 0
        self._idle = 0
        self._svg = ""
        self.tick()
        shared_ticker().add(self)

    def tick(self) -> Tick:
        if self.client.closed:
            self.finish()
            return Tick.DONE
        new = self.buffer.pull(self.client.backend)
        busy = bool(new) or bool(self.client.backend.unsettled())
        self._idle = 0 if busy else self._idle + 1
        settled = self._idle >= IDLE_TICKS and not cell_running()
        self._svg = ts.svg(self.buffer, self.width)
        before = self.value
        self.show(self._svg + ts.legend(self.buffer), ts.text(self.buffer), settled=settled)
        if self.value != before:
            self.updates += 1
        return Tick.IDLE if settled else Tick.BUSY

    def svg(self) -> str:
        """The picture as it is now: an SVG document (``open(p, "w").write(w.svg())``)."""
        return self._svg

    def snapshot(self) -> dict[str, str]:
        out = super().snapshot()
        out["image/svg+xml"] = self._svg
        return out
