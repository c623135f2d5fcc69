"""The threads engine's ready queue: tasks whose inputs are done, for its worker threads.

::

    _enqueue(task) ──► ReadyTasks.put(task, priority, group) ──► get() in a worker thread
    scale down / shutdown ──► stop(n): the next n threads that ask end (before any task)

The order is the local scheduler's (``core.ready.ReadyQueue``, one policy for both): the
highest priority first, then the groups (cells) in turn, each group's tasks in the order
they became ready. A thread that is running a task is never interrupted for another.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

from ..core.ready import ReadyQueue

T = TypeVar("T")


class ReadyTasks(Generic[T]):
    """A blocking queue over a :class:`~jupyter_futures.core.ready.ReadyQueue`."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: ReadyQueue[T] = ReadyQueue()
        self._stops = 0  # threads to end: the next ones that ask

    def put(self, item: T, priority: int = 0, group: int = 0) -> None:
        with self._cond:
            self._queue.push(item, priority, group)
            self._cond.notify()

    def stop(self, n: int = 1) -> None:
        """The next ``n`` threads that ask for work end instead (``get`` returns None)."""
        with self._cond:
            self._stops += n
            self._cond.notify(n)

    def get(self, timeout: float | None = None) -> T | None:
        """The next item, or None: this thread should end. ``queue.Empty`` after
        ``timeout`` seconds without either."""
        with self._cond:
            if not self._cond.wait_for(self._has_any, timeout):
                raise queue.Empty
            if self._stops:
                self._stops -= 1
                return None
            item = self._queue.head()
            self._queue.served()
            return item

    def _has_any(self) -> bool:
        return bool(self._stops or self._queue)
