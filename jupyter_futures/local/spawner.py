"""How the kernel starts worker processes: forked by a zygote, else a fresh interpreter each.

::

    LocalCluster I/O thread ── start(config, env, cwd) ──► Spawner ──► a WorkerProcess
        zygote (one per cluster, started by the first start()):
            stdin ◄── {"spawn": wid, "config", "env", "cwd"}        fork: a few ms
            reply pipe ──► {"spawned": wid, "pid"}, {"exited": pid, "code"}
        fallback (the zygote could not start or died): python -m jupyter_futures.local.worker
            with its config on stdin

The config carries the cluster's key: it only ever travels through these pipes, never in
argv or the environment. Exit codes of forked workers come from the zygote, which reaps
them; their death is noticed, as before, through a pidfd the cluster polls.

Every process started here (fresh worker, zygote, forked worker) is handed at once to
``watch``, the cluster's reaper (``reaper.py``), which kills it if the kernel dies and
removes what the cluster left. They also die with their parent by themselves
(``PR_SET_PDEATHSIG``): the zygote and fresh workers with the kernel, forked workers with
the zygote.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .logs import open_for_append

log = logging.getLogger("jupyter_futures")
ZYGOTE_MODULE = "jupyter_futures.local.worker.zygote"
ZYGOTE_START_TIMEOUT = 20.0  # seconds for the zygote to import what a worker needs
REPLY_TIMEOUT = 10.0  # seconds for the zygote to answer a spawn
EXIT_REPORT_TIMEOUT = 5.0  # seconds from a worker's death to the zygote's report of its code


class WorkerProcess(Protocol):
    """A started worker process, as the cluster uses it (``subprocess.Popen`` is one)."""

    pid: int

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


class ForkedWorker:
    """A worker forked by the zygote: signalled through a pidfd (never a reused pid), its
    exit code as the zygote reports it."""

    def __init__(self, pid: int, zygote: Zygote) -> None:
        self.pid = pid
        self._zygote = zygote
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already: its exit report is on its way
            self._pidfd = None
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self._settle(self._zygote.exit_code(self.pid, timeout=0.0))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            limit = EXIT_REPORT_TIMEOUT if timeout is None else timeout
            self._settle(self._zygote.exit_code(self.pid, timeout=limit))
            if self.returncode is None:
                raise subprocess.TimeoutExpired(f"worker pid {self.pid}", limit)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None and self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _settle(self, code: int | None) -> None:
        if code is not None:
            self.returncode = code
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None


class Zygote:
    """The kernel's end of one zygote process (see the module docstring)."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        reply_r, reply_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", ZYGOTE_MODULE, str(reply_w)],
                stdin=subprocess.PIPE,
                pass_fds=(reply_w,),
                env=env,
                cwd=cwd,
                close_fds=True,
                start_new_session=True,  # the kernel's interrupt and shutdown signals are not for it
            )
        finally:
            os.close(reply_w)
        self._reply = reply_r
        self._pending = b""
        self._lock = threading.Lock()
        self._spawned: dict[int, int] = {}  # wid -> pid
        self._exits: dict[int, int] = {}  # pid -> exit code
        self.dead = False
        self.ready = False  # it said so: it has imported what a worker needs
        self._deadline = time.monotonic() + ZYGOTE_START_TIMEOUT

    def is_ready(self) -> bool:
        """Whether it said it is ready (a look at its pipe; never waits)."""
        with self._lock:
            return self._check_ready()

    def _check_ready(self) -> bool:
        if not self.ready and not self.dead:
            self.ready = self._read_until(lambda m: "ready" in m, 0.0) is not None
            if not self.ready and (self.dead or time.monotonic() > self._deadline):
                self.dead = True
                raise OSError(f"the worker zygote did not start (exit code {self.proc.poll()})")
        return self.ready

    def spawn(self, wid: int, config: dict[str, Any], env: dict[str, str], cwd: str) -> ForkedWorker | None:
        """Fork a worker; None while the zygote is still importing (it never waits for that)."""
        request = json.dumps({"spawn": wid, "config": config, "env": env, "cwd": cwd}) + "\n"
        with self._lock:
            if not self._check_ready():
                return None
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(request.encode())
                self.proc.stdin.flush()
            except OSError as exc:
                self.dead = True
                raise OSError(f"the worker zygote is gone: {exc}") from exc
            if self._read_until(lambda m: m.get("spawned") == wid, REPLY_TIMEOUT) is None:
                self.dead = True
                raise OSError("the worker zygote did not answer")
            pid = self._spawned.pop(wid)
        return ForkedWorker(pid, self)

    def exit_code(self, pid: int, timeout: float) -> int | None:
        """``pid``'s exit code once the zygote reported it, waiting up to ``timeout``."""
        with self._lock:
            if pid not in self._exits and not self.dead:
                self._read_until(lambda m: m.get("exited") == pid, timeout)
            if pid in self._exits:
                return self._exits.pop(pid)
            if self.dead:  # the zygote went first: its children died with it
                return -signal.SIGKILL
            return None

    def _read_until(self, done: Any, timeout: float) -> dict[str, Any] | None:
        """Read reply lines (recording every one) until one satisfies ``done``."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                message = json.loads(line)
                if "spawned" in message:
                    self._spawned[message["spawned"]] = message["pid"]
                elif "exited" in message:
                    self._exits[message["exited"]] = message["code"]
                if done(message):
                    return message  # type: ignore[no-any-return]
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._reply], [], [], max(0.0, left))
            if not ready:
                return None
            chunk = os.read(self._reply, 65536)
            if not chunk:
                self.dead = True
                return None
            self._pending += chunk

    def close(self, timeout: float = 2.0) -> None:
        """Stop the zygote (after its workers: they die with it)."""
        with self._lock:
            if self.proc.stdin is not None:
                try:
                    self.proc.stdin.write(b'{"stop": true}\n')
                    self.proc.stdin.close()
                except OSError:
                    pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self._reply >= 0:
                os.close(self._reply)
                self._reply = -1
            self.dead = True


MAX_ZYGOTES = 3  # a zygote that keeps dying is not started a fourth time


class Spawner:
    """Starts the workers of one cluster: forked by its zygote once that is up, else (at
    first, and if it fails) as fresh interpreters, which start in parallel.

    The first workers are fresh interpreters: they start side by side, faster than a zygote
    could import and then fork them (measured here: first task 350 ms vs 495 ms), and a
    cluster whose workers never die holds no extra process (the zygote's ~13 MiB). The
    first worker death starts the zygote in the background (``prestart``); that worker's
    replacement is a fresh interpreter, every one after it a fork, in milliseconds."""

    def __init__(self, use_zygote: bool = True, watch: Callable[[int], None] | None = None) -> None:
        self._use_zygote = use_zygote
        self._watch = watch or (lambda pid: None)  # told every pid at once: the reaper
        self._zygote: Zygote | None = None
        self._zygotes = 0

    def prestart(self, env: dict[str, str], cwd: str) -> None:
        """Start a zygote if there is none (or it died) and one may still be started;
        returns at once: it imports in the background."""
        if not self._use_zygote or (self._zygote is not None and not self._zygote.dead):
            return
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
        if self._zygotes >= MAX_ZYGOTES:
            log.warning("the worker zygote died %s times: workers start as fresh interpreters", self._zygotes)
            self._use_zygote = False
            return
        self._zygotes += 1
        try:
            self._zygote = Zygote(env, cwd)
        except OSError as exc:
            log.warning("no worker zygote (workers start as fresh interpreters): %s", exc)
            self._use_zygote = False
            return
        self._watch(self._zygote.proc.pid)

    def start(self, wid: int, config: dict[str, Any], env: dict[str, str], cwd: str) -> WorkerProcess:
        z = self._zygote
        if z is not None and not z.dead:
            try:
                forked = z.spawn(wid, config, env, cwd)
                if forked is not None:
                    self._watch(forked.pid)
                    return forked
            except OSError as exc:
                if not z.ready:  # it never came up: do not try again
                    self._use_zygote = False
                log.warning("starting worker %s as a fresh interpreter instead: %s", wid, exc)
        proc = _fresh(config, env, cwd)
        self._watch(proc.pid)
        return proc

    @property
    def zygote_pid(self) -> int | None:
        """The zygote's pid once it is ready to fork (None before, and once it is dead)."""
        z = self._zygote
        try:
            return z.proc.pid if z is not None and not z.dead and z.is_ready() else None
        except OSError:  # it never came up: do not try again
            self._use_zygote = False
            return None

    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.close()


def _fresh(config: dict[str, Any], env: dict[str, str], cwd: str) -> subprocess.Popen[bytes]:
    log = open_for_append(config["log"])  # from its first line: an import error lands there too
    try:
        proc = _popen(config, env, cwd, log)
    finally:
        os.close(log)
    return proc


def _popen(config: dict[str, Any], env: dict[str, str], cwd: str, log: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_futures.local.worker"],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=log,
        env=env,
        cwd=cwd,
        close_fds=True,
        # Not in the kernel's process group: signals meant for the kernel (ipykernel's
        # interrupt and shutdown signal the group) must not reach workers. They still
        # die with the kernel: PR_SET_PDEATHSIG, and the reaper.
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(config).encode())  # the key never touches argv or environ
    proc.stdin.close()
    return proc
