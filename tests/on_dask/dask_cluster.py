"""A real Dask cluster for the tests: ``dask scheduler`` and ``dask worker`` processes.

::

    DaskCluster(tmp) ── python -m distributed.cli.dask_scheduler --host 127.0.0.1 --port 0
        │                   └─ writes its address to <tmp>/scheduler.json
        └─ n x python -m distributed.cli.dask_worker ADDR --host 127.0.0.<2+i>  (with a nanny)
              each worker on its own loopback address, so Dask sees separate hosts

The processes inherit the run's TMPDIR (the leak check finds them by it) and a PYTHONPATH
with the tests folder, so functions of test modules import on the workers as they do in
the kernel. ``stop()`` ends every process (TERM, then KILL) and waits for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import assert_clean, kept_processes

import jupyter_futures as jf

TESTS = Path(__file__).resolve().parent.parent

# Faster failure detection than Dask's defaults, so fault tests end in seconds.
DASK_ENV = {
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s",
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "10s",
    "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
    "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "warning",
}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, **DASK_ENV)
    paths = (str(TESTS), str(TESTS / "on_dask"), str(TESTS / "jupyter"), env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(extra or {})
    return env


class DaskCluster:
    """A scheduler and ``n_workers`` workers, each a separate process tree."""

    def __init__(
        self,
        tmp: Path,
        n_workers: int = 2,
        nthreads: int = 2,
        resources: list[str] | None = None,
        memory_limit: str = "2GiB",
        prefix: list[str] | None = None,
        host_of: Any = None,
    ) -> None:
        self.tmp = tmp
        self.prefix = prefix or []  # e.g. ["ip", "netns", "exec", "ns0"]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.nthreads = nthreads
        self.memory_limit = memory_limit
        self._host_of = host_of or (lambda i: f"127.0.0.{2 + i}")
        self._resources = resources or []
        file = tmp / "scheduler.json"
        file.unlink(missing_ok=True)
        host = self._host_of(-1) if host_of else "127.0.0.1"
        self.scheduler = self._start(
            [
                "distributed.cli.dask_scheduler",
                "--host",
                host,
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(file),
            ],
            "scheduler",
        )
        self.address = self._address(file)
        for i in range(n_workers):
            self.add_worker(i)

    def _start(
        self, args: list[str], name: str, prefix: list[str] | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the process keeps it
        p = subprocess.Popen(
            [*(prefix if prefix is not None else self.prefix), sys.executable, "-m", *args],
            env=_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
            start_new_session=True,
        )
        log.close()
        self.procs.append(p)
        return p

    def _address(self, file: Path, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"the Dask scheduler exited: {self.log('scheduler')}")
            try:
                return str(json.loads(file.read_text())["address"])
            except (FileNotFoundError, ValueError, KeyError):
                time.sleep(0.05)
        raise TimeoutError(f"the Dask scheduler wrote no address in {timeout} s: {self.log('scheduler')}")

    def add_worker(
        self,
        i: int,
        resources: list[str] | None = None,
        prefix: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        args = [
            "distributed.cli.dask_worker",
            self.address,
            "--host",
            self._host_of(i),
            "--nthreads",
            str(self.nthreads),
            "--nworkers",
            "1",
            "--memory-limit",
            self.memory_limit,
            "--no-dashboard",
            "--name",
            f"w{i}",
        ]
        for r in resources if resources is not None else self._resources:
            args += ["--resources", r]
        p = self._start(args, f"worker-{i}", prefix, env)
        self.workers.append(p)
        return p

    def log(self, name: str) -> str:
        try:
            return (self.tmp / f"{name}.log").read_text()[-3000:]
        except FileNotFoundError:
            return ""

    def worker_pids(self) -> dict[str, int]:
        """Each worker's address -> the pid of the worker process (under its nanny)."""
        import distributed

        with distributed.Client(self.address, timeout=10, set_as_default=False) as c:
            return {str(addr): int(pid) for addr, pid in c.run(os.getpid).items()}

    def wait_for_workers(self, n: int, timeout: float = 60.0) -> None:
        import distributed

        with distributed.Client(self.address, timeout=10, set_as_default=False) as c:
            c.wait_for_workers(n, timeout=timeout)

    def pids(self) -> set[int]:
        """Every process of this cluster (nannies' workers too)."""
        found: set[int] = set()
        for p in self.procs:
            try:
                root = psutil.Process(p.pid)
                found.add(root.pid)
                found.update(c.pid for c in root.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return found

    def stop(self) -> None:
        alive = [psutil.Process(pid) for pid in self.pids() if psutil.pid_exists(pid)]
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        _, left = psutil.wait_procs(alive, timeout=10)
        for p in left:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=5)
        for p in self.procs:
            p.wait(5)


# -- fixtures (imported by the test modules of this folder) ------------------------------


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A scheduler and two workers (127.0.0.2, 127.0.0.3), 2 threads each, one GPU-less
    'licence' resource on the first; kept for the module, gone when it ends."""
    tmp: Path = tmp_path_factory.mktemp("dask")
    cluster = DaskCluster(tmp, n_workers=0)
    cluster.add_worker(0, resources=["licence=1"])
    cluster.add_worker(1)
    kept_processes.append(cluster.pids)
    try:
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        kept_processes.remove(cluster.pids)
        cluster.stop()
        assert_clean()


@pytest.fixture
def dask_client(dask_cluster: DaskCluster) -> Iterator[jf.Client]:
    """This kernel connected to the module's Dask cluster, disconnected after the test."""
    dask_cluster.wait_for_workers(2)
    c = jf.init(address=dask_cluster.address)
    yield c
    c.shutdown()
