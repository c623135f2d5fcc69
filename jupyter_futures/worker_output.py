"""Print and display inside tasks: sent to the kernel, tagged with the task that wrote it.

A worker's ``sys.stdout`` and ``sys.stderr`` are replaced by ``TaskStream`` objects. A write
from a thread that runs a task is buffered under that task's id and sent as an OUTPUT
message: at once when the last send was a while ago, otherwise within ``COALESCE``
seconds (so a loop of prints makes a few messages, not thousands), and always before the
task's result. Writes from other threads go to the worker's real stream.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

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
        self._closed = False
        self._thread = threading.Thread(target=self._flusher, name="jf-output", daemon=True)
        self._thread.start()

    def install(self) -> None:
        import sys

        sys.stdout = TaskStream(self, "stdout", sys.stdout)
        sys.stderr = TaskStream(self, "stderr", sys.stderr)

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
        while not self._closed:
            self._pending.wait()
            self._pending.clear()
            time.sleep(COALESCE)  # let a burst of writes collect into one message
            self.flush_task()


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
