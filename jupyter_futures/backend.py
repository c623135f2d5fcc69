"""The backend protocol: what the public API, the magics and the widgets ask of an engine.

::

    user code, %%remote, widgets, dashboard, JupyterLab panel, output routing
                     │  jf.submit / put / actors / wait / status ...
                     ▼
          Client (client.py, the facade) ──► Backend (this protocol)
                     ▲                        ├── local.LocalBackend     worker processes, shared memory
                     │                        ├── inprocess.ThreadBackend  threads of the kernel (pdb)
          Future ────┘ (loads its value,      └── dask.DaskBackend         a Dask distributed cluster
                        cancels, waits through its own backend)

An engine implements :class:`Backend`; a :class:`~jupyter_futures.Future` holds the
backend that made it and asks it for its value (``load``), its state and its cancel, so
nothing above this line sees an engine's wire types. What the widgets and the panel show
comes back as the typed views below (``ClusterStatus``, ``FutureView``, ``ActorView``),
one definition, checked by a test against the panel's TypeScript model.

Worker ids are ints for the local engine and may be strings (a Dask worker's address).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar, runtime_checkable

from .futures import Future, FutureBackend, WorkerId
from .gpus import GpuStats as GpuStats  # a worker's devices, as status() shows them
from .runs import TaskRun as TaskRun  # the task stream's views, defined beside its log
from .runs import TaskStream as TaskStream

if TYPE_CHECKING:
    from .actors import ActorHandle

T = TypeVar("T")


# -- submit's options -----------------------------------------------------------------

SUBMIT_OPTIONS = frozenset(
    {
        "min_cpu",
        "min_ram",
        "min_gpu",
        "resources",
        "locality",
        "max_retries",
        "allow_reconstruction",
        "name",
        "priority",
    }
)
"""The keyword options of ``submit`` (every engine takes them): never passed to the function."""


def check_options(options: dict[str, Any]) -> None:
    """Raise TypeError for a keyword that is not one of ``submit``'s options."""
    unknown = sorted(set(options) - SUBMIT_OPTIONS)
    if unknown:
        known = ", ".join(sorted(SUBMIT_OPTIONS))
        raise TypeError(f"unknown submit option(s) {', '.join(unknown)}; the options are {known}")


def split_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``submit``'s keywords as (its options, the function's keywords)."""
    options = {k: v for k, v in kwargs.items() if k in SUBMIT_OPTIONS}
    if not options:
        return options, kwargs
    return options, {k: v for k, v in kwargs.items() if k not in SUBMIT_OPTIONS}


def check_priority(priority: Any) -> int:
    """``priority=`` checked: an int (higher runs first among queued work; default 0)."""
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"priority must be an integer, got {priority!r}")
    return priority


# -- groups: whose work it is, so that equal priorities take turns ---------------------

GroupHook = Callable[[], int]
"""``hook()``: the group of work submitted now, an int (in a Jupyter kernel, the number of
the running cell: ``jupyter/kernel_output.py`` installs it with ``set_group_hook``). Among
queued work of equal priority, engines serve groups in turn, so a new cell's work starts
behind an older cell's long queue at once; without a hook all work is group 0."""


def group_of(hook: GroupHook | None) -> int:
    """The group ``hook`` names now (0 without one, or if it fails: a group never stops a
    submit)."""
    if hook is None:
        return 0
    try:
        group = hook()
    except Exception:
        return 0
    return group if isinstance(group, int) else 0


# -- what status() returns (the panel's IClusterStatus, labextension/src/model.ts) ------


class WorkerStatus(TypedDict):
    id: WorkerId
    pid: int | None
    alive: bool
    cpu_percent: float
    rss: int
    store_used: int
    store_capacity: int
    spilled: int
    objects: int
    actors: list[int | str]
    running: list[int | str]
    capacity: dict[str, float]
    gpus: list[GpuStats]  # its devices, sampled with the other figures (empty: none, or unknown)


ActorStatus = TypedDict(  # the functional form: a key is named "class"
    "ActorStatus",
    {
        "id": int | str,
        "class": str,
        "worker": WorkerId | None,
        "state": str,
        "calls_done": int,
        "calls_queued": int,
    },
)


