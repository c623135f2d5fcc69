"""Print and display inside tasks: sent to the kernel, tagged with the task that wrote it.

A worker's ``sys.stdout`` and ``sys.stderr`` are replaced by ``TaskStream`` objects. A write
from a thread that runs a task is buffered under that task's id and sent as an OUTPUT
message: at once when the last send was a while ago, otherwise within ``COALESCE``
seconds (so a loop of prints makes a few messages, not thousands), and always before the
task's result. Writes from other threads go to the worker's real stream.

When a task or actor call ends, ``end_task`` runs the hooks registered with
``at_task_end`` (the matplotlib backend closes the figures the task left open) and sends
the rest of its output. ``running_task()`` tells code without a handle on the worker
(that backend) which task the calling thread runs.

Rich output takes the same path::

    task: IPython.display.display(obj) ──► DisplayFormatter ──► mimebundle
          ──► OUTPUT (tid, "display", JSON DisplayBundle) ──► kernel: display_data

IPython takes half a second to import, so it is not imported here: an import hook patches
``IPython.core.display_functions.display`` when a task first imports IPython. Outside a
task (or without IPython) ``display`` behaves as IPython's own.
"""

from __future__ import annotations

import base64
import importlib.abc
import importlib.machinery
import io
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TextIO

from ..backend import DISPLAY_STREAM, DisplayBundle

log = logging.getLogger("jupyter_futures")

COALESCE = 0.02
MAX_BUFFER = 64 * 1024


class TaskOutput:
    """Buffers of text written by tasks, flushed to ``send(tid, stream, text)``."""

    def __init__(self, send: Callable[[int, str, str], None], current_task: Callable[[], int | None]) -> None:
        self._send = send
        self._current = current_task
        self._buffers: dict[tuple[int, str], list[str]] = {}
        self._lock = threading.Lock()
        self._last_send = 0.0
        self._pending = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name="jf-output", daemon=True)
        self._thread.start()

    def install(self) -> None:
        sys.stdout = TaskStream(self, "stdout", sys.stdout)
        sys.stderr = TaskStream(self, "stderr", sys.stderr)
        install_display_hook(self)
        _installed[:] = [self]

    def current_task(self) -> int | None:
        return self._current()

    def end_task(self, tid: int) -> None:
        """``tid`` is over (result packed or error caught): send what it wrote and let go
        of what it left behind (its open figures, see ``mpl_backend.py``)."""
        try:
            for hook in list(_end_hooks):
                try:
                    hook(tid)
                except Exception:  # cleaning up must not cost the task its result
                    log.exception("cleaning up after task %s failed", tid)
        finally:
            self.flush_task(tid)

    def display(self, bundle: DisplayBundle) -> bool:
        """Send a rich output of the running task (after what it printed); False outside tasks."""
        tid = self._current()
        if tid is None:
            return False
        self.flush_task(tid)
        self._send(tid, DISPLAY_STREAM, json.dumps(bundle, default=repr))
        return True

    def write(self, stream: str, text: str, fallback: TextIO) -> None:
        tid = self._current()
        if tid is None:
            fallback.write(text)
            return
        with self._lock:
            buf = self._buffers.setdefault((tid, stream), [])
            buf.append(text)
            stale = "\n" in text and time.monotonic() - self._last_send > COALESCE
            urgent = stale or sum(map(len, buf)) > MAX_BUFFER
        if urgent:
            self.flush_task(tid)
        else:
            self._pending.set()

    def flush_task(self, tid: int | None = None) -> None:
        """Send what ``tid`` wrote (every task's when None)."""
        with self._lock:
            keys = [k for k in self._buffers if tid is None or k[0] == tid]
            items = [(k, "".join(self._buffers.pop(k))) for k in keys]
            if items:
                self._last_send = time.monotonic()
        for (task, stream), text in items:
            if text:
                self._send(task, stream, text)

    def _flusher(self) -> None:
        while True:
            self._pending.wait()
            self._pending.clear()
            time.sleep(COALESCE)  # let a burst of writes collect into one message
            self.flush_task()


