"""The chaos soak: ``python -m benchmarks.chaos [--tasks N] [--seconds S] [--kill-every S]
[--json PATH]``.

::

    orchestrator ─► child "baseline": jf.init(3), the DAG (chaos_tasks.py), no faults
                 ─► child "faults":   the same DAG while chaos_faults.FaultInjector
                                      SIGKILLs a random worker every --kill-every s and
                                      SIGSTOPs another every --stop-every periods
                                      (heartbeat_timeout is short: a stopped worker must
                                      be found silent and killed by the engine)
       each child: the tasks append S/E lines to an execution log; at the end the results
       are checked against values known in advance, the injector is stopped, the cluster
       shut down, and its processes and files looked for; chaos_model.py replays the log
       against the deaths: cut short, values lost, inputs rebuilt, re-execution factor
    then: leftovers of each child (isolation.py), the table, the JSON file

Each run is bounded: the DAG must finish within --seconds of its submission, and each
child is killed (its whole process group) at --seconds plus a margin for start and shutdown.
The public API does the work (``jf.init``, ``submit``, ``wait``, ``status``, ``shutdown``);
the faults need the cluster's worker pids (``client.backend.cluster.pids()``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jupyter_futures as jf
from benchmarks import isolation, procs, report
from benchmarks.chaos_faults import FaultInjector
from benchmarks.chaos_model import losses, read_executions
from benchmarks.chaos_tasks import Dag, build, combine, make, reduce_group, total, value_of

DEFAULT_JSON = isolation.ROOT / "benchmarks" / "results" / "chaos.json"
START_MARGIN = 90.0  # seconds a child may take beyond --seconds: start-up, checks, shutdown


@dataclass(frozen=True)
class SoakConfig:
    tasks: int = 2000
    workers: int = 3
    work: float = 0.010  # CPU seconds each task spends before it returns
    kill_every: float = 2.0
    stop_every: int = 3  # every how many periods a second worker is stopped (0: never)
    seconds: float = 240.0  # the DAG's bound, from submission to its last result
    heartbeat_interval: float = 0.2
    heartbeat_timeout: float = 2.0
    seed: int = 0
    order: str = "depth"  # or "fifo": see submit_dag


def submit_dag(
    dag: Dag, log: str, work: float, order: str = "depth"
) -> tuple[jf.Future[float], dict[str, jf.Future[float]]]:
    """Submit every task; keep only the reduces' and the total's futures (inline floats),
    so stored arrays are freed as soon as their readers have finished.

    ``order="depth"``: each layer one priority above the layer it reads, so a combine runs
    as soon as its two arrays exist and a reduce as soon as its group does, and the arrays
    alive at any moment (what a kill can destroy) are about one group's. ``"fifo"``: all
    priorities equal, so the engine runs every make first and holds them all at once."""
    level = (lambda n: n) if order == "depth" else (lambda n: 0)
    makes = [
        jf.submit(make, log, f"m{i}", value_of(i), work, name=f"m{i}", priority=level(0))
        for i in range(dag.makes)
    ]
    combines = [
        jf.submit(
            combine, log, f"c{j}", work, makes[2 * j], makes[2 * j + 1], name=f"c{j}", priority=level(1)
        )
        for j in range(dag.makes // 2)
    ]
    del makes
    reduces = {
        f"r{g}": jf.submit(
            reduce_group, log, f"r{g}", work, *[combines[j] for j in members], name=f"r{g}", priority=level(2)
        )
        for g, members in enumerate(dag.groups)
    }
    del combines
    final = jf.submit(total, log, dag.final, work, *reduces.values(), name=dag.final, priority=level(3))
    return final, reduces


def check_results(dag: Dag, futures: dict[str, jf.Future[float]]) -> dict[str, Any]:
    """Each reduce's and the total's value against the one known in advance."""
    wrong: list[str] = []
    unfinished = 0
    for key, f in futures.items():
        if not f.done():
            unfinished += 1
            continue
        exc = f.exception()
        if exc is not None:
            wrong.append(f"{key}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200])
        elif f.result() != dag.expected[key]:
            wrong.append(f"{key}: {f.result()!r} != {dag.expected[key]!r}")
    return {"checked": len(futures), "wrong": len(wrong), "unfinished": unfinished, "errors": wrong[:10]}


def leftovers_here(cluster_id: str | None) -> list[str]:
    """This process's own leftovers once its cluster is shut down: child processes (the
    workers, the zygote and the reaper are all descendants), the cluster's files, and the
    engine's threads."""
    found = [procs.describe(p) for p in procs.wait_gone(None, timeout=10.0)]
    found += isolation.cluster_files(cluster_id)
    found += [f"thread {t.name}" for t in threading.enumerate() if t.name.startswith("jupyter-futures")]
    return found


