"""The module-level API: ``jf.submit(...)`` and friends act on the current client.

In the kernel the current client is the one ``init()`` started; inside a task or an actor
it is that worker's own client, so the same calls work there (nested submission).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from .actors import ActorHandle
from .backend import ClusterStatus, LocalityRequirement, check_options
from .client import Client, map_items
from .current import current_client_or_none, get_client, on_start, set_client
from .errors import FutureTimeoutError, NotInKernelError
from .executor import ClusterExecutor, check_max_workers
from .futures import Future, WorkerId

T = TypeVar("T")


def init(n_workers: int | None = None, **options: Any) -> Client:
    """Start a cluster, or return the one already running.

    Takes the parameters of :class:`Client`: ``processes=False`` runs tasks and actors on
    threads of this process (for ``breakpoint()`` and pdb); by default, the embedded local
    engine starts worker processes (``cpus_per_worker``, ``ram_per_worker``,
    ``gpus_per_worker``, ``gpus``, ``resources``, ``store_capacity``, ...). Workers start
    in the background; work submitted meanwhile waits for them. This machine's GPUs are
    found and, by default, each of the first workers gets one, pinned to it.

    Examples
    --------
    >>> import jupyter_futures as jf
    >>> client = jf.init(n_workers=2)
    >>> jf.submit(sum, [1, 2, 3]).result()
    6
    """
    client = current_client_or_none()
    if client is not None and not client.closed:
        if isinstance(client, Client) and (options or (n_workers not in (None, client.n_workers))):
            warnings.warn(
                f"a cluster is already running ({client!r}); init() returns it unchanged. "
                "Call jf.shutdown() first to start one with other options.",
                RuntimeWarning,
                stacklevel=2,
            )
        return client  # type: ignore[no-any-return]
    client = Client(n_workers, **options)
    set_client(client)
    for hook in list(on_start):  # in a Jupyter kernel: output routing, tracebacks, the card
        hook(client)
    return client


def shutdown() -> None:
    """Stop the current cluster (nothing happens if none is running)."""
    client = current_client_or_none()
    if isinstance(client, Client):
        client.shutdown()


def submit(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Run ``fn(*args, **kwargs)`` on a worker; returns a :class:`Future`.

    Keyword options (not passed to ``fn``): ``min_cpu``, ``min_ram`` (bytes), ``min_gpu``,
    ``resources`` (dict), ``locality`` (from :func:`locality`), ``max_retries``,
    ``allow_reconstruction``, ``name``, ``priority``. Futures anywhere in the arguments
    (also inside lists, tuples and dicts) are waited for and replaced by their values.

    ``priority`` (an int, default 0) orders work waiting for a worker: higher starts first;
    work already running is not interrupted. Among equal priorities, the cells of a
    notebook take turns (in a kernel, each cell's work is its own group), so a cell's work
    starts promptly even behind an older cell's long queue.
    """
    return get_client().submit(fn, *args, **kwargs)


submit_future = submit


def map(  # jf.map, as Dask's client.map
    fn: Callable[..., T], *iterables: Any, batch_size: int | None = None, **options: Any
) -> list[Future[T]]:
    """``fn`` over the iterables, one task (and one :class:`Future`) per item, as
    ``submit`` would run them; see :meth:`Client.map`.

    Examples
    --------
    >>> futures = jf.map(pow, [1, 2, 3], [2, 2, 2])
    >>> jf.gather(futures)
    [1, 4, 9]
    """
    client = get_client()  # inside a task: the worker's backend, which is its own client
    return map_items(getattr(client, "backend", client), fn, iterables, batch_size, options)


class Executor(ClusterExecutor):
    """A standard ``concurrent.futures.Executor`` on the cluster.

    With no cluster running it starts the embedded one, with ``max_workers`` workers, and
    stops it at shutdown; with one running (``jf.init()`` before) it uses that one, with
    at most ``max_workers`` calls in flight at a time. ``submit_options`` (``min_cpu``,
    ``resources``, ``max_retries``, ...) apply to every call. Its futures are
    ``concurrent.futures.Future`` objects (a subclass whose wait inside a task
    lends the task's slot).

    Examples
    --------
    >>> with jf.Executor(max_workers=2) as ex:
    ...     list(ex.map(pow, [1, 2, 3], [2, 2, 2]))
    [1, 4, 9]
    """

    def __init__(self, max_workers: int | None = None, **submit_options: Any) -> None:
        check_max_workers(max_workers)
        check_options(submit_options)
        client = current_client_or_none()
        own = client is None or client.closed
        if own:
            client = init(n_workers=max_workers)
        super().__init__(client, max_workers, own=own, **submit_options)


