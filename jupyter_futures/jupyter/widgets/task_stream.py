"""The task stream's picture: an SVG of the bars of a ``StreamBuffer``, its legend and its
text, for the dashboard's "Task stream" section and ``jf.task_stream()``.

::

    StreamBuffer (stream_bars.py) ──► svg(): lanes down (workers by number, then actors),
                                      the seconds since the oldest bar across (5 to 30),
                                      ``now`` at the right, a <title> per bar (its tooltip)
                                  ──► legend(): the functions in view, the busiest first
                                  ──► text(): runs per lane, the text/plain snapshot

Every colour of text and track is a theme variable with a fallback (html.py), so the same
SVG reads in JupyterLab, light or dark, and in nbconvert's HTML.
"""

from __future__ import annotations

from ..stream_bars import STATE_COLORS, StreamBuffer, colour, ticks
from . import html as h

# -- the picture ---------------------------------------------------------------------

ROW_H = 12
LANE_GAP = 5
LABEL_W = 130
AXIS_H = 16


def svg(buffer: StreamBuffer, width: int = 720) -> str:
    """The stream as an SVG: lanes down, up to the last ``window`` seconds across (since
    the oldest bar, ``StreamBuffer.span``), ``now`` at the right; each bar's ``<title>``
    says what it ran (a tooltip on hover)."""
    lanes = buffer.lanes()
    now = buffer.now
    window = buffer.span()
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
            f"no task finished in the last {buffer.window:.0f} s</text>"
        )
        y = 20
    for t in ticks(window):
        x = LABEL_W + (1 - t / window) * plot
        label = "now" if t == 0 else f"-{t:g} s"
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
        rows.append(
            f"{name}: {runs:,} run{'s' if runs != 1 else ''}" + (f", {failed:,} failed" if failed else "")
        )
    head = f"task stream, last {buffer.window:.0f} s"
    return head + (": " + "; ".join(rows) if rows else ": nothing finished")


def _short(lane: str) -> str:
    """A lane's label: ``worker 2``, a Dask worker by its address alone, long names cut."""
    kind, _, rest = lane.partition(" ")
    label = rest if kind == "worker" and not rest.isdigit() else lane
    return label if len(label) <= 22 else label[:10] + "…" + label[-11:]
