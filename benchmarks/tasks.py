"""The functions and the actor class that workers run.

They live in an importable module (the runner puts the repository on ``PYTHONPATH`` for
every process it starts), so every engine pickles them by reference, not by value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def noop() -> None:
    return None


def make_array(n: int) -> FloatArray:
    """A fresh array of ``n`` ones (every page written)."""
    return np.ones(n)


def array_sum(a: FloatArray) -> float:
    return float(a.sum())


def leaf(n: int, value: float) -> FloatArray:
    return np.full(n, value)


def add(a: FloatArray, b: FloatArray) -> FloatArray:
    return np.add(a, b)


class Counter:
    """The benchmark actor: a little state and a cheap method."""

    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


def call_method(obj: Any, method: str, *args: Any) -> Any:
    """Call ``obj.method(*args)`` where ``obj`` lives (used to emulate actors)."""
    return getattr(obj, method)(*args)
