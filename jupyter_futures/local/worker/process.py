"""A worker process: ``python -m jupyter_futures.local.worker``, started by the kernel.

::

    stdin (config + key, once) ─► Worker
      I/O thread:  inbox (PULL) ─► RUN → runners   CREATE_ACTOR/ACTOR_CALL → actor threads
                                   CANCEL, KILL_ACTOR, FREE, RESOLVED, SHUTDOWN
      main thread: runner (tasks)                         ─► outbox (PUSH) ─► scheduler
      tasks and actor calls run by one path (execute.py), with this Worker as its TaskHost
      heartbeat:   RSS, CPU, store use every interval; exits if the kernel is gone
      fds 1 and 2: its log file (logs.py), for what it writes outside tasks: jf.logs()

The key arrives on stdin, never on the command line. The worker dies with its parent (the
kernel, or the zygote, which dies with the kernel): Linux sends it SIGKILL when the parent
dies, even by SIGKILL (``PR_SET_PDEATHSIG``), so it goes at once whatever it is running. A
signal handler in Python would wait for the GIL, which a C call in a task can hold for
minutes. A process killed so removes nothing: the cluster's reaper (``local/reaper.py``)
removes what the cluster left once its workers are gone, also when the kernel died before
any of them was up. The heartbeat thread checks the parent too, where Linux's signal is
not to be had.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

if TYPE_CHECKING:
    import psutil

from ...capture.output import TaskOutput
from ...errors import ObjectLost
from ...gpus import GpuSampler
from .. import logs as worker_logs
from .. import protocol as P
from ..client_base import set_client
from ..protocol import Codec, Outcome, WorkerStats
from ..serialize import INLINE_LIMIT, pack_value, unpack
from ..store import ObjectStore, map_object
from ..transport import Inbox, Outbox
from .actors import ActorHost
from .client import WorkerClient
from .execute import running_group, running_task
from .host import MappedInputs
from .tasks import Runners

log = logging.getLogger("jupyter_futures.local.worker")
BATCH_MAX = 64
BATCH_AGE = 0.002


class Worker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.wid: int = config["wid"]
        self.cluster: str = config["cluster"]
        self.parent: int = config["parent"]
        self.shm_dir = Path(config["shm_dir"])
        self.heartbeat_interval: float = config["heartbeat"]
        self.gpus = GpuSampler(config.get("gpus", []))  # its devices, sampled on each heartbeat
        self.codec = Codec(bytes.fromhex(config["key"]))
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.inbox = Inbox(self.ctx, config["address"], self.codec)
        self.outbox = Outbox(self.ctx, config["scheduler"], self.codec)
        self.store = ObjectStore(self.cluster, f"w{self.wid}", self.shm_dir, config["store_capacity"])
        self.functions: dict[bytes, Any] = {}  # loaded, by the hash of their pickle
        self._function_bytes: dict[bytes, bytes] = {}  # received, loaded on first use
        self._functions_lock = threading.Lock()
        self.actors: dict[int, ActorHost] = {}
        self.runners = Runners(self, config["slots"])
        self.output = TaskOutput(self._send_output, running_task)
        self.client = WorkerClient(
            self.wid, self.cluster, self.shm_dir, self.store, self.outbox, wake=self.wake, slots=self.runners
        )
        self.client.group_hook = running_group  # nested work takes its parent's turns
        self._batch: list[tuple[int, int, Outcome]] = []
        self._keep: list[Any] = []
        self._batch_started = 0.0
        self._batch_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._exiting = False
        self._exit_lock = threading.RLock()
        self._process: psutil.Process | None = None  # made at the first heartbeat

    # -- lifecycle ---------------------------------------------------------------
    def run(self) -> None:
        set_client(self.client)
        self.output.install()
        threading.Thread(target=self._io_loop, name="jf-io", daemon=True).start()
        threading.Thread(target=self._heartbeat_loop, name="jf-heartbeat", daemon=True).start()
        self.outbox.send((P.HELLO, self.wid, os.getpid()))
        self.runners.loop()  # the main thread runs tasks until the process exits

    def exit(self, code: int) -> None:
        """Remove this worker's objects and leave (threads are daemons).

        The first caller cleans up; a second one (SHUTDOWN, a SIGTERM and the heartbeat's
        parent check may meet) waits for it. What a dead kernel's cluster leaves is the
        reaper's to remove (``local/reaper.py``), not this worker's."""
        with self._exit_lock:
            if not self._exiting:
                self._exiting = True
                with contextlib.suppress(Exception):
                    self.store.close()
            os._exit(code)

    @property
    def is_exiting(self) -> bool:
        return self._exiting

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    # -- messages from the scheduler ---------------------------------------------
    def _io_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.inbox.sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        while True:
            events = dict(poller.poll())
            if self._wake_r in events:
                os.read(self._wake_r, 4096)
                self.client.send_releases()
            if self.inbox.sock in events:
                for msg in self.inbox.drain():
                    try:
                        self._handle(msg)
                    except Exception as exc:
                        self.inbox.verifier.reject(msg, exc)

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind in (P.RUN, P.CREATE_ACTOR, P.ACTOR_CALL):
            # Functions are kept as they arrive, in the scheduler's order, whatever becomes
            # of the task that carried them (cancelled before it ran, say): the scheduler
            # sends each function once and counts it as held from then on.
            for task in msg[1] if kind == P.RUN else [msg[1]]:
                if task.fn_bytes is not None:
                    self._function_bytes.setdefault(task.fn_hash, task.fn_bytes)
        if kind == P.RUN:
            self.runners.submit(msg[1])
        elif kind == P.ACTOR_CALL:
            host = self.actors.get(msg[1].actor)
            if host is not None:
                host.call(msg[1])
        elif kind == P.CREATE_ACTOR:
            self.actors[msg[1].actor] = ActorHost(self, msg[1])
        elif kind == P.RESOLVED:
            for tid, outcome in msg[1]:
                self.client._on_resolved(tid, outcome)
        elif kind == P.FREE:
            for name in msg[1]:
                self.store.free(name)
        elif kind == P.CANCEL:
            if not self.runners.cancel(msg[1]):
                for host in self.actors.values():
                    host.cancel(msg[1])
        elif kind == P.KILL_ACTOR:
            host = self.actors.pop(msg[1], None)
            if host is not None:
                host.kill()
        elif kind == P.SYS_PATH:
            use_sys_path(msg[1])
        elif kind == P.SHUTDOWN:
            if len(msg) > 1:  # retired: the kernel adopted these objects, they stay
                self.store.forget(msg[1])
            self.exit(0)

    # -- what tasks and actor calls need (the TaskHost of execute.py) -----------------
    def function(self, fn_hash: bytes) -> Any:
        """The function named by ``fn_hash``, unpickled on first use (a failure, such as a
        module this worker cannot import, is the task's error; a later task tries again)."""
        fn = self.functions.get(fn_hash)
        if fn is None:
            with self._functions_lock:
                fn = self.functions.get(fn_hash)
                if fn is None:
                    fn = self.functions[fn_hash] = unpack(self._function_bytes[fn_hash], what="a function")
                    del self._function_bytes[fn_hash]
        return fn

    def input_value(self, inputs: dict[int, Outcome], tid: int, mapped: MappedInputs) -> Any:
        outcome = inputs.get(tid)
        if outcome is None:
            raise ObjectLost(f"input future {tid} was not available")
        if outcome.segment is None:
            assert outcome.data is not None
            return unpack(outcome.data, what=f"input future {tid}")
        try:
            if outcome.segment in self.store:
                blob = self.store.view(outcome.segment)
            else:
                blob = map_object(self.store.obj_dir, self.store.spill_dir, outcome.segment, populate=True)
        except FileNotFoundError:
            raise ObjectLost(f"the copy of input future {tid} is gone (its worker died)") from None
        mapped.append((tid, weakref.ref(blob.obj)))
        return unpack(blob, what=f"input future {tid}")

    def keep_mapped_inputs(self, mapped: MappedInputs) -> None:
        """After a task or call: inputs whose mapping it kept (in an actor's state, say)
        stay allocated, held by this worker, until the mapping goes."""
        if not mapped:
            return
        acquire = []
        for tid, ref in mapped:
            mapping = ref()
            if mapping is not None and self.client.pin_mapping(tid, mapping):
                acquire.append(tid)
        if acquire:  # sent before the result, on the same ordered pipe
            self.outbox.send((P.ACQUIRE, self.wid, acquire))

    def pack_result(self, tid: int, value: Any) -> Outcome:
        packed = pack_value(value)
        contained = tuple(packed.contained)
        if packed.nbytes < INLINE_LIMIT:
            return Outcome(status="ok", data=packed.to_bytes(), nbytes=packed.nbytes, contained=contained)
        name = self.store.put(tid, packed)
        return Outcome(status="ok", segment=name, nbytes=packed.nbytes, contained=contained)

    def end_task(self, tid: int) -> None:
        """``tid`` is over: send the rest of its output, close the figures it left open."""
        self.output.end_task(tid)

    # -- results and output ----------------------------------------------------------
    def report_done(self, tid: int, attempt: int, outcome: Outcome, more: bool, keep: Any = None) -> None:
        """Send a result, batching while more short tasks are queued behind it.

        ``keep`` (the value itself) stays referenced until the result is sent: futures
        inside it must not be released before the scheduler learns they are contained.
        """
        with self._batch_lock:
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.append((tid, attempt, outcome))
            self._keep.append(keep)
            if more and len(self._batch) < BATCH_MAX and time.monotonic() - self._batch_started < BATCH_AGE:
                return
            batch, self._batch = self._batch, []
            self.outbox.send((P.DONE, self.wid, batch))
            self._keep.clear()

    def flush_done_if_stale(self) -> None:
        if self._batch and time.monotonic() - self._batch_started >= BATCH_AGE:
            with self._batch_lock:
                batch, self._batch = self._batch, []
                if batch:
                    self.outbox.send((P.DONE, self.wid, batch))
                self._keep.clear()

    def _send_output(self, tid: int, stream: str, text: str) -> None:
        self.outbox.send((P.OUTPUT, self.wid, tid, stream, text))

    # -- heartbeats ------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.heartbeat_interval):
            if not parent_alive(self.parent):
                self.exit(1)
            self.flush_done_if_stale()
            self.outbox.send((P.HEARTBEAT, self.wid, self.stats()))
            worker_logs.bound()

    def stats(self) -> WorkerStats:
        import psutil  # on the heartbeat thread, past HELLO: not on the start-up path

        try:
            if self._process is None:
                self._process = psutil.Process()
            rss = self._process.memory_info().rss
            cpu = self._process.cpu_percent()  # the first call starts the count (0.0)
        except psutil.Error:
            rss, cpu = 0, 0.0
        store = self.store
        return {
            "pid": os.getpid(),
            "rss": rss,
            "cpu_percent": cpu,
            "store_used": store.used,
            "store_capacity": store.capacity,
            "spilled": store.spilled,
            "objects": store.objects,
            "running": sorted(self.runners.threads_of),
            "dropped_frames": dict(self.inbox.verifier.dropped_by),
            "gpus": self.gpus.sample(),
        }


def use_sys_path(entries: list[str]) -> None:
    """Import from where the kernel imports: its entries first, in its order, then this
    interpreter's own that it lacks."""
    own = [p for p in sys.path if p not in entries]
    sys.path[:] = [*entries, *own]
    importlib.invalidate_caches()


def parent_alive(parent: int) -> bool:
    """Whether the process that started us is still there (an orphan is re-parented)."""
    return os.getppid() == parent


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` when the parent (the kernel, or the zygote) dies, by
    SIGKILL too; False if it is gone already (it died before we asked).

    SIGKILL, not a signal handled in Python: a handler runs only once the main thread gets
    the GIL, and a task's C call (a regex backtracking on a runner thread, say) may hold it
    for minutes. The signal comes when the parent's thread that started us ends: the kernel
    keeps that one (its I/O thread) until its workers are stopped."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG
    return parent_alive(parent)


def main() -> None:
    """A worker started as its own interpreter: its config (and key) come on stdin."""
    config = json.loads(sys.stdin.read())
    sys.stdin.close()
    run(config)


def run(config: dict[str, Any]) -> None:
    """Be a worker until told to stop (started by ``main``, or forked by the zygote)."""
    if not die_with_parent(config["parent"]):
        # It died while this worker started, before it could ask: leave at once, having
        # made nothing. What the cluster left is the reaper's (it waits for no worker
        # the kernel had no time to tell it about, and needs not: this one makes no file).
        os._exit(1)
    if config.get("log"):  # forked by the zygote: fds 1 and 2 are still the kernel's
        worker_logs.redirect(config["log"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's interrupt is not for us
    use_sys_path(config["sys_path"])
    worker = Worker(config)
    # A SIGTERM (someone's ``kill``) removes this worker's objects, as SHUTDOWN does; it is
    # ignored once exiting, so it cannot cut short the cleanup under way.
    signal.signal(signal.SIGTERM, lambda *_: None if worker.is_exiting else worker.exit(0))
    worker.run()
