"""The chaos soak (``benchmarks/chaos.py``), short: its loss accounting without processes,
one soak in this process with a kill every second and a stop every two, and the command
end to end.

::

    chaos_model.losses(dag, executions, deaths)   hand-made runs: what each figure counts
    chaos.soak(faulty=True)                       real workers killed and stopped: every
                                                  result right, nothing left behind, no task
                                                  run more often than the deaths allow
    python -m benchmarks.chaos --tasks 100        the table and the JSON, both runs

The re-execution target (at most 2) is a benchmark figure, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import chaos
from benchmarks.chaos_model import Death, Execution, losses, read_executions
from benchmarks.chaos_tasks import build, layers

ROOT = Path(__file__).resolve().parents[1]
DAG = build(9)  # m0..m3 -> c0 (m0, m1), c1 (m2, m3) -> r0 (c0), r1 (c1) -> t


def run(key: str, pid: int, start: float, end: float | None) -> Execution:
    return Execution(key, pid, start, end)


def clean_run() -> list[Execution]:
    """Every task once, in order, on pids 1 and 2."""
    order = ["m0", "m1", "m2", "m3", "c0", "c1", "r0", "r1", "t"]
    return [run(k, 1 + i % 2, float(i), i + 0.5) for i, k in enumerate(order)]


def test_the_dag_has_exactly_the_tasks_asked_for() -> None:
    assert [k for k in DAG.inputs] == ["m0", "m1", "m2", "m3", "c0", "c1", "r0", "r1", "t"]
    assert DAG.inputs["c1"] == ("m2", "m3") and DAG.inputs["t"] == ("r0", "r1")
    assert DAG.stored == {"m0", "m1", "m2", "m3", "c0", "c1"}
    for n in (300, 2000, 5001):
        assert build(n).tasks == n
        makes, combines, reduces = layers(n)
        assert makes == 2 * combines
        assert combines <= 8 * reduces and reduces <= combines
    assert build(2000).expected["t"] == sum(v for k, v in build(2000).expected.items() if k != "t")
    with pytest.raises(ValueError):
        layers(10)


def test_a_run_without_faults_loses_nothing() -> None:
    got = losses(DAG, clean_run(), [])
    assert (got.executions, got.extra, got.lost, got.factor, got.max_executions) == (9, 0, 0, None, 1)
    assert got.never_finished == []


def test_a_kill_cuts_a_running_task_short() -> None:
    execs = [*clean_run()[:4], run("c0", 7, 4.0, None), run("c0", 2, 5.5, 5.9), *clean_run()[5:]]
    got = losses(DAG, execs, [Death(7, 5.0, 5.0, "kill")])
    assert (got.cut_short, got.values_lost, got.inputs_rebuilt) == (1, 0, 0)
    assert got.extra == 1 and got.factor == 1.0 and got.beyond_needed == 0


def test_a_lost_value_that_is_still_needed_costs_its_freed_inputs_too() -> None:
    """c0 is made on pid 7 (its inputs freed), pid 7 dies before r0 reads it: c0 is a
    value lost, and its makes, freed, must run again: lineage costs 3 runs for 1 loss."""
    execs = clean_run()
    execs[4] = run("c0", 7, 4.0, 4.5)
    redo = [run("m0", 1, 4.7, 4.8), run("m1", 2, 4.7, 4.8), run("c0", 1, 4.9, 4.95)]
    deaths = [Death(7, 4.6, 4.6, "kill")]
    got = losses(DAG, sorted([*execs, *redo], key=lambda e: e.start), deaths, values_outlive_workers=False)
    assert (got.cut_short, got.values_lost, got.inputs_rebuilt) == (0, 1, 2)
    assert got.extra == 3 and got.factor == 3.0 and got.factor_over_needed == 1.0
    assert got.max_executions == 2


def test_a_value_no_longer_needed_is_not_a_loss() -> None:
    """m0 lives on pid 7 until c0 has read it; pid 7 dies after that: nothing lost."""
    execs = clean_run()
    execs[0] = run("m0", 7, 0.0, 0.5)
    got = losses(DAG, execs, [Death(7, 4.7, 4.7, "kill")])
    assert got.lost == 0 and got.inputs_rebuilt == 0


def test_a_started_reader_no_longer_needs_its_inputs() -> None:
    """c0 has started on pid 1 (it has read m0 and m1) when m0's worker dies: no loss."""
    execs = clean_run()
    execs[0] = run("m0", 7, 0.0, 0.5)
    execs[4] = run("c0", 1, 4.0, 4.5)
    got = losses(DAG, execs, [Death(7, 4.2, 4.2, "kill")])
    assert got.lost == 0


def test_a_stopped_worker_cuts_short_at_once_but_its_values_last_until_it_is_killed() -> None:
    execs = clean_run()
    execs[0] = run("m0", 7, 0.0, 0.5)  # stored on 7, read by c0 at 4.0
    execs[1] = run("m1", 7, 1.0, None)  # frozen by the stop at 1.2
    redo = [run("m1", 2, 3.3, 3.5), run("m0", 1, 3.4, 3.6)]  # once the engine killed 7, at 3.2
    deaths = [Death(7, 1.2, 3.2, "stop")]
    got = losses(DAG, sorted([*execs, *redo], key=lambda e: e.start), deaths, values_outlive_workers=False)
    assert got.cut_short == 1 and got.values_lost == 1  # m0: needed by c0, not started
    assert got.beyond_needed == 0 and got.never_finished == []


def test_a_reader_on_its_way_when_the_death_is_seen_had_its_inputs() -> None:
    """c0 starts after m0's worker is seen dead, yet before m0 runs again (it never does):
    it had been sent with m0 still readable, so m0 was no loss."""
    execs = clean_run()
    execs[0] = run("m0", 7, 0.0, 0.5)
    got = losses(DAG, execs, [Death(7, 3.9, 3.95, "kill")])  # c0 starts at 4.0
    assert got.lost == 0 and got.beyond_needed == 0