_installed: list[TaskOutput] = []  # this worker's, once installed
_end_hooks: list[Callable[[int], None]] = []


def running_task() -> int | None:
    """The task the calling thread runs in this worker; None outside tasks (and workers)."""
    return _installed[0].current_task() if _installed else None


def at_task_end(hook: Callable[[int], None]) -> None:
    """Call ``hook(tid)`` at the end of every task and actor call, on its thread."""
    _end_hooks.append(hook)


class TaskStream(io.TextIOBase):
    """A ``sys.stdout`` replacement that routes task output to the kernel."""

    def __init__(self, output: TaskOutput, name: str, fallback: TextIO) -> None:
        self._output = output
        self._name = name
        self._fallback = fallback

    def write(self, text: str) -> int:
        self._output.write(self._name, text, self._fallback)
        return len(text)

    def flush(self) -> None:
        self._fallback.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def fileno(self) -> int:
        return self._fallback.fileno()

    def __getattr__(self, name: str) -> Any:  # errors=, buffer, ... of the real stream
        return getattr(self._fallback, name)


# -- display() in tasks ---------------------------------------------------------------

_DISPLAY_MODULE = "IPython.core.display_functions"


def install_display_hook(output: TaskOutput) -> None:
    """Route IPython's ``display()`` in tasks to the kernel, now or when IPython is imported."""
    module = sys.modules.get(_DISPLAY_MODULE)
    if module is not None:
        _patch_display(module, output)
    else:
        sys.meta_path.insert(0, _DisplayImportHook(output))


class _DisplayImportHook(importlib.abc.MetaPathFinder):
    """Patches ``display`` right after IPython's module defining it is executed."""

    def __init__(self, output: TaskOutput) -> None:
        self._output = output

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _DISPLAY_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = spec.loader if spec is not None else None
        if spec is None or loader is None:
            return None
        exec_module = loader.exec_module
        output = self._output

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            _patch_display(module, output)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]  # this spec's loader only
        return spec


def _patch_display(module: Any, output: TaskOutput) -> None:
    original = module.display

    def display(
        *objs: Any,
        include: Any = None,
        exclude: Any = None,
        metadata: dict[str, Any] | None = None,
        transient: dict[str, Any] | None = None,
        display_id: Any = None,
        raw: bool = False,
        clear: bool = False,
        **kwargs: Any,
    ) -> Any:
        if output.current_task() is None:
            return original(
                *objs,
                include=include,
                exclude=exclude,
                metadata=metadata,
                transient=transient,
                display_id=display_id,
                raw=raw,
                clear=clear,
                **kwargs,
            )
        update = bool(kwargs.pop("update", False))
        extra = dict(transient or {})
        if display_id:
            if display_id is True:
                display_id = module._new_id()
            extra["display_id"] = display_id
        if update and "display_id" not in extra:
            raise TypeError("display_id required for update_display")
        if not objs and display_id:
            objs, raw = ({},), True
        for obj in objs:
            if raw:
                data, md = dict(obj), dict(metadata or {})
            else:
                data, md = _formatter().format(obj, include=include, exclude=exclude)
                if not data:
                    continue
                if metadata:
                    module._merge(md, metadata)
            output.display({"data": _jsonable(data), "metadata": md, "transient": extra, "update": update})
        return module.DisplayHandle(display_id) if display_id else None

    display.__doc__ = original.__doc__
    module.display = display


_formatters: list[Any] = []


def _formatter() -> Any:
    """IPython's DisplayFormatter (no shell needed), taught to draw matplotlib figures."""
    if not _formatters:
        from IPython.core.formatters import DisplayFormatter

        formatter = DisplayFormatter()
        formatter.formatters["image/png"].for_type_by_name("matplotlib.figure", "Figure", _figure_png)
        _formatters.append(formatter)
    return _formatters[0]


def _figure_png(figure: Any) -> bytes | None:
    from IPython.core.pylabtools import print_figure

    return print_figure(figure, "png")  # type: ignore[no-any-return]


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in data.items()}
