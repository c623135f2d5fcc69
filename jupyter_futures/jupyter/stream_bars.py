"""Task-stream bars: runs coalesced per lane, and their colours (the picture is drawn by
``widgets/task_stream.py``; the panel draws the same bars itself).

::

    Backend.task_stream(cursor) ──► new runs ──► StreamBuffer.add: each run joins a bar of
         (the engine's RunLog)                     its lane of the same function and state
                                                   that it follows or precedes within
                                                   ``resolution`` (runs may arrive a little
                                                   out of order), else starts a bar in the
                                                   first row where it overlaps nothing;
                                                   bars older than the window are dropped
                     │                                          │
                     ▼                                          ▼
      bars(), lanes(): for the SVG of the dashboard   changed(): the bars made or grown since
      and jf.task_stream() (the snapshot of a         the last call, for the JupyterLab panel
      saved notebook too)                             (labcomm "stream" messages), which
                                                      draws them and scrolls them itself

Coalescing keeps the cost flat: ten thousand 1 ms tasks make a few bars per lane and
second, not ten thousand rectangles, and at 30 s over a few hundred pixels no eye could
tell them apart. A bar says how many runs it holds and how long they took together.

Bars are coloured by the future's name (the function's, ``Class.method``, a cell's): one
colour per name in this kernel, so the dashboard, ``jf.task_stream()`` and the panel (each
bar it gets carries its colour) agree; failed runs are red, cancelled ones orange.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..runs import TaskRun

WINDOW = 30.0  # seconds shown
RESOLUTION = 0.05  # runs closer than this join one bar
MAX_ROWS = 4  # rows per lane for runs that overlap (several at once on one worker)
MIN_SPAN = 5.0  # the least a picture spans: a short burst fills it, then it scrolls
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60)

# Tableau's colours less its red and orange (failures and cancels have those), then their
# lighter twins: sixteen before one comes round again.
PALETTE = (
    "#4e79a7",
    "#59a14f",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#bab0ac",
    "#a0cbe8",
    "#8cd17d",
    "#d4a6c8",
    "#86bcb6",
    "#f1ce63",
    "#d7b5a6",
    "#fabfd2",
    "#79706e",
)
STATE_COLORS = {"failed": "#d62728", "cancelled": "#ff7f0e"}
MAX_NAMED = 4096  # names given a colour of their own, in the order first seen


class Colours:
    """A colour per future name, in the order names are first seen (so the first sixteen
    functions never share one), the same for the dashboard, ``jf.task_stream()`` and the
    panel of one kernel."""

    def __init__(self) -> None:
        self._of: dict[str, str] = {}

    def __call__(self, name: str, state: str = "done") -> str:
        special = STATE_COLORS.get(state)
        if special is not None:
            return special
        found = self._of.get(name)
        if found is None:
            found = PALETTE[len(self._of) % len(PALETTE)]
            if len(self._of) < MAX_NAMED:
                self._of[name] = found
        return found


colour = Colours()


@dataclass(slots=True, eq=False)
class Bar:
    """One bar: ``count`` runs of one function, back to back on one row of a lane."""

    id: int
    lane: str
    row: int
    name: str
    state: str
    start: float
    end: float
    count: int = 1
    busy: float = 0.0  # seconds the runs took together

    def as_json(self) -> list[Any]:
        """The panel's form (``IStreamBar`` in stream.ts): a row of a table, not a dict."""
        return [
            self.id,
            self.lane,
            self.row,
            self.name,
            self.state,
            colour(self.name, self.state),
            round(self.start, 6),
            round(self.end, 6),
            self.count,
            round(self.busy, 6),
        ]

    def title(self) -> str:
        """What hovering it says."""
        runs = f"{self.count:,} runs of {self.name}" if self.count > 1 else self.name
        took = took_text(self.busy)
        each = f", {took_text(self.busy / self.count)} each" if self.count > 1 else ""
        state = "" if self.state == "done" else f" · {self.state}"
        return f"{runs} · {took}{each} · {self.lane}{state}"


@dataclass(slots=True)
class _Lane:
    rows: list[list[Bar]] = field(default_factory=list)
    hot: Bar | None = None  # where its last run went


