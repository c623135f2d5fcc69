"""jupyter_futures: the engine under test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.systems.base import System


class JupyterFutures(System):
    name = "jupyter_futures"
    packages = ("jupyter_futures", "jupyter-futures")
    notes = "jf.init(n_workers=2); numpy results are read-only zero-copy views"

    def init(self, n_workers: int) -> None:
        import jupyter_futures as jf

        self.jf: Any = jf
        jf.init(n_workers=n_workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.jf.submit(fn, *args)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def wait(self, handles: Sequence[Any]) -> None:
        _, not_done = self.jf.wait(handles)
        if not_done:
            raise RuntimeError(f"jf.wait returned with {len(not_done)} futures not done")
        for f in handles:
            if f.exception() is not None:
                raise f.exception()

    def create_actor(self, cls: type, *args: Any) -> Any:
        return self.jf.create_actor(cls, *args).result()

    def actor_call(self, actor: Any, method: str, *args: Any) -> Any:
        return getattr(actor, method)(*args)

    def put(self, obj: Any) -> Any:
        return self.jf.put(obj)

    def get(self, ref: Any) -> Any:
        return ref.result()

    def shutdown(self) -> None:
        self.jf.shutdown()

    def version(self) -> str:
        v = getattr(getattr(self, "jf", None), "__version__", None)
        return str(v) if v else super().version()
