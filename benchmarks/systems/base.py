"""The small interface every engine adapter implements.

Handles (futures, object refs, async results) stay opaque to the workloads: they only pass
them back to the adapter that made them.  Features an engine does not have raise
:class:`NotSupported`, which the tables show as ``n/a``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar


class NotSupported(Exception):
    """The engine has no such feature (shown as ``n/a``, not as an error)."""


class System(ABC):
    name: ClassVar[str]
    #: Distribution names whose versions go into the results.
    packages: ClassVar[tuple[str, ...]] = ()
    #: Can a handle be passed as a task argument and resolved on the worker?
    handles_as_args: ClassVar[bool] = True
    #: One line on how a feature is mapped onto the engine, printed under the table.
    notes: ClassVar[str] = ""

    @abstractmethod
    def init(self, n_workers: int) -> None:
        """Import the engine and start ``n_workers`` worker processes."""

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)``; return a handle."""

    @abstractmethod
    def result(self, handle: Any) -> Any:
        """Block until ``handle`` is done; return its value in the driver."""

    def wait(self, handles: Sequence[Any]) -> None:
        """Block until every handle is done."""
        for h in handles:
            self.result(h)

    def create_actor(self, cls: type, *args: Any) -> Any:
        """Create ``cls(*args)`` on a worker; return once it exists."""
        raise NotSupported("no actors")

    def actor_call(self, actor: Any, method: str, *args: Any) -> Any:
        """Call ``actor.method(*args)``; return a handle."""
        raise NotSupported("no actors")

    def put(self, obj: Any) -> Any:
        """Store ``obj`` where workers can read it; return once stored."""
        raise NotSupported("no object store")

    def get(self, ref: Any) -> Any:
        """Fetch a stored object into the driver."""
        raise NotSupported("no object store")

    def submit_stored(self, fn: Callable[..., Any], ref: Any) -> Any:
        """Submit ``fn(value)`` where ``value`` is the stored object behind ``ref``."""
        return self.submit(fn, ref)

    def free(self, ref: Any) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Let the engine drop a stored object the caller is done with."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop the engine and its processes."""

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        for pkg in self.packages:
            try:
                return version(pkg)
            except PackageNotFoundError:
                continue
        return "?"