Executor.__module__ = "jupyter_futures"


def put(obj: Any) -> Future[Any]:
    """Store ``obj`` in shared memory; returns a Future that is already done."""
    return get_client().put(obj)


def locality(f: Future[Any]) -> list[LocalityRequirement]:
    """Where ``f``'s value lives: pass one as ``submit(..., locality=...)`` to run there."""
    return get_client().locality(f)


def create_actor(cls: type, *args: Any, **kwargs: Any) -> Future[ActorHandle]:
    """Start ``cls(*args, **kwargs)`` on a worker; a Future of its :class:`ActorHandle`.

    Takes ``min_cpu``, ``min_ram``, ``min_gpu``, ``resources`` and ``max_restarts``.
    """
    return get_client().create_actor(cls, *args, **kwargs)


def call_actor(
    actor: ActorHandle | Future[ActorHandle], method: str, *args: Any, **kwargs: Any
) -> Future[Any]:
    """``actor.method(*args, **kwargs)``, by name; a Future of the result."""
    return get_client().call_actor(actor, method, *args, **kwargs)


def kill_actor(actor: ActorHandle | Future[ActorHandle]) -> None:
    """Stop an actor; calls still queued fail with :class:`ActorDiedError`."""
    get_client().kill_actor(actor)


def scale(n: int, timeout: float = 60.0) -> None:
    """Grow or shrink the cluster to ``n`` workers; returns once it has.

    New workers start as the first ones did. A worker taken out first finishes what it
    runs (no new work goes to it), then the kernel takes over the objects it stored (no
    copy, nothing is rebuilt) and it stops; its actors start again on another worker with
    ``max_restarts``, or fail with ``ActorDiedError``. Those with no actors, the least
    stored and the least running go first. On Dask this is the cluster object's
    ``scale(n)``; on threads, worker threads start or end.
    """
    _kernel_client("scale").scale(n, timeout)


def restart(timeout: float = 60.0) -> None:
    """Replace every worker with a fresh process; returns once they have all started.

    What was running runs again on the new workers (not counted against ``max_retries``
    or the resubmission limit), values stored only in the old ones are rebuilt from their
    lineage when they are needed, and actors start again (``max_restarts``) or fail with
    ``ActorDiedError``. On Dask, each worker restarts through its nanny.
    """
    _kernel_client("restart").restart(timeout)


def _kernel_client(what: str) -> Client:
    client = get_client()
    if not isinstance(client, Client):
        raise NotInKernelError(f"{what}() is available in the kernel, not inside tasks")
    return client


def logs(worker: WorkerId | None = None) -> dict[WorkerId, str]:
    """What workers wrote outside any task, by worker id: warnings, prints from their own
    threads, a crash's traceback, the stacks faulthandler dumps when one segfaults.

    The local engine keeps each worker's log, dead workers' too, until shutdown (the end of
    each, 64 KiB); on Dask these are the workers' log records; the threads engine has none
    (its workers write to the kernel's own streams).
    """
    return _kernel_client("logs").logs(worker)


def status() -> ClusterStatus:
    """A snapshot of the cluster: ``workers``, ``futures``, ``actors``, ``objects``."""
    return _kernel_client("status").status()


def await_future(
    f: Future[T], time_limit_secs: float | None = None, presume_worker_dead_after_secs: float = 30
) -> T:
    """Wait for ``f`` at most ``time_limit_secs``; a worker silent for
    ``presume_worker_dead_after_secs`` meanwhile is declared dead and its work moved."""
    deadline = None if time_limit_secs is None else time.monotonic() + time_limit_secs
    step = max(0.05, presume_worker_dead_after_secs / 2)
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise FutureTimeoutError(f"future {f.id} not done after {time_limit_secs} s")
        try:
            return f.result(step if left is None else min(step, left))
        except FutureTimeoutError:
            presume = getattr(f.backend, "presume_dead_if_silent", None)
            if presume is not None:  # an engine that can tell a silent worker from a busy one
                presume(f.id, presume_worker_dead_after_secs)
