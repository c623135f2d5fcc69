"""This machine's GPUs: found, shared out among workers, and sampled for ``status()``.

::

    detect() ── NVML (nvidia-ml-py's ``pynvml``) ──► [Gpu(index, name, uuid, memory_total)]
             └─ no NVML: CUDA_VISIBLE_DEVICES, else ``nvidia-smi -L``; neither: no GPU
    plan(gpus_per_worker, gpus, found) ──► the GPU slots, taken by workers in turn
        default: one GPU each for the first workers, pinned (dask-cuda's rule); the rest none
    GpuSlots(plan).take(wid) / .env(wid) ──► a worker's GPUs, CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES
    GpuSampler(indices).sample() ── NVML ──► [GpuStats] (utilisation, memory used / total),
        on each worker's heartbeat thread, for ``status()``, the dashboard and the panel

Indices are NVML's (PCI bus order); a worker is given ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so
CUDA numbers the devices the same way, and its own devices are its device 0..n-1. The
kernel's own ``CUDA_VISIBLE_DEVICES`` (a shared machine's share) bounds what is offered.

This module imports nothing of the package: the local engine and the Dask worker plugin
use it alike.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

log = logging.getLogger("jupyter_futures")

NVIDIA_SMI_TIMEOUT = 5.0  # seconds `nvidia-smi -L` may take before we take it as no GPU


@dataclass(frozen=True)
class Gpu:
    """One device, as found."""

    index: int  # NVML's index (PCI bus order), what CUDA_VISIBLE_DEVICES names
    name: str = ""
    uuid: str = ""
    memory_total: int = 0  # bytes (0: unknown)


@dataclass(frozen=True)
class GpuSlot:
    """What one worker gets: its devices and the GPU capacity it offers (``min_gpu`` is
    counted against it; a fraction when workers share a device)."""

    devices: tuple[int, ...]
    capacity: float


class GpuStats(TypedDict):
    """One device of a worker, as ``status()["workers"][i]["gpus"]`` lists it."""

    index: int
    name: str
    utilization: float | None  # percent of the last sample period the device was busy
    memory_used: int | None  # bytes, the whole device's (every process on it)
    memory_total: int | None


# -- detection --------------------------------------------------------------------------


def _nvml() -> Any | None:
    """NVML, initialised, or None where it is not installed or finds no driver."""
    try:
        import pynvml  # nvidia-ml-py, the [gpu] extra
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        log.debug("NVML did not start: %r", exc)
        return None
    return pynvml


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _from_nvml(nvml: Any) -> list[Gpu]:
    found = []
    for i in range(nvml.nvmlDeviceGetCount()):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        found.append(
            Gpu(
                index=i,
                name=_text(nvml.nvmlDeviceGetName(h)),
                uuid=_text(nvml.nvmlDeviceGetUUID(h)),
                memory_total=int(nvml.nvmlDeviceGetMemoryInfo(h).total),
            )
        )
    return found


_SMI_LINE = re.compile(r"^GPU (\d+): (.*?)(?: \(UUID: ([^)]*)\))?$")


def _from_nvidia_smi() -> list[Gpu]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("nvidia-smi -L failed: %r", exc)
        return []
    found = []
    for line in out.splitlines():
        m = _SMI_LINE.match(line.strip())
        if m:
            found.append(Gpu(index=int(m.group(1)), name=m.group(2), uuid=m.group(3) or ""))
    return found


def _visible(env: dict[str, str]) -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs); None if it is unset."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    entries = [e.strip() for e in value.split(",") if e.strip()]
    # CUDA stops at the first invalid entry: "-1" (or "") is the usual way to say none
    out = []
    for e in entries:
        if e.startswith("-"):
            break
        out.append(e)
    return out


def detect(env: dict[str, str] | None = None) -> list[Gpu]:
    """The GPUs this process may use: NVML's devices, restricted to this process's
    ``CUDA_VISIBLE_DEVICES`` when it is set; without NVML, ``CUDA_VISIBLE_DEVICES``'s own
    entries (indices), else ``nvidia-smi -L``; [] if none of them finds one."""
    env = dict(os.environ) if env is None else env
    visible = _visible(env)
    nvml = _nvml()
    if nvml is not None:
        try:
            found = _from_nvml(nvml)
        except Exception as exc:
            log.warning("NVML could not list the GPUs (%r); none offered", exc)
            found = []
        finally:
            try:
                nvml.nvmlShutdown()
            except Exception:
                pass
    elif visible is not None:
        found = [Gpu(index=int(e)) for e in visible if e.isdigit()]
    else:
        found = _from_nvidia_smi()
    if visible is None:
        return found
    keep = set(visible)
    return [g for g in found if str(g.index) in keep or g.uuid in keep or g.uuid.removeprefix("GPU-") in keep]


# -- sharing them out ---------------------------------------------------------------------


def plan(gpus_per_worker: float | None, gpus: Sequence[int] | None, found: Sequence[Gpu]) -> list[GpuSlot]:
    """The GPU slots: a worker takes the first free one when it starts (a replacement takes
    its predecessor's), and a worker that finds none free is CPU-only.

    - default (``gpus_per_worker=None``, ``gpus=None``): each found device is one slot,
      one worker pinned to it;
    - ``gpus=[0, 2]``: only those devices are offered (by NVML index);
    - ``gpus_per_worker=k``: ``k`` devices per worker (a whole number), or ``1/k`` workers
      sharing each device when ``k < 1``; with no device found, ``k`` is a declared number
      offered by every worker and nothing is pinned (one slot with no device: planning, tests);
    - ``gpus_per_worker=0``: no GPU for any worker.
    """
    if gpus_per_worker is not None and (gpus_per_worker < 0 or gpus_per_worker != gpus_per_worker):
        raise ValueError(f"gpus_per_worker must be a non-negative number, got {gpus_per_worker!r}")
    offered = [g.index for g in found]
    if gpus is not None:
        chosen = [int(i) for i in gpus]
        if len(set(chosen)) != len(chosen) or any(i < 0 for i in chosen):
            raise ValueError(f"gpus= lists device indices once each, got {list(gpus)!r}")
        unknown = [i for i in chosen if i not in offered]
        if offered and unknown:
            raise ValueError(f"gpus={list(gpus)!r}: no GPU {unknown} here (found {offered})")
        offered = chosen
    if gpus_per_worker == 0:
        return []
    if not offered:  # none here: a declared number, pinned to nothing (as before detection)
        return [GpuSlot((), float(gpus_per_worker))] if gpus_per_worker else []
    k = 1.0 if gpus_per_worker is None else float(gpus_per_worker)
    slots: list[GpuSlot] = []
    if k >= 1:
        if k != int(k):
            raise ValueError(f"gpus_per_worker above 1 must be a whole number of devices, got {k:g}")
        per = int(k)
        for start in range(0, len(offered) - per + 1, per):
            slots.append(GpuSlot(tuple(offered[start : start + per]), float(per)))
    else:
        share = round(1 / k)
        if abs(share * k - 1) > 1e-9:
            raise ValueError(f"gpus_per_worker below 1 must be 1/n (1/2, 1/4, ...), got {k:g}")
        for device in offered:
            slots.extend(GpuSlot((device,), k) for _ in range(share))
    return slots


class GpuSlots:
    """Which worker holds which slot: a starting worker takes the first free one (its
    replacement, its predecessor's), a worker gone for good frees its own. With no device
    to pin (a declared number) every worker offers the declared GPUs and none is pinned."""

    def __init__(self, slots: Sequence[GpuSlot]) -> None:
        self.slots = list(slots)
        self.pinned = any(slot.devices for slot in self.slots)
        self._of: dict[int, int] = {}  # worker -> its slot

    def take(self, wid: int, replacing: int | None = None) -> float:
        """Worker ``wid`` starts (in place of ``replacing``): the GPUs it offers (0: none)."""
        if not self.pinned:
            return self.slots[0].capacity if self.slots else 0.0
        k = self._of.pop(replacing, None) if replacing is not None else None
        if k is None:
            taken = set(self._of.values())
            k = next((i for i in range(len(self.slots)) if i not in taken), None)
            if k is None:
                return 0.0
        self._of[wid] = k
        return self.slots[k].capacity

    def free(self, wid: int) -> None:
        """Worker ``wid`` is gone and not replaced: its devices go to the next one."""
        self._of.pop(wid, None)

    def devices(self, wid: int) -> tuple[int, ...]:
        k = self._of.get(wid)
        return self.slots[k].devices if k is not None else ()

    def env(self, wid: int) -> dict[str, str]:
        """Worker ``wid``'s GPU environment: its devices, none for a CPU-only worker on a
        machine with GPUs (so it cannot land on device 0 by accident), nothing where no
        device is pinned."""
        if not self.pinned:
            return {}
        devices = ",".join(str(i) for i in self.devices(wid))
        return {
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": devices,
            "NVIDIA_VISIBLE_DEVICES": devices or "void",
        }


# -- sampling -----------------------------------------------------------------------------


class GpuSampler:
    """A worker's devices, sampled through NVML (started on the first sample, on the
    heartbeat thread); without NVML the figures are None."""

    def __init__(self, indices: Sequence[int]) -> None:
        self.indices = list(indices)
        self._nvml: Any | None = None
        self._handles: list[Any] = []
        self._names: list[str] = [""] * len(self.indices)
        self._started = False

    def _start(self) -> None:
        self._started = True
        nvml = _nvml()
        if nvml is None:
            return
        try:
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in self.indices]
            self._names = [_text(nvml.nvmlDeviceGetName(h)) for h in self._handles]
        except Exception as exc:
            log.warning("NVML could not open GPUs %s (%r): no GPU figures", self.indices, exc)
            return
        self._nvml = nvml

    def sample(self) -> list[GpuStats]:
        if not self.indices:
            return []
        if not self._started:
            self._start()
        nvml = self._nvml
        out: list[GpuStats] = []
        for k, index in enumerate(self.indices):
            util: float | None = None
            used: int | None = None
            total: int | None = None
            if nvml is not None:
                h = self._handles[k]
                try:
                    mem = nvml.nvmlDeviceGetMemoryInfo(h)
                    used, total = int(mem.used), int(mem.total)
                    util = float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
                except Exception:  # a device that fell off the bus, a driver reload: unknown now
                    pass
            out.append(
                {
                    "index": index,
                    "name": self._names[k],
                    "utilization": util,
                    "memory_used": used,
                    "memory_total": total,
                }
            )
        return out
