"""Real workload shapes on real workers: DAGs over several functions with fan-in, wide and
deep, small and large values, thousands of tasks, and workers killed in the middle."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import jupyter_futures as jf


@contextmanager
def cluster(n_workers: int, **options: object) -> Iterator[jf.Client]:
    c = jf.init(n_workers, **options)
    assert isinstance(c, jf.Client)
    try:
        yield c
    finally:
        jf.shutdown()


def make(i: int, size: int) -> np.ndarray:
    return np.full(size, float(i))


def combine(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return a + b + c


def scale(a: np.ndarray, k: float) -> np.ndarray:
    return a * k


def total(*parts: np.ndarray) -> float:
    return float(sum(float(p[0]) for p in parts))


def expected(width: int, layers: int) -> list[float]:
    """What ``build`` computes, worked out in the test process."""
    layer = [float(i) for i in range(width)]
    for depth in range(layers):
        layer = [layer[i] + layer[(i + 1) % width] + layer[(i + 3) % width] for i in range(width)]
        if depth % 2:
            layer = [v * 0.5 for v in layer]
    return layer


def build(width: int, layers: int, size: int) -> list[jf.Future[np.ndarray]]:
    """``make`` → layers of ``combine`` over three inputs each (every other one scaled)."""
    layer = [jf.submit(make, i, size) for i in range(width)]
    for depth in range(layers):
        layer = [
            jf.submit(combine, layer[i], layer[(i + 1) % width], layer[(i + 3) % width]) for i in range(width)
        ]
        if depth % 2:
            layer = [jf.submit(scale, f, 0.5) for f in layer]
    return layer


@pytest.mark.parametrize(
    ("n_workers", "width", "layers", "size"),
    [
        (2, 20, 2, 8),  # small arrays, inline in messages
        (2, 20, 2, 2**17),  # 1 MiB arrays, in shared memory
        (3, 20, 2, 8),
        (2, 16, 6, 8),  # deeper
        (3, 24, 4, 2**17),
    ],
)
def test_dag_with_fan_in_over_several_functions(n_workers: int, width: int, layers: int, size: int) -> None:
    with cluster(n_workers) as c:
        for _ in range(3):
            out = build(width, layers, size)
            values = [v[0] for v in jf.gather(out, timeout=60)]
            assert values == expected(width, layers)
            assert c.submit(total, *out).result(60) == sum(expected(width, layers))


def test_thousands_of_tasks_in_a_dag() -> None:
    with cluster(2) as c:
        leaves = [c.submit(make, i % 7, 4) for i in range(2000)]
        pairs = [
            c.submit(combine, leaves[i], leaves[i + 1], leaves[(i + 5) % 2000]) for i in range(0, 2000, 2)
        ]
        result = c.submit(total, *pairs).result(120)
        assert result == sum((i % 7) + ((i + 1) % 7) + (((i + 5) % 2000) % 7) for i in range(0, 2000, 2))


def test_dag_survives_workers_killed_in_the_middle() -> None:
    with cluster(3, heartbeat_timeout=3.0) as c:
        c.wait_for_workers()
        first = build(20, 2, 2**17)
        jf.gather(first, timeout=60)
        # Kill the workers holding values while the next DAG, which reads them, is queued.
        victims = {w["pid"] for w in jf.status()["workers"]}
        out = [jf.submit(combine, first[i], first[(i + 1) % 20], first[(i + 3) % 20]) for i in range(20)]
        out = [jf.submit(scale, f, 2.0) for f in out]
        for pid in sorted(victims)[:2]:
            os.kill(pid, signal.SIGKILL)
        base = expected(20, 2)
        want = [2.0 * (base[i] + base[(i + 1) % 20] + base[(i + 3) % 20]) for i in range(20)]
        assert [v[0] for v in jf.gather(out, timeout=120)] == want
        # And the cluster goes on working on fresh DAGs with its replacement workers.
        assert [v[0] for v in jf.gather(build(20, 2, 8), timeout=60)] == expected(20, 2)