def soak(cfg: SoakConfig, faulty: bool, on_cluster: Any = None) -> dict[str, Any]:
    """One run of the DAG, with or without faults; the figures of the table (see
    chaos_model.py for their definitions) and what the run left behind."""
    dag = build(cfg.tasks)
    workdir = Path(tempfile.mkdtemp(prefix="chaos-run-"))
    log = str(workdir / "executions.log")
    out: dict[str, Any] = {"mode": "faults" if faulty else "baseline", "config": asdict(cfg)}
    injector: FaultInjector | None = None
    cluster_id: str | None = None
    started = time.monotonic()
    try:
        client = jf.init(
            cfg.workers, heartbeat_interval=cfg.heartbeat_interval, heartbeat_timeout=cfg.heartbeat_timeout
        )
        try:
            client.wait_for_workers(timeout=60)
            cluster_id = out["cluster"] = client.cluster_id
            if on_cluster is not None:
                on_cluster(cluster_id)
            t0, started = time.perf_counter(), time.monotonic()
            if faulty:
                injector = FaultInjector(client, cfg.kill_every, cfg.stop_every, cfg.seconds, cfg.seed)
                injector.start()
            final, reduces = submit_dag(dag, log, cfg.work, cfg.order)
            jf.wait([final, *reduces.values()], timeout=cfg.seconds)
            out["wall_s"] = time.perf_counter() - t0
            if injector is not None:  # before the end check: no fault meets the checks
                injector.finish(stopped_wait=3 * cfg.heartbeat_timeout + 2)
            out["results"] = check_results(dag, {**reduces, dag.final: final})
            try:  # the last fault's replacement may still be starting
                client.wait_for_workers(timeout=30)
            except jf.WorkersNotStartedError:
                pass  # reported below: fewer workers at the end than asked for
            status = jf.status()
            out["workers_at_end"] = sum(1 for w in status["workers"] if w["alive"])
            out["messages"] = status.get("messages")
        finally:
            if injector is not None:
                injector.finish(stopped_wait=0)
            client.shutdown()
    finally:
        out["leftovers"] = leftovers_here(cluster_id)
        executions, malformed = read_executions(Path(log))
        deaths = injector.deaths if injector is not None else []
        out["losses"] = losses(dag, executions, deaths, malformed).as_dict()
        out["faults"] = injector.summary(started) if injector is not None else None
        shutil.rmtree(workdir, ignore_errors=True)
    return out


# -- the table ---------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table_rows(base: dict[str, Any], run: dict[str, Any]) -> list[list[str]]:
    """(figure, baseline, with faults) rows; a run that failed shows its error instead."""

    def g(d: dict[str, Any], *path: str) -> Any:
        for p in path:
            if not isinstance(d, dict):
                return None
            d = d.get(p)  # type: ignore[assignment]
        return d

    f = run.get("faults") or {}
    right = g(run, "results", "wrong") == 0 and g(run, "results", "unfinished") == 0
    cfg = run.get("config") or base.get("config") or {}
    ratio = (run["wall_s"] / base["wall_s"]) if run.get("wall_s") and base.get("wall_s") else None

    def survived(kind: str) -> str:
        n, seen = f.get(f"{kind}s"), f.get(f"{kind}s_detected")
        if n is None:
            return "-"
        worst = f.get(f"max_{kind}_detection_s")
        return f"{seen if right else 0} of {n}" + (
            f" (gone after <= {worst:.2f} s)" if worst is not None else ""
        )

    def both(*path: str, digits: int = 2) -> list[str]:
        return [_fmt(g(base, *path), digits), _fmt(g(run, *path), digits)]

    def left(d: dict[str, Any]) -> str:
        items = d.get("leftovers", []) + d.get("child_leftovers", [])
        return "none" if not items else f"{len(items)}: {items[0][:60]}"

    return [
        ["figure", "baseline", "with faults"],
        ["tasks", *both("losses", "tasks")],
        ["workers (heartbeat timeout s)", *[f"{cfg.get('workers')} ({cfg.get('heartbeat_timeout')})"] * 2],
        ["kills survived", "-", survived("kill")],
        ["stops survived", "-", survived("stop")],
        ["other worker deaths", "0", _fmt(f.get("other_deaths"))],
        ["executions", *both("losses", "executions")],
        ["tasks lost: cut short", *both("losses", "cut_short")],
        ["tasks lost: stored values needed", *both("losses", "values_lost")],
        ["inputs rebuilt (freed, needed again)", *both("losses", "inputs_rebuilt")],
        ["re-execution factor (target <= 2)", *both("losses", "reexecution_factor")],
        ["extra / (lost + inputs rebuilt)", *both("losses", "factor_over_needed")],
        ["executions beyond needed", *both("losses", "beyond_needed")],
        ["max executions of one task", *both("losses", "max_executions")],
        ["stored objects on faulted workers", "-", _fmt(f.get("objects_on_faulted_workers"))],
        [
            "wrong results (of checked)",
            *[f"{g(d, 'results', 'wrong')} (of {g(d, 'results', 'checked')})" for d in (base, run)],
        ],
        ["unfinished results", *both("results", "unfinished")],
        ["wall time s", _fmt(base.get("wall_s")), f"{_fmt(run.get('wall_s'))} (x{_fmt(ratio)})"],
        ["leftovers", left(base), left(run)],
    ]


