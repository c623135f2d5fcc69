"""``concurrent.futures.ProcessPoolExecutor(max_workers=2)``: the standard-library baseline."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as cf_wait
from typing import Any

from benchmarks.systems.base import System

_START_METHOD = multiprocessing.get_context().get_start_method()


class ProcessPool(System):
    name = "processpool"
    handles_as_args = False
    notes = (
        f"ProcessPoolExecutor(max_workers=2), start method {_START_METHOD!r};"
        " no actors, no store; tree reduce goes through the driver"
    )

    def init(self, n_workers: int) -> None:
        self.pool = ProcessPoolExecutor(max_workers=n_workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.pool.submit(fn, *args)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def wait(self, handles: Sequence[Any]) -> None:
        cf_wait(handles)
        for f in handles:
            f.result()  # raises the task's error

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)

    def version(self) -> str:
        import platform

        return f"python {platform.python_version()}"
