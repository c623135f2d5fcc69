"""The task stream's bars and picture, from runs made by hand; the engines' runs are
tested in test_backends.py, the panel's messages in test_labcomm.py, what a browser shows
in test_ui.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from jupyter_futures.jupyter import stream_bars as sb
from jupyter_futures.jupyter.widgets import task_stream as ts
from jupyter_futures.runs import TaskRun

SVG = "{http://www.w3.org/2000/svg}"


def run(start: float, end: float, lane: str = "worker 1", name: str = "f", state: str = "done") -> TaskRun:
    return TaskRun(start, end, lane, name, state)


def buffer(runs: list[TaskRun], now: float = 100.0) -> sb.StreamBuffer:
    b = sb.StreamBuffer()
    b.now = now
    b.add(runs)
    return b


def test_back_to_back_runs_of_one_function_make_one_bar() -> None:
    b = buffer([run(90 + i * 0.001, 90 + i * 0.001 + 0.0008) for i in range(1000)])
    (bar,) = b.bars()
    assert bar.count == 1000 and bar.start == 90 and abs(bar.end - 90.9998) < 1e-9
    assert abs(bar.busy - 0.8) < 1e-6
    assert bar.title() == "1,000 runs of f · 800 ms, 800 µs each · worker 1"


def test_runs_arriving_out_of_order_join_the_same_bar() -> None:
    b = buffer([run(90.010, 90.011), run(90.000, 90.001), run(90.005, 90.006)])
    (bar,) = b.bars()
    assert (bar.start, bar.end, bar.count) == (90.0, 90.011, 3)


def test_another_function_a_failure_or_a_gap_starts_a_bar() -> None:
    b = buffer(
        [run(90, 91), run(91, 92, name="g"), run(92, 93, name="g", state="failed"), run(95, 96, name="g")]
    )
    assert [(x.name, x.state, x.row) for x in b.bars()] == [
        ("f", "done", 0),
        ("g", "done", 0),
        ("g", "failed", 0),
        ("g", "done", 0),
    ]


def test_overlapping_runs_take_rows_of_their_lane() -> None:
    b = buffer(
        [run(90, 95, name="long"), run(91, 92, name="a"), run(91.5, 93, name="b"), run(96, 97, name="c")]
    )
    rows = {x.name: x.row for x in b.bars()}
    assert rows == {"long": 0, "a": 1, "b": 2, "c": 0}
    many = buffer([run(90, 99, name=f"n{i}") for i in range(10)])
    assert max(x.row for x in many.bars()) == sb.MAX_ROWS - 1  # beyond that they overlap


def test_lanes_are_workers_by_number_then_actors() -> None:
    b = buffer(
        [run(90, 91, lane) for lane in ("Counter #3", "worker 10", "worker 2", "Adder #1", "worker 1")]
    )
    assert [name for name, _ in b.lanes()] == ["worker 1", "worker 2", "worker 10", "Adder #1", "Counter #3"]


def test_bars_older_than_the_window_are_dropped_with_their_lanes() -> None:
    b = buffer([run(10, 20, "worker 1"), run(80, 90, "worker 2")])
    b.drop_old()
    assert [name for name, _ in b.lanes()] == ["worker 2"]


def test_changed_gives_each_new_or_grown_bar_once() -> None:
    b = buffer([run(90, 91)])
    (first,) = b.changed()
    assert b.changed() == []
    b.add([run(91.01, 91.02)])
    assert b.changed() == [first] and first.count == 2
    assert first.as_json()[:5] == [first.id, "worker 1", 0, "f", "done"]


def test_colours_one_per_name_failures_red() -> None:
    colours = sb.Colours()
    names = [f"fn{i}" for i in range(len(sb.PALETTE))]
    assert len({colours(n) for n in names}) == len(sb.PALETTE)  # none shared while they last
    assert colours("fn0") == colours("fn0") and colours("fn0", "failed") == sb.STATE_COLORS["failed"]
    assert sb.STATE_COLORS["failed"] not in sb.PALETTE and sb.STATE_COLORS["cancelled"] not in sb.PALETTE


def test_the_svg_has_a_lane_label_and_a_titled_bar_per_bar() -> None:
    b = buffer(
        [
            run(80, 81, "worker 1", "load"),
            run(85, 86, "worker 2", "boom", "failed"),
            run(99, 99.5, "A #4", "A.m"),
        ]
    )
    root = ET.fromstring(ts.svg(b, width=700))
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("data-name")]
    assert sorted(r.get("data-name") for r in bars) == ["A.m", "boom", "load"]  # type: ignore[type-var]
    failed = next(r for r in bars if r.get("data-name") == "boom")
    assert sb.STATE_COLORS["failed"] in (failed.get("style") or "")
    titles = [r.find(f"{SVG}title").text for r in bars]  # type: ignore[union-attr]
    assert "boom · 1.0 s · worker 2 · failed" in titles
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert {"worker 1", "worker 2", "A #4", "now", "-5 s", "-20 s"} <= set(labels)
    assert b.span() == 20  # since the oldest bar: "load", which starts the picture
    load = next(r for r in bars if r.get("data-name") == "load")
    boom = next(r for r in bars if r.get("data-name") == "boom")  # 15 s ago: a quarter of the way in
    plot = 700 - ts.LABEL_W
    assert (
        abs(float(load.get("x") or 0) - ts.LABEL_W) < 1 and abs(float(load.get("width") or 0) - plot / 20) < 1
    )
    assert abs(float(boom.get("x") or 0) - (ts.LABEL_W + plot / 4)) < 1
    assert "boom" not in ts.legend(b) and "failed (1)" in ts.legend(b)
    assert ts.text(b) == "task stream, last 30 s: worker 1: 1 run; worker 2: 1 run, 1 failed; A #4: 1 run"


def test_the_picture_spans_5_to_30_seconds_with_a_few_ticks() -> None:
    assert buffer([run(99, 99.5)]).span() == sb.MIN_SPAN
    assert buffer([run(60, 61), run(95, 96)]).span() == 30  # the window, even with older bars kept
    assert sb.ticks(5) == [0, 2, 4] and sb.ticks(30) == [0, 10, 20, 30] and sb.ticks(12) == [0, 5, 10]


def test_an_empty_stream_says_so() -> None:
    svg = ts.svg(sb.StreamBuffer())
    assert "no task finished in the last 30 s" in svg
    ET.fromstring(svg)


def test_names_are_escaped() -> None:
    b = buffer([run(90, 91, "worker 1", "<script>alert(1)</script>")])
    svg = ts.svg(b)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)
