"""The scheduler's records: one per future and per actor, and the outcomes it makes.

Plain data and pure helpers, shared by the state machine (``scheduler.py``), its rules
(``actor_rules.py``, ``worker_deaths.py``), its views (``views.py``) and the workers
(which build framework errors too).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .specs import DRIVER, Outcome, TaskMsg, TaskSpec

IntSet = set[int] | frozenset[int]
EMPTY: frozenset[int] = frozenset()
"""The one empty set every record starts with: most futures never need their own (an
empty ``set`` is 216 bytes, and a record has three), so :func:`added` makes one on the first
member."""


def added(members: IntSet, x: int) -> set[int]:
    """``members`` with ``x`` in it: the same set, or a new one in place of a shared
    frozenset (``EMPTY``, ``KERNEL_ONLY``)."""
    if isinstance(members, set):
        members.add(x)
        return members
    return {*members, x}


def removed(members: IntSet, x: int) -> IntSet:
    """``members`` without ``x``: the same set, or a smaller frozenset in place of a shared one."""
    if isinstance(members, set):
        members.discard(x)
        return members
    return members - {x} if x in members else members


KERNEL_ONLY: frozenset[int] = frozenset({DRIVER})
"""The holders of almost every future: the kernel alone, shared (a set each is 216 bytes)."""


def only(holder: int) -> IntSet:
    """The holders of a new record: ``holder`` alone."""
    return KERNEL_ONLY if holder == DRIVER else {holder}


WAITING, READY, ASSIGNED, DONE, FAILED, CANCELLED, LOST = (
    "waiting",
    "ready",
    "assigned",
    "done",
    "failed",
    "cancelled",
    "lost",
)
FINISHED = (DONE, FAILED, CANCELLED, LOST)
PUBLIC_STATE = {
    WAITING: "pending",
    READY: "pending",
    ASSIGNED: "running",
    DONE: "done",
    FAILED: "failed",
    CANCELLED: "cancelled",
    LOST: "done",
}


def framework_error(cls: str, message: str, code: int | None = None, cause: Outcome | None = None) -> Outcome:
    """An error raised by jupyter_futures itself (a class of errors.py, by name)."""
    return Outcome(
        status="error",
        error_type=f"jf:{cls}",
        text=message,
        code=code,
        data=cause.data if cause else None,
        segment=None,
    )


@dataclass(eq=False, slots=True)
class TaskState:
    spec: TaskSpec
    req: dict[str, float]
    state: str = WAITING
    worker: int | None = None
    attempt: int = 0
    retries_left: int = 0
    deaths: int = 0
    avoid: IntSet = EMPTY  # workers a retry keeps away from
    outcome: Outcome | None = None
    holders: IntSet = EMPTY  # processes holding a Future of it (see only(), added(), removed())
    holds: int = 0  # references from values stored inside other futures
    waiting_on: IntSet = EMPTY
    consumers: IntSet = EMPTY  # unfinished tasks that read this value
    lineage_users: int = 0  # live records that may need this one to rebuild
    reserved: bool = False
    prefetched: bool = False
    resolved: bool = False
    submitted: float = 0.0
    started: float = 0.0
    finished: float = 0.0

    @property
    def inputs(self) -> tuple[int, ...]:
        loc = self.spec.locality
        return self.spec.deps + ((loc[1],) if loc else ())


@dataclass(eq=False)
class ActorState:
    aid: int
    create_tid: int
    cls_name: str
    restarts_left: int
    status: str = "starting"  # starting | alive | restarting | dead
    worker: int | None = None
    queue: deque[int] = field(default_factory=deque)
    inflight: set[int] = field(default_factory=set)
    calls_done: int = 0
    death: str = ""


def task_msg(t: TaskState, tasks: dict[int, TaskState]) -> TaskMsg:
    """``t`` as its worker gets it: the spec, and where each input's value lives now."""
    spec = t.spec
    inputs = {}
    for d in spec.deps:
        o = tasks[d].outcome
        if o is not None:
            inputs[d] = o
    return TaskMsg(
        tid=spec.tid,
        attempt=t.attempt,
        kind=spec.kind,
        fn_hash=spec.fn_hash,
        fn_bytes=None,  # attached when it is sent (SchedulerState._attach_functions)
        args=spec.args,
        inputs=inputs,
        actor=spec.actor,
        method=spec.method,
        name=spec.name,
        group=spec.group,
    )


def upstream_outcome(dep: TaskState) -> Outcome:
    o = dep.outcome
    if o is not None and o.error_type == "jf:UpstreamDependencyFailedNoReconstructionAllowed":
        return framework_error(o.error_type[3:], o.text, cause=o)
    if dep.state == CANCELLED:
        return framework_error(
            "UpstreamDependencyFailedException", f"input future {dep.spec.tid} was cancelled"
        )
    what = o.error_type.removeprefix("jf:") if o else "error"
    message = f"input future {dep.spec.tid} ({dep.spec.name or dep.spec.kind}) failed with {what}"
    if o is not None and o.text:
        message += ":\n" + o.text.rstrip()
    return Outcome(
        status="error",
        error_type="jf:UpstreamDependencyFailedException",
        text=message,
        data=o.data if o else None,
        code=o.code if o else None,
    )
