"""Actor handles: a stateful object kept alive on one worker, called by method name.

``create_actor(Counter)`` returns a Future of an :class:`ActorHandle`; ``handle.incr(2)``
returns a Future of that call's result. Calls run one at a time, in submission order, on
the actor's own thread in its worker. A handle is bound to the client that made it. A handle pickles to its
id, so it can be passed to tasks and other actors, which call it the same way.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .futures import Future


def public_methods(cls: type) -> tuple[str, ...]:
    """The names a handle offers: public callables of the class."""
    return tuple(
        sorted(
            name for name, value in inspect.getmembers(cls) if not name.startswith("_") and callable(value)
        )
    )


class ActorMethod:
    """``handle.method``; calling it submits the call and returns a Future."""

    __slots__ = ("_handle", "_name")

    def __init__(self, handle: ActorHandle, name: str) -> None:
        self._handle = handle
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Future[Any]:
        return self._handle._client().call_actor(self._handle, self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<actor method {self._handle.class_name}.{self._name} of actor {self._handle.id}>"


class ActorHandle:
    """A reference to a live actor.

    Examples
    --------
    >>> counter = jf.create_actor(Counter).result()
    >>> counter.incr(5).result()
    5
    """

    def __init__(self, actor_id: int, class_name: str, methods: tuple[str, ...], client: Any = None) -> None:
        self.id = actor_id
        self.class_name = class_name
        self.methods = methods
        self._bound = client  # the client it belongs to; None: this process's current one
        for name in methods:
            self.__dict__[name] = ActorMethod(self, name)

    def _client(self) -> Any:
        """The client calls go through: the one that made this handle, else (a handle
        unpickled in a task) the current client of this process."""
        if self._bound is not None:
            return self._bound
        from .current import get_client

        return get_client()

    def __reduce__(self) -> Any:  # in another process, the handle binds to that process's client
        return (ActorHandle, (self.id, self.class_name, self.methods))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("actor", self.id))

    def __repr__(self) -> str:
        return f"<jupyter_futures.ActorHandle {self.class_name} #{self.id}>"


ActorHandle.__module__ = "jupyter_futures"
