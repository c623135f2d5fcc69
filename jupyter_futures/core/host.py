"""The scheduler as its rule modules see it: what they may read and call, and no more.

``actor_rules.py``, ``dispatch.py`` and ``worker_deaths.py`` are functions over a
:class:`Scheduler`, a protocol that :class:`~jupyter_futures.core.scheduler.SchedulerState`
meets structurally. So they never import the state machine that calls them (no import
circle, not even for types), and this list is the whole of what they depend on::

    scheduler.py ──calls──► actor_rules, dispatch, worker_deaths ──typed by──► host.py
                                        │                                         │
                                        └──────► records, placement, specs ◄──────┘
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from .instructions import Instruction
from .placement import WorkerState
from .ready import ReadyQueue
from .records import ActorState, TaskState
from .specs import Outcome, TaskMsg


class Scheduler(Protocol):
    """The parts of the scheduler's state and helpers that its rule modules use."""

    tasks: dict[int, TaskState]
    workers: dict[int, WorkerState]
    actors: dict[int, ActorState]
    ready: dict[Any, ReadyQueue[int]]  # queue key -> ready tids, by priority and group
    mean_duration: float  # of recent tasks, which sets how deep workers are prefetched
    _runs: defaultdict[int, list[TaskMsg]]  # tasks to start, per worker, in this flush
    cancelling: dict[int, float]  # tid -> deadline
    now: float  # the time of the event being handled
    heartbeat_timeout: float
    start_timeout: float
    cancel_grace: float
    max_worker_deaths: int
    salvage_copies: bool  # a dead worker's stored objects may outlive it (AdoptObjects)
    early_deaths: int  # workers in a row that died before they started
    _satisfiable: set[Any]
    _retiring: set[int]  # workers draining before they stop

    def _emit(self, ins: Instruction) -> None: ...

    def _set(self, t: TaskState, state: str) -> None: ...

    def _link_inputs(self, t: TaskState) -> bool: ...

    def _prepare(self, t: TaskState) -> None: ...

    def _requeue(self, t: TaskState) -> None: ...

    def _unassign(self, t: TaskState) -> None: ...

    def _fail(self, t: TaskState, outcome: Outcome, keep_resolved: bool = False) -> None: ...

    def _after_finish(self, t: TaskState) -> None: ...

    def _maybe_free(self, t: TaskState) -> None: ...

    def _drop_value(self, t: TaskState, free: bool = True) -> None: ...
