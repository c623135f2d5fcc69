"""What the hardware and pyzmq allow on this machine, measured in the same run.

- ``floor_zmq_rtt``: a REQ/REP round trip of a one-byte message between this process and
  an echo process (``python -m benchmarks.floors ADDRESS``), over ``ipc://`` and over
  ``tcp://127.0.0.1``.  No engine can return a task faster than one of these.
- ``floor_memcpy``: ``np.copyto`` of the big array into a buffer whose pages are already
  touched: the best any copy of a result can do.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import zmq

from benchmarks.config import Sizes

_STOP = b"stop"


def _echo(address: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.connect(address)
    while True:
        msg = sock.recv()
        sock.send(msg)
        if msg == _STOP:
            break
    sock.close(linger=0)
    ctx.term()


def zmq_rtt(transport: str, calls: int) -> float:
    """Median round trip in microseconds over ``calls`` sequential requests."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    with tempfile.TemporaryDirectory(prefix="jf-bench-") as tmp:
        if transport == "ipc":
            address = f"ipc://{tmp}/echo"
            sock.bind(address)
        else:
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            address = f"tcp://127.0.0.1:{port}"
        echo = subprocess.Popen([sys.executable, "-m", "benchmarks.floors", address])
        try:
            for _ in range(100):  # warm up: connection made, both sides hot
                sock.send(b"x")
                sock.recv()
            lat = []
            for _ in range(calls):
                t0 = time.perf_counter()
                sock.send(b"x")
                sock.recv()
                lat.append(time.perf_counter() - t0)
            sock.send(_STOP)
            sock.recv()
            echo.wait(timeout=10)
        finally:
            if echo.poll() is None:
                echo.kill()
                echo.wait()
            sock.close(linger=0)
            ctx.term()
    return statistics.median(lat) * 1e6


def memcpy_gbps(nbytes: int, copies: int = 5) -> float:
    """Best-of-``copies`` bandwidth of one copy of ``nbytes``, in GB/s (1e9 bytes)."""
    src = np.ones(nbytes // 8)
    dst = np.zeros_like(src)
    np.copyto(dst, src)  # every destination page is mapped before timing
    best = float("inf")
    for _ in range(copies):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return src.nbytes / best / 1e9


def measurements(sizes: Sizes) -> dict[str, Callable[[], float]]:
    calls = max(sizes.rtt_calls, 100)
    return {
        "floor_zmq_rtt": lambda: zmq_rtt("ipc", calls),
        "floor_zmq_rtt_tcp": lambda: zmq_rtt("tcp", calls),
        "floor_memcpy": lambda: memcpy_gbps(sizes.array_bytes),
    }


if __name__ == "__main__":
    _echo(sys.argv[1])
