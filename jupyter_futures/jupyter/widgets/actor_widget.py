"""An actor handle as a live widget: class, worker, state, calls done and queued.

It ticks while the actor starts or has calls queued, rests while the actor is idle (a
cell starting wakes it), and stops for good once the actor is dead or the cluster gone.
"""

from __future__ import annotations

from typing import Any

from ...actors import ActorHandle
from . import html as h
from .base import SnapshotWidget
from .ticker import Tick, shared_ticker

_STATE_DOT = {"starting": "pending", "alive": "done", "restarting": "cancelled", "dead": "failed"}


class ActorWidget(SnapshotWidget):
    """A live view of an actor."""

    def __init__(self, handle: ActorHandle, client: Any) -> None:
        super().__init__()
        self.handle = handle
        self.state = "starting"
        self.calls_done = 0
        self.calls_queued = 0
        self._client = client
        if self.tick() is not Tick.DONE:
            shared_ticker().add(self)

    def tick(self) -> Tick:
        info = None
        if not getattr(self._client, "closed", True):
            info = self._client.actor_view(self.handle.id)
        if info is None:
            self.state = "dead"
            closed = getattr(self._client, "closed", True)
            self._render("gone: its cluster was shut down" if closed else "gone")
            self.finish()
            return Tick.DONE
        self.state = info.state
        self.calls_done = info.calls_done
        self.calls_queued = info.calls_queued
        if self.state == "dead":
            self._render(info.death or "dead")
            self.finish()
            return Tick.DONE
        busy = self.state in ("starting", "restarting") or self.calls_queued > 0
        self._render("", worker=info.worker, settled=not busy)
        return Tick.BUSY if busy else Tick.IDLE

    def _render(self, note: str, worker: int | str | None = None, settled: bool = True) -> None:
        where = f"on worker {worker}" if worker is not None else "not placed yet"
        parts = [self.state, where, f"{self.calls_done} calls done", f"{self.calls_queued} queued"]
        if note:
            parts = [self.state, note, f"{self.calls_done} calls done"]
        name = f"{self.handle.class_name} actor {self.handle.id}"
        html = (
            f"{h.dot(_STATE_DOT.get(self.state, 'pending'))}<b>{h.esc(self.handle.class_name)}</b> "
            + h.dim(f"actor {self.handle.id}")
            + " &middot; "
            + h.esc(" · ".join(parts))
        )
        self.show(html, f"{name}: {', '.join(parts)}", settled=settled)
