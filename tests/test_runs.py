"""The run log behind the task stream: numbered runs, a bounded ring, cursors."""

from __future__ import annotations

from jupyter_futures.runs import RunLog, TaskRun


def test_runs_come_back_in_order_with_their_lanes_named() -> None:
    log = RunLog()
    log.add(1.0, 2.0, 0, "f", "done")
    log.add(2.0, 3.5, ("actor", 7), "A.m", "failed")
    cursor, runs = log.since(0, lambda lane: f"worker {lane}" if isinstance(lane, int) else "A #7")
    assert cursor == 2
    assert runs == [TaskRun(1.0, 2.0, "worker 0", "f", "done"), TaskRun(2.0, 3.5, "A #7", "A.m", "failed")]


def test_a_cursor_asks_for_newer_runs_only() -> None:
    log = RunLog()
    for i in range(5):
        log.add(i, i + 1, 0, f"f{i}", "done")
    cursor, _ = log.since(0)
    assert log.since(cursor) == (5, [])
    log.add(9, 10, 1, "g", "cancelled")
    assert [r.name for r in log.since(cursor)[1]] == ["g"]
    assert [r.name for r in log.since(3)[1]] == ["f3", "f4", "g"]


def test_the_ring_keeps_the_last_runs_and_an_old_cursor_gets_what_is_left() -> None:
    log = RunLog(size=3)
    for i in range(10):
        log.add(i, i + 1, 0, f"f{i}", "done")
    assert len(log) == 3 and log.count == 10
    assert [r.name for r in log.since(2)[1]] == ["f7", "f8", "f9"]
    assert [r.name for r in log.since(8)[1]] == ["f8", "f9"]


def test_a_cursor_of_another_log_starts_over() -> None:
    log = RunLog()
    log.add(0, 1, 0, "f", "done")
    assert [r.name for r in log.since(1_000)[1]] == ["f"]  # the cluster was replaced
