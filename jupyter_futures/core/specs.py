"""What a future is, how it is sent to run, and how it ended: the records the core shares.

The scheduler reasons over these, and every engine's shell carries them: the local engine
pickles them into its wire messages (:mod:`jupyter_futures.local.protocol` re-exports them
under their usual names), a worker turns an :class:`Outcome` back into a value.

::

    client ── TaskSpec ──► scheduler ── TaskMsg (spec + where each input lives) ──► worker
       ▲                                                                              │
       └────────────── Outcome (a value, a shared-memory object or an error) ◄────────┘
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypedDict, TypeVar

DRIVER = 0
"""The process id of the kernel-side client; workers are 1, 2, ..."""

TaskKind = Literal["task", "put", "actor", "call"]

R = TypeVar("R")


def _pickled_by_position(cls: type[R]) -> type[R]:
    """Pickle a record as its class and its fields in order: every message carries these,
    and this is half the bytes and half the time of the default slots state."""
    values = operator.attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]

    def __reduce__(self: Any) -> tuple[type[R], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign,assignment]
    return cls


@_pickled_by_position
@dataclass(slots=True)
class Outcome:
    """How a future ended: a value (inline bytes or a shared-memory object) or an error.

    ``status`` is ``"ok"``, ``"error"`` (a remote exception, pickled in ``data`` with its
    traceback in ``text``) or ``"died"`` (a framework error: ``text`` is the message and
    ``error_type`` names the class from :mod:`jupyter_futures.errors`).
    """

    status: Literal["ok", "error", "cancelled"]
    data: bytes | None = None  # inline pickle (value or exception)
    segment: str | None = None  # shared-memory object name when not inline
    nbytes: int = 0
    contained: tuple[int, ...] = ()  # futures referenced from inside the value
    text: str = ""  # remote traceback, or the framework error message
    error_type: str = ""  # remote type name, or an errors.py class name
    where: int | None = None  # worker that produced it
    duration: float = 0.0
    code: int | None = None  # exit code, for a worker death
    started: float = 0.0  # the worker's time.monotonic() when the run began


@_pickled_by_position
@dataclass(frozen=True, slots=True)
class Requirements:
    """Resources a future needs free on its worker while it runs (read-only: futures with
    none share :data:`NO_REQUIREMENTS`)."""

    cpu: float = 0.0
    ram: float = 0.0
    gpu: float = 0.0
    custom: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        out = {"cpu": self.cpu, "ram": self.ram, "gpu": self.gpu}
        out.update(self.custom)
        return {k: v for k, v in out.items() if v}


NO_REQUIREMENTS = Requirements()


@_pickled_by_position
@dataclass(slots=True)
class TaskSpec:
    """Everything needed to run (or re-run, for lineage) one future."""

    tid: int
    kind: TaskKind
    fn_hash: bytes = b""
    fn_bytes: bytes | None = None
    args: bytes = b""  # pickled (args, kwargs) with futures as persistent ids
    deps: tuple[int, ...] = ()
    requirements: Requirements = NO_REQUIREMENTS
    locality: tuple[int, int] | None = None  # (worker, object id)
    max_retries: int = 0
    allow_reconstruction: bool = True
    actor: int | None = None  # actor id, for "actor" and "call"
    method: str = ""
    max_restarts: int = 0
    name: str = ""  # shown in status and widgets
    owner: int = DRIVER  # process that submitted it
    priority: int = 0  # among ready futures of one queue, higher is placed first
    group: int = 0  # who submitted it (in a kernel, the cell): equal priorities take turns by group


@_pickled_by_position
@dataclass(slots=True)
class TaskMsg:
    """A task as sent to a worker: the spec plus where each input's value lives."""

    tid: int
    attempt: int
    kind: TaskKind
    fn_hash: bytes
    fn_bytes: bytes | None
    args: bytes
    inputs: dict[int, Outcome]
    actor: int | None = None
    method: str = ""
    name: str = ""
    group: int = 0  # its submitter's: work it submits in turn is of the same group


class WorkerStats(TypedDict):
    """What a worker's heartbeat reports."""

    pid: int
    rss: int
    cpu_percent: float
    store_used: int
    store_capacity: int
    spilled: int
    objects: int
    running: list[int]
    dropped_frames: dict[str, int]  # control frames its inbox dropped, by reason
    gpus: list[Any]  # its devices' utilisation and memory (jupyter_futures.gpus.GpuStats)
