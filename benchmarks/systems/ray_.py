"""Ray: ``ray.init(num_cpus=2)`` on a fresh local cluster."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.systems.base import System


class Ray(System):
    name = "ray"
    packages = ("ray",)
    notes = 'ray.init(address="local", num_cpus=2); each actor gets its own worker process'

    def init(self, n_workers: int) -> None:
        import ray

        self.ray: Any = ray
        self._remote: dict[Any, Any] = {}
        # address="local": always a new cluster, never one that happens to be running.
        ray.init(address="local", num_cpus=n_workers)

    def _as_remote(self, obj: Any) -> Any:
        try:
            return self._remote[obj]
        except KeyError:
            r = self._remote[obj] = self.ray.remote(obj)
            return r

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._as_remote(fn).remote(*args)

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def wait(self, handles: Sequence[Any]) -> None:
        self.ray.get(list(handles))

    def create_actor(self, cls: type, *args: Any) -> Any:
        actor = self._as_remote(cls).remote(*args)
        self.ray.get(actor.__ray_ready__.remote())
        return actor

    def actor_call(self, actor: Any, method: str, *args: Any) -> Any:
        return getattr(actor, method).remote(*args)

    def put(self, obj: Any) -> Any:
        return self.ray.put(obj)

    def get(self, ref: Any) -> Any:
        return self.ray.get(ref)

    def shutdown(self) -> None:
        self.ray.shutdown()
