"""Ready queues: futures that wait only for a worker, by priority, then groups in turn.

A notebook user expects the cell they just ran to start at once, even behind an older
cell's million queued futures. So a queue is not one line but, per priority, one line per
*group* (in a kernel, the cell that submitted the work; see ``TaskSpec.group``), and the
groups take turns: each placement moves its group to the back of the turns. Within a
group, futures keep the order they became ready in.

::

    SchedulerState.ready {queue key: ReadyQueue}   (a requirement shape, ("@", object),
         │                                          ("retry", tid): dispatch.py)
         ▼
    ReadyQueue ── levels {priority: Level}, the highest first (``top``)
                     Level ── queues {group: deque[tid]}   FIFO per group
                           └─ turns  deque[group]          groups with work; whose turn first

    push(tid, priority, group)   O(1) (a new priority level: O(levels), a handful)
    head()                       O(1): the tid to place next (None: empty)
    served()                     O(1): it was placed; its group's turn passes
    skip()                       O(1): it is no longer ready (cancelled, failed): no turn used

Entries are tids, not records, and are checked when they reach the head: a future that
stopped being ready while queued is skipped there (the scheduler never searches a queue).
Pure data, no clock and no I/O: the threads engine (``inprocess``) serves its queue with
this class too, so both engines share one policy.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Level(Generic[T]):
    """The queued items of one priority: one FIFO per group, and the groups' turns."""

    __slots__ = ("queues", "turns")

    def __init__(self) -> None:
        self.queues: dict[int, deque[T]] = {}
        self.turns: deque[int] = deque()  # each group with queued items once, whose turn first


class ReadyQueue(Generic[T]):
    """Items (the scheduler's tids) by priority (higher first), then groups in turn.

    Examples
    --------
    >>> q = ReadyQueue()
    >>> for tid in (1, 2, 3):
    ...     q.push(tid, priority=0, group=1)   # an older cell's batch
    >>> q.push(4, priority=0, group=2)         # the newer cell
    >>> q.push(5, priority=1, group=1)         # asked to go first
    >>> order = []
    >>> while (tid := q.head()) is not None:
    ...     order.append(tid)
    ...     q.served()
    >>> order
    [5, 1, 4, 2, 3]
    """

    __slots__ = ("_level", "levels", "top")

    def __init__(self) -> None:
        self.levels: dict[int, Level[T]] = {}
        self.top = 0  # the highest priority with items (0 when empty)
        self._level: Level[T] | None = None  # levels[top], or None when empty

    def __bool__(self) -> bool:
        return self._level is not None

    def push(self, item: T, priority: int = 0, group: int = 0) -> None:
        """Queue ``item`` behind the others of its group at its priority."""
        level = self.levels.get(priority)
        if level is None:
            level = self.levels[priority] = Level()
            if self._level is None or priority > self.top:
                self.top, self._level = priority, level
        q = level.queues.get(group)
        if q is None:
            q = level.queues[group] = deque()
            level.turns.append(group)  # a group with new work waits for one round at most
        q.append(item)

    def head(self) -> T | None:
        """The item to serve next; None when the queue is empty (items are never None)."""
        level = self._level
        return None if level is None else level.queues[level.turns[0]][0]

    def served(self) -> None:
        """The head was placed: the next of its group waits until the other groups of its
        priority have had a turn."""
        level = self._level
        if level is None:
            raise IndexError("served on an empty ReadyQueue")
        turns = level.turns
        q = level.queues[turns[0]]
        q.popleft()
        if not q:
            self._group_done(level)
        elif len(turns) > 1:
            turns.rotate(-1)

    def skip(self) -> None:
        """Drop the head without using its group's turn (it was no longer ready)."""
        level = self._level
        if level is None:
            raise IndexError("skip on an empty ReadyQueue")
        q = level.queues[level.turns[0]]
        q.popleft()
        if not q:
            self._group_done(level)

    def _group_done(self, level: Level[T]) -> None:
        """The group whose turn it is has nothing left at this level."""
        del level.queues[level.turns.popleft()]
        if not level.turns:
            del self.levels[self.top]
            self._next_level()

    def _next_level(self) -> None:
        if self.levels:
            self.top = max(self.levels)  # a few distinct priorities at most
            self._level = self.levels[self.top]
        else:
            self.top, self._level = 0, None

    def items(self) -> list[tuple[int, int, T]]:
        """Every entry as ``(priority, group, item)``, stale ones included (for checks: O(n))."""
        return [
            (p, g, item) for p, level in self.levels.items() for g, q in level.queues.items() for item in q
        ]
