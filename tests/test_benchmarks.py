"""The benchmark harness (``python -m benchmarks``), run end to end in smoke mode.

Timings are never asserted: only that every workload produced a number (or ``n/a`` where
the engine lacks the feature), and that nothing outlived the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
STORE_METRICS = {"put_256", "get_256", "stored_arg_sum"}
ACTOR_METRICS = {"actor_rtt", "actor_10k"}


def run_benchmarks(tmp_path: Path, *args: str, timeout: float = 100) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert psutil.Process().children(recursive=True) == []
    results: dict[str, Any] = json.loads(out.read_text())
    for name in results["metrics"]:
        if not name.startswith("floor_"):
            assert name in proc.stdout, f"{name} missing from the table"
    return results


def without_number(metrics: dict[str, Any]) -> dict[str, str]:
    return {k: m["error"] or m["na"] or "no sample" for k, m in metrics.items() if m["median"] is None}


@pytest.mark.timeout(110)
def test_smoke_jupyter_futures_every_workload_measured(tmp_path: Path) -> None:
    results = run_benchmarks(tmp_path)
    assert list(results["systems"]) == ["jupyter_futures"]
    jf = results["systems"]["jupyter_futures"]
    expected = {k for k in results["metrics"] if not k.startswith("floor_")}
    assert set(jf["metrics"]) == expected
    assert without_number(jf["metrics"]) == {}
    assert jf["status"] == "ok"
    assert jf["leftovers"] == []
    assert without_number(results["floors"]["metrics"]) == {}
    assert results["meta"]["machine"]["logical_cores"] >= 1


@pytest.mark.timeout(110)
def test_smoke_processpool_reports_missing_features_as_na(tmp_path: Path) -> None:
    results = run_benchmarks(tmp_path, "--systems", "processpool", "--no-floors")
    pool = results["systems"]["processpool"]
    missing = without_number(pool["metrics"])
    assert set(missing) == STORE_METRICS | ACTOR_METRICS
    assert all(pool["metrics"][k]["na"] and not pool["metrics"][k]["error"] for k in missing)
    assert pool["leftovers"] == []
    assert results["ratios"]["task_rtt"]["processpool"] is None  # no jupyter_futures in this run


@pytest.mark.timeout(60)
def test_system_over_its_timeout_is_killed_and_reported(tmp_path: Path) -> None:
    results = run_benchmarks(tmp_path, "--systems", "processpool", "--no-floors", "--timeout", "0.3")
    pool = results["systems"]["processpool"]
    assert pool["status"] == "timeout"
    assert pool["leftovers"] == []  # the process group was killed as one
    errors = [m["error"] for m in pool["metrics"].values() if m["median"] is None and not m["na"]]
    assert errors and all("timed out" in e for e in errors)


@pytest.mark.timeout(30)
def test_cleanup_finds_tagged_process_outside_the_group(tmp_path: Path) -> None:
    tag = "0123456789abcdef"
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "JF_BENCH_TAG": tag},
        start_new_session=True,  # escaped the run's process group, as a daemon would
    )
    try:
        code = f"from benchmarks.runner import cleanup; print(repr(cleanup({tag!r}, sid=-1, grace=0.2)))"
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=20
        )
        assert proc.returncode == 0, proc.stderr
        assert f"pid {stray.pid}:" in proc.stdout
        assert stray.wait(timeout=5) != 0  # killed
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


@pytest.mark.timeout(120)
def test_smoke_on_dask_measures_both_on_one_cluster(tmp_path: Path) -> None:
    out = tmp_path / "on_dask.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.on_dask", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"task_rtt", "tasks_2k", "actor_rtt", "scatter_64", "gather_64"}
    assert all(r["dask"] > 0 and r["jupyter_futures"] > 0 and r["cost"] > 0 for r in rows.values())
    assert "cost (jf / Dask)" in proc.stdout


@pytest.mark.timeout(110)
def test_profile_mode_samples_the_driver_and_its_workers(tmp_path: Path) -> None:
    """``--profile WORKLOAD``: py-spy attached to the system runner while the workload runs,
    a speedscope timeline of every process and thread, and a readable summary."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--profile",
            "task_rtt",
            "--smoke",
            "--json",
            str(tmp_path / "x.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert psutil.Process().children(recursive=True) == []
    timeline = json.loads((tmp_path / "profile-jupyter_futures-task_rtt.speedscope.json").read_text())
    pids = {p["name"].split()[1] for p in timeline["profiles"]}
    assert len(pids) >= 2, pids  # the driver and a worker (at smoke size one may stay idle)
    summary = (tmp_path / "profile-jupyter_futures-task_rtt.txt").read_text()
    assert "driver · Process " in summary, summary
    assert "worker · Process " in summary and "s sampled" in summary, summary
    names = {f["name"] for f in timeline["shared"]["frames"]}
    assert any(n.startswith(("BaseClient.", "LocalCluster.", "Worker.")) for n in names), sorted(names)[:40]


def test_scheduler_scale_runs_every_future_through_and_frees_them() -> None:
    from benchmarks import scheduler_scale

    [row] = [scheduler_scale.measure(2_000)]
    assert row["futures"] == 2_000 and row["tasks_left"] == 0  # all run, all released
    assert row["measured_by"] == "tracemalloc" and row["bytes_per_queued_future"] > 0
    assert all(
        row[k] > 0 for k in ("us_per_submit", "us_per_done_event", "us_per_release", "ms_per_worker_death")
    )
