"""A Future as a small live widget: pending, waiting on inputs, running, done or failed.

::

    pending ─► waiting on 2 inputs ─► running on worker 1 (3.2 s) ─► done in 4.1 s: 49
                                                                 └─► failed: ZeroDivisionError: ...

The widget reads the scheduler's record of the future about twice a second (on the shared
ticker) until the future resolves; its done-callback wakes the ticker for the final view,
which is rendered off the I/O thread. Then the widget lets go of the future (showing a
future does not keep its value alive) and finishes: its output keeps the final snapshot.
"""

from __future__ import annotations

import reprlib
from typing import Any

from ...futures import Future
from . import html as h
from .base import SnapshotWidget
from .ticker import Tick, shared_ticker

PREVIEW_LIMIT = 1 << 20  # results larger than this are described, not decoded
_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6


def preview(value: Any, limit: int = 80) -> str:
    """A one-line, bounded repr of a result."""
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a repr that raises must not break the widget
        text = f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error(exc: BaseException, limit: int = 160) -> str:
    message = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message and message[0] else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FutureWidget(SnapshotWidget):
    """A live view of ``future``.

    Parameters
    ----------
    future
        The future whose result is shown.
    work
        The future whose progress is shown while it runs (a ``%%remote`` cell's run, whose
        result ``future`` picks out); ``future`` itself by default.
    label
        What to call it (default: the future's name).
    """

    def __init__(self, future: Future[Any], *, work: Future[Any] | None = None, label: str | None = None):
        super().__init__()
        self.tid = future.id
        self.label = label or future.name or "future"
        self.state = "pending"
        self._future: Future[Any] | None = future
        self._work: Future[Any] | None = work
        self._client: Any = future.backend
        self.tick()
        if self.state in ("pending", "running"):
            ticker = shared_ticker()
            future.add_done_callback(lambda _f: ticker.wake())
            ticker.add(self)

    def tick(self) -> Tick:
        f = self._future
        if f is None:
            return Tick.DONE
        if f.done():
            self._settle(f)
            return Tick.DONE
        if getattr(self._client, "closed", True):
            self.state = "cancelled"
            self.show(self._line("cancelled", "the cluster was shut down"), f"{self._name()}: shut down")
            self._future = self._work = None
            self.finish()
            return Tick.DONE
        work = self._work if self._work is not None and not self._work.done() else f
        view = self._client.future_view(work.id)
        if view is None or view.state == "pending":
            self.state = "pending"
            waiting = view.waiting_on if view is not None else 0
            detail = f"waiting on {waiting} input{'s' if waiting != 1 else ''}" if waiting else "pending"
        else:
            self.state = "running"
            where = f" on worker {view.worker}" if view.worker is not None else ""
            detail = f"running{where} ({h.seconds(view.elapsed)})"
        self.show(self._line(self.state, h.esc(detail)), f"{self._name()}: {detail}")
        return Tick.BUSY

    def _settle(self, f: Future[Any]) -> None:
        work = self._work if self._work is not None else f
        info = work.info or f.info
        took = f" in {h.seconds(info.duration)}" if info is not None else ""
        where = f" on worker {info.worker}" if info is not None and info.worker is not None else ""
        if f.cancelled():
            self.state = "cancelled"
            detail, text = h.esc("cancelled"), "cancelled"
        elif f.exception() is not None:
            self.state = "failed"
            error = describe_error(f.exception())  # type: ignore[arg-type]
            detail = f'failed: <code style="color: {h.COLORS["failed"]}">{h.esc(error)}</code>'
            text = f"failed: {error}"
        else:
            self.state = "done"
            shown = self._preview(f)
            detail = f"done{took}{where}: <code>{h.esc(shown)}</code>"
            text = f"done{took}{where}: {shown}"
        self.show(self._line(self.state, detail), f"{self._name()}: {text}")
        self._future = self._work = None  # showing a future must not keep its value alive
        self.finish()

    def _preview(self, f: Future[Any]) -> str:
        nbytes = f.info.nbytes if f.info is not None else 0
        if nbytes > PREVIEW_LIMIT:
            return f"<{h.nbytes(nbytes)} in shared memory>"
        try:
            return preview(f.result())
        except Exception as exc:
            return f"<not readable here: {type(exc).__name__}>"

    def _name(self) -> str:
        return f"{self.label} (future {self.tid})"

    def _line(self, state: str, detail_html: str) -> str:
        return (
            f"{h.dot(state)}<b>{h.esc(self.label)}</b> {h.dim(f'future {self.tid}')} &middot; {detail_html}"
        )
