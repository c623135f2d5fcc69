"""The orchestrator: ``python -m benchmarks [--smoke] [--systems ...] [--json PATH] [--repeat N]``
(``--profile WORKLOAD``: where the time goes instead, see :mod:`benchmarks.profile`).

Every system runs in its own ``benchmarks.system_runner`` subprocess, started in a new
session (so its process group can be killed as one) and tagged through the environment
(so processes that left the group are found too).  After each subprocess ends, on its own
or killed at ``--timeout``, whatever it left alive is killed and reported.  A system that
fails keeps its row: every metric without a number carries the error text instead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import config, procs, profile, report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"
LIFECYCLE = ("startup", "idle_pss", "shutdown")


@dataclass
class Child:
    """One finished system-runner subprocess."""

    data: dict[str, Any]
    wall: float
    timed_out: bool
    returncode: int
    leftovers: list[str] = field(default_factory=list)
    log: str = ""

    def failure(self, timeout: float) -> str | None:
        """Why metrics without a number have none, if the process itself failed."""
        if self.timed_out:
            return f"system run timed out after {timeout:g} s (process group killed)"
        if self.data.get("fatal"):
            return str(self.data["fatal"])
        if self.returncode != 0 or not self.data.get("finished"):
            return f"system runner exited with code {self.returncode}: {_tail(self.log)}"
        return None


def _tail(log: str, lines: int = 1) -> str:
    try:
        text = Path(log).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:])[:300] if text else "(empty log)"


def _shm() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def run_child(system: str, extra: list[str], timeout: float, workdir: Path, label: str) -> Child:
    tag = procs.new_tag()
    out = workdir / f"{label}.json"
    log = workdir / f"{label}.log"
    cmd = [sys.executable, "-m", "benchmarks.system_runner", system, "--out", str(out), *extra]
    data, wall, timed_out, proc = run_tagged(cmd, tag, timeout, out, log)
    return Child(data, wall, timed_out, proc.returncode, cleanup(tag, sid=proc.pid), str(log))


def run_tagged(
    cmd: list[str], tag: str, timeout: float, out: Path, log: Path
) -> tuple[dict[str, Any], float, bool, subprocess.Popen[bytes]]:
    """Run ``cmd`` in a session of its own, tagged, its output to ``log``, killed (its whole
    group) past ``timeout``; returns what it wrote to ``out`` (JSON), its wall time, whether
    it timed out, and the finished process."""
    env = procs.runner_env(tag, str(ROOT))
    t0 = time.perf_counter()
    timed_out = False
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    wall = time.perf_counter() - t0
    try:
        data: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        data = {}
    return data, wall, timed_out, proc


def cleanup(tag: str, sid: int, grace: float = 3.0) -> list[str]:
    """Kill and describe every process of that run still alive after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    me = os.getpid()
    while True:
        found = {p.pid: p for p in procs.tagged(tag, exclude=(me,)) + procs.in_session(sid, exclude=(me,))}
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return procs.kill(list(found.values())) if found else []


def merge(into: dict[str, Any], child: dict[str, Any], names: tuple[str, ...]) -> None:
    """Append ``child``'s samples and errors of ``names`` to ``into``."""
    for name in names:
        src = child.get("metrics", {}).get(name)
        if not src:
            continue
        dst = into.setdefault(name, report.new_entry())
        dst["samples"] += src["samples"]
        dst["na"] = dst["na"] or src["na"]
        dst["error"] = dst["error"] or src["error"]


