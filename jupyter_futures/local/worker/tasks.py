"""Running tasks inside a worker: a FIFO, ``slots`` runners, cancellation, results.

::

    I/O thread ── RUN [msgs] ──► queue ──► runner (main thread) ──► fn(*args) ──► DONE
                                       └─► runner threads, started only while a task
                                           waits on other futures (its slot is lent out)

The main thread is a runner so that cancelling a task can interrupt blocking calls such
as ``time.sleep`` with a signal; tasks on other threads get an asynchronous exception.
A task waiting on futures (nested submission) gives its slot back: another runner starts
if none is idle, so nested work never deadlocks, even with one slot.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any

import cloudpickle

from ...core.records import framework_error
from ..protocol import Outcome, TaskMsg
from ..serialize import describe, unpack_args

if TYPE_CHECKING:
    from .process import Worker


class TaskCancelled(BaseException):
    """Raised inside a task that was cancelled (a BaseException: ``except Exception`` won't eat it)."""


class ObjectLost(Exception):
    """An input's copy vanished (its worker died) before this task could read it."""


def error_outcome(exc: BaseException, skip_frames: int = 1) -> Outcome:
    """An exception raised by user code, with its traceback, pickled where possible."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    data = _pickle_exception(exc)
    if data is None:
        text += f"\n(the {name} itself could not be pickled, so it comes back as a RemoteException)\n"
    return Outcome(status="error", data=data, text=text, error_type=name)


def _pickle_exception(exc: BaseException) -> bytes | None:
    """The exception as (type, args, attributes), rebuilt without calling ``__init__``:
    that survives exception classes whose constructor takes other arguments."""
    attempts: tuple[tuple[Any, ...], ...] = (
        (type(exc), exc.args, dict(vars(exc))),
        (type(exc), exc.args, {}),
    )
    for attempt in attempts:
        try:
            return cloudpickle.dumps(("exception", *attempt), protocol=5)
        except Exception:
            continue
    return None


class Runners:
    """The worker's task queue and the threads that run it."""

    def __init__(self, worker: Worker, slots: int) -> None:
        self.worker = worker
        self.slots = slots
        self.queue: deque[TaskMsg] = deque()
        self.cv = threading.Condition()
        self.running = 0
        self.idle = 0
        self.closing = False
        self.tls = threading.local()
        self.threads_of: dict[int, int] = {}  # tid -> thread ident
        self.main_ident = threading.main_thread().ident
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
        if self.queue and self.running < self.slots and self.idle == 0 and not self.closing:
            self.idle += 1  # counted until the new thread takes its place in loop()
            threading.Thread(target=self.loop, args=(True,), name="jf-runner", daemon=True).start()

    def current_task(self) -> int | None:
        return getattr(self.tls, "tid", None)

    def loop(self, counted: bool = False) -> None:
        """A runner: take tasks while fewer than ``slots`` run; run until closing."""
        self.tls.runner = True
        while True:
            try:
                with self.cv:
                    if not counted:
                        self.idle += 1
                    counted = False
                    while not self.closing and not (self.queue and self.running < self.slots):
                        self.cv.wait()
                    self.idle -= 1
                    if self.closing:
                        return
                    msg = self.queue.popleft()
                    self.running += 1
                    more = bool(self.queue)
                self.worker.flush_done_if_stale()
                try:
                    outcome, value = self.execute(msg)
                    self.worker.keep_mapped_inputs()
                finally:
                    with self.cv:
                        self.running -= 1
                        if self.queue:
                            self.cv.notify()
                self.worker.report_done(
                    msg.tid, msg.attempt, outcome, more=more or bool(self.queue), keep=value
                )
                del value
            except TaskCancelled:  # arrived between tasks: nothing to interrupt
                continue

    def execute(self, msg: TaskMsg) -> tuple[Outcome, Any]:
        """Run one task; returns its outcome and the value (kept alive until reported)."""
        tls = self.tls
        tls.mapped = []
        value = None
        tls.tid = msg.tid
        self.threads_of[msg.tid] = threading.get_ident()
        start = time.perf_counter()
        try:
            fn = self.worker.function(msg.fn_hash)
            args, kwargs = unpack_args(
                msg.args,
                lambda d: self.worker.input_value(msg.inputs, d),
                what=f"the arguments of task {msg.tid} ({describe(fn)})",
            )
            value = fn(*args, **kwargs)
            self.threads_of.pop(msg.tid, None)
            outcome = self.worker.pack_result(msg.tid, value)
        except TaskCancelled:
            outcome = Outcome(status="cancelled")
        except ObjectLost as exc:
            outcome = framework_error("ObjectLost", str(exc))
        except BaseException as exc:
            outcome = error_outcome(exc, skip_frames=1)
        finally:
            self.threads_of.pop(msg.tid, None)
            tls.tid = None
            self._cancel_target = None
        outcome.duration = time.perf_counter() - start
        outcome.where = self.worker.wid
        self.worker.output.end_task(msg.tid)
        return outcome, value

    # -- nested waits ------------------------------------------------------------
    def lend_slot(self) -> None:
        """The calling task is about to wait: let another task use its slot."""
        with self.cv:
            self.running -= 1
            self._ensure_runner()
            self.cv.notify()

    def take_slot_back(self) -> None:
        with self.cv:
            self.running += 1

    # -- cancellation ------------------------------------------------------------
    def cancel(self, tid: int) -> bool:
        """Drop ``tid`` if queued (True) or interrupt it if running (False)."""
        with self.cv:
            for msg in self.queue:
                if msg.tid == tid:
                    self.queue.remove(msg)
                    self.worker.report_done(tid, msg.attempt, Outcome(status="cancelled"), more=False)
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
        if target is not None and getattr(self.tls, "tid", None) == target:
            self._cancel_target = None
            raise TaskCancelled()

    def close(self) -> None:
        with self.cv:
            self.closing = True
            self.cv.notify_all()
