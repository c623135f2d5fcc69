"""``LocalBackend``: the embedded local engine, as the kernel's ``jf.Client`` drives it.

It owns a :class:`~jupyter_futures.local.cluster.LocalCluster` and calls its scheduler directly,
under the cluster's lock; results come back on the cluster's I/O thread.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, cast

import psutil

from .. import errors
from .. import gpus as gpus_mod
from ..actors import ActorHandle
from ..backend import (
    ActorView,
    ClusterStatus,
    FutureView,
    LocalityRequirement,
    Origin,
    OutputHandler,
    TaskStream,
    sizes_from_info,
)
from ..futures import Future, WorkerId
from . import views
from .client_base import BaseClient
from .cluster import LocalCluster
from .protocol import DRIVER, Outcome, TaskSpec

GiB = 2**30


def default_store_capacity(n_workers: int) -> int:
    """A quarter of this machine's memory, shared by the kernel's and the workers' stores."""
    total = psutil.virtual_memory().total
    return max(64 * 2**20, min(16 * GiB, total // 4 // (n_workers + 1)))


MAX_NESTING = 8  # levels of tasks submitting tasks that output routing follows


class LocalBackend(BaseClient):
    """A running local cluster, and everything you can do with it.

    Made by :func:`jupyter_futures.init`; a context manager that shuts the cluster down.

    Parameters
    ----------
    n_workers
        Worker processes (default: one per CPU).
    cpus_per_worker, ram_per_worker, resources
        What each worker offers; tasks ask for them with ``min_cpu=`` and the like.
        ``ram_per_worker`` defaults to an equal share of this machine's memory.
    gpus_per_worker, gpus
        This machine's GPUs are found (NVML, else ``CUDA_VISIBLE_DEVICES`` or
        ``nvidia-smi -L``) and, by default, each of the first workers gets one, pinned to
        it (``CUDA_VISIBLE_DEVICES``); the other workers see none. ``gpus=[0, 2]`` offers
        only those devices; ``gpus_per_worker=2`` gives two per worker, ``0.5`` lets two
        workers share each; ``0`` offers none. With no GPU found, ``gpus_per_worker`` is
        a declared number, pinned to nothing (see :mod:`jupyter_futures.gpus`).
    store_capacity
        Bytes of shared memory per store before objects spill to disk.
    heartbeat_interval, heartbeat_timeout
        A worker silent for ``heartbeat_timeout`` seconds (stopped, hung) is killed and
        replaced; its work is resubmitted.
    """

    proc = DRIVER
    name = "local"

    def __init__(
        self,
        n_workers: int | None = None,
        *,
        cpus_per_worker: float = 1,
        ram_per_worker: int | None = None,
        gpus_per_worker: float | None = None,
        gpus: Sequence[int] | None = None,
        resources: dict[str, float] | None = None,
        store_capacity: int | None = None,
        heartbeat_interval: float = 0.5,
        heartbeat_timeout: float = 10.0,
        cancel_grace: float = 2.0,
    ) -> None:
        n = n_workers if n_workers is not None else (os.cpu_count() or 1)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        if cpus_per_worker < 1:
            raise ValueError("cpus_per_worker must be at least 1")
        if heartbeat_timeout <= heartbeat_interval:
            raise ValueError("heartbeat_timeout must be longer than heartbeat_interval")
        ram = ram_per_worker if ram_per_worker is not None else psutil.virtual_memory().total // n
        capacity = {"cpu": float(cpus_per_worker), "ram": float(ram)}
        for k, v in (resources or {}).items():
            if k in (*capacity, "gpu"):
                raise ValueError(f"use {k}s_per_worker rather than resources={{{k!r}: ...}}")
            capacity[str(k)] = float(v)
        found = gpus_mod.detect() if gpus_per_worker != 0 else []
        self.gpus = found  # what was found on this machine (benchmarks.gpu_check reports it)
        slots = gpus_mod.plan(gpus_per_worker, gpus, found)
        self.n_workers = n
        self.cluster = LocalCluster(
            n,
            {k: v for k, v in capacity.items() if v},
            store_capacity or default_store_capacity(n),
            gpu_slots=slots,
            on_resolve=self._on_resolved,
            on_output=self._on_output,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            cancel_grace=cancel_grace,
        )
        super().__init__(self.cluster.id, self.cluster.shm_dir, self.cluster.store)
        ref = weakref.ref(self)

        def at_exit() -> None:
            c = ref()
            if c is not None:
                c.shutdown()

        self._atexit = at_exit
        atexit.register(self._atexit)

    # -- the scheduler, in this process -------------------------------------------
    def _send_spec(self, spec: TaskSpec) -> None:
        if sys.path != self.cluster.sys_path:  # a folder added in the kernel: workers follow
            self.cluster.set_sys_path(sys.path)
        self.cluster.call(self.cluster.state.submit, spec, DRIVER, time.monotonic())

    def _send_specs(self, specs: list[TaskSpec]) -> None:
        if sys.path != self.cluster.sys_path:
            self.cluster.set_sys_path(sys.path)
        self.cluster.call(self.cluster.state.submit_many, specs, DRIVER, time.monotonic())

    def _put(self, tid: int, outcome: Outcome) -> None:
        self.cluster.call(self.cluster.state.put, tid, outcome, DRIVER, time.monotonic())

    def _acquire(self, tids: list[int]) -> None:
        self.cluster.call(self.cluster.state.acquire, DRIVER, tids, time.monotonic())

    def _release_later(self, tid: int) -> None:
        self.cluster.release_later(tid)

    def _drain_releases(self) -> None:
        self.cluster.drain_releases()

    def _cancel(self, tid: int) -> bool:
        state = self.cluster.state
        result: list[bool] = []

        def event() -> list[Any]:  # one event, so nothing finishes between the two
            result.append(state.cancellable(tid))
            return state.cancel(tid, time.monotonic())

        self.cluster.call(event)
        return result[0]

    def _kill_actor(self, aid: int) -> None:
        self.cluster.call(self.cluster.state.kill_actor, aid, time.monotonic())

    def _where(self, tid: int) -> list[int]:
        return self.cluster.query(self.cluster.state.locality, tid)

    def _copy_missing(self, tid: int) -> None:
        self.cluster.call(self.cluster.state.copy_missing, tid, time.monotonic())

    def segment_of(self, tid: int) -> str | None:
        """The shared-memory object holding ``tid``'s value (None: inline, or gone)."""

        def read() -> str | None:
            t = self.cluster.state.tasks.get(tid)
            return t.outcome.segment if t is not None and t.outcome is not None else None

        return self.cluster.query(read)

    def future_state(self, tid: int) -> str:
        return self.cluster.query(self.cluster.state.future_state, tid)

    def _on_output(self, tid: int, stream: str, text: str) -> None:
        self.output_handler(tid, stream, text)

    # -- cluster-wide ---------------------------------------------------------------
    # -- views (jupyter_futures.backend.Backend) ---------------------------------------
    def future_view(self, fid: int) -> FutureView | None:
        return views.task(self.cluster, fid)

    def latest_futures(self, n: int) -> list[FutureView]:
        return views.latest(self.cluster, n)

    def failed_futures(self, n: int) -> list[FutureView]:
        return views.failures(self.cluster, n)

    def actor_view(self, aid: int) -> ActorView | None:
        return views.actor(self.cluster, aid)

    def task_stream(self, after: int = 0) -> TaskStream:
        return views.task_stream(self.cluster, after)

    def value_sizes(self, fs: list[Future[Any]]) -> list[int]:
        return sizes_from_info(fs)

    def unsettled(self) -> list[Any]:
        """The kernel's futures not settled yet."""
        with self._futures_lock:
            return list(self._pending.values())

    def set_output_handler(self, handler: OutputHandler) -> None:
        self.output_handler = handler

    def output_origin(self, fid: int, depth: int = 0) -> Origin | None:
        """A kernel future is its own root; a future a task submitted descends from the
        kernel futures whose work runs on that task's worker."""
        info = views.submitted(self.cluster, fid)
        if info is None:
            return None
        owner, when = info
        if owner == DRIVER:
            return Origin((fid,), when)
        roots: set[int] = set()
        if depth < MAX_NESTING:
            for other in views.running_on(self.cluster, owner):
                found = self.output_origin(other, depth + 1) if other != fid else None
                if found is not None:
                    roots.update(found.roots)
        return Origin(tuple(sorted(roots)), when)

    def actor_locality(self, actor: ActorHandle) -> LocalityRequirement | None:
        """Where a live actor runs, as a locality (None once it is dead)."""
        a = views.actor(self.cluster, actor.id)
        if a is None or a.state == "dead":
            return None
        create = self.cluster.query(lambda: self.cluster.state.actors[actor.id].create_tid)
        # Not placed yet (-1): follow its creation future, wherever it lands.
        return LocalityRequirement(a.worker if a.worker is not None else -1, create)

    def logs(self, worker: WorkerId | None = None) -> dict[WorkerId, str]:
        """What each worker wrote outside tasks (the end of its log), dead workers too."""
        if worker is not None and not isinstance(worker, int):
            raise TypeError(f"worker {worker!r} is not a worker of the local engine")
        return {wid: text for wid, text in self.cluster.logs(worker).items()}

    def status(self) -> ClusterStatus:
        """A snapshot of workers, futures by state, actors and stored objects."""
        snap: dict[str, Any] = self.cluster.query(self.cluster.state.snapshot)
        store = self.store
        count = store.objects + sum(w["objects"] for w in snap["workers"])
        nbytes = store.used + sum(w["store_used"] for w in snap["workers"])
        spilled = store.spilled + sum(w["spilled"] for w in snap["workers"])
        snap["objects"] = {"count": count, "bytes": nbytes, "spilled": spilled}
        snap["kernel_store"] = {"used": store.used, "capacity": store.capacity, "objects": store.objects}
        snap["cluster"] = self.cluster.id
        snap["engine"] = self.name
        snap["messages"] = views.messages(self.cluster)
        return cast(ClusterStatus, snap)

    def wait_for_workers(self, n: int | None = None, timeout: float = 30.0) -> None:
        """Block until ``n`` workers (default: all) have started."""
        want = self.n_workers if n is None else n

        def why() -> str:
            alive = self.cluster.query(self.cluster.state.alive_workers)
            return f"only {alive} of {want} workers started within {timeout} s"

        self._wait_until(lambda st: st.alive_workers() >= want, timeout, why)

    # -- resizing -------------------------------------------------------------------
    def scale(self, n: int, timeout: float = 60.0) -> None:
        """Have ``n`` workers: start new ones, or retire some (each first finishes what it
        runs and hands its objects to the kernel, no copy; its actors start again elsewhere
        or fail, per ``max_restarts``). Returns once that is done."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"scale() takes a positive number of workers, got {n!r}")
        self._check_open()
        retiring = self.cluster.scale(n)
        self.n_workers = n

        def settled(st: Any) -> bool:
            staying = sum(1 for w in st.workers.values() if w.status == "alive" and not w.leaving)
            return staying >= n and all(st.workers[wid].status == "dead" for wid in retiring)

        self._wait_until(
            settled, timeout, lambda: f"scaling to {n} workers did not finish within {timeout} s"
        )

    def restart(self, timeout: float = 60.0) -> None:
        """Replace every worker with a fresh process; returns once they have all started.
        Work that was running runs again; values are rebuilt from lineage when needed;
        actors start again or fail (``max_restarts``)."""
        self._check_open()
        before = set(self.cluster.query(lambda st: list(st.workers), self.cluster.state))
        self.cluster.restart()

        def fresh(st: Any) -> bool:
            new = [w for w in st.workers.values() if w.wid not in before and w.status == "alive"]
            return len(new) >= self.n_workers

        self._wait_until(fresh, timeout, lambda: f"restarting the workers did not finish within {timeout} s")

    def _wait_until(self, done: Callable[[Any], bool], timeout: float, why: Callable[[], str]) -> None:
        """Wait (bounded) until ``done(scheduler state)``, woken as workers come and go;
        ``WorkersNotStartedError(why())`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.cluster.query(done, self.cluster.state):
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.WorkersNotStartedError(why())
            self.cluster.workers_changed.wait(min(left, 0.5))
            self.cluster.workers_changed.clear()

    def presume_dead_if_silent(self, tid: int, seconds: float) -> None:
        """If the worker running ``tid`` has been silent for ``seconds``, treat it as dead."""
        self.cluster.call(self.cluster.state.presume_dead_if_silent, tid, seconds, time.monotonic())

    def shutdown(self) -> None:
        """Stop the workers and remove every process, segment, socket and thread."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self._atexit)
        self.cluster.shutdown()
        self._abandon_unfinished()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.n_workers} workers"
        return f"<jupyter_futures.local.LocalBackend {self.cluster_id} {state}>"
