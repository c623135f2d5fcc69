"""The reaper: one small process per cluster that cleans up after a kernel that died.

::

    LocalCluster.__init__ ── Reaper(cluster, shm_dir) ──► python -m jupyter_futures.local.reaper
        (first of all: before the cluster's lock, sockets or workers exist)
    Spawner, at each start ── watch(pid): a pidfd, over SCM_RIGHTS ──► the reaper holds it
        (every fresh worker, the zygote, every worker the zygote forks)
    LocalCluster.shutdown ── b"stop" (everything is removed already) ──► it exits

    the kernel dies (its pidfd is readable, or the socket ends without b"stop"):
        its workers and zygote are being killed by Linux already (PR_SET_PDEATHSIG=SIGKILL)
        reaper ── SIGKILL ──► every process it watches, through its pidfd (never a reused pid)
               ── waits for them, and the kernel, to be gone (bounded)
               ── sweep_dead_clusters(shm_dir): objects, lock, sockets, logs, spill
               ── exits

Why a process of its own: workers die with the kernel by SIGKILL, in the OS, whatever they
are running (a C call that holds the GIL keeps a Python signal handler from running for as
long as it lasts), and a process killed so cannot clean up after itself. The reaper is
started before anything of the cluster exists, so a kernel killed at any moment, even
before its first worker is up, leaves nothing.

It is not the kernel's helper in anything else: it never gets the cluster's key and holds
no lock; it is in a session of its own and ignores SIGINT (ipykernel interrupts the
kernel's process group); it does not die with the kernel (that is its moment), and it
never outlives its purpose: once the kernel is gone it sweeps and exits, within seconds.
Its start is kept cheap: the kernel only forks and execs it (~0.5 ms), and it imports the
standard library's few modules it needs (the store only once there is something to sweep),
~75 ms of its own beside the first workers' start, which it does not wait for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("jupyter_futures")

REAPER_MODULE = "jupyter_futures.local.reaper"
STOP = b"stop"
WATCH = b"w"  # one pidfd rides with it
WATCH_PID = b"p"  # then the pid as text: where there are no pidfds (Linux before 5.3)
SEND_TIMEOUT = 1.0  # seconds a message to the reaper may wait for room in its socket
GONE_WAIT = 3.0  # seconds the reaper waits for the kernel and the processes it killed to be gone
STOP_WAIT = 1.0  # seconds shutdown waits for the reaper to leave before killing it
PARENT_POLL = 0.2  # seconds between looks at the parent, where there is no pidfd for it


class Reaper:
    """The kernel's end of its cluster's reaper (see the module docstring)."""

    def __init__(self, cluster: str, shm_dir: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [str(os.getpid()), str(theirs.fileno()), str(shm_dir), cluster]
            self.proc = subprocess.Popen(
                [sys.executable, "-m", REAPER_MODULE, *argv],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                close_fds=True,  # nothing of the kernel's: not its lock, not its sockets
                start_new_session=True,  # the kernel's interrupts are not for it
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(SEND_TIMEOUT)
        self._sock: socket.socket | None = ours
        self._owner = os.getpid()  # a fork of the kernel (user code) must not stop it
        self._lock = threading.Lock()
        self._warned = False

    def watch(self, pid: int) -> None:
        """Have ``pid`` (a worker or the zygote, just started) SIGKILLed if the kernel dies.

        Called at once after the start, so the pid is still the process's: a child of the
        kernel is not reaped before the kernel waits for it. The pidfd travels, not the
        pid, so the reaper never signals a process that took a dead worker's pid."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already
            return
        except (AttributeError, OSError):  # pragma: no cover - no pidfds here
            self._send(WATCH_PID + str(pid).encode(), [])
            return
        try:
            self._send(WATCH, [pidfd])
        finally:
            os.close(pidfd)

    def _send(self, message: bytes, fds: list[int]) -> None:
        with self._lock:
            if self._sock is None:
                return
            try:
                socket.send_fds(self._sock, [message], fds)
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    log.warning("the cluster's reaper is gone (%s): a killed kernel may leave files", exc)

    def close(self, timeout: float = STOP_WAIT) -> None:
        """After shutdown removed everything: tell the reaper to leave, and wait for it."""
        with self._lock:
            sock, self._sock = self._sock, None
            if sock is None:
                return
            if os.getpid() == self._owner:
                with contextlib.suppress(OSError):
                    sock.send(STOP)
            sock.close()
        if os.getpid() != self._owner:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - still starting on a loaded machine
            self.proc.kill()
            self.proc.wait()


