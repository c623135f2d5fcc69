"""What the run path needs from the worker process, and what crosses between them.

::

    Runners (tasks) ─┐                       ┌─► TaskHost: function, input_value, pack_result,
                     ├─► execute.run(host) ──┤             keep_mapped_inputs, end_task,
    ActorHost ───────┘                       └─►           report_done, flush_done_if_stale
    WorkerClient.waiting ─► SlotLender: lend_slot / take_slot_back (the runners)

``process.Worker`` implements ``TaskHost`` and ``Runners`` implements ``SlotLender``; this
module imports no other module of the worker, so the worker's modules depend on it and
never on each other in a circle.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

from ..protocol import Outcome

MappedInputs = list[tuple[int, "weakref.ref[Any]"]]
"""The inputs a call read from shared memory: (tid, a weak reference to the mapping)."""


class TaskHost(Protocol):
    """The process around the run path: functions, inputs, results, output, reporting."""

    @property
    def wid(self) -> int:
        """This worker's id, recorded as where each outcome was made."""
        ...

    def function(self, fn_hash: bytes) -> Any:
        """The function (or actor class) pickled under ``fn_hash``, loaded on first use."""
        ...

    def input_value(self, inputs: dict[int, Outcome], tid: int, mapped: MappedInputs) -> Any:
        """The value of input future ``tid``; one read from shared memory is noted in
        ``mapped``. Raises ``ObjectLost`` when its copy is gone."""
        ...

    def keep_mapped_inputs(self, mapped: MappedInputs) -> None:
        """After a call: the mapped inputs it kept (in an actor's state, say) stay allocated."""
        ...

    def pack_result(self, tid: int, value: Any) -> Outcome:
        """``value`` as an outcome: inline when small, otherwise put in this worker's store."""
        ...

    def end_task(self, tid: int) -> None:
        """``tid`` is over: send the rest of its output, close what it left open."""
        ...

    def report_done(self, tid: int, attempt: int, outcome: Outcome, more: bool, keep: Any = None) -> None:
        """Send ``outcome`` (batched while ``more`` work waits); ``keep`` lives until it is sent."""
        ...

    def flush_done_if_stale(self) -> None:
        """Send the outcomes batched a while ago."""
        ...


class SlotLender(Protocol):
    """Lets a call that waits on futures give its slot to other work meanwhile."""

    def lend_slot(self) -> int | None:
        """Lend the calling thread's slot: the task it runs, or None when it holds no slot
        to lend (an actor's thread, a wait already lent)."""
        ...

    def take_slot_back(self) -> None:
        """The wait that ``lend_slot`` lent for is over."""
        ...
