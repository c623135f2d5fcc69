"""What the kernel side of the Dask backend keeps of each future and actor, and how a Dask
worker reads in the cluster status (the rest is ``backend.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..backend import GpuStats, WorkerStatus
from ..futures import Future

KEEP_RECORDS = 10_000  # settled futures the views remember


@dataclass
class Record:
    fid: int
    name: str
    kind: str  # task, put, actor, call
    key: str
    future: Future[Any] | None  # until it settles
    deps: list[Future[Any]] = field(default_factory=list)
    dfut: Any = None  # its distributed.Future, once sent (None once released)
    state: str = "pending"  # pending, running, done, failed, cancelled
    worker: str | None = None
    root: int = 0
    submitted: float = field(default_factory=time.monotonic)
    started: float = 0.0
    duration: float = 0.0
    error: str = ""
    cancelling: bool = False
    fetch: bool = False  # a thread waits for the value: gather it as soon as it is done
    actor: int | None = None  # the actor it creates or calls: its run is on that actor's lane
    group: int = 0  # whose work it is (backend.GroupHook)
    priority: int = 0


@dataclass
class ActorRecord:
    aid: int
    cls_name: str
    key: str
    max_restarts: int
    dfut: Any = None
    address: str | None = None
    state: str = "starting"  # starting, alive, restarting, dead
    death: str = ""
    restarts: int = 0
    calls_done: int = 0
    queued: int = 0
    outbox: list[list[Any]] = field(default_factory=list)  # [call or None (not ready), ...] in call order
    seq: int = 0  # this caller's next call number for the actor's current incarnation
    create: Callable[[], None] = lambda: None  # (again) on a worker
    inflight: dict[int, Record] = field(default_factory=dict)  # calls sent, not answered


@dataclass(frozen=True, slots=True)
class Held:
    """A value the kernel holds itself (an actor call's result)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Fetched:
    """A Dask future and its value, gathered the moment it finished because a thread was
    waiting for it (the future stays the input of dependents)."""

    dfut: Any
    value: Any


PLAIN = frozenset({int, float, str, bool, type(None), complex})
"""Argument types a task may pass to Dask as they are: nothing can hide inside them, and
Dask reads none of them as part of its graph."""


def key_prefix(name: str) -> str:
    """A Dask key prefix from a future's name (Dask's dashboard groups keys by it)."""
    clean = "".join(c if c.isalnum() or c in "_." else "_" for c in name)[:60]
    return clean or "task"


def worker_row(
    addr: str, w: dict[str, Any], pid: Any, actors: list[dict[str, Any]], running: list[int | str]
) -> WorkerStatus:
    """One Dask worker as the widgets and the panel show it, from ``scheduler_info``."""
    m = w.get("metrics") or {}
    spilled = m.get("spilled_bytes") or {}
    return {
        "id": addr,
        "pid": pid if isinstance(pid, int) else None,
        "alive": True,
        "cpu_percent": float(m.get("cpu", 0.0)),
        "rss": int(m.get("memory", 0)),
        "store_used": int(m.get("managed_bytes", 0)),
        "store_capacity": int(w.get("memory_limit") or 0),
        "spilled": int(spilled.get("disk", 0) if isinstance(spilled, dict) else 0),
        "objects": int((m.get("task_counts") or {}).get("memory", 0)),
        "actors": [int(a["id"] or 0) for a in actors if a["worker"] == addr],
        "running": running,
        "capacity": {
            "cpu": float(w.get("nthreads", 0)),
            "ram": float(w.get("memory_limit") or 0),
            **{str(k): float(v) for k, v in (w.get("resources") or {}).items()},
        },
        "gpus": dask_gpus(w, m),
    }


def dask_gpus(w: dict[str, Any], m: dict[str, Any]) -> list[GpuStats]:
    """A Dask worker's GPU, as its own NVML monitor reports it (``distributed`` samples
    the first visible device when pynvml is installed): [] where it reports none."""
    if "gpu_memory_used" not in m and "gpu_utilization" not in m:
        return []
    static = w.get("gpu") or {}  # its startup information, where the worker sent it
    used, util = m.get("gpu_memory_used"), m.get("gpu_utilization")
    total = m.get("gpu-memory-total", static.get("memory-total"))
    return [
        {
            "index": 0,
            "name": str(static.get("name", "")),
            "utilization": float(util) if util is not None else None,
            "memory_used": int(used) if used is not None else None,
            "memory_total": int(total) if total is not None else None,
        }
    ]
