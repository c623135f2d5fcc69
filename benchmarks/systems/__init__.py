"""Engine adapters, imported by name so a missing engine only fails its own run."""

from __future__ import annotations

import importlib

from benchmarks.systems.base import NotSupported, System

__all__ = ["ADAPTERS", "NotSupported", "System", "load"]

#: system name -> "module:Class"
ADAPTERS: dict[str, str] = {
    "jupyter_futures": "benchmarks.systems.jf:JupyterFutures",
    "ray": "benchmarks.systems.ray_:Ray",
    "dask": "benchmarks.systems.dask_:Dask",
    "ipyparallel": "benchmarks.systems.ipp:IPyParallel",
    "processpool": "benchmarks.systems.processpool:ProcessPool",
}


def load(name: str) -> System:
    """Instantiate the adapter for ``name``.  Importing it does not import the engine."""
    module, cls = ADAPTERS[name].split(":")
    system: System = getattr(importlib.import_module(module), cls)()
    return system
