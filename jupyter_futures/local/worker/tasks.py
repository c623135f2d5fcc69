"""Running tasks inside a worker: a FIFO, ``slots`` runners, cancellation.

::

    I/O thread ── RUN [msgs] ──► queue ──► runner (main thread) ──► execute.run ──► DONE
                                       └─► runner threads: one more whenever work waits,
                                           a slot is free and no runner is idle (several
                                           tasks at once, or a slot lent by a waiting task)

The main thread is a runner so that cancelling a task can interrupt blocking calls such
as ``time.sleep`` with a signal; tasks on other threads get an asynchronous exception.
A task waiting on futures (nested submission) gives its slot back: another runner starts
if none is idle, so nested work never deadlocks, even with one slot.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections import deque
from typing import Any, NoReturn

from ...errors import TaskInterrupted as TaskCancelled
from ..protocol import TaskMsg
from ..serialize import describe
from .execute import LoadArgs, report_cancelled, run, running_task
from .host import TaskHost


class _RunnerThread(threading.local):
    runner = False  # this thread is a runner: the task it runs holds a slot
    lent = False  # that slot is lent out while the task waits


class Runners:
    """The worker's task queue and the threads that run it."""

    def __init__(self, host: TaskHost, slots: int) -> None:
        self.host = host
        self.slots = slots
        self.queue: deque[TaskMsg] = deque()
        self.cv = threading.Condition()
        self.running = 0
        self.idle = 0
        self.threads_of: dict[int, int] = {}  # tid -> thread ident, while its code runs
        self.main_ident = threading.main_thread().ident
        self._local = _RunnerThread()
        self._cancel_target: int | None = None
        signal.signal(signal.SIGUSR1, self._on_cancel_signal)

    # -- queue -------------------------------------------------------------------
    def submit(self, msgs: list[TaskMsg]) -> None:
        with self.cv:
            self.queue.extend(msgs)
            self._ensure_runner()
            self.cv.notify(len(msgs))

    def _ensure_runner(self) -> None:
        """(cv held) Start a runner if work waits, a slot is free and no runner is idle."""
        if self.queue and self.running < self.slots and self.idle == 0:
            self.idle += 1  # counted until the new thread takes its place in loop()
            threading.Thread(target=self.loop, args=(True,), name="jf-runner", daemon=True).start()

    def loop(self, counted: bool = False) -> NoReturn:
        """A runner: take tasks while fewer than ``slots`` run, for as long as the process."""
        self._local.runner = True
        while True:
            try:
                with self.cv:
                    if not counted:
                        self.idle += 1
                    counted = False
                    while not (self.queue and self.running < self.slots):
                        self.cv.wait()
                    self.idle -= 1
                    msg = self.queue.popleft()
                    self.running += 1
                    if self.queue and self.running < self.slots:  # the rest may run now, beside it
                        self._ensure_runner()
                self.host.flush_done_if_stale()
                run(self.host, msg, self._call, self._done)
            except TaskCancelled:  # arrived between tasks: nothing to interrupt
                continue

    def _call(self, msg: TaskMsg, load_args: LoadArgs) -> Any:
        """A task's invoke: its function, loaded before its arguments (which it names)."""
        self.threads_of[msg.tid] = threading.get_ident()
        try:
            fn = self.host.function(msg.fn_hash)
            args, kwargs = load_args(what=f"the arguments of task {msg.tid} ({describe(fn)})")
            return fn(*args, **kwargs)
        finally:  # packing the value is not interrupted by a late cancel
            self.threads_of.pop(msg.tid, None)
            self._cancel_target = None

    def _done(self) -> bool:
        """A task is over: its slot is free; True if more tasks wait."""
        with self.cv:
            self.running -= 1
            if self.queue:
                self.cv.notify()
                return True
            return False

    # -- nested waits ------------------------------------------------------------
    def lend_slot(self) -> int | None:
        """The calling task is about to wait: let another task use its slot."""
        tid = running_task()
        thread = self._local
        if tid is None or not thread.runner or thread.lent:
            return None
        thread.lent = True
        with self.cv:
            self.running -= 1
            self._ensure_runner()
            self.cv.notify()
        return tid

    def take_slot_back(self) -> None:
        with self.cv:
            self.running += 1
        self._local.lent = False

    # -- cancellation ------------------------------------------------------------
    def cancel(self, tid: int) -> bool:
        """Drop ``tid`` if queued (True) or interrupt it if running (False)."""
        with self.cv:
            for msg in self.queue:
                if msg.tid == tid:
                    self.queue.remove(msg)
                    report_cancelled(self.host, msg)
                    return True
        ident = self.threads_of.get(tid)
        if ident is None:
            return False
        if ident == self.main_ident:
            self._cancel_target = tid
            signal.pthread_kill(ident, signal.SIGUSR1)
        else:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(TaskCancelled))
        return False

    def _on_cancel_signal(self, signum: int, frame: Any) -> None:
        target = self._cancel_target
        if target is not None and running_task() == target:
            self._cancel_target = None
            raise TaskCancelled()
