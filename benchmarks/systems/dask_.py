"""Dask distributed: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.systems.base import System


class Dask(System):
    name = "dask"
    packages = ("distributed",)
    notes = "LocalCluster(2 workers x 1 thread, processes); put = scatter; pure=False everywhere"

    def init(self, n_workers: int) -> None:
        from distributed import Client, Future, LocalCluster, wait

        self._wait: Any = wait
        self._future_type: type = Future
        self.cluster: Any = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client: Any = Client(self.cluster)  # type: ignore[no-untyped-call]

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        # pure=False: identical calls are distinct tasks, not one cached key.
        return self.client.submit(fn, *args, pure=False)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def wait(self, handles: Sequence[Any]) -> None:
        if not all(isinstance(h, self._future_type) for h in handles):
            super().wait(handles)  # actor calls: their futures are another kind
            return
        self._wait(list(handles))
        for f in handles:
            if f.status != "finished":
                f.result()  # raises the task's error

    def create_actor(self, cls: type, *args: Any) -> Any:
        return self.client.submit(cls, *args, actor=True, pure=False).result()

    def actor_call(self, actor: Any, method: str, *args: Any) -> Any:
        return getattr(actor, method)(*args)

    def put(self, obj: Any) -> Any:
        return self.client.scatter(obj)

    def get(self, ref: Any) -> Any:
        return ref.result()

    def shutdown(self) -> None:
        self.client.close()
        self.cluster.close()
