"""Starting each engine the backend-neutral suites run on: the embedded local engine, the
threads backend (``processes=False``) and a real Dask cluster (the module's
``dask_cluster`` fixture: scheduler and workers as separate processes)."""

from __future__ import annotations

import pytest

import jupyter_futures as jf

ENGINES = ["local", "threads", "dask"]


def start_engine(name: str, request: pytest.FixtureRequest, workers: int = 2) -> None:
    """``jf.init`` on engine ``name``; the test's module must import ``dask_cluster``."""
    if name == "local":
        jf.init(workers)
    elif name == "threads":
        jf.init(workers, processes=False)
    else:
        cluster = request.getfixturevalue("dask_cluster")
        cluster.wait_for_workers(workers)
        jf.init(address=cluster.address)
