"""The embedded local cluster: worker processes and the I/O thread around the scheduler.

::

    user thread ── submit/cancel/put ──┐                    ┌── PUSH ──► worker 1 inbox
                                       ▼                    │
                          SchedulerState (under a lock) ────┼── PUSH ──► worker 2 inbox
                                       ▲                    │
    I/O thread ── poll(inbox, pidfds, wake pipe) ───────────┘
       │  DONE/HEARTBEAT/SUBMIT...       worker exits (pidfd readable)   releases, ticks
       └─► resolves the kernel's Futures (outside the lock, so callbacks may submit)
    the first workers start as fresh interpreters, side by side; after a worker's death,
    replacements are forked by a zygote (spawner.py) in milliseconds; a reaper process
    (reaper.py) kills them and removes the cluster's files if the kernel dies

The scheduler runs in whichever thread brings it an event (the user's for a submit, the
I/O thread for a result), under one lock: a submitted task reaches its worker from the
user's own thread, one hand-off fewer than a scheduler thread would cost. Messages to
workers are sent under the same lock, so each worker sees them in the scheduler's order.

The scheduler speaks in typed instructions (:mod:`jupyter_futures.core.instructions`);
``_execute`` maps each to a message of :mod:`~jupyter_futures.local.protocol` (RunTasks to
RUN, Resolved to RESOLVED, FreeObjects to FREE, ...) or to an action here (a kernel-side
resolve or free, a kill, a replacement worker).
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import psutil
import zmq

from ..core.instructions import (
    AdoptObjects,
    CallActor,
    CancelTask,
    CreateActor,
    FreeObjects,
    Instruction,
    KillActor,
    KillWorker,
    NoReplacement,
    Resolved,
    RetireWorker,
    RunTasks,
    SpawnWorker,
)
from ..core.scheduler import SchedulerState
from ..gpus import GpuSlot, GpuSlots
from . import logs as worker_logs
from . import protocol as P
from .protocol import DRIVER, Codec, Outcome
from .reaper import Reaper
from .spawner import Spawner, WorkerProcess
from .store import (
    ClusterLock,
    ObjectStore,
    choose_shm_dir,
    remove_owner_objects,
    sweep_dead_clusters,
)
from .transport import Inbox, Outbox, ipc_address, make_socket_dir

log = logging.getLogger("jupyter_futures")
Args = ParamSpec("Args")
R = TypeVar("R")

TICK = 0.25  # seconds between housekeeping passes (heartbeat deadlines, cancel grace)


def worker_env(gpu_env: dict[str, str] | None = None) -> dict[str, str]:
    """A worker's environment: the kernel's of now, with the worker's own settings (its
    GPUs among them)."""
    return dict(
        os.environ,
        **(gpu_env or {}),
        JF_WORKER="1",
        PYTHONUNBUFFERED="1",
        # plt.show() in a task displays in the submitting cell (not the kernel's backend)
        MPLBACKEND="module://jupyter_futures.capture.mpl_backend",
    )


SHUTDOWN_WAIT = 10.0  # seconds the I/O thread waits for shutdown() to stop the workers
REAP_WAIT = 0.5  # seconds the I/O thread waits for a dead worker's exit code (ms, as a rule)


class LocalCluster:
    """Worker processes on this machine, and the scheduler that drives them."""

    def __init__(
        self,
        n_workers: int,
        capacity: dict[str, float],
        store_capacity: int,
        on_resolve: Callable[[int, Outcome], None],
        on_output: Callable[[int, str, str], None],
        heartbeat_interval: float = 0.5,
        heartbeat_timeout: float = 10.0,
        cancel_grace: float = 2.0,
        use_zygote: bool = True,
        gpu_slots: Sequence[GpuSlot] = (),
    ) -> None:
        self.id = secrets.token_hex(5)
        self._key = secrets.token_bytes(32)
        self.codec = Codec(self._key)
        self.capacity = capacity  # what every worker offers, GPUs aside
        self.gpus = GpuSlots(gpu_slots)  # which worker has which GPUs
        self.store_capacity = store_capacity
        self.heartbeat_interval = heartbeat_interval
        self._on_resolve = on_resolve
        self._on_output = on_output
        self.shm_dir = choose_shm_dir(store_capacity * (n_workers + 1))
        # First, before anything of the cluster exists: a kernel killed from now on, even
        # before its first worker is up, leaves nothing (reaper.py). Not waited for.
        self._reaper = Reaper(self.id, self.shm_dir)
        sweep_dead_clusters(self.shm_dir)
        self._lock_file = ClusterLock(self.shm_dir, self.id)  # and the private object directory
        self.sock_dir = make_socket_dir(self.id)
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.inbox = Inbox(self.ctx, ipc_address(self.sock_dir, "scheduler"), self.codec)
        self.store = ObjectStore(self.id, "w0", self.shm_dir, store_capacity)
        # A worker's objects are files: they outlive it, and the kernel adopts them.
        self.state = SchedulerState(
            heartbeat_timeout=heartbeat_timeout, cancel_grace=cancel_grace, salvage_copies=True
        )
        self.lock = threading.Lock()
        self.outboxes: dict[int, Outbox] = {}
        self.procs: dict[int, WorkerProcess] = {}
        self._spawner = Spawner(use_zygote=use_zygote, watch=self._reaper.watch)
        self._pidfds: dict[int, int] = {}
        self._next_wid = 1
        self._releases: deque[int] = deque()
        self._spawns: deque[int] = deque()
        self._stop_when_started: set[int] = set()  # retired before their outbox existed
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._woken = False
        self.closing = False
        self._fds_closed = False
        self.sys_path = list(sys.path)
        self.workers_changed = threading.Event()
        self._workers_gone = threading.Event()
        self._loop_stopped = threading.Event()
        self.housekeeping_errors: dict[str, int] = {}  # what the I/O thread went on after
        now = time.monotonic()
        with self.lock:
            for _ in range(n_workers):
                wid = self._claim_wid()
                self.state.add_worker(wid, self._capacity_of(wid), now)
                self._spawns.append(wid)
        self._thread = threading.Thread(target=self._loop, name="jupyter-futures-io", daemon=True)
        self._thread.start()

    # -- calls from user threads ------------------------------------------------------
    def call(self, event: Callable[Args, list[Instruction]], *args: Args.args, **kwargs: Args.kwargs) -> None:
        """Run one scheduler event under the lock and carry out its instructions."""
        with self.lock:
            self._drain_releases()
            instrs = event(*args, **kwargs)
            resolves = self._execute(instrs)
        self._deliver(resolves)

    # -- resizing ---------------------------------------------------------------------
    def scale(self, n: int) -> list[int]:
        """Start or retire workers so that ``n`` remain; returns the ids being retired
        (those with no actors, the least stored and the least running go first)."""
        now = time.monotonic()
        with self.lock:
            st = self.state
            live = [w for w in st.workers.values() if w.status != "dead" and not w.leaving]
            retiring: list[int] = []
            if n > len(live):
                for _ in range(n - len(live)):
                    wid = self._claim_wid()
                    st.add_worker(wid, self._capacity_of(wid), now)
                    self._spawns.append(wid)
                instrs: list[Instruction] = []
            else:

                def cost(w: Any) -> tuple[int, int, int, int]:
                    stored = w.stats["store_used"] if w.stats else 0
                    return (len(w.actors), stored, len(w.assigned), -w.wid)

                retiring = [w.wid for w in sorted(live, key=cost)[: len(live) - n]]
                instrs = st.retire_workers(retiring, now)
            resolves = self._execute(instrs)
        self._wake()
        self._deliver(resolves)
        return retiring

    def restart(self) -> None:
        """Replace every worker with a fresh one (see ``SchedulerState.restart_workers``)."""
        self.call(self.state.restart_workers, time.monotonic())

    def logs(self, wid: int | None = None) -> dict[int, str]:
        """The end of what each worker (or ``wid``) wrote outside tasks, dead ones too."""
        return worker_logs.read(self.sock_dir, wid)

    def query(self, fn: Callable[Args, R], *args: Args.args, **kwargs: Args.kwargs) -> R:
        """Read the scheduler's state under the lock (``fn`` must not change it)."""
        with self.lock:
            return fn(*args, **kwargs)

    def set_sys_path(self, entries: list[str]) -> None:
        """The kernel's ``sys.path`` changed: tell every worker before anything else is sent.

        Under the lock, so it reaches each worker ahead of the next task on the same pipe;
        a worker started later gets it in its config."""
        with self.lock:
            self.sys_path = list(entries)
            for box in self.outboxes.values():
                box.send((P.SYS_PATH, self.sys_path))

    def release_later(self, tid: int) -> None:
        """From ``Future.__del__``: queue the release for the next event or tick.

        No wake-up: a syscall per dropped future would cost more than the release is
        worth, and the next submit, result or tick (every TICK s) drains the queue."""
        self._releases.append(tid)

    def drain_releases(self) -> None:
        """Carry out the queued releases now, not at the next event or tick."""
        if self._releases:
            self.call(lambda: [])

    def _wake(self) -> None:
        if not self._woken and not self._fds_closed:  # a closed fd's number may be reused
            self._woken = True
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def _drain_releases(self) -> None:
        if self._releases:
            tids = []
            while self._releases:
                tids.append(self._releases.popleft())
            self._execute(self.state.release(DRIVER, tids, time.monotonic()))

    # -- instructions -----------------------------------------------------------------
    def _execute(self, instrs: list[Instruction]) -> list[tuple[int, Outcome]]:
        """Carry out the scheduler's instructions, in order (lock held).

        Each becomes one message to a worker, or an action here; the kernel's own resolves
        are returned, to be delivered once the lock is released (callbacks may submit)."""
        resolves: list[tuple[int, Outcome]] = []
        for ins in instrs:
            match ins:  # the most frequent first
                case RunTasks(worker, tasks):
                    self._post(worker, (P.RUN, tasks))
                case Resolved(proc, results):
                    if proc == DRIVER:
                        resolves += results
                    else:
                        self._post(proc, (P.RESOLVED, results))
                case CallActor(worker, task):
                    self._post(worker, (P.ACTOR_CALL, task))
                case FreeObjects(proc, names):
                    if proc == DRIVER:
                        for name in names:
                            self.store.free(name)
                    else:
                        self._post(proc, (P.FREE, names))
                case CreateActor(worker, task):
                    self._post(worker, (P.CREATE_ACTOR, task))
                case CancelTask(worker, tid):
                    self._post(worker, (P.CANCEL, tid))
                case KillActor(worker, aid):
                    self._post(worker, (P.KILL_ACTOR, aid))
                case KillWorker(worker, why):
                    self._kill(worker, why)
                case RetireWorker(worker, handed):
                    self.store.adopt(handed)  # its objects are the kernel's now: no copy
                    if worker in self.outboxes:
                        self._post(worker, (P.SHUTDOWN, handed))
                    elif worker in self._spawns:  # never started: it never will
                        self._spawns.remove(worker)
                        resolves += self._execute(self.state.worker_died(worker, 0, time.monotonic()))
                        self.gpus.free(worker)
                    else:  # being started on the I/O thread: told once its outbox exists
                        self._stop_when_started.add(worker)
                case AdoptObjects(_dead, copies):
                    found = set(self.store.adopt([name for _, name in copies]))
                    missing = [tid for tid, name in copies if name not in found]
                    if missing:  # gone with their worker after all: rebuilt when needed
                        resolves += self._execute(self.state.copies_lost(missing, time.monotonic()))
                case SpawnWorker(replacing):
                    self._replace(replacing)
                case NoReplacement(dead, why):
                    log.error("not replacing worker %s: %s", dead, why)
        return resolves

    def _post(self, wid: int, msg: tuple[Any, ...]) -> None:
        box = self.outboxes.get(wid)
        if box is not None:  # not yet started, or gone: a dead worker's pipe drops it
            box.send(msg)

    def _deliver(self, resolves: list[tuple[int, Outcome]]) -> None:
        for tid, outcome in resolves:
            try:
                self._on_resolve(tid, outcome)
            except Exception:
                log.exception("while resolving future %s", tid)

    def _kill(self, wid: int, why: str) -> None:
        proc = self.procs.get(wid)
        if proc is not None and proc.poll() is None:
            w = self.state.workers.get(wid)
            (log.info if w is not None and w.leaving == "restart" else log.warning)(
                "killing worker %s: %s", wid, why
            )
            proc.kill()

    def _replace(self, dead: int) -> None:
        if self.closing:
            return
        wid = self._claim_wid()
        # the same devices, for the work resubmitted to it
        self.state.add_worker(wid, self._capacity_of(wid, replacing=dead), time.monotonic())
        self._spawns.append(wid)
        self._wake()

    def _claim_wid(self) -> int:
        wid = self._next_wid
        self._next_wid += 1
        return wid

    def _capacity_of(self, wid: int, replacing: int | None = None) -> dict[str, float]:
        """What worker ``wid`` offers: the common capacity, and GPUs if it gets some."""
        gpu = self.gpus.take(wid, replacing)
        return {**self.capacity, "gpu": gpu} if gpu else self.capacity

    # -- processes --------------------------------------------------------------------
    def _spawn(self, wid: int) -> None:
        """Start worker ``wid``; runs on the I/O thread, which outlives every worker."""
        config: dict[str, Any] = {
            "wid": wid,
            "cluster": self.id,
            "key": self._key.hex(),
            "scheduler": self.inbox.address,
            "address": ipc_address(self.sock_dir, f"w{wid}"),
            "shm_dir": str(self.shm_dir),
            "store_capacity": self.store_capacity,
            "slots": max(1, int(self.capacity.get("cpu", 1))),
            "heartbeat": self.heartbeat_interval,
            "parent": os.getpid(),
            # Workers import what the kernel can: its sys.path (and, through "", its
            # working directory) at their start, and every later change (set_sys_path).
            "sys_path": self.sys_path,
            "log": str(worker_logs.create(self.sock_dir, wid)),  # what it writes outside tasks
            "gpus": list(self.gpus.devices(wid)),  # sampled for status()
        }
        # its GPUs in its environment before any of its code runs (the zygote sets it after fork)
        env = worker_env(self.gpus.env(wid))
        # In the kernel's working directory and environment of now: forked by the zygote
        # once it is up, a fresh interpreter before that (spawner.py).
        proc = self._spawner.start(wid, config, env, os.getcwd())
        self.procs[wid] = proc
        box = Outbox(self.ctx, config["address"], self.codec)
        with self.lock:
            self.outboxes[wid] = box
            if wid in self._stop_when_started:  # retired while it was being started
                self._stop_when_started.discard(wid)
                box.send((P.SHUTDOWN, []))
            if self.sys_path is not config["sys_path"]:  # it changed while this one started
                box.send((P.SYS_PATH, self.sys_path))
        try:
            self._pidfds[wid] = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # pragma: no cover - kernels before 5.3
            pass

    def _reap(self, wid: int) -> None:
        # A worker died: from now on replacements are forked by a zygote (started here, on
        # the I/O thread, the workers' parent-death anchor); this one's is a fresh
        # interpreter unless the zygote is up already.
        if not self.closing:
            self._spawner.prestart(worker_env(), os.getcwd())
        proc = self.procs.pop(wid)
        try:  # dead already (its pidfd said so): only its exit code may still be on its way
            code: int | None = proc.wait(REAP_WAIT)
        except subprocess.TimeoutExpired:  # never hold the I/O thread for it
            log.warning("worker %s died; its exit code did not come within %.1f s", wid, REAP_WAIT)
            code = None
        fd = self._pidfds.pop(wid, None)
        if fd is not None:
            os.close(fd)
        with self.lock:
            box = self.outboxes.pop(wid, None)
            if box is not None:
                box.close()
            resolves = self._execute(self.state.worker_died(wid, code, time.monotonic()))
            self.gpus.free(wid)  # not replaced (retired): its GPUs go to the next worker
        self.workers_changed.set()
        self._deliver(resolves)
        try:  # last: whatever it meets, the futures above are settled already
            remove_owner_objects(self.store.obj_dir, self.store.spill_dir, f"w{wid}", keep=self.store)
        except Exception as exc:
            self._failed("removing a dead worker's objects", exc)

    # -- the I/O thread ---------------------------------------------------------------
    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.inbox.sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        registered: set[int] = set()
        next_tick = time.monotonic() + TICK
        while not self.closing:
            try:
                next_tick = self._step(poller, registered, next_tick)
            except Exception as exc:
                # This thread resolves every future: nothing it meets in housekeeping (a
                # file it may not remove, a worker it cannot start) may end it.
                self._failed("the cluster's I/O thread", exc)
        # Stay alive (the workers' parent-death anchor) until shutdown has stopped them.
        self._loop_stopped.set()
        self._workers_gone.wait(SHUTDOWN_WAIT)

    def _step(self, poller: zmq.Poller, registered: set[int], next_tick: float) -> float:
        """One pass of the I/O thread: start workers, wait for an event, handle it."""
        while self._spawns:
            self._spawn(self._spawns.popleft())
        for fd in set(self._pidfds.values()) - registered:
            poller.register(fd, zmq.POLLIN)
            registered.add(fd)
        timeout = max(0.0, next_tick - time.monotonic())
        events = dict(poller.poll(int(timeout * 1000)))
        if self.closing:
            return next_tick
        if self._wake_r in events:
            os.read(self._wake_r, 4096)
            self._woken = False
        if self.inbox.sock in events:
            self._handle(self.inbox.drain())
        for wid, fd in list(self._pidfds.items()):
            if fd in events:
                poller.unregister(fd)
                registered.discard(fd)
                self._reap(wid)
        if not self._pidfds:
            for wid, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    self._reap(wid)
        now = time.monotonic()
        if self._releases:
            self.call(lambda: [])
        if now >= next_tick:
            next_tick = now + TICK
            self.call(self.state.tick, now)
        return next_tick

    def _failed(self, where: str, exc: BaseException) -> None:
        """Log an error of housekeeping once per kind (with its traceback), then count it."""
        key = f"{where}: {type(exc).__name__}"
        self.housekeeping_errors[key] = self.housekeeping_errors.get(key, 0) + 1
        if self.housekeeping_errors[key] == 1:
            log.error("%s went on after an error (logged once): %r", where, exc, exc_info=exc)

    def _handle(self, msgs: list[tuple[Any, ...]]) -> None:
        now = time.monotonic()
        resolves: list[tuple[int, Outcome]] = []
        outputs: list[tuple[Any, ...]] = []
        with self.lock:
            self._drain_releases()
            for msg in msgs:
                try:
                    resolves += self._handle_one(msg, now, outputs)
                except Exception as exc:
                    self.inbox.verifier.reject(msg, exc)
        for _, _wid, tid, stream, text in outputs:
            try:
                self._on_output(tid, stream, text)
            except Exception:
                log.exception("output handler failed")
        self._deliver(resolves)

    def _handle_one(
        self, msg: tuple[Any, ...], now: float, outputs: list[tuple[Any, ...]]
    ) -> list[tuple[int, Outcome]]:
        st = self.state
        resolves: list[tuple[int, Outcome]] = []
        kind = msg[0]
        if kind == P.DONE:
            resolves += self._execute(st.done(msg[1], msg[2], now))
        elif kind == P.HEARTBEAT:
            st.heartbeat(msg[1], msg[2], now)
        elif kind == P.OUTPUT:
            outputs.append(msg)
        elif kind == P.HELLO:
            resolves += self._execute(st.worker_ready(msg[1], msg[2], now))
            self.workers_changed.set()
        elif kind == P.SUBMIT:
            resolves += self._execute(st.submit(msg[2], msg[1], now))
        elif kind == P.ACQUIRE:
            resolves += self._execute(st.acquire(msg[1], msg[2], now))
        elif kind == P.RELEASE:
            resolves += self._execute(st.release(msg[1], msg[2], now))
        elif kind == P.BLOCKED:
            resolves += self._execute(st.blocked(msg[1], msg[2], now))
        elif kind == P.UNBLOCKED:
            resolves += self._execute(st.unblocked(msg[1], msg[2], now))
        elif kind == P.CANCEL:
            resolves += self._execute(st.cancel(msg[2], now))
        elif kind == P.KILL_ACTOR:
            resolves += self._execute(st.kill_actor(msg[2], now))
        elif kind == P.PUT:
            resolves += self._execute(st.put(msg[2], msg[3], msg[1], now))
        elif kind == P.MISSING:
            resolves += self._execute(st.copy_missing(msg[2], now))
        else:
            raise ValueError(f"unexpected message kind {P.KIND_NAMES.get(kind, kind)}")
        return resolves

    # -- shutdown ---------------------------------------------------------------------
    def shutdown(self, timeout: float = 1.0) -> None:
        """Stop every worker and remove every socket, segment and directory."""
        if self.closing:
            return
        with self.lock:
            self.closing = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._loop_stopped.wait(timeout)  # no spawn or reap is under way after this
        with self.lock:
            for box in self.outboxes.values():
                box.send((P.SHUTDOWN,))
        deadline = time.monotonic() + timeout * 0.8
        fds = [fd for fd in self._pidfds.values()]
        while fds and time.monotonic() < deadline:
            ready, _, _ = select.select(fds, [], [], max(0.0, deadline - time.monotonic()))
            fds = [fd for fd in fds if fd not in ready]
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover - a D-state process
                log.error("worker pid %s did not exit", proc.pid)
        self._spawner.close()  # after its workers: they die with it
        # Only now may the I/O thread end: Linux signals the workers when the thread that
        # started them ends, and a worker must not mistake that for the kernel's death.
        self._workers_gone.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        with self.lock:
            for box in self.outboxes.values():
                box.close()
            self.outboxes.clear()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            # It still polls these: closing them under it could make it poll (or us later
            # write to) a number the kernel has reused for one of its own sockets.
            log.error("the I/O thread did not stop; leaving its descriptors open")
        else:
            self._fds_closed = True
            for fd in (*self._pidfds.values(), self._wake_r, self._wake_w):
                os.close(fd)
            self._pidfds.clear()
            self.inbox.close()
            self.ctx.term()
        try:
            self.store.close()
        except OSError as exc:  # what stays is removed with the directory below
            log.warning("while closing the kernel's object store: %s", exc)
        for wid in [*list(self.procs), 0]:
            try:
                remove_owner_objects(self.store.obj_dir, self.store.spill_dir, f"w{wid}")
            except Exception as exc:  # what stays is removed with the directory below
                self._failed("shutdown", exc)
        shutil.rmtree(self.sock_dir, ignore_errors=True)  # sockets, logs, spilled objects
        self._lock_file.release()  # and the object directory
        sweep_dead_clusters(self.shm_dir)
        self.procs.clear()
        self._reaper.close()  # last: were the kernel killed before, it would finish the job

    def pids(self) -> list[int]:
        # A copy: the I/O thread adds and removes workers meanwhile.
        return [p.pid for p in list(self.procs.values()) if p.poll() is None]

    def process_tree(self) -> list[psutil.Process]:
        out = []
        for pid in self.pids():
            try:
                out.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        return out
