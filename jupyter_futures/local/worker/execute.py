"""One run path for tasks and actor calls: arguments in, the call, its outcome out.

::

    runner / actor thread ─► run(host, msg, invoke, done)
        arguments: unpack_args(msg.args), each input future by host.input_value
        invoke(msg, load_args):  fn(*args) │ cls(*args) → its handle │ instance.method(*args)
        outcome:   host.pack_result(value) │ the exception as (type, args, attributes)
                   │ cancelled │ jf:ObjectLost (an input's copy is gone)
        host.end_task (output sent, figures closed), host.keep_mapped_inputs
        done() (frees the runner's slot; more queued?) ─► host.report_done(outcome, keep=value)

The caller's ``invoke`` is the only part that differs: what to call, in which order it is
loaded and unpickled, and what its arguments are called in an unpickling error. While a
call runs, ``running_task()`` names it on its thread (output capture reads that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import cloudpickle

from ...core.records import framework_error
from ...errors import ObjectLost, describe_remote
from ...errors import TaskInterrupted as TaskCancelled
from ..protocol import Outcome, TaskMsg
from ..serialize import unpack_args
from .host import MappedInputs, TaskHost


class LoadArgs(Protocol):
    def __call__(self, *, what: str) -> tuple[Any, Any]:
        """The call's (args, kwargs), inputs resolved; ``what`` names them in errors."""
        ...


Invoke = Callable[[TaskMsg, LoadArgs], Any]
"""Runs the call ``msg`` names, its arguments from ``load_args``; returns its value."""

# Frames between the handler and the user's code: run, then the caller's invoke.
# A remote traceback starts at the user's frame.
_FRAMEWORK_FRAMES = 2


class _Running(threading.local):
    tid: int | None = None
    group: int = 0


_running = _Running()


def running_task() -> int | None:
    """The task or actor call the calling thread runs; None outside one."""
    return _running.tid


def running_group() -> int:
    """The group (in a kernel, the cell) of the work the calling thread runs: what it
    submits is of the same group, so a cell's nested work takes its cell's turns."""
    return _running.group


def run(host: TaskHost, msg: TaskMsg, invoke: Invoke, done: Callable[[], bool]) -> None:
    """Run ``msg`` and report its outcome.

    ``done()`` runs when the call is over, however it ended, and before the report: it
    frees what the call held (a runner's slot) and says whether more work waits behind
    it, so that the report may be batched. The value is kept alive until it is sent."""
    mapped: MappedInputs = []

    def load_args(*, what: str) -> tuple[Any, Any]:
        return unpack_args(msg.args, lambda tid: host.input_value(msg.inputs, tid, mapped), what=what)

    value = None
    _running.tid, _running.group = msg.tid, msg.group
    start = time.monotonic()
    try:
        try:
            value = invoke(msg, load_args)
            outcome = host.pack_result(msg.tid, value)
        except TaskCancelled:
            outcome = Outcome(status="cancelled")
        except ObjectLost as exc:
            outcome = framework_error("ObjectLost", str(exc))
        except BaseException as exc:
            outcome = error_outcome(exc, skip_frames=_FRAMEWORK_FRAMES)
        finally:
            _running.tid, _running.group = None, 0
        outcome.started = start
        outcome.duration = time.monotonic() - start
        outcome.where = host.wid
        host.end_task(msg.tid)
        host.keep_mapped_inputs(mapped)
    finally:
        more = done()
    host.report_done(msg.tid, msg.attempt, outcome, more=more, keep=value)


def report_cancelled(host: TaskHost, msg: TaskMsg) -> None:
    """``msg`` was cancelled before it started."""
    host.report_done(msg.tid, msg.attempt, Outcome(status="cancelled"), more=False)


def error_outcome(exc: BaseException, skip_frames: int = 1) -> Outcome:
    """An exception raised by user code, with its traceback, pickled where possible."""
    name, text = describe_remote(exc, skip_frames)
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
