"""The chaos soak's DAG: the functions its workers run, and the graph they form.

::

    make   m0 .. m(M-1)     ── a 1 MiB float64 array of one value each   (stored by a worker)
      └─► combine c0 ..     ── the sum of two arrays                       (stored by a worker)
            └─► reduce r0 .. ── the sum of ~7 arrays' elements, a float    (inline, at the kernel)
                  └─► total t ── the sum of the reduces: known exactly in advance

Every function first spins for ``work`` seconds of its own CPU time (work, so that a kill
has something to cut short), then appends one line to the run's execution log when it
starts and one when it ends (``S key pid time`` / ``E key pid time``, each one ``write``
to a file opened ``O_APPEND``, so lines from processes killed at any moment never
interleave). ``time`` is ``time.monotonic()``: one clock for every process of the machine,
so the soak can order the lines against its own faults.

They live in an importable module, so workers import them by name (the kernel's
``sys.path`` reaches its workers) rather than unpickling them by value.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ELEMENTS = 131_072  # float64s in a 1 MiB array
SPIN_LIMIT = 1_000_000  # iterations of the work loop, whatever the clock says


def note(log: str, mark: str, key: str) -> None:
    """One line of the execution log, in one ``write`` (atomic under ``O_APPEND``)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{mark} {key} {os.getpid()} {time.monotonic():.6f}\n".encode())
    finally:
        os.close(fd)


def spin(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU (a stopped process uses none, so a SIGSTOP
    freezes the work where it is, as it would a real computation)."""
    end = time.thread_time() + seconds
    x = np.arange(256, dtype=np.float64)
    for _ in range(SPIN_LIMIT):
        if time.thread_time() >= end:
            return
        x = np.sqrt(x * x + 1.0)


def make(log: str, key: str, value: float, work: float) -> FloatArray:
    note(log, "S", key)
    spin(work)
    out = np.full(ELEMENTS, value)
    note(log, "E", key)
    return out


def combine(log: str, key: str, work: float, a: FloatArray, b: FloatArray) -> FloatArray:
    note(log, "S", key)
    spin(work)
    out = np.add(a, b)
    note(log, "E", key)
    return out


def reduce_group(log: str, key: str, work: float, *arrays: FloatArray) -> float:
    note(log, "S", key)
    spin(work)
    out = float(sum(float(a.sum()) for a in arrays))
    note(log, "E", key)
    return out


def total(log: str, key: str, work: float, *parts: float) -> float:
    note(log, "S", key)
    spin(work)
    out = float(sum(parts))
    note(log, "E", key)
    return out


def value_of(i: int) -> float:
    """The value every element of make ``i`` holds (small integers: every sum is exact)."""
    return float(i % 97 + 1)


@dataclass(frozen=True)
class Dag:
    """The graph: each task's inputs, which values live in a worker's store, the expected
    value of each reduce and of the total."""

    inputs: dict[str, tuple[str, ...]]
    stored: frozenset[str]  # arrays, in the store of the worker that made them
    makes: int
    groups: tuple[tuple[int, ...], ...]  # the combines each reduce sums
    expected: dict[str, float]  # the reduces' and the total's values
    final: str = "t"

    @property
    def tasks(self) -> int:
        return len(self.inputs)

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {k: [] for k in self.inputs}
        for k, ins in self.inputs.items():
            for i in ins:
                out[i].append(k)
        return out


def layers(tasks: int) -> tuple[int, int, int]:
    """(makes, combines, reduces) for exactly ``tasks`` tasks (the total being the last):
    the most makes for which each reduce sums 1 to 8 combines."""
    best: tuple[int, int, int] | None = None
    for makes in range(2, tasks, 2):
        combines = makes // 2
        reduces = tasks - 1 - makes - combines
        if reduces < 1:
            break
        if reduces <= combines <= reduces * 8:
            best = (makes, combines, reduces)
    if best is None:
        raise ValueError(f"no DAG of this shape has exactly {tasks} tasks; try {tasks + 1}")
    return best


def build(tasks: int) -> Dag:
    makes, combines, reduces = layers(tasks)
    inputs: dict[str, tuple[str, ...]] = {f"m{i}": () for i in range(makes)}
    for j in range(combines):
        inputs[f"c{j}"] = (f"m{2 * j}", f"m{2 * j + 1}")
    groups = tuple(tuple(int(x) for x in g) for g in np.array_split(np.arange(combines), reduces))
    expected: dict[str, float] = {}
    for g, members in enumerate(groups):
        inputs[f"r{g}"] = tuple(f"c{j}" for j in members)
        expected[f"r{g}"] = float(ELEMENTS * sum(value_of(2 * j) + value_of(2 * j + 1) for j in members))
    inputs["t"] = tuple(f"r{g}" for g in range(len(groups)))
    expected["t"] = float(sum(expected[f"r{g}"] for g in range(len(groups))))
    stored = frozenset(k for k in inputs if k[0] in "mc")
    return Dag(inputs, stored, makes, groups, expected)
