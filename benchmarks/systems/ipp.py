"""ipyparallel: ``ipp.Cluster(n=2)`` started programmatically.

ipyparallel has neither actors nor an object store, but its engines keep a namespace, and
that is how its users keep state and data remote: an "actor" is an object created in one
engine's namespace and called through a ``DirectView`` with an ``ipp.Reference``; a "put"
pushes a value into an engine's namespace, a "get" pulls it back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import tasks
from benchmarks.systems.base import System


class IPyParallel(System):
    name = "ipyparallel"
    packages = ("ipyparallel",)
    handles_as_args = False
    notes = (
        "ipp.Cluster(n=2); load-balanced view for tasks; actors and put/get emulated "
        "with an engine's namespace (DirectView + ipp.Reference, push/pull)"
    )

    def init(self, n_workers: int) -> None:
        import ipyparallel as ipp

        self.ipp: Any = ipp
        self._names = itertools.count()
        self.cluster: Any = ipp.Cluster(n=n_workers)
        self.rc: Any = self.cluster.start_and_connect_sync(activate=False)
        self.rc.wait_for_engines(n_workers, timeout=60)
        self.lview: Any = self.rc.load_balanced_view()
        self.dview: Any = self.rc[0]

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.lview.apply_async(fn, *args)

    def result(self, handle: Any) -> Any:
        return handle.get()

    def wait(self, handles: Sequence[Any]) -> None:
        self.rc.wait(list(handles))
        for h in handles:
            h.get()  # raises the task's error

    def _name(self, kind: str) -> str:
        return f"_bench_{kind}_{next(self._names)}"

    def create_actor(self, cls: type, *args: Any) -> Any:
        name = self._name("actor")
        self.dview.push({"_bench_args": args}, block=True)
        self.dview.execute(
            f"from {cls.__module__} import {cls.__qualname__} as _bench_cls\n"
            f"{name} = _bench_cls(*_bench_args)",
            block=True,
        )
        return self.ipp.Reference(name)

    def actor_call(self, actor: Any, method: str, *args: Any) -> Any:
        return self.dview.apply_async(tasks.call_method, actor, method, *args)

    def put(self, obj: Any) -> Any:
        name = self._name("obj")
        self.dview.push({name: obj}, block=True)
        return self.ipp.Reference(name)

    def get(self, ref: Any) -> Any:
        return self.dview.pull(ref.name, block=True)

    def free(self, ref: Any) -> None:
        self.dview.execute(f"del {ref.name}", block=True)

    def submit_stored(self, fn: Callable[..., Any], ref: Any) -> Any:
        # The value lives in engine 0's namespace: run there.
        return self.dview.apply_async(fn, ref)

    def shutdown(self) -> None:
        self.rc.close()
        self.cluster.stop_cluster_sync()
