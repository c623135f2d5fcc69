"""What the scheduler asks its shell to do: small typed records in the core's own terms.

Every event of :class:`~jupyter_futures.core.scheduler.SchedulerState` returns a list of
these, in the order they must be carried out. They say *what* should happen, never how: the
local engine's shell (:mod:`jupyter_futures.local.cluster`) maps each to a wire message or a
local action, and another engine may map them to its own.

::

    SchedulerState event ──► [instruction, ...] ──► shell          (the local engine's mapping)
        RunTasks(worker, tasks)       start these tasks            RUN [TaskMsg, ...]
        CreateActor(worker, task)     construct an actor there     CREATE_ACTOR TaskMsg
        CallActor(worker, task)       run one method call          ACTOR_CALL TaskMsg
        CancelTask(worker, tid)       stop a task if it can        CANCEL tid
        KillActor(worker, aid)        drop an actor                KILL_ACTOR aid
        FreeObjects(proc, names)      delete stored values         FREE, or the kernel's store
        Resolved(proc, results)       futures that process holds   RESOLVED, or the kernel's Futures
        KillWorker(worker, why)       end the process              SIGKILL
        RetireWorker(worker, handed)  drained: the kernel keeps    the kernel's store adopts them,
                                      its objects, stop it         SHUTDOWN (keep them)
        AdoptObjects(dead, copies)    a dead worker's objects      the kernel's store adopts the
                                      outlived it: the kernel's    files it finds; the rest are
                                                                   reported lost (copies_lost)
        SpawnWorker(replacing)        start a replacement          a new worker process
        NoReplacement(dead, why)      workers keep dying at start  an error in the log

``proc`` is a process id: :data:`~jupyter_futures.core.specs.DRIVER` (the kernel) or a worker.
The records are plain slotted dataclasses, one allocation each, because a submit makes one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .specs import Outcome, TaskMsg


@dataclass(slots=True)
class RunTasks:
    """Start ``tasks`` on ``worker`` (one message, however many: one wake-up there)."""

    worker: int
    tasks: list[TaskMsg]


@dataclass(slots=True)
class CreateActor:
    """Construct the actor of ``task`` on ``worker``; its result is the actor's handle."""

    worker: int
    task: TaskMsg


@dataclass(slots=True)
class CallActor:
    """Run one method call on the actor ``task.actor`` that lives on ``worker``."""

    worker: int
    task: TaskMsg


@dataclass(slots=True)
class CancelTask:
    """Ask ``worker`` to stop task ``tid``; it confirms with a cancelled outcome."""

    worker: int
    tid: int


@dataclass(slots=True)
class KillActor:
    """Drop actor ``aid`` on ``worker`` (or stop its creation there)."""

    worker: int
    aid: int


@dataclass(slots=True)
class FreeObjects:
    """Delete the stored values ``names`` held by process ``proc`` (the kernel or a worker)."""

    proc: int
    names: list[str]


@dataclass(slots=True)
class Resolved:
    """Futures held by process ``proc`` have ended: ``(tid, outcome)`` for each."""

    proc: int
    results: list[tuple[int, Outcome]]


@dataclass(slots=True)
class KillWorker:
    """End ``worker``'s process at once (it is already treated as dead)."""

    worker: int
    why: str


@dataclass(slots=True)
class RetireWorker:
    """``worker`` is drained: the objects it stored (``handed``, by name) belong to the
    kernel from now on; stop it, with no replacement."""

    worker: int
    handed: list[str]


@dataclass(slots=True)
class AdoptObjects:
    """``dead`` died, and the objects it stored (``copies``: (tid, name)) may have outlived
    it (a file in shared memory or on disk outlives its process): the kernel takes over
    those it finds; it reports the others with ``SchedulerState.copies_lost``."""

    dead: int
    copies: list[tuple[int, str]]


@dataclass(slots=True)
class SpawnWorker:
    """Start a worker to replace ``replacing``, which has died."""

    replacing: int


@dataclass(slots=True)
class NoReplacement:
    """``dead`` is not replaced: too many workers in a row died before they started."""

    dead: int
    why: str


Instruction = (
    RunTasks
    | CreateActor
    | CallActor
    | CancelTask
    | KillActor
    | FreeObjects
    | Resolved
    | KillWorker
    | RetireWorker
    | AdoptObjects
    | SpawnWorker
    | NoReplacement
)
"""Any one of the scheduler's instructions."""
