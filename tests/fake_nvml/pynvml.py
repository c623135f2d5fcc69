"""A stand-in for nvidia-ml-py's ``pynvml`` on machines without a GPU: it answers NVML's
calls from a recorded machine (a JSON file named by ``JF_FAKE_NVML``), read again on every
call so that a test can change what the "hardware" reports (memory a task allocated).

Only the calls jupyter_futures makes are here; their return shapes are NVML's own.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


_started = 0


def _machine() -> dict[str, Any]:
    path = os.environ.get("JF_FAKE_NVML")
    if not path or not os.path.exists(path):
        raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")
    with open(path) as f:
        return json.load(f)  # type: ignore[no-any-return]


def _device(handle: int) -> dict[str, Any]:
    if not _started:
        raise NVMLError("Uninitialized")
    return _machine()["devices"][handle]  # type: ignore[no-any-return]


def nvmlInit() -> None:
    global _started
    _machine()
    _started += 1


def nvmlShutdown() -> None:
    global _started
    if not _started:
        raise NVMLError("Uninitialized")
    _started -= 1


def nvmlDeviceGetCount() -> int:
    return len(_machine()["devices"])


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    if not 0 <= index < nvmlDeviceGetCount():
        raise NVMLError("Invalid Argument")
    return index


def nvmlDeviceGetName(handle: int) -> str:
    return str(_device(handle)["name"])


def nvmlDeviceGetUUID(handle: int) -> str:
    return str(_device(handle)["uuid"])


def nvmlDeviceGetMemoryInfo(handle: int) -> SimpleNamespace:
    d = _device(handle)
    used = int(d["memory_used"])
    return SimpleNamespace(total=int(d["memory_total"]), used=used, free=int(d["memory_total"]) - used)


def nvmlDeviceGetUtilizationRates(handle: int) -> SimpleNamespace:
    d = _device(handle)
    return SimpleNamespace(gpu=int(d["utilization"]), memory=0)
