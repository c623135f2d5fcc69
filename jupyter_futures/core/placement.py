"""Workers as the scheduler sees them, and the choice of a worker for a task.

A task *fits* a worker when every resource it asks for is free there. Plain tasks (one
CPU, nothing else) may also be *prefetched*: queued on a busy worker beyond its slots, so
a stream of short tasks never waits a round trip between two of them. How many depends on
how short tasks have recently been (``prefetch_depth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..local.protocol import WorkerStats

PLAIN = (("cpu", 1.0),)
"""The requirement shape of a task that asked for nothing special."""


@dataclass(eq=False)
class WorkerState:
    wid: int
    capacity: dict[str, float]
    free: dict[str, float] = field(default_factory=dict)
    status: str = "starting"  # starting | alive | dead
    pid: int = 0
    last_seen: float = 0.0
    assigned: set[int] = field(default_factory=set)
    prefetched: int = 0
    functions: set[bytes] = field(default_factory=set)
    unsent: list[Any] = field(default_factory=list)  # tasks placed here, not yet sent
    actors: set[int] = field(default_factory=set)
    stats: WorkerStats | None = None
    exitcode: int | None = None

    def __post_init__(self) -> None:
        if not self.free:
            self.free = dict(self.capacity)

    def fits(self, req: dict[str, float]) -> bool:
        free = self.free
        return all(free.get(k, 0.0) >= v - 1e-09 for k, v in req.items())

    def could_ever_fit(self, req: dict[str, float]) -> bool:
        cap = self.capacity
        return all(cap.get(k, 0.0) >= v - 1e-9 for k, v in req.items())

    def reserve(self, req: dict[str, float]) -> None:
        for k, v in req.items():
            self.free[k] = self.free.get(k, 0.0) - v

    def unreserve(self, req: dict[str, float]) -> None:
        for k, v in req.items():
            self.free[k] = self.free.get(k, 0.0) + v


def shape_of(req: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(req.items()))


def prefetch_depth(mean_duration: float) -> int:
    """Extra plain tasks queued per worker: many when tasks are tiny, none past ~2 ms."""
    if mean_duration <= 0:
        return 0
    return max(0, min(64, int(0.002 / mean_duration)))


def describe_capacity(cap: dict[str, float]) -> str:
    parts = []
    for k, v in sorted(cap.items()):
        if k == "ram":
            parts.append(f"ram={v / 2**30:.2f} GiB")
        else:
            parts.append(f"{k}={v:g}")
    return ", ".join(parts) or "nothing"


def largest_capacity(workers: list[WorkerState]) -> dict[str, float]:
    """Per resource, the most any single worker offers (for error messages)."""
    out: dict[str, float] = {}
    for w in workers:
        for k, v in w.capacity.items():
            out[k] = max(out.get(k, 0.0), v)
    return out