def test_a_death_seen_late_is_dated_by_the_first_rerun_of_its_work() -> None:
    """Seen at 5.0, but c0 (stored there) runs again at 4.7: the loss was by 4.7, when r0
    had not started; counted once, and the rerun is no surprise."""
    execs = clean_run()
    execs[4] = run("c0", 7, 4.0, 4.5)
    redo = [run("m0", 1, 4.62, 4.65), run("m1", 2, 4.62, 4.65), run("c0", 1, 4.7, 4.8)]
    deaths = [Death(7, 4.6, 5.0, "kill")]
    got = losses(DAG, sorted([*execs, *redo], key=lambda e: e.start), deaths, values_outlive_workers=False)
    assert (got.values_lost, got.inputs_rebuilt, got.beyond_needed) == (1, 2, 0)


def test_a_dead_workers_stored_values_outlive_it() -> None:
    """The engine's rule: c0's file outlives pid 7 (the kernel adopts it): no loss, r0
    reads it as it is."""
    execs = clean_run()
    execs[4] = run("c0", 7, 4.0, 4.5)
    got = losses(DAG, execs, [Death(7, 4.6, 4.6, "kill")])
    assert (got.lost, got.inputs_rebuilt, got.extra) == (0, 0, 0)


def test_a_result_whose_report_died_with_its_worker_was_cut_short() -> None:
    """c0 ended on pid 7 just before the kill, and ran again: its report went with 7."""
    execs = clean_run()
    execs[4] = run("c0", 7, 4.0, 4.58)
    redo = [run("c0", 1, 4.7, 4.8)]
    got = losses(DAG, sorted([*execs, *redo], key=lambda e: e.start), [Death(7, 4.6, 4.6, "kill")])
    assert (got.cut_short, got.extra, got.beyond_needed) == (1, 1, 0)


def test_the_execution_log_pairs_starts_and_ends_per_process(tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    log.write_text("S m0 5 1.0\nS m0 6 2.0\nE m0 6 2.5\nbroken line\nE c0 5 3.0\nS c0 5 3.5\n")
    execs, bad = read_executions(log)
    assert bad == 2  # the broken line, and an end with no start
    assert sorted((e.key, e.pid, e.end) for e in execs) == [("c0", 5, None), ("m0", 5, None), ("m0", 6, 2.5)]


@pytest.mark.timeout(110)
def test_a_short_soak_with_kills_and_stops_gives_right_results_and_leaves_nothing() -> None:
    cfg = chaos.SoakConfig(
        tasks=300,
        workers=3,
        work=0.02,
        kill_every=1.0,  # at 0.5 s (and a stop every 1 s) this DAG no longer finishes
        stop_every=2,
        seconds=60,
        heartbeat_interval=0.1,
        heartbeat_timeout=1.0,
    )
    base = chaos.soak(cfg, faulty=False)
    run_ = chaos.soak(cfg, faulty=True)
    for d in (base, run_):
        assert d["results"] == {"checked": 15, "wrong": 0, "unfinished": 0, "errors": []}
        assert d["leftovers"] == []
        assert d["losses"]["never_finished"] == [] and d["losses"]["malformed_log_lines"] == 0
    assert base["losses"]["executions"] == 300 and base["losses"]["max_executions"] == 1
    f, loss = run_["faults"], run_["losses"]
    assert f["injector_error"] is None
    assert f["kills"] >= 2 and f["kills_detected"] == f["kills"]
    assert f["stops"] >= 1 and f["stops_detected"] == f["stops"], f["faults"]
    # heartbeat_timeout, a tick, a margin for a loaded machine (the I/O thread never waits
    # long for anything else: a dead worker's exit code, at most REAP_WAIT)
    assert f["max_stop_detection_s"] < 1.0 + 3.0, f["faults"]
    assert run_["workers_at_end"] == 3
    # In a tree, each death makes a task run again at most once: cut short there, its
    # value lost there, or an input of one of those. The engine's own limit (a task whose
    # workers died under it max_worker_deaths times fails) would show as a wrong result.
    deaths = len(f["deaths"])
    assert deaths >= f["kills"] + f["stops"]
    assert 1 <= loss["max_executions"] <= 1 + deaths
    assert loss["unfinished_elsewhere"] == 0
    assert loss["executions"] == 300 + loss["extra_executions"]
    text = chaos.text({"meta": {"date": "now", "args": {**cfg.__dict__}}, "baseline": base, "faults": run_})
    for label in ("kills survived", "re-execution factor", "max executions of one task", "leftovers"):
        assert label in text


@pytest.mark.timeout(110)
def test_the_command_prints_the_table_and_writes_both_runs(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    args = ["--tasks", "150", "--work-ms", "20", "--kill-every", "1.0", "--stop-every", "2"]
    args += ["--seconds", "40", "--heartbeat-timeout", "1.0", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.chaos", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    for mode in ("baseline", "faults"):
        d = results[mode]
        assert d["failure"] is None and d["child_leftovers"] == [] and d["leftovers"] == []
        assert d["results"]["wrong"] == 0 and d["losses"]["tasks"] == 150
    assert results["faults"]["faults"]["kills"] >= 1
    rows = [line.split("  ")[0] for line in proc.stdout.splitlines()]
    for label in (
        "tasks",
        "kills survived",
        "stops survived",
        "executions",
        "tasks lost: cut short",
        "tasks lost: stored values needed",
        "re-execution factor (target <= 2)",
        "max executions of one task",
        "wrong results (of checked)",
        "wall time s",
        "leftovers",
    ):
        assert label in rows, label