class ObjectsStatus(TypedDict):
    count: int
    bytes: int
    spilled: int


class StoreStatus(TypedDict):
    used: int
    capacity: int
    objects: int


class QueueStatus(TypedDict):
    """Futures submitted and not started yet, of one group (in a kernel, a cell's number;
    0: work from outside any cell or from inside tasks) at one priority."""

    group: int
    priority: int
    tasks: int


class MessagesStatus(TypedDict):
    """Control frames dropped unread (a bad signature, a replay, too short, malformed), by
    the kernel and by the workers, where the engine checks its own (the local engine)."""

    dropped: int
    dropped_by: dict[str, int]  # by reason: "bad signature", "replayed", "short", ...
    kernel: int
    workers: int


class ClusterStatus(TypedDict, total=False):
    """A snapshot of a cluster, as ``jf.status()``, the dashboard and the panel see it."""

    cluster: str
    workers: list[WorkerStatus]
    futures: dict[str, int]  # counts by state: pending, running, done, failed, cancelled
    actors: list[ActorStatus]
    objects: ObjectsStatus
    kernel_store: StoreStatus  # the kernel's own store, where the engine has one
    engine: str  # the backend's name: "local", "threads", "dask"
    address: str  # where the engine's scheduler is, where it has one ("tcp://host:8786")
    queued: list[QueueStatus]  # pending futures per group and priority, the highest first
    messages: MessagesStatus  # control frames dropped, where the engine has its own


REQUIRED_STATUS_KEYS = ("cluster", "workers", "futures", "actors", "objects")


def queue_rows(queued: dict[tuple[int, int], int]) -> list[QueueStatus]:
    """``status()["queued"]`` from pending futures by (group, priority): the highest
    priority first, then the newest group (the local engine's core makes the same rows)."""
    return [
        {"group": g, "priority": p, "tasks": n}
        for (g, p), n in sorted(queued.items(), key=lambda kv: (-kv[0][1], -kv[0][0]))
        if n
    ]


# -- per-future and per-actor views ----------------------------------------------------


@dataclass(frozen=True)
class LocalityRequirement:
    """Run on ``worker``, beside the value of future ``future_id`` (from ``locality(f)``)."""

    worker: WorkerId
    future_id: int


LocalityRequirement.__module__ = "jupyter_futures"


@dataclass(frozen=True, slots=True)
class FutureView:
    """One future as its engine sees it now."""

    id: int
    name: str
    state: str  # pending, running, done, failed, cancelled
    waiting_on: int  # inputs not done yet
    worker: WorkerId | None  # where it runs (while running) or where its value lives
    elapsed: float  # seconds running so far, or the run's duration once finished
    error: str  # "Type: message" of a failure


