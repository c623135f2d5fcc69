"""Every exception jupyter_futures raises.

::

    JupyterFuturesError
    ├── RemoteException                 a task raised; also an instance of the remote type
    ├── WorkerDiedException             a worker exited (exit code or signal attached)
    │   └── ActorDiedError              the actor's worker died, or the actor was killed
    ├── UpstreamDependencyFailedException          an input future failed
    │   └── UpstreamDependencyFailedNoReconstructionAllowed
    │                                   an input was lost and may not be rebuilt
    ├── UnsatisfiableRequirementError (ValueError)  no worker could ever run it
    ├── SerializationError (TypeError)  a function, argument or result does not pickle
    ├── ObjectStoreFullError (MemoryError)          neither memory nor disk could hold it
    ├── FutureTimeoutError (TimeoutError)           a wait ran out of time
    ├── FutureCancelledError (concurrent.futures.CancelledError)
    ├── ClusterClosedError (RuntimeError)           used after shutdown() (closed by you)
    ├── NotInKernelError (RuntimeError)             a kernel-only call made inside a task
    ├── WorkersNotStartedError (TimeoutError)       wait_for_workers() ran out of time
    ├── ObjectLost                                  an input's copy vanished under a task
    │                                               (the engine rebuilds it and runs again)
    ├── BadMessageError (ValueError)                a control message failed its check
    │   └── MessageTooLargeError                    one too large to send (values belong
    │                                               in the object store)
    ├── WorkerEnvironmentError (RuntimeError)       a Dask worker lacks jupyter_futures or
    │                                               runs other versions of it or of Python
    ├── NotSupportedError (NotImplementedError)     this engine cannot do what was asked
    └── TaskFailed                                  a Dask worker's report of a failure
                                                    (the kernel raises what it carries)
    TaskInterrupted (BaseException)                 raised in a task's thread by cancel(),
                                                    so the task's own ``except Exception``
                                                    does not swallow it

Engines ship errors they raise by name (``"jf:ActorDiedError"``); :func:`error_class`
turns a name back into its class and refuses one it does not know.

Errors that come from outside the user's control (a worker killed by the OOM killer, a
hung worker) are ``WorkerDiedException``; errors the user caused by their own call
(``shutdown()`` then ``submit``) are ``ClusterClosedError``.
"""

from __future__ import annotations

import concurrent.futures
import signal
import traceback
from collections.abc import Callable
from typing import Any


class JupyterFuturesError(Exception):
    """Base class of every error raised by jupyter_futures."""


class _RemoteTraceback(Exception):
    """Carries the remote traceback text so Python prints it as the cause."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n\n" + self.tb


class RemoteException(JupyterFuturesError):
    """An exception raised by a task on a worker.

    The instance raised in the caller is also an instance of the remote exception's own
    type when that type can be subclassed, so ``except ZeroDivisionError`` catches it.
    The remote traceback is attached as ``__cause__`` and kept in ``remote_traceback``.
    """

    remote_traceback: str = ""
    remote_type: str = ""
    _remote_cause: BaseException | None = None
    where: str = ""

    def __str__(self) -> str:
        base = self.args[0] if len(self.args) == 1 else ", ".join(map(str, self.args))
        return f"{base}" if base != "" else self.remote_type

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it: the caller's frames, then the remote ones, as the Jupyter
        layer renders them (``jupyter/tracebacks.py`` installs the renderer); without one,
        IPython's own rendering (it falls back when this raises)."""
        if not traceback_renderers:
            raise NotInKernelError("no traceback renderer is installed")
        return traceback_renderers[-1](self)

    def __reduce__(self) -> Any:
        cause = self.__dict__.get("_remote_cause")
        return (_rebuild_remote, (self.remote_type, self.args, self.remote_traceback, self.where, cause))


traceback_renderers: list[Callable[[RemoteException], list[str]]] = []
"""How IPython renders remote errors; the Jupyter layer adds one when it is installed."""

_remote_classes: dict[type, type] = {}


def remote_exception_class(cause_type: type[BaseException]) -> type[RemoteException]:
    """The class that is both ``RemoteException`` and ``cause_type`` (cached)."""
    if issubclass(cause_type, RemoteException):
        return cause_type
    klass = _remote_classes.get(cause_type)
    if klass is None:
        try:
            # Named like the original, so a traceback reads as it would have locally.
            klass = type(
                cause_type.__name__,
                (RemoteException, cause_type),
                {"__module__": cause_type.__module__, "__qualname__": cause_type.__qualname__},
            )
        except TypeError:  # layout conflict or a final class: the plain type will do
            klass = RemoteException
        _remote_classes[cause_type] = klass
    return klass


def make_remote_exception(
    cause: BaseException | None, remote_type: str, message: str, tb: str, where: str = ""
) -> RemoteException:
    """Build the exception raised in the caller for a task that failed remotely."""
    klass = remote_exception_class(type(cause)) if cause is not None else RemoteException
    exc = klass.__new__(klass)
    exc.args = cause.args if cause is not None else (message,)
    if cause is not None:
        exc.__dict__.update(getattr(cause, "__dict__", {}))
    exc.__dict__.pop("_remote_cause", None)
    exc._remote_cause = cause
    exc.remote_traceback = tb
    exc.remote_type = remote_type
    exc.where = where
    exc.__cause__ = _RemoteTraceback(tb) if tb else None
    return exc


