"""``jf.Client``: the kernel's handle on a cluster, a facade over one backend.

::

    jf.init(2)              ─► Client(2) ─► LocalBackend     worker processes, shared memory
    jf.init(processes=False) ─► Client(...) ─► ThreadBackend  threads of this kernel (pdb works)
    jf.init(address=...)  ─► Client(...) ─► DaskBackend    an existing Dask distributed cluster
                                   │
    jf.submit / put / ... ─► get_client() ─► the current client: this Client in the kernel,
                                             a worker's own client inside a task

The public API (``api.py``), the magics and the widgets use a ``Client`` and the
:class:`~jupyter_futures.backend.Backend` protocol, never an engine's internals.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .backend import LocalityRequirement, check_options
from .current import current_client_or_none, set_client

if TYPE_CHECKING:
    from .actors import ActorHandle
    from .backend import ActorView, Backend, ClusterStatus, FutureView, TaskStream
    from .executor import ClusterExecutor
    from .futures import Future, WorkerId

T = TypeVar("T")


class Client:
    """A running cluster, and everything you can do with it.

    Made by :func:`jupyter_futures.init`; also a context manager that shuts it down.

    Parameters
    ----------
    n_workers
        Workers (default: one per CPU).
    processes
        True (the default): worker processes with a shared-memory object store.
        False: tasks and actors run on threads of this process, so ``breakpoint()`` and
        pdb work inside them (for debugging; no isolation, no parallel Python code).
    address
        Run on an existing Dask distributed cluster instead: a scheduler address
        (``"tcp://host:8786"``), a ``distributed.Client`` or any Dask cluster object
        (``LocalCluster``, ``SLURMCluster``, ``KubeCluster``, ...). With ``n_workers``,
        wait until that many workers have joined.
    cpus_per_worker, ram_per_worker, gpus_per_worker, resources
        What each worker offers; tasks ask for them with ``min_cpu=`` and the like.
    gpus
        The local engine finds this machine's GPUs (NVML) and gives each of the first
        workers one, pinned to it (``CUDA_VISIBLE_DEVICES``); ``gpus=[0, 2]`` offers only
        those, ``gpus_per_worker`` sets how many each GPU worker gets (``0.5``: two
        workers share one; ``0``: none).
    store_capacity, heartbeat_interval, heartbeat_timeout, cancel_grace
        Options of the local engine (see ``jf.init``).
    """

    def __init__(
        self, n_workers: int | None = None, *, processes: bool = True, address: Any = None, **options: Any
    ) -> None:
        self.backend: Backend
        if address is not None:
            from .dask import DaskBackend

            self.backend = DaskBackend(address, **options)
            if n_workers:
                self.backend.wait_for_workers(n_workers)
        elif processes:
            from .local.backend import LocalBackend

            self.backend = LocalBackend(n_workers, **options)
        else:
            from .inprocess import ThreadBackend

            self.backend = ThreadBackend(n_workers, **options)

    @property
    def n_workers(self) -> int:
        return self.backend.n_workers

    # -- the cluster ---------------------------------------------------------------
    @property
    def cluster_id(self) -> str:
        return self.backend.cluster_id

    @property
    def closed(self) -> bool:
        return self.backend.closed

    def status(self) -> ClusterStatus:
        """A snapshot of workers, futures by state, actors and stored objects."""
        return self.backend.status()

    def scale(self, n: int, timeout: float = 60.0) -> None:
        """Have ``n`` workers; see :func:`jupyter_futures.scale`."""
        self.backend.scale(n, timeout)

    def restart(self, timeout: float = 60.0) -> None:
        """Replace every worker with a fresh one; see :func:`jupyter_futures.restart`."""
        self.backend.restart(timeout)

    def logs(self, worker: WorkerId | None = None) -> dict[WorkerId, str]:
        """What each worker (or ``worker``) wrote outside any task; see :func:`jupyter_futures.logs`."""
        return self.backend.logs(worker)

    def task_stream(self, after: int = 0) -> TaskStream:
        """The runs finished after cursor ``after`` (tasks, actor creations and calls):
        ``(now, cursor, runs)``, each run a ``TaskRun(start, end, lane, name, state)`` in
        ``time.monotonic()`` seconds. Pass ``cursor`` back for newer runs only; the picture of
        them is :func:`jupyter_futures.task_stream`."""
        return self.backend.task_stream(after)

    def wait_for_workers(self, n: int | None = None, timeout: float = 30.0) -> None:
        """Block until ``n`` workers (default: all) have started."""
        self.backend.wait_for_workers(n, timeout)

    def shutdown(self) -> None:
        """Stop the cluster: every unfinished future fails with ``ClusterClosedError``,
        and no process, segment, socket or thread is left."""
        self.backend.shutdown()
        if current_client_or_none() is self:
            set_client(None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.n_workers} workers"
        kind = "" if self.backend.name == "local" else f" {self.backend.name}"
        return f"<jupyter_futures.Client{kind} {self.cluster_id} {state}>"

    # -- work ------------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a worker; see :func:`jupyter_futures.submit`."""
        return self.backend.submit(fn, *args, **kwargs)

    def map(
        self, fn: Callable[..., T], *iterables: Any, batch_size: int | None = None, **options: Any
    ) -> list[Future[T]]:
        """``fn`` over the iterables (zipped, shortest first), one task and one Future per
        item, as Dask's ``client.map``; ``options`` are those of ``submit``.

        ``batch_size``: how many items are handed to the scheduler at once (default: all).
        Whatever the size, every item is its own task; a smaller batch lets the first
        tasks start while the rest of a long iterable is still being read.
        """
        return map_items(self.backend, fn, iterables, batch_size, options)

    def executor(self, max_workers: int | None = None, **submit_options: Any) -> ClusterExecutor:
        """A standard ``concurrent.futures.Executor`` on this cluster (at most
        ``max_workers`` calls in flight; ``submit_options`` apply to every call)."""
        from .executor import ClusterExecutor

        return ClusterExecutor(self, max_workers, **submit_options)

    def put(self, obj: Any) -> Future[Any]:
        """Store ``obj`` in the cluster now; returns a Future that is already done."""
        return self.backend.put(obj)

    def create_actor(self, cls: type, *args: Any, **kwargs: Any) -> Future[ActorHandle]:
        """Start ``cls(*args, **kwargs)`` on a worker; a Future of its handle."""
        return self.backend.create_actor(cls, *args, **kwargs)

    def call_actor(self, actor: Any, method: str, *args: Any, **kwargs: Any) -> Future[Any]:
        """Call ``actor.method(*args, **kwargs)``; a Future of the result."""
        return self.backend.call_actor(actor, method, *args, **kwargs)

    def kill_actor(self, actor: Any) -> None:
        """Stop the actor; its pending calls fail with ActorDiedError."""
        self.backend.kill_actor(actor)

    def cancel(self, f: Future[Any]) -> bool:
        return self.backend.cancel(f)

    def locality(self, f: Future[Any]) -> list[LocalityRequirement]:
        """Where ``f``'s value lives now, as requirements to pass to ``submit(locality=)``."""
        return self.backend.locality(f)

    # -- views, for the widgets and the panel ----------------------------------------
    def future_state(self, fid: int) -> str:
        """pending, running, done, failed, cancelled or released, as the engine sees it."""
        return self.backend.future_state(fid)

    def future_view(self, fid: int) -> FutureView | None:
        return self.backend.future_view(fid)

    def actor_view(self, aid: int) -> ActorView | None:
        return self.backend.actor_view(aid)

    def actor_locality(self, actor: ActorHandle) -> LocalityRequirement | None:
        """A locality that runs work beside a live actor (None once it is dead)."""
        return self.backend.actor_locality(actor)  # type: ignore[no-any-return]


Client.__module__ = "jupyter_futures"


def map_items(
    backend: Backend,
    fn: Callable[..., T],
    iterables: tuple[Any, ...],
    batch_size: int | None,
    options: dict[str, Any],
) -> list[Future[T]]:
    """``Client.map`` on ``backend``: also what ``jf.map`` does inside a task, where the
    current client is the worker's backend itself."""
    check_options(options)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    items = zip(*iterables)
    out: list[Future[T]] = []
    while batch := list(itertools.islice(items, batch_size)):
        out += backend.submit_many(fn, batch, **options)
        if batch_size is None:
            break
    return out