def text(results: dict[str, Any]) -> str:
    base, run = results["baseline"], results["faults"]
    cfg = results["meta"]["args"]
    lines = [
        f"chaos soak, {results['meta']['date']}: {cfg['tasks']} tasks on {cfg['workers']} workers, "
        f"{cfg['work'] * 1000:g} ms of CPU each; a SIGKILL every {cfg['kill_every']:g} s, "
        f"a SIGSTOP every {cfg['stop_every']} periods; {cfg['order']} order",
        "",
        isolation.rows(table_rows(base, run)),
    ]
    for name, d in (("baseline", base), ("with faults", run)):
        if d.get("failure"):
            lines.append(f"{name}: FAILED: {d['failure']}")
        for err in (d.get("results") or {}).get("errors", []):
            lines.append(f"{name}: {err}")
    return "\n".join(lines) + "\n"


def ok(results: dict[str, Any]) -> bool:
    for d in (results["baseline"], results["faults"]):
        r = d.get("results") or {}
        if d.get("failure") or r.get("wrong") != 0 or r.get("unfinished") != 0:
            return False
        if d.get("leftovers") or d.get("child_leftovers"):
            return False
    return True


# -- command line ------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.split("\n\n")[0])
    d = SoakConfig()
    p.add_argument("--tasks", type=int, default=d.tasks, help=f"tasks in the DAG (default {d.tasks})")
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--work-ms", type=float, default=d.work * 1000, help="CPU ms per task (default 10)")
    p.add_argument("--kill-every", type=float, default=d.kill_every, help="seconds between SIGKILLs")
    p.add_argument("--stop-every", type=int, default=d.stop_every, help="periods between SIGSTOPs (0: none)")
    p.add_argument("--seconds", type=float, default=d.seconds, help="bound on each run of the DAG")
    p.add_argument("--heartbeat-timeout", type=float, default=d.heartbeat_timeout)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--order",
        choices=["depth", "fifo"],
        default=d.order,
        help="depth: each layer a priority above the one it reads (default); fifo: equal priorities",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--child", choices=["baseline", "faults"], help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tasks < 8 or args.workers < 2:
        p.error("the soak needs at least 8 tasks and 2 workers")
    return args


def config_of(args: argparse.Namespace) -> SoakConfig:
    return SoakConfig(
        tasks=args.tasks,
        workers=args.workers,
        work=args.work_ms / 1000,
        kill_every=args.kill_every,
        stop_every=args.stop_every,
        seconds=args.seconds,
        heartbeat_timeout=args.heartbeat_timeout,
        seed=args.seed,
        order=args.order,
    )


def child(args: argparse.Namespace) -> int:
    faults = args.child == "faults"
    return isolation.child_main(args.out, lambda on_cluster: soak(config_of(args), faults, on_cluster))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        return child(args)
    cfg = config_of(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    workdir = args.json.parent / "logs"
    workdir.mkdir(exist_ok=True)
    flags = [
        *("--tasks", str(cfg.tasks), "--workers", str(cfg.workers), "--work-ms", str(args.work_ms)),
        *("--kill-every", str(cfg.kill_every), "--stop-every", str(cfg.stop_every)),
        *("--seconds", str(cfg.seconds), "--heartbeat-timeout", str(cfg.heartbeat_timeout)),
        *("--seed", str(cfg.seed), "--order", cfg.order),
    ]
    results: dict[str, Any] = {"meta": report.meta({**asdict(cfg), "json": str(args.json)})}
    for mode in ("baseline", "faults"):
        print(f"[chaos] {mode} ...", file=sys.stderr, flush=True)
        run = isolation.run_child(
            "benchmarks.chaos",
            ["--child", mode, *flags],
            cfg.seconds + START_MARGIN,
            workdir,
            f"chaos-{mode}",
        )
        entry = dict(run.data)
        entry["failure"] = run.failure()
        entry["child_leftovers"] = run.leftovers
        entry["child_wall_s"] = run.wall
        entry["log"] = run.log
        results[mode] = entry
    isolation.write_json(args.json, results)
    print(text(results), end="")
    print(f"\nwritten: {args.json}")
    return 0 if ok(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