def run_system(system: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    common = ["--workload-timeout", str(args.workload_timeout), "--budget", str(args.budget)]
    common += ["--smoke"] if args.smoke else []
    groups = [g for g in args.groups if g != "lifecycle"]
    main = run_child(
        system,
        [*common, "--repeat", str(args.repeat), "--groups", ",".join(groups)],
        args.timeout,
        workdir,
        system,
    )
    metrics: dict[str, Any] = main.data.get("metrics", {})
    leftovers, wall = list(main.leftovers), main.wall
    failure = main.failure(args.timeout)

    # A full run takes startup, idle_pss and shutdown from fresh interpreters: the main
    # run's lifecycle numbers (cold disk cache, first import) become its warm-up.
    if not args.smoke and not main.data.get("fatal") and "startup" in metrics:
        for name in LIFECYCLE:
            entry = metrics.get(name)
            if entry:
                entry["warmup"], entry["samples"] = entry["samples"], []
        for i in range(args.repeat):
            child = run_child(
                system, [*common, "--lifecycle"], args.lifecycle_timeout, workdir, f"{system}-life{i}"
            )
            merge(metrics, child.data, LIFECYCLE)
            leftovers += child.leftovers
            wall += child.wall
            why = child.failure(args.lifecycle_timeout)
            if why:
                for name in LIFECYCLE:
                    entry = metrics.setdefault(name, report.new_entry())
                    entry["error"] = entry["error"] or why

    wanted = (
        [m.name for m in config.metrics_of(args.groups)]
        if system != "floors"
        else [m.name for m in config.FLOOR_METRICS]
    )
    for name in wanted:
        entry = metrics.setdefault(name, report.new_entry())
        if not entry["samples"] and not entry["na"] and not entry["error"]:
            entry["error"] = failure or "no sample"
    status = "timeout" if main.timed_out else "error" if failure else "ok"
    return {
        "status": status,
        "error": failure,
        "version": main.data.get("version"),
        "notes": main.data.get("notes"),
        "wall_s": wall,
        "returncode": main.returncode,
        "n_processes": len(main.data.get("processes", [])),
        "processes": main.data.get("processes", []),
        "leftovers": leftovers,
        "log": main.log,
        "metrics": {name: report.summarize(metrics[name]) for name in wanted},
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, once, jupyter_futures only by default")
    p.add_argument("--systems", help=f"comma-separated, from {','.join(config.SYSTEMS)}")
    p.add_argument("--workloads", help="comma-separated metric or group names (default: all)")
    p.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON.relative_to(ROOT)}"
    )
    p.add_argument("--repeat", type=int, help="measured repetitions per workload (default 3, smoke 1)")
    p.add_argument("--timeout", type=float, help="per system run, seconds (default 600, smoke 60)")
    p.add_argument(
        "--budget",
        type=float,
        default=10.0,
        help="seconds a workload group may use before no new repetition starts (default 10)",
    )
    p.add_argument(
        "--workload-timeout", type=float, help="per workload group, seconds (default 180, smoke 30)"
    )
    p.add_argument("--no-floors", action="store_true", help="skip the zmq / memcpy floors")
    p.add_argument(
        "--profile",
        metavar="WORKLOAD",
        help="instead of measuring: run WORKLOAD's group under py-spy (driver and workers) and "
        "write a speedscope timeline and a per-thread summary (jupyter_futures unless --systems)",
    )
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second (--profile)")
    args = p.parse_args(argv)
    if args.profile and not args.systems:
        args.systems = config.REFERENCE
    default_systems = config.REFERENCE if args.smoke else ",".join(config.SYSTEMS)
    chosen = {s for s in (args.systems or default_systems).split(",") if s}
    if chosen - set(config.SYSTEMS):
        p.error(f"unknown systems {sorted(chosen - set(config.SYSTEMS))}; known: {','.join(config.SYSTEMS)}")
    args.systems = [s for s in config.SYSTEMS if s in chosen]  # the reference first
    try:
        args.groups = config.resolve_groups(
            args.workloads.split(",") if args.workloads else list(config.GROUPS)
        )
        if args.profile:
            config.resolve_groups([args.profile])
    except ValueError as exc:
        p.error(str(exc))
    args.repeat = args.repeat or (1 if args.smoke else 3)
    args.timeout = args.timeout or (60.0 if args.smoke else 600.0)
    args.workload_timeout = args.workload_timeout or (30.0 if args.smoke else 180.0)
    args.lifecycle_timeout = min(args.timeout, 60.0 if args.smoke else 120.0)
    return args


def compile_package() -> None:
    """Byte-compile jupyter_futures and the benchmark code, as ``pip install`` leaves an
    installed package: a checkout run with PYTHONDONTWRITEBYTECODE (or a read-only one)
    would otherwise compile every module from source in every new worker, and the start-up
    rows would measure the compiler."""
    import compileall

    for folder in ("jupyter_futures", "benchmarks"):
        compileall.compile_dir(ROOT / folder, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    compile_package()
    if args.profile:
        return profile.main(args.systems, args.profile, args.json.parent, args.smoke, args.rate, args.timeout)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    logdir = args.json.parent / "logs"  # one log and one raw result file per system run
    logdir.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "meta": report.meta({k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}),
        "metrics": {
            m.name: {"unit": m.unit, "higher_is_better": m.higher_is_better, "description": m.description}
            for m in config.METRICS + config.FLOOR_METRICS
        },
        "systems": {},
    }
    results["meta"]["logs"] = str(logdir)
    for system in args.systems:
        print(f"[{system}] running ...", file=sys.stderr, flush=True)
        shm_before = _shm()
        entry = run_system(system, args, logdir)
        entry["shm_new"] = sorted(_shm() - shm_before)
        results["systems"][system] = entry
        print(
            f"[{system}] {entry['status']} in {entry['wall_s']:.1f} s"
            + (f", {len(entry['leftovers'])} leftover processes killed" if entry["leftovers"] else ""),
            file=sys.stderr,
            flush=True,
        )
    if not args.no_floors:
        print("[floors] running ...", file=sys.stderr, flush=True)
        results["floors"] = run_system("floors", args, logdir)
    results["ratios"] = report.ratios(results["systems"])
    args.json.write_text(json.dumps(results, indent=1))
    print(report.text(results), end="")
    print(f"\nwritten: {args.json}  (logs: {logdir})")
    return 0
