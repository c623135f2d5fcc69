"""Dask across hosts: scheduler, workers and the kernel each in a network namespace of
their own, joined by a bridge in a namespace of its own, with addresses in 198.18.0.0/24
that exist only inside those namespaces; each worker also has its own /dev/shm and its own
process ids. Then a network partition: a worker's link is set down mid-task.

Needs root and ``ip netns``; skipped with the reason otherwise."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_clean, kept_processes
from dask_cluster import DaskCluster

HERE = Path(__file__).resolve().parent
SUBNET = "198.18.0"
pytestmark = pytest.mark.timeout(300)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _can_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root for ip netns"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "needs ip (iproute2) and unshare (util-linux)"
    probe = f"jfprobe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"ip netns is not permitted here: {exc}"
    return None


class Hosts:
    """Namespaces ``<tag>-sw`` (the bridge) and one per host, each with one veth on it."""

    def __init__(self, names: list[str]) -> None:
        self.tag = f"jf{secrets.token_hex(3)}"
        self.switch = f"{self.tag}-sw"
        self.addr: dict[str, str] = {}
        self.made: list[str] = []
        self._add(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i, name in enumerate(names, start=1):
            ns = self.ns(name)
            self._add(ns)
            _ip(
                "-n", self.switch, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns
            )
            _ip("-n", self.switch, "link", "set", f"v{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{i}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            self.addr[name] = f"{SUBNET}.{i}"
        self.names = names

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.made.append(ns)

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def link(self, name: str, up: bool) -> None:
        i = self.names.index(name) + 1
        _ip("-n", self.switch, "link", "set", f"v{i}", "up" if up else "down")

    def prefix(self, name: str, private: bool = False) -> list[str]:
        """Run a command in host ``name``; ``private``: with its own pids and /dev/shm."""
        base = ["ip", "netns", "exec", self.ns(name)]
        if not private:
            return base
        private_shm = 'mount -t tmpfs -o size=256m,mode=1777 tmpfs /dev/shm && exec "$@"'
        unshare = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
        return [*base, *unshare, "sh", "-c", private_shm, "sh"]

    def close(self) -> None:
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    why = _can_make_namespaces()
    if why:
        pytest.skip(why)
    h = Hosts(["sched", "w0", "w1", "kernel"])
    try:
        yield h
    finally:
        h.close()


def test_a_multi_host_cluster_and_a_network_partition(hosts: Hosts, tmp_path: Path) -> None:
    cluster = DaskCluster(
        tmp_path,
        n_workers=0,
        prefix=hosts.prefix("sched"),
        host_of=lambda i: hosts.addr["sched"] if i < 0 else hosts.addr[f"w{i}"],
    )
    kept_processes.append(cluster.pids)
    try:
        for i in range(2):
            cluster.add_worker(i, prefix=hosts.prefix(f"w{i}", private=True))
        kernel = subprocess.Popen(
            [*hosts.prefix("kernel"), sys.executable, str(HERE / "netns_kernel.py"), cluster.address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL="8s"),
        )
        said: dict[str, Any] = {}
        try:
            assert kernel.stdout is not None and kernel.stdin is not None
            for line in kernel.stdout:
                said.update(json.loads(line))
                if "cut" in said and "cutting" not in said:
                    said["cutting"] = True
                    worker = next(n for n in ("w0", "w1") if hosts.addr[n] in str(said["cut"]))
                    hosts.link(worker, up=False)  # the partition: its link to the bridge goes down
                    kernel.stdin.write("go\n")
                    kernel.stdin.flush()
                if "done" in said:
                    break
            kernel.wait(60)
        finally:
            if kernel.poll() is None:
                kernel.kill()
                kernel.wait(10)
            errors = kernel.stderr.read() if kernel.stderr else ""
            for pipe in (kernel.stdin, kernel.stdout, kernel.stderr):
                if pipe is not None:
                    pipe.close()
        assert said.get("done"), f"the kernel stopped early: {said}\n{errors[-3000:]}"
        # two hosts: addresses only the namespaces know, private pids and /dev/shm
        assert len(said["workers"]) == 2 and all(f"tcp://{SUBNET}." in w for w in said["workers"])
        for i, p in enumerate(said["probes"]):
            marks = [n for n in p["shm"] if n.startswith("jf-probe-")]
            assert marks == [f"jf-probe-{i}"], p  # its own /dev/shm: only its own mark
            assert p["pid"] < 100, p  # its own pid namespace
        assert said["dag"] == sum(i * i for i in range(10))
        # cut off mid-task, the task ran again on the other worker
        assert said["rerun_on"] != said["cut"] and said["after"] < 90
    finally:
        kept_processes.remove(cluster.pids)
        cluster.stop()
        assert_clean()
