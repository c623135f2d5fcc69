"""The task stream: the last ~30 s of runs as bars, one lane per worker and per actor.

::

    Backend.task_stream(cursor) ──► new runs ──► StreamBuffer.add: each run joins the last bar
         (the engine's RunLog)                     of a row of its lane when it is the same
                                                   function and state and follows it within
                                                   ``resolution`` (else a new bar, in the
                                                   first row free at its start); bars older
                                                   than the window are dropped
                     │                                          │
                     ▼                                          ▼
      svg(): the picture, drawn here, for the         changed(): the bars made or grown since
      dashboard, jf.task_stream() and the saved       the last call, for the JupyterLab panel
      notebook (the same SVG is the snapshot)         (labcomm "stream" messages), which
                                                      draws them itself and scrolls them

Coalescing keeps the cost flat: ten thousand 1 ms tasks make a few bars per lane and
second, not ten thousand rectangles, and at 30 s over a few hundred pixels no eye could
tell them apart. A bar says how many runs it holds and how long they took together.

Bars are coloured by the future's name (the function's, ``Class.method``, a cell's), the
colour in the panel (each bar it gets carries its colour); failed runs are red, cancelled
ones orange.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..runs import TaskRun
from .widgets import html as h

WINDOW = 30.0  # seconds shown
RESOLUTION = 0.05  # runs closer than this join one bar
MAX_ROWS = 4  # rows per lane for runs that overlap (several at once on one worker)

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
        took = run.end - run.start
        for row in lane.rows:
            last = row[-1] if row else None
            if (
                last is not None
                and last.name == run.name
                and last.state == run.state
                and run.start - last.end <= res
                and last.start - run.end <= res
            ):
                last.start = min(last.start, run.start)
                last.end = max(last.end, run.end)
                last.count += 1
                last.busy += took
                self._changed[last.id] = last
                return
        for i, row in enumerate(lane.rows):
            if _fits(row, run, res * 0.01):
                row.append(self._bar(run, i, took))
                return
        if len(lane.rows) < MAX_ROWS:
            lane.rows.append([self._bar(run, len(lane.rows), took)])
        else:  # more at once than rows: it overlaps on the last one
            lane.rows[-1].append(self._bar(run, MAX_ROWS - 1, took))

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

    def bars(self) -> list[Bar]:
        return [b for _name, rows in self.lanes() for row in rows for b in row]


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


# -- the picture ---------------------------------------------------------------------

ROW_H = 12
LANE_GAP = 5
LABEL_W = 130
AXIS_H = 16
TICKS = (30, 20, 10, 0)


def svg(buffer: StreamBuffer, width: int = 720) -> str:
    """The stream as an SVG: lanes down, the last ``window`` seconds across, ``now`` at the
    right; each bar's ``<title>`` says what it ran (a tooltip on hover)."""
    lanes = buffer.lanes()
    window, now = buffer.window, buffer.now
    plot = width - LABEL_W
    y = 0
    parts: list[str] = []
    for name, rows in lanes:
        height = max(1, len(rows)) * ROW_H
        parts.append(
            f'<text x="{LABEL_W - 6}" y="{y + height / 2 + 4:.0f}" text-anchor="end" '
            f'style="fill: {h.FG_DIM}; font-size: 11px">{h.esc(_short(name))}</text>'
            f'<rect x="{LABEL_W}" y="{y}" width="{plot}" height="{height}" style="fill: {h.TRACK}"/>'
        )
        for row in rows:
            for bar in row:
                if bar.end < now - window:
                    continue
                x0 = LABEL_W + max(0.0, (bar.start - (now - window)) / window) * plot
                x1 = LABEL_W + min(1.0, max(0.0, (bar.end - (now - window)) / window)) * plot
                parts.append(
                    f'<rect x="{x0:.1f}" y="{y + bar.row * ROW_H + 1}" width="{max(1.0, x1 - x0):.1f}" '
                    f'height="{ROW_H - 2}" style="fill: {colour(bar.name, bar.state)}" '
                    f'data-name="{h.esc(bar.name)}" data-state="{bar.state}">'
                    f"<title>{h.esc(bar.title())}</title></rect>"
                )
        y += height + LANE_GAP
    if not lanes:
        parts.append(
            f'<text x="{LABEL_W}" y="14" style="fill: {h.FG_DIM}; font-size: 12px">'
            f"no task finished in the last {window:.0f} s</text>"
        )
        y = 20
    for t in TICKS:
        if t > window:
            continue
        x = LABEL_W + (1 - t / window) * plot
        label = "now" if t == 0 else f"-{t} s"
        anchor = "end" if t == 0 else "middle"
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{y}" style="stroke: {h.BORDER}"/>'
            f'<text x="{x:.1f}" y="{y + 12}" text-anchor="{anchor}" style="fill: {h.FG_DIM}; '
            f'font-size: 10px">{label}</text>'
        )
    total = y + AXIS_H
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="jf-task-stream" width="{width}" '
        f'height="{total}" viewBox="0 0 {width} {total}" style="font-family: sans-serif">'
        + "".join(parts)
        + "</svg>"
    )


def legend(buffer: StreamBuffer, limit: int = 8) -> str:
    """The functions in view with their colours, the busiest first, then failed and
    cancelled runs (HTML)."""
    busy: dict[str, float] = {}
    other = {"failed": 0, "cancelled": 0}
    for bar in buffer.bars():
        if bar.state in other:
            other[bar.state] += bar.count
        else:
            busy[bar.name] = busy.get(bar.name, 0.0) + bar.busy
    names = sorted(busy, key=lambda n: -busy[n])[:limit]
    items = [_key(colour(n), h.esc(n)) for n in names]
    items += [_key(STATE_COLORS[state], f"{state} ({n:,})") for state, n in other.items() if n]
    return f'<div style="font-size: 11px; color: {h.FG_DIM}">{"".join(items)}</div>' if items else ""


def _key(fill: str, label: str) -> str:
    return (
        f'<span style="display: inline-block; width: 0.8em; height: 0.8em; background: {fill}; '
        f'margin: 0 0.3em 0 0.8em; vertical-align: middle"></span>{label}'
    )


def text(buffer: StreamBuffer) -> str:
    """The text/plain form: runs per lane in the window."""
    rows = []
    for name, lane_rows in buffer.lanes():
        bars = [b for row in lane_rows for b in row]
        runs = sum(b.count for b in bars)
        failed = sum(b.count for b in bars if b.state == "failed")
        rows.append(f"{name}: {runs:,} runs" + (f", {failed:,} failed" if failed else ""))
    head = f"task stream, last {buffer.window:.0f} s"
    return head + (": " + "; ".join(rows) if rows else ": nothing finished")


def took_text(s: float) -> str:
    """A duration down to microseconds: ``350 µs``, ``12.5 ms``, ``3.2 s``."""
    if s < 0.001:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1000:.3g} ms"
    return h.seconds(s)


def _short(lane: str) -> str:
    return lane if len(lane) <= 20 else lane[:9] + "…" + lane[-10:]
