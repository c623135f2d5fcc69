"""The JupyterLab Cluster panel and the dashboard widget on a Dask cluster, in a real
headless Chromium (the server and browser: ``tests/lab_browser.py``).

::

    dask scheduler + 2 dask workers (127.0.0.2, 127.0.0.3)      started by the test
        ▲
    kernel (jf.init(address=...)) ◄── jupyter lab ◄── Chromium: panel, dashboard
"""

from __future__ import annotations

import re
from pathlib import Path

from dask_cluster import DaskCluster, dask_cluster  # noqa: F401 - fixtures
from lab_browser import ACTOR, ARTIFACTS, BROWSER, OUTPUT, PANEL_TAB, RUN, Lab, browse, lab, write_notebook  # noqa: F401

pytestmark = BROWSER

SETUP = """\
import jupyter_futures as jf
from jupyter_futures.jupyter import labcomm

labcomm.register_comm_target()
client = jf.init(address={address!r})
client.wait_for_workers(2)
client"""

WORK = """\
import numpy as np

block = jf.submit(np.ones, 4_000_000)          # 32 MB kept in a Dask worker's memory
total = jf.submit(np.sum, block)
total.result()"""

DASHBOARD = "jf.dashboard()"

STREAM_LANES = """(() => [...document.querySelectorAll('.jf-Cluster .jf-Cluster-streamLane')]
    .map(t => t.textContent))()"""

SHUTDOWN = """\
jf.shutdown()
print("disconnected")"""


def test_the_panel_and_the_dashboard_show_the_dask_cluster(
    lab: Lab, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    address = dask_cluster.address
    write_notebook(lab.root / "dask.ipynb", [SETUP.format(address=address), WORK, ACTOR, DASHBOARD, SHUTDOWN])
    panel = ".jf-Cluster"
    results = browse(
        lab,
        tmp_path,
        "dask-panel",
        [
            {"do": "open", "path": "dask.ipynb"},
            {"do": "click", "selector": PANEL_TAB},
            RUN,
            {"do": "wait", "cell": 0, "selector": OUTPUT, "text": "2 workers"},
            {"do": "wait", "selector": f'{panel}[data-state="connected"]'},
            {"do": "wait", "selector": ".jf-Cluster-worker", "count": 2, "as": "workers"},
            RUN,
            {"do": "wait", "cell": 1, "selector": OUTPUT, "text": "4000000.0"},
            RUN,
            {"do": "wait", "cell": 2, "selector": OUTPUT, "text": "5"},
            {"do": "wait", "selector": ".jf-Cluster-actor", "text": "Counter", "as": "actors"},
            {"do": "wait", "selector": '.jf-Cluster-chip[data-state="done"]', "as": "done"},
            # The 32 MB block is in a worker's managed memory, and the panel says so.
            {"do": "click", "selector": ".jf-Cluster-refresh"},
            {"do": "wait", "selector": ".jf-Cluster-objects", "text": "MiB", "as": "objects"},
            {"do": "wait", "selector": ".jf-Cluster-worker", "text": "Managed", "as": "managed"},
            # The task stream, from Dask's own scheduler: a lane per Dask worker and the actor's.
            {"do": "wait", "selector": '.jf-Cluster-streamBar[data-name="sum"]'},
            {"do": "wait", "selector": '.jf-Cluster-streamBar[data-name="Counter.add"]'},
            {"do": "evaluate", "expression": STREAM_LANES, "as": "lanes"},
            {"do": "text", "selector": ".jf-Cluster-subtitle", "as": "subtitle"},
            RUN,
            {"do": "wait", "cell": 3, "selector": ".jf-widget", "text": "Workers", "as": "dashboard"},
            {"do": "screenshot", "file": "lab.png"},
            {"do": "screenshot", "selector": panel, "file": "panel.png"},
            {"do": "screenshot", "selector": ".jp-Cell:nth-child(4) .jp-OutputArea", "file": "dashboard.png"},
            RUN,
            {"do": "wait", "cell": 4, "selector": OUTPUT, "text": "disconnected"},
        ],
    )
    workers = results["workers"]
    assert len(workers) == 2
    hosts = sorted(w.split(":")[0].strip() for w in workers)
    assert hosts == ["127.0.0.2", "127.0.0.3"], workers  # each worker, by its own address
    assert all("CPU" in w and "RSS" in w and "Managed" in w for w in workers), workers
    assert "Counter" in results["actors"][0]
    assert int(results["done"][0].split()[0]) >= 2, results["done"]
    assert "in Dask workers' memory" in results["objects"][0], results["objects"]
    assert f"on Dask {address}" in results["subtitle"][0], results["subtitle"]
    lanes = results["lanes"]
    assert any(lane.startswith("127.0.0.") for lane in lanes), lanes  # a Dask worker, by address
    assert any(lane.startswith("Counter #") for lane in lanes), lanes
    dashboard = results["dashboard"][0]
    assert "Task stream" in dashboard
    assert "managed" in dashboard and "127.0.0.2" in dashboard, dashboard
    # the kernel variable holding the 32 MB block, sized as Dask's scheduler counts it
    assert re.search(r"block\s+1\s+30\.5 MiB", dashboard), dashboard
    assert (ARTIFACTS / "dask-panel-panel.png").stat().st_size > 1_000
    assert (ARTIFACTS / "dask-panel-dashboard.png").stat().st_size > 5_000
