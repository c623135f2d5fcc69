"""One soak in a process of its own, and what it left behind.

::

    python -m benchmarks.chaos / benchmarks.fuzz          (the orchestrator)
      └─► python -m <module> --child ... --out RUN.json   new session, JF_BENCH_TAG=<uuid>
             writes RUN.json as soon as its cluster has an id, and again at the end
      after it exits (or is killed at its timeout, with its whole process group):
        processes of that session or carrying that tag  ─► killed, listed as leftovers
        /dev/shm/jf-<id>, /dev/shm/.jf-staging-<id>,
        <fallback>/jf-<id>, <tmp>/jf-<id>                ─► listed as leftovers (kept)

The same checks as :mod:`benchmarks.runner` makes for each engine, for the chaos soak and
the frame fuzzer: a soak that passes by leaving a worker or a segment behind does not pass.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import procs, runner

ROOT = Path(__file__).resolve().parents[1]
SHM = Path("/dev/shm")


@dataclass
class Isolated:
    """One finished child run."""

    data: dict[str, Any]
    wall: float
    timed_out: bool
    returncode: int
    processes: list[str] = field(default_factory=list)  # leftovers, killed
    files: list[str] = field(default_factory=list)  # leftovers, kept for a look
    log: str = ""

    @property
    def leftovers(self) -> list[str]:
        return self.processes + self.files

    def failure(self) -> str | None:
        if self.timed_out:
            return f"timed out after {self.wall:.0f} s (process group killed)"
        if self.data.get("fatal"):
            return str(self.data["fatal"])
        if self.returncode != 0 or not self.data.get("finished"):
            tail = Path(self.log).read_text(errors="replace").strip().splitlines()[-3:] if self.log else []
            return f"exited with code {self.returncode}: {' | '.join(tail)[:300]}"
        return None


def cluster_files(cluster_id: str | None) -> list[str]:
    """Whatever of cluster ``cluster_id`` still exists: its object directory (in /dev/shm,
    or the file-backed fallback), a half-made one, and its private socket directory."""
    if not cluster_id:
        return []
    from jupyter_futures.local.store import fallback_dir

    tmp = Path(tempfile.gettempdir())
    candidates = [
        SHM / f"jf-{cluster_id}",
        SHM / f".jf-staging-{cluster_id}",
        fallback_dir() / f"jf-{cluster_id}",
        fallback_dir() / f".jf-staging-{cluster_id}",
        tmp / f"jf-{cluster_id}",
    ]
    return [str(p) for p in candidates if os.path.lexists(p)]


def run_child(module: str, args: list[str], timeout: float, workdir: Path, label: str) -> Isolated:
    """``python -m module *args --out <workdir>/<label>.json`` in a session of its own,
    tagged; then the leftovers of its processes and of the clusters it reported."""
    tag = procs.new_tag()
    out = workdir / f"{label}.json"
    log = workdir / f"{label}.log"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", module, *args, "--out", str(out)]
    data, wall, timed_out, proc = runner.run_tagged(cmd, tag, timeout, out, log)
    left = runner.cleanup(tag, sid=proc.pid)
    # A killed kernel's reaper removes its files within seconds (local/reaper.py): give it
    # that long before calling what is there a leftover.
    deadline = time.monotonic() + (5.0 if timed_out else 1.0)
    files = cluster_files(data.get("cluster"))
    while files and time.monotonic() < deadline:
        time.sleep(0.1)
        files = cluster_files(data.get("cluster"))
    return Isolated(data, wall, timed_out, proc.returncode, left, files, str(log))


def child_main(out: Path, work: Callable[[Callable[[str], None]], dict[str, Any]]) -> int:
    """The child's side of ``run_child``: ``work(on_cluster)`` does the run; what it returns,
    or its error, goes to ``out``. ``on_cluster(id)`` writes the cluster's id at once, so a
    child killed later still names the cluster whose leftovers must be looked for."""
    data: dict[str, Any] = {"finished": False}

    def on_cluster(cid: str) -> None:
        data["cluster"] = cid
        write_json(out, data)

    try:
        data.update(work(on_cluster))
    except Exception as exc:
        data["fatal"] = f"{type(exc).__name__}: {exc}"
    data["finished"] = True
    write_json(out, data)
    return 1 if "fatal" in data else 0


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a child killed mid-write leaves the previous version."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def rows(table: list[list[str]]) -> str:
    """Columns padded to their widest cell, as a plain-text table."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)
