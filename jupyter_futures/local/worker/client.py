"""The client inside a worker, so that tasks and actors can submit and wait themselves.

It speaks to the scheduler by message over the worker's outbox; results for the futures
it holds come back as RESOLVED messages to the worker's inbox. While a task waits, the
scheduler and the worker's runners are told, so its slot goes to other work.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import protocol as P
from ..client_base import BaseClient
from ..protocol import Outcome, TaskSpec
from ..store import ObjectStore
from ..transport import Outbox
from .host import SlotLender


class WorkerClient(BaseClient):
    """``wake`` rouses the worker's I/O thread; ``slots`` lends a waiting task's slot."""

    def __init__(
        self,
        wid: int,
        cluster: str,
        shm_dir: Path,
        store: ObjectStore,
        outbox: Outbox,
        *,
        wake: Callable[[], None],
        slots: SlotLender,
    ) -> None:
        self.proc = wid
        super().__init__(cluster, shm_dir, store)
        self._outbox = outbox
        self._wake = wake
        self._slots = slots
        self.releases: deque[int] = deque()

    def _send_spec(self, spec: TaskSpec) -> None:
        self._outbox.send((P.SUBMIT, self.proc, spec))

    def _put(self, tid: int, outcome: Outcome) -> None:
        self._outbox.send((P.PUT, self.proc, tid, outcome))

    def _acquire(self, tids: list[int]) -> None:
        self._outbox.send((P.ACQUIRE, self.proc, tids))

    def _release_later(self, tid: int) -> None:
        # Called from __del__, maybe while this thread holds the outbox lock: queue it,
        # and let the I/O thread send it.
        self.releases.append(tid)
        self._wake()

    def send_releases(self) -> None:
        tids = []
        while self.releases:
            tids.append(self.releases.popleft())
        if tids:
            self._outbox.send((P.RELEASE, self.proc, tids))

    def _cancel(self, tid: int) -> bool:
        self._outbox.send((P.CANCEL, self.proc, tid))
        f = self._future(tid)
        if f is not None:
            with f._condition:
                f._condition.wait_for(f.done, 1.0)
            return f.cancelled()
        return False

    def _kill_actor(self, aid: int) -> None:
        self._outbox.send((P.KILL_ACTOR, self.proc, aid))

    def _where(self, tid: int) -> list[int]:
        f = self._future(tid)
        if f is None or f.info is None or f.info.worker is None:
            return []
        return [f.info.worker]  # type: ignore[list-item]  # the local engine's ids are ints

    def _copy_missing(self, tid: int) -> None:
        self._outbox.send((P.MISSING, self.proc, tid))

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        tid = self._slots.lend_slot()
        if tid is None:  # not a task's thread, or its slot is lent already
            yield
            return
        self._outbox.send((P.BLOCKED, self.proc, tid))
        try:
            yield
        finally:
            self._outbox.send((P.UNBLOCKED, self.proc, tid))
            self._slots.take_slot_back()