def describe_remote(exc: BaseException, skip_frames: int = 1) -> tuple[str, str]:
    """How a worker names ``exc`` and tells its traceback, from the user's frame on (the
    first ``skip_frames`` frames are the engine's own)."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return name, text


def _rebuild_remote(
    remote_type: str, args: tuple[Any, ...], tb: str, where: str, cause: BaseException | None
) -> RemoteException:
    message = str(args[0]) if args else remote_type
    exc = make_remote_exception(cause, remote_type, message, tb, where)
    exc.args = args
    return exc


class WorkerDiedException(JupyterFuturesError):
    """A worker process died while it held the work or the object this call needed.

    ``exitcode`` is the process exit code, negative for a signal (``-9`` for SIGKILL), or
    ``None`` when the worker was presumed dead after missing its heartbeats.
    """

    def __init__(self, message: str, exitcode: int | None = None, worker: int | None = None):
        super().__init__(message)
        self.exitcode = exitcode
        self.worker = worker

    @staticmethod
    def describe_exit(exitcode: int | None) -> str:
        if exitcode is None:
            return "stopped answering heartbeats"
        if exitcode < 0:
            try:
                return f"was killed by {signal.Signals(-exitcode).name}"
            except ValueError:
                return f"was killed by signal {-exitcode}"
        return f"exited with code {exitcode}"

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0], self.exitcode, self.worker))


class ActorDiedError(WorkerDiedException):
    """The actor is gone: its worker died, it failed to start, or it was killed."""


class UpstreamDependencyFailedException(JupyterFuturesError):
    """A future this task depends on failed, so the task never ran."""


class UpstreamDependencyFailedNoReconstructionAllowed(UpstreamDependencyFailedException):
    """An input's only copy was lost and it was made with ``allow_reconstruction=False``."""


class UnsatisfiableRequirementError(JupyterFuturesError, ValueError):
    """No worker of the cluster could ever meet the requirements of this future."""


class SerializationError(JupyterFuturesError, TypeError):
    """A function, an argument or a result could not be pickled or unpickled."""


class ObjectStoreFullError(JupyterFuturesError, MemoryError):
    """An object fits neither in the store's memory nor in its spill directory."""


class FutureTimeoutError(JupyterFuturesError, TimeoutError):
    """A wait on futures ran out of time; the work itself goes on."""


class FutureCancelledError(JupyterFuturesError, concurrent.futures.CancelledError):
    """The future was cancelled."""


class ClusterClosedError(JupyterFuturesError, RuntimeError):
    """The client was shut down by its owner and can take no more work."""


class NotInKernelError(JupyterFuturesError, RuntimeError):
    """A call only the kernel's client can answer (status, the dashboard) was made elsewhere."""


class WorkersNotStartedError(JupyterFuturesError, TimeoutError):
    """Workers did not start within the time given to ``wait_for_workers``."""


class ObjectLost(JupyterFuturesError):
    """The copy of an input vanished before the task read it (its worker died)."""


class BadMessageError(JupyterFuturesError, ValueError):
    """A control message was unsigned, wrongly signed, replayed or malformed."""


class MessageTooLargeError(BadMessageError):
    """A control message is over the size limit; the sender refuses to send it."""


class WorkerEnvironmentError(JupyterFuturesError, RuntimeError):
    """Some Dask workers cannot run this kernel's work: jupyter_futures is missing there,
    or their jupyter_futures or Python version differs from the kernel's."""


class NotSupportedError(JupyterFuturesError, NotImplementedError):
    """The engine under this client cannot do what was asked (the message says why)."""


class TaskFailed(JupyterFuturesError):
    """How a Dask worker reports that future ``fid`` failed: ``error`` is the exception the
    kernel raises for it (its dependents fail with an upstream error naming ``fid``)."""

    def __init__(self, fid: int, error: BaseException) -> None:
        super().__init__(fid, error)
        self.fid = fid
        self.error = error

    def __str__(self) -> str:
        return f"future {self.fid} failed: {self.error!r}"


class TaskInterrupted(BaseException):
    """Raised inside a running task by ``cancel()`` (a BaseException, so that the task's
    own ``except Exception`` cannot swallow it)."""


def error_class(name: str) -> type[JupyterFuturesError]:
    """The class of a jupyter_futures error shipped by name; unknown names are an error."""
    klass = _BY_NAME.get(name)
    if klass is None:
        raise LookupError(f"no jupyter_futures error is named {name!r}")
    return klass


_BY_NAME: dict[str, type[JupyterFuturesError]] = {
    k.__name__: k
    for k in list(globals().values())
    if isinstance(k, type) and issubclass(k, JupyterFuturesError) and not k.__name__.startswith("_")
}


__all__ = [
    "ActorDiedError",
    "BadMessageError",
    "ClusterClosedError",
    "FutureCancelledError",
    "FutureTimeoutError",
    "JupyterFuturesError",
    "NotInKernelError",
    "NotSupportedError",
    "ObjectLost",
    "ObjectStoreFullError",
    "RemoteException",
    "SerializationError",
    "TaskFailed",
    "TaskInterrupted",
    "UnsatisfiableRequirementError",
    "UpstreamDependencyFailedException",
    "UpstreamDependencyFailedNoReconstructionAllowed",
    "WorkerDiedException",
    "WorkerEnvironmentError",
    "WorkersNotStartedError",
    "error_class",
]
