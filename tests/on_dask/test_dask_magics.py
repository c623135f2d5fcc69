"""The magics' suite (tests/jupyter/test_magics.py) again, on a real Dask cluster: its
tests are imported here, and the cluster they share is a Dask one. What does not apply to
Dask is skipped by name, with the reason."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _shared
from dask_cluster import DaskCluster, dask_cluster  # noqa: F401 - fixtures

import jupyter_futures as jf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jupyter"))
from test_magics import *  # noqa: F403 - the suite, collected again here

pytestmark = pytest.mark.timeout(180)

NOT_ON_DASK: dict[str, str] = {
    "test_remote_cells_are_named_after_their_own_execution_count": (
        "reads the local scheduler's task table (the Dask key carries the same name)"
    ),
    "test_no_reconstruct_and_requirements_reach_the_scheduler": "reads the local scheduler's task specs",
    "test_long_block_cells_show_one_bar_for_the_cell": (
        "matches a local worker number in the bar; Dask workers are named by address"
    ),
}


@pytest.fixture(scope="module")
def shared_client(dask_cluster: DaskCluster) -> Iterator[jf.Client]:
    dask_cluster.wait_for_workers(2)
    c = jf.init(address=dask_cluster.address)
    _shared.append(c)
    yield c
    _shared.remove(c)
    c.shutdown()


@pytest.fixture(autouse=True)
def _not_on_dask(request: pytest.FixtureRequest) -> None:
    reason = NOT_ON_DASK.get(request.node.originalname)
    if reason:
        pytest.skip(f"not on Dask: {reason}")
