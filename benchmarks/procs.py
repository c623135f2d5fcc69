"""Process trees: who belongs to a system, how much memory it holds, and cleaning up.

A system's processes are found two ways, because neither is enough alone:

- the descendants of the driver (``psutil.Process.children(recursive=True)``), which
  misses anything that daemonized or whose parent already exited;
- an environment tag: the runner starts every system runner with ``JF_BENCH_TAG=<uuid>``
  and every process an engine starts inherits it, even once re-parented to init.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import psutil

MIB = 1024 * 1024
TAG_ENV = "JF_BENCH_TAG"

# Helpers of the standard library that live exactly as long as the interpreter that started
# them; shutdown() cannot stop them, the interpreter's exit does.
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def new_tag() -> str:
    return uuid.uuid4().hex


def runner_env(tag: str, root: str) -> dict[str, str]:
    """The environment of a system runner: tagged (so every process it leaves is found),
    with the repository ``root`` on ``PYTHONPATH`` (workers of every engine import
    ``benchmarks.tasks`` by name)."""
    env = dict(os.environ, **{TAG_ENV: tag})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _alive(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _has_tag(p: psutil.Process, tag: str) -> bool:
    try:
        return bool(p.environ().get(TAG_ENV) == tag)
    except (psutil.Error, OSError):
        return False


def tagged(tag: str, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Live processes started with ``JF_BENCH_TAG=tag``."""
    skip = set(exclude)
    return [p for p in psutil.process_iter() if p.pid not in skip and _alive(p) and _has_tag(p, tag)]


def in_session(sid: int, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Live processes of session ``sid`` (the runner starts each system in a new session)."""
    skip = set(exclude)
    found = []
    for p in psutil.process_iter():
        if p.pid in skip:
            continue
        try:
            if os.getsid(p.pid) == sid and _alive(p):
                found.append(p)
        except OSError:
            continue
    return found


def descendants(root: psutil.Process | None = None) -> list[psutil.Process]:
    root = root or psutil.Process()
    try:
        return [p for p in root.children(recursive=True) if _alive(p)]
    except psutil.Error:
        return []


def system_processes(tag: str | None, include_self: bool = True) -> list[psutil.Process]:
    """This process, its live descendants and the live processes carrying ``tag``."""
    me = psutil.Process()
    procs = {p.pid: p for p in descendants(me)}
    if tag:
        procs.update((p.pid, p) for p in tagged(tag, exclude=(me.pid,)))
    if include_self:
        procs[me.pid] = me
    return list(procs.values())


def is_interpreter_helper(p: psutil.Process) -> bool:
    """A stdlib helper of *this* interpreter (one started by an engine's process is not)."""
    try:
        if p.ppid() != os.getpid():
            return False
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return any(h in cmd for h in _INTERPRETER_HELPERS)


def describe(p: psutil.Process) -> str:
    try:
        cmd = " ".join(p.cmdline()) or p.name()
    except psutil.Error:
        cmd = "?"
    return f"pid {p.pid}: {cmd[:160]}"


def kill(procs: list[psutil.Process], grace: float = 2.0) -> list[str]:
    """SIGTERM, then SIGKILL what is still there after ``grace`` seconds; describe each."""
    described = [describe(p) for p in procs]
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return described


def wait_gone(tag: str | None, timeout: float, poll: float = 0.005) -> list[psutil.Process]:
    """Wait until this process has no system process left but interpreter helpers.

    Returns what is still alive after ``timeout`` (empty on success).
    """
    deadline = time.perf_counter() + timeout
    while True:
        left = [p for p in system_processes(tag, include_self=False) if not is_interpreter_helper(p)]
        if not left or time.perf_counter() > deadline:
            return left
        time.sleep(poll)


def memory_of(procs: Iterable[psutil.Process], pss: bool = True) -> tuple[float, float]:
    """(RSS, PSS) summed over ``procs``, in MiB; PSS is 0 when not asked for."""
    rss = pss_total = 0
    for p in procs:
        try:
            if pss:
                info: Any = p.memory_full_info()
                pss_total += info.pss
            else:
                info = p.memory_info()
            rss += info.rss
        except psutil.Error:
            continue
    return rss / MIB, pss_total / MIB


class MemorySampler:
    """Background thread recording peak driver RSS and peak whole-tree RSS and PSS.

    Driver RSS (one read of ``/proc/self/statm``) is sampled every ``interval`` seconds, the
    tree's RSS and PSS (``smaps_rollup`` of every process) every ``tree_every`` samples and
    its membership every ``refresh`` seconds.  Cheap next to a 256 MiB transfer, not free:
    the thread takes the GIL briefly and shares the two CPUs with the engine.
    """

    def __init__(
        self, tag: str | None, interval: float = 0.01, tree_every: int = 5, refresh: float = 0.25
    ) -> None:
        self.tag = tag
        self.interval = interval
        self.tree_every = tree_every
        self.refresh = refresh
        self.peak_driver_rss = 0.0
        self.peak_total_rss = 0.0
        self.peak_total_pss = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample_tree(system_processes(self.tag))

    def _sample_tree(self, procs: list[psutil.Process]) -> None:
        rss, pss = memory_of(procs)
        self.peak_total_rss = max(self.peak_total_rss, rss)
        self.peak_total_pss = max(self.peak_total_pss, pss)

    def _run(self) -> None:
        me = psutil.Process()
        procs: list[psutil.Process] = []
        refreshed = 0.0
        while True:
            now = time.perf_counter()
            if now - refreshed > self.refresh:
                procs = system_processes(self.tag)
                refreshed = now
            try:
                self.peak_driver_rss = max(self.peak_driver_rss, me.memory_info().rss / MIB)
            except psutil.Error:
                pass
            if self.samples % self.tree_every == 0:
                self._sample_tree(procs)
            self.samples += 1
            if self._stop.wait(self.interval):
                return