# -- the reaper process ----------------------------------------------------------------


def _open_kernel(kernel: int) -> int | None:
    """A pidfd of the kernel, our parent; None where there are no pidfds. Raises
    ProcessLookupError if the kernel is gone already."""
    if os.getppid() != kernel:
        raise ProcessLookupError(kernel)
    try:
        fd = os.pidfd_open(kernel)
    except ProcessLookupError:
        raise
    except (AttributeError, OSError):  # pragma: no cover - Linux before 5.3
        return None  # the parent is looked at instead
    if os.getppid() != kernel:  # it died between the two looks: the pid may be another's
        os.close(fd)
        raise ProcessLookupError(kernel)
    return fd


class Watch:
    """What the kernel told the reaper: the pidfds of the processes it started (closed as
    each exits) and, where there are no pidfds, their pids."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pidfds: set[int] = set()
        self.pids: set[int] = set()
        self.stopped = False

    def receive(self) -> bool:
        """Take one message; False once the kernel's end is closed (or it said stop)."""
        try:
            message, fds, _, _ = socket.recv_fds(self.sock, 64, 4)
        except BlockingIOError:
            raise  # nothing more (``drain``)
        except OSError:
            return False
        self.pidfds.update(fds)
        if message.startswith(WATCH_PID):
            self.pids.add(int(message[len(WATCH_PID) :]))
        self.stopped = message == STOP
        return bool(message) and not self.stopped

    def drain(self) -> None:
        """Take what the kernel sent before it died (a worker started just then)."""
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while self.receive():
                pass


def serve(watch: Watch, kernel: int, kernel_fd: int | None) -> bool:
    """Hold the pidfds the kernel sends until it stops us (False) or dies (True)."""
    poller = select.poll()
    poller.register(watch.sock, select.POLLIN)
    if kernel_fd is not None:
        poller.register(kernel_fd, select.POLLIN)
    # Without a pidfd of the kernel, its death shows as a new parent, looked at now and then.
    timeout = None if kernel_fd is not None else int(PARENT_POLL * 1000)
    while True:
        for fd, _ in poller.poll(timeout):
            if fd == kernel_fd:
                return True
            if fd in watch.pidfds:  # that process exited: its pidfd is of no more use
                poller.unregister(fd)
                watch.pidfds.discard(fd)
                os.close(fd)
                continue
            known = set(watch.pidfds)
            if not watch.receive():
                return not watch.stopped
            for pidfd in watch.pidfds - known:
                poller.register(pidfd, select.POLLIN)
        if kernel_fd is None and os.getppid() != kernel:
            return True


def reap(watch: Watch, kernel: int, kernel_fd: int | None, shm_dir: Path) -> None:
    """The kernel is gone: kill what it started, wait (bounded) for all of it to be gone,
    then remove every file of clusters whose kernel is gone, its own among them."""
    watch.drain()
    for pidfd in watch.pidfds:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    for pid in watch.pids:  # pragma: no cover - no pidfds here
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # The sweep comes after: a process still alive could hold the lock (the kernel, for a
    # moment after its socket closed) or write a file after the sweep looked.
    deadline = time.monotonic() + GONE_WAIT
    poller = select.poll()
    waiting = set(watch.pidfds) | ({kernel_fd} if kernel_fd is not None else set())
    for fd in waiting:
        poller.register(fd, select.POLLIN)
    while waiting and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(int(left * 1000) + 1):
            poller.unregister(fd)
            waiting.discard(fd)
    while kernel_fd is None and os.getppid() == kernel and time.monotonic() < deadline:
        time.sleep(PARENT_POLL)  # pragma: no cover - no pidfd of the kernel to wait on
    from .store import sweep_dead_clusters  # only now: not on the start-up path

    sweep_dead_clusters(shm_dir)


def main() -> None:
    kernel, sock_fd, shm_dir = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's interrupt is not for us
    watch = Watch(socket.socket(fileno=sock_fd))
    try:
        kernel_fd = _open_kernel(kernel)
    except ProcessLookupError:  # killed while we started
        kernel_fd, dead = None, True
    else:
        dead = serve(watch, kernel, kernel_fd)
    if dead:
        try:
            reap(watch, kernel, kernel_fd, shm_dir)
        except Exception as exc:  # nobody is left to tell but the log
            print(f"jupyter_futures reaper of cluster {sys.argv[4]}: {exc!r}", file=sys.stderr, flush=True)
            os._exit(1)
    os._exit(0)  # nothing to flush or finalize: shutdown waits for this, ~15 ms sooner


if __name__ == "__main__":
    main()
