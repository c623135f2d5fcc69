"""Workers as the scheduler sees them, and the choice of a worker for a task.

A task *fits* a worker when every resource it asks for is free there. Plain tasks (one
CPU, nothing else) may also be *prefetched*: queued on a busy worker beyond its slots, so
a stream of short tasks never waits a round trip between two of them. How many depends on
how short tasks have recently been (``prefetch_depth``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .specs import Outcome, TaskMsg, WorkerStats

PLAIN = (("cpu", 1.0),)
"""The requirement shape of a task that asked for nothing special."""


@dataclass(eq=False)
class WorkerState:
    wid: int
    capacity: dict[str, float]
    free: dict[str, float] = field(default_factory=dict)
    status: str = "starting"  # starting | alive | dead
    leaving: str = ""  # "retire": drain, hand its objects to the kernel, stop; "restart"
    pid: int = 0
    last_seen: float = 0.0
    assigned: set[int] = field(default_factory=set)
    prefetched: int = 0
    functions: set[bytes] = field(default_factory=set)
    unsent: list[TaskMsg] = field(default_factory=list)  # tasks placed here, not yet sent
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


def best_worker(
    candidates: list[WorkerState],
    req: dict[str, float],
    plain: bool,
    depth: int,
    inputs: Sequence[Outcome | None],
) -> tuple[WorkerState, bool] | None:
    """The candidate to run a task on, and whether it is only prefetched there (None: none).

    A free slot beats a prefetch; then the most input bytes already in the worker's store;
    then the fewest tasks assigned. ``plain`` tasks may be prefetched, ``depth`` per worker."""
    best: tuple[bool, int, int] | None = None
    chosen: tuple[WorkerState, bool] | None = None
    for w in candidates:
        if w.fits(req):
            prefetch = False
        elif plain and w.prefetched < depth:
            prefetch = True
        else:
            continue
        score = (not prefetch, local_bytes(inputs, w.wid), -len(w.assigned))
        if best is None or score > best:
            best, chosen = score, (w, prefetch)
    return chosen


def local_bytes(inputs: Sequence[Outcome | None], wid: int) -> int:
    """Bytes of these inputs whose copy lives in worker ``wid``'s store."""
    total = 0
    for o in inputs:
        if o is not None and o.where == wid and o.segment is not None:
            total += o.nbytes
    return total


def unsatisfiable_message(req: dict[str, float], live: list[WorkerState]) -> str:
    """Why no live worker can ever run ``req``, naming what they offer."""
    wanted = describe_capacity(req)
    if live:
        kinds = sorted({describe_capacity(w.capacity) for w in live})
        offers = (
            "the largest worker offers " + kinds[0]
            if len(kinds) == 1
            else ("the workers offer " + "; ".join(kinds))
        )
        offers += f" (most of each: {describe_capacity(largest_capacity(live))})" if len(kinds) > 1 else ""
    else:
        offers = "there are no live workers"
    return f"no worker can ever meet the requirement ({wanted}); {offers}"


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