class StreamBuffer:
    """The bars of the last ``window`` seconds, fed from a backend's task stream."""

    def __init__(self, window: float = WINDOW, resolution: float = RESOLUTION) -> None:
        self.window = window
        self.resolution = resolution
        self.cursor = 0
        self.now = 0.0
        self.runs = 0  # runs seen, all told
        self._lanes: dict[str, _Lane] = {}
        self._ids = 0
        self._changed: dict[int, Bar] = {}

    def pull(self, backend: Any) -> int:
        """Take the runs the backend finished since the last pull; returns how many."""
        stream = backend.task_stream(self.cursor)
        self.cursor, self.now = stream.cursor, stream.now
        self.add(stream.runs)
        self.drop_old()
        return len(stream.runs)

    def add(self, runs: Iterable[TaskRun]) -> None:
        res = self.resolution
        for run in runs:
            self.runs += 1
            lane = self._lanes.get(run.lane)
            if lane is None:
                lane = self._lanes[run.lane] = _Lane()
            self._place(lane, run, res)

    def _place(self, lane: _Lane, run: TaskRun, res: float) -> None:
        """Join the run to a bar of the same function and state it follows or precedes
        within ``res`` (runs may arrive a little out of order), or start a bar in the first
        row where it overlaps nothing."""
        start, end, _lane, name, state = run
        hot = lane.hot  # the bar the lane's last run went to: most runs join it
        if (
            hot is None
            or hot.name != name
            or hot.state != state
            or start - hot.end > res
            or hot.start - end > res
        ):
            hot = None
            for row in lane.rows:
                last = row[-1] if row else None
                if (
                    last is not None
                    and last.name == name
                    and last.state == state
                    and start - last.end <= res
                    and last.start - end <= res
                ):
                    hot = last
                    break
        if hot is not None:
            if start < hot.start:
                hot.start = start
            if end > hot.end:
                hot.end = end
            hot.count += 1
            hot.busy += end - start
            self._changed[hot.id] = hot
            lane.hot = hot
            return
        took = end - start
        for i, row in enumerate(lane.rows):
            if _fits(row, run, res * 0.01):
                bar = self._bar(run, i, took)
                row.append(bar)
                break
        else:
            if len(lane.rows) < MAX_ROWS:
                bar = self._bar(run, len(lane.rows), took)
                lane.rows.append([bar])
            else:  # more at once than rows: it overlaps on the last one
                bar = self._bar(run, MAX_ROWS - 1, took)
                lane.rows[-1].append(bar)
        lane.hot = bar

    def _bar(self, run: TaskRun, row: int, took: float) -> Bar:
        self._ids += 1
        bar = Bar(self._ids, run.lane, row, run.name, run.state, run.start, run.end, 1, took)
        self._changed[bar.id] = bar
        return bar

    def drop_old(self) -> None:
        """Forget bars that ended before the window (and lanes left empty)."""
        cutoff = self.now - self.window
        for name in list(self._lanes):
            lane = self._lanes[name]
            if lane.hot is not None and lane.hot.end < cutoff:
                lane.hot = None
            for row in lane.rows:
                k = 0
                while k < len(row) and row[k].end < cutoff:
                    k += 1
                if k:
                    del row[:k]
            while lane.rows and not lane.rows[-1]:
                lane.rows.pop()
            if not lane.rows:
                del self._lanes[name]

    def changed(self) -> list[Bar]:
        """The bars made or grown since the last call (each once)."""
        out = list(self._changed.values())
        self._changed.clear()
        return out

    def lanes(self) -> list[tuple[str, list[list[Bar]]]]:
        """Lanes in order: workers by number (or address), then actors."""
        named = [(name, lane.rows) for name, lane in self._lanes.items()]
        return sorted(named, key=lambda kv: lane_order(kv[0]))

    def span(self) -> float:
        """Seconds the picture spans, back from ``now``: since the oldest bar in view
        (at least ``MIN_SPAN``), at most the window; a burst of work fills the width."""
        starts = [row[0].start for _name, rows in self.lanes() for row in rows if row]
        earliest = min(starts, default=self.now - self.window)
        return min(self.window, max(MIN_SPAN, self.now - earliest))

    def bars(self) -> list[Bar]:
        return [b for _name, rows in self.lanes() for row in rows for b in row]


def ticks(span: float) -> list[float]:
    """Seconds before now to mark on the axis of a picture spanning ``span``: at most five."""
    step = next((t for t in TICK_STEPS if span / t <= 4), TICK_STEPS[-1])
    return [k * step for k in range(int(span // step) + 1)]


def _fits(row: list[Bar], run: TaskRun, tol: float) -> bool:
    """``run`` overlaps no bar of ``row`` (the latest bars are at its end)."""
    for bar in reversed(row):
        if bar.end <= run.start + tol:
            return True
        if bar.start < run.end - tol:
            return False
    return True


def lane_order(name: str) -> tuple[int, int, str]:
    """Workers first, by number; then the rest (actors), by name."""
    kind, _, rest = name.partition(" ")
    if kind == "worker":
        return (0, int(rest), "") if rest.isdigit() else (0, 1 << 30, rest)
    return (1, 0, name)


def took_text(s: float) -> str:
    """A duration down to microseconds: ``350 µs``, ``12.5 ms``, ``3.2 s``."""
    if s < 0.001:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1000:.3g} ms"
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(int(s), 60)
    return f"{minutes} min {sec:02d} s"
