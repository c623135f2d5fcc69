"""The GPU check, for a machine with NVIDIA GPUs: ``python -m benchmarks.gpu_check``.

::

    jf.init(2): the GPUs found (NVML), and the workers pinned to them
      two min_gpu=1 tasks at once    -> each one's CUDA_VISIBLE_DEVICES, pid, start and end
                                        (two GPUs: different devices, side by side;
                                         one GPU: the same device, one after the other)
      a task allocates 1 GiB on its device (the CUDA driver API through ctypes: no CuPy or
      PyTorch needed) and holds it  -> that device's memory_used in jf.status() before/while

Prints one JSON document. Needs the NVIDIA driver (libcuda.so.1) and, for the figures,
nvidia-ml-py (the ``[gpu]`` extra); nothing else.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from typing import Any

import jupyter_futures as jf

HOLD = 1.5  # seconds each min_gpu task runs, so that two on two GPUs overlap


def where(hold: float) -> dict[str, Any]:
    start = time.time()
    time.sleep(hold)
    return {
        "pid": os.getpid(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "start": start,
        "end": time.time(),
    }


def allocate_and_hold(nbytes: int, hold: float) -> dict[str, Any]:
    """Allocate on this worker's device 0 with the CUDA driver API and keep it ``hold`` s."""
    cuda = ctypes.CDLL("libcuda.so.1")

    def check(rc: int, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{what} failed with CUDA error {rc}")

    check(cuda.cuInit(0), "cuInit")
    device, ctx, ptr = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
    check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
    check(cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, device), "cuCtxCreate")
    check(cuda.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), "cuMemAlloc")
    time.sleep(hold)
    cuda.cuMemFree_v2(ptr)
    cuda.cuCtxDestroy_v2(ctx)
    return {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "allocated": nbytes}


def gpu_rows() -> dict[str, Any]:
    return {str(w["id"]): w["gpus"] for w in jf.status()["workers"] if w["gpus"]}


def main() -> int:
    out: dict[str, Any] = {"python": sys.version.split()[0]}
    with jf.init(2) as client:
        client.wait_for_workers()
        backend = client.backend
        out["found"] = [vars(g) for g in getattr(backend, "gpus", [])]
        out["capacity"] = {str(w["id"]): w["capacity"] for w in client.status()["workers"]}
        pair = [client.submit(where, HOLD, min_gpu=1) for _ in range(2)]
        runs = [f.result(120) for f in pair]
        a, b = runs
        out["two_min_gpu_tasks"] = runs
        out["overlapped"] = a["start"] < b["end"] and b["start"] < a["end"]
        out["devices"] = sorted({r["CUDA_VISIBLE_DEVICES"] for r in runs})
        time.sleep(1.5)  # a few heartbeats
        out["before_allocation"] = gpu_rows()
        holding = client.submit(allocate_and_hold, 1 << 30, 4.0, min_gpu=1)
        time.sleep(2.5)
        out["while_allocated"] = gpu_rows()
        try:
            out["allocation"] = holding.result(120)
        except OSError as exc:  # no NVIDIA driver here
            out["allocation"] = f"not made: {exc}"
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
