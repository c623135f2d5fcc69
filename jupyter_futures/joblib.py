"""A joblib backend: ``import jupyter_futures.joblib`` registers ``"jupyter_futures"``.

::

    with joblib.parallel_config(backend="jupyter_futures"):
        GridSearchCV(..., n_jobs=-1).fit(X, y)        # or joblib.Parallel(n_jobs=-1)(...)

    joblib.Parallel ── a batch of calls ──► JupyterFuturesBackend.submit
        │ each large argument (an array, a DataFrame: over 64 KiB) is put in the cluster's
        │ object store once per Parallel call, and every batch that passes it gets its Future
        ▼
    client.submit(run_batch, calls) ──► a worker: [fn(*args, **kwargs) for each call]
        └─ done ──► joblib's callback ──► retrieve_result_callback: the list of results

joblib sizes the batches itself (auto-batching, as with loky). Inside a task, a nested
``Parallel`` runs on the same cluster through the worker's own client (its wait lends the
task's slot, so nesting never deadlocks). With no cluster running, the first ``Parallel``
starts the embedded one with ``jf.init()``; it stays up for later calls, as any cluster
``jf.init()`` started does, until ``jf.shutdown()``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import joblib
from joblib.parallel import AutoBatchingMixin, ParallelBackendBase

from .backend import check_options
from .current import current_client_or_none
from .executor import waiting_of, worker_count

NAME = "jupyter_futures"
STORE_AT = 64 * 1024  # arguments at least this large go through the object store, once


def run_batch(
    calls: list[tuple[Callable[..., Any], list[Any], dict[str, Any]]], n_jobs: int | None
) -> list[Any]:
    """One task: a batch of joblib's calls, in order, with nested Parallel calls on this
    cluster too."""
    with joblib.parallel_config(backend=NAME, n_jobs=n_jobs):
        return [fn(*args, **kwargs) for fn, args, kwargs in calls]


def _size(obj: Any) -> int:
    """What ``obj`` weighs: its buffer for an array (a view too), ``sys.getsizeof`` else
    (pandas counts a frame's data there)."""
    try:
        return max(int(getattr(obj, "nbytes", 0) or 0), sys.getsizeof(obj))
    except Exception:
        return 0


class JupyterFuturesBackend(AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc]
    """joblib's calls as tasks of the current jupyter_futures cluster.

    ``submit_options`` (``min_cpu``, ``resources``, ``max_retries``, ...) apply to every
    task: ``joblib.parallel_config(backend="jupyter_futures", min_cpu=2)``."""

    supports_retrieve_callback = True
    supports_timeout = True
    uses_threads = False
    supports_sharedmem = False
    default_n_jobs = -1

    def __init__(
        self, nesting_level: int | None = None, inner_max_num_threads: int | None = None, **options: Any
    ):
        check_options(options)
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        self.options = options
        self._lock = threading.Lock()
        self._stored: dict[int, tuple[weakref.ref[Any], Any]] = {}  # id(arg) -> (arg, its Future)
        self._submitted: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- the cluster -----------------------------------------------------------------------
    def _client(self) -> Any:
        client = current_client_or_none()
        if client is None or client.closed:
            from .api import init

            client = init()
        return client

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        client = current_client_or_none()
        slots = worker_count(client if client is not None and not client.closed else None)
        if n_jobs is None or n_jobs < 0:
            return max(slots + 1 + (n_jobs if n_jobs is not None else -1), 1)
        return int(n_jobs)

    def configure(self, n_jobs: int | None = 1, parallel: Any = None, **backend_args: Any) -> int:
        self._client()  # started now, so that n_jobs=-1 counts its workers
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        return JupyterFuturesBackend(nesting_level=(self.nesting_level or 0) + 1, **self.options), -1

    # -- calls -----------------------------------------------------------------------------
    def start_call(self) -> None:
        with self._lock:
            self._stored.clear()

    def stop_call(self) -> None:
        with self._lock:
            self._stored.clear()  # the stored copies go once no task needs them

    def submit(self, func: Any, callback: Callable[[Any], None] | None = None) -> Any:
        client = self._client()
        calls = [
            (fn, self._by_reference(client, args), self._by_reference_kw(client, kwargs))
            for fn, args, kwargs in func.items
        ]
        n_jobs = getattr(func, "_n_jobs", None)
        name = _batch_name(calls)
        try:
            future = client.submit(run_batch, calls, n_jobs, name=name, **self.options)
        except Exception as exc:  # an impossible requirement, an unpicklable call: the batch's error
            future = cf.Future()
            future.set_exception(exc)
        self._submitted.add(future)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    @contextlib.contextmanager
    def retrieval_context(self) -> Iterator[None]:
        """Around joblib's wait for results: inside a task, its slot is lent meanwhile, so
        the calls it waits for can run on its worker (nesting never deadlocks)."""
        waiting = waiting_of(current_client_or_none())
        with waiting() if waiting is not None else contextlib.nullcontext():
            yield

    def retrieve_result_callback(self, future: Any) -> Any:
        return future.result()

    def retrieve_result(self, out: Any, timeout: float | None = None) -> Any:
        return out.result(timeout)

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A call failed and joblib gives up on the rest: cancel what has not finished."""
        for f in list(self._submitted):
            if not f.done():
                f.cancel()
        self._submitted = weakref.WeakSet()
        with self._lock:
            self._stored.clear()

    def terminate(self) -> None:
        with self._lock:
            self._stored.clear()

    # -- large arguments, once per Parallel call ---------------------------------------------
    def _by_reference(self, client: Any, args: Any) -> list[Any]:
        return [self._stored_copy(client, a) for a in args]

    def _by_reference_kw(self, client: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {k: self._stored_copy(client, v) for k, v in kwargs.items()}

    def _stored_copy(self, client: Any, arg: Any) -> Any:
        if isinstance(arg, (int, float, str, bytes, bool, type(None))) or _size(arg) < STORE_AT:
            return arg
        with self._lock:
            entry = self._stored.get(id(arg))
            if entry is not None and entry[0]() is arg:
                return entry[1]
            try:
                ref = weakref.ref(arg)
            except TypeError:
                return arg  # cannot tell it is the same object next time: pickled per task
            stored = client.put(arg)
            self._stored[id(arg)] = (ref, stored)
            return stored


def _batch_name(calls: list[tuple[Callable[..., Any], Any, Any]]) -> str:
    fn = calls[0][0] if calls else None
    label = getattr(fn, "__name__", None) or type(fn).__name__
    return f"joblib {label}" if len(calls) == 1 else f"joblib {label} x{len(calls)}"


joblib.register_parallel_backend(NAME, JupyterFuturesBackend)

__all__ = ["NAME", "JupyterFuturesBackend", "run_batch"]