@dataclass(frozen=True, slots=True)
class ActorView:
    """One actor as its engine sees it now."""

    id: int
    class_name: str
    worker: WorkerId | None
    state: str  # starting, alive, restarting, dead
    calls_done: int
    calls_queued: int
    death: str  # why it died ("" while alive)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a future's output belongs: the kernel futures it descends from (itself, when
    the kernel submitted it; the kernel futures whose tasks submitted it, for nested work;
    none when unknown), and when it was submitted (the kernel's ``time.monotonic()``)."""

    roots: tuple[int, ...]
    submitted: float


OutputHandler = Callable[[int, str, str], None]
"""``handler(future_id, stream, text)``: stream is stdout, stderr or display (a JSON bundle)."""

DISPLAY_STREAM = "display"
"""The stream of rich output (``display()`` in a task): its text is a JSON DisplayBundle."""


class DisplayBundle(TypedDict):
    """A ``display()`` made in a task, as a Jupyter ``display_data`` message carries it.

    Binary mime types (``image/png``) are base64 text, as in the Jupyter protocol."""

    data: dict[str, Any]
    metadata: dict[str, Any]
    transient: dict[str, Any]
    update: bool


def default_output(fid: int, stream: str, text: str) -> None:
    """Where remote prints go without a Jupyter kernel's routing: this process's own
    stdout/stderr (rich output as its plain-text part)."""
    import sys

    if stream == DISPLAY_STREAM:
        text = display_text(text)
    target = sys.stderr if stream == "stderr" else sys.stdout
    target.write(text)
    target.flush()


def display_text(payload: str) -> str:
    """The text/plain part of a display payload, for a console that cannot show the rest."""
    try:
        bundle: DisplayBundle = json.loads(payload)
        text = bundle["data"].get("text/plain", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return payload
    return f"{text}\n" if text and not bundle.get("update") else ""


# -- the protocol ----------------------------------------------------------------------


@runtime_checkable
class Backend(FutureBackend, Protocol):
    """An engine under the public API. ``jf.Client`` is the facade that holds one; what a
    Future asks of it (load, cancel, state, release, waiting) is in ``FutureBackend``."""

    name: str  # "local", "threads", "dask"
    cluster_id: str

    @property
    def n_workers(self) -> int: ...

    # work
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]: ...
    def submit_many(
        self, fn: Callable[..., T], arg_tuples: list[tuple[Any, ...]], **options: Any
    ) -> list[Future[T]]: ...
    def put(self, obj: Any) -> Future[Any]: ...
    def create_actor(self, cls: type, *args: Any, **kwargs: Any) -> Future[ActorHandle]: ...
    def call_actor(self, actor: Any, method: str, *args: Any, **kwargs: Any) -> Future[Any]: ...
    def kill_actor(self, actor: Any) -> None: ...
    def locality(self, f: Future[Any]) -> list[Any]: ...

    # views, for the widgets, the dashboard and the panel
    def status(self) -> ClusterStatus: ...
    def logs(self, worker: WorkerId | None = None) -> dict[WorkerId, str]: ...

    # the cluster's size
    def scale(self, n: int, timeout: float = 60.0) -> None: ...
    def restart(self, timeout: float = 60.0) -> None: ...
    def future_view(self, fid: int) -> FutureView | None: ...
    def latest_futures(self, n: int) -> list[FutureView]: ...
    def failed_futures(self, n: int) -> list[FutureView]: ...
    def actor_view(self, aid: int) -> ActorView | None: ...
    def task_stream(self, after: int = 0) -> TaskStream:
        """Runs (tasks, actor creations and calls) finished after cursor ``after``,
        oldest first, as many as the engine keeps (``runs.RING``); ``cursor`` of the answer
        asks for newer ones only."""
        ...

    def value_sizes(self, fs: list[Future[Any]]) -> list[int]:
        """Bytes each future's value takes where it is stored (0: unknown or not done)."""
        ...

    def actor_locality(self, actor: ActorHandle) -> Any:
        """A locality (``LocalityRequirement``) that runs work beside a live actor; None
        once it is dead."""
        ...

    def unsettled(self) -> list[Future[Any]]: ...

    # output and fair turns, for the Jupyter layer
    def set_output_handler(self, handler: OutputHandler) -> None: ...
    def output_origin(self, fid: int) -> Origin | None: ...
    def set_group_hook(self, hook: GroupHook | None) -> None:
        """Tag work submitted from now on with ``hook()``'s group (see ``GroupHook``)."""
        ...

    def wait_for_workers(self, n: int | None = None, timeout: float = 30.0) -> None: ...
    def shutdown(self) -> None: ...


def sizes_from_info(fs: list[Future[Any]]) -> list[int]:
    """``value_sizes`` of an engine whose futures learn their size when they settle."""
    return [f.info.nbytes if f.info is not None else 0 for f in fs]


def iter_status_keys() -> Iterator[tuple[str, tuple[str, ...]]]:
    """Each TypedDict of the status and its keys: what the panel's model must mirror."""
    for name, td in (
        ("IClusterStatus", ClusterStatus),
        ("IWorkerStatus", WorkerStatus),
        ("IActorStatus", ActorStatus),
        ("IQueueStatus", QueueStatus),
    ):
        yield name, tuple(td.__annotations__)
