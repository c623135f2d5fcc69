"""JupyterLab in a real headless Chromium: notebook output and the Cluster panel, on the
embedded engine (2 worker processes). The server and browser: ``tests/lab_browser.py``."""

from __future__ import annotations

from pathlib import Path

from lab_browser import ACTOR, ARTIFACTS, BROWSER, OUTPUT, PANEL_TAB, RUN, Lab, browse, lab, write_notebook  # noqa: F401

pytestmark = BROWSER


# The notebook a user would write: start a cluster, submit, look at the result.
SETUP = """\
import jupyter_futures as jf
from jupyter_futures.jupyter import labcomm

labcomm.register_comm_target()
client = jf.init(n_workers=2)
client.wait_for_workers()


def say_outside_a_task():  # a worker's own thread: its log, not this cell
    import threading

    t = threading.Thread(target=print, args=("hello from a worker's own thread",))
    t.start()
    t.join()


jf.submit(say_outside_a_task).result()
client"""

SUBMIT = """\
f = jf.submit(pow, 2, 10)
f.result()
f"""

# Run in the kernel after the panel closed: the publishing thread must be gone.
PUBLISHER_STOPPED = """\
import threading as _t
for _th in _t.enumerate():
    if _th.name == "jupyter-futures-labcomm":
        _th.join(30)  # bounded; a loaded machine may take a while to finish its last snapshot
print("publishers:", sum(_th.name == "jupyter-futures-labcomm" for _th in _t.enumerate()))
jf.shutdown()"""


def test_cluster_panel_follows_the_notebook_kernel(lab: Lab, tmp_path: Path) -> None:
    write_notebook(lab.root / "cluster.ipynb", [SETUP, SUBMIT, ACTOR, PUBLISHER_STOPPED])
    panel = ".jf-Cluster"
    results = browse(
        lab,
        tmp_path,
        "cluster",
        [
            {"do": "open", "path": "cluster.ipynb"},
            # Opened before jupyter_futures is imported: the panel says so, then connects
            # by itself once a cell that imports it has run.
            {"do": "click", "selector": PANEL_TAB},
            {"do": "wait", "selector": f'{panel}[data-state="not-loaded"]'},
            RUN,
            {"do": "wait", "cell": 0, "selector": OUTPUT, "text": "2 workers"},
            {"do": "wait", "selector": f'{panel}[data-state="connected"]'},
            {"do": "wait", "selector": ".jf-Cluster-worker", "count": 2, "as": "workers"},
            RUN,
            {"do": "wait", "cell": 1, "selector": OUTPUT, "text": "done", "as": "future"},
            RUN,
            {"do": "wait", "cell": 2, "selector": OUTPUT, "text": "5"},
            # Sent by the publishing thread, not with the first snapshot.
            {"do": "wait", "selector": ".jf-Cluster-actor", "text": "Counter", "as": "actors"},
            {"do": "wait", "selector": '.jf-Cluster-chip[data-state="done"]', "as": "done"},
            {"do": "click", "selector": ".jf-Cluster-refresh"},
            {"do": "wait", "selector": ".jf-Cluster-worker", "count": 2},
            {"do": "screenshot", "file": "lab.png"},
            {"do": "screenshot", "selector": panel, "file": "panel.png"},
            # The Logs section: what each worker wrote outside tasks, asked for when opened.
            {"do": "click", "selector": ".jf-Cluster-logs summary"},
            {"do": "wait", "selector": ".jf-Cluster-log", "count": 2, "as": "logs"},
            {"do": "wait", "selector": ".jf-Cluster-log", "text": "hello from a worker's own thread"},
            {"do": "screenshot", "selector": panel, "file": "panel-logs.png"},
            {"do": "text", "selector": ".jf-Cluster-subtitle", "as": "subtitle"},
            # Closing the sidebar closes the comm; the kernel stops publishing.
            {"do": "click", "selector": PANEL_TAB},
            {"do": "wait", "selector": f"{panel}.lm-mod-hidden", "state": "attached"},
            RUN,
            {"do": "wait", "cell": 3, "selector": OUTPUT, "text": "publishers:", "as": "publishers"},
        ],
    )
    workers = results["workers"]
    assert len(workers) == 2
    assert all("CPU" in w and "RSS" in w and "Store" in w for w in workers), workers
    assert "<jupyter_futures.Future" in results["future"][0]
    assert "Counter" in results["actors"][0]
    done = int(results["done"][0].split()[0])
    assert done >= 1, results["done"]
    assert "cluster.ipynb" in results["subtitle"][0]
    assert [p.strip() for p in results["publishers"]] == ["publishers: 0"], results["publishers"]
    assert (ARTIFACTS / "cluster-lab.png").stat().st_size > 10_000
    assert (ARTIFACTS / "cluster-panel.png").stat().st_size > 1_000
    logs = results["logs"]
    assert sorted(block.split("\n", 1)[0] for block in logs) == ["worker 1", "worker 2"], logs
    assert sum("hello from a worker's own thread" in block for block in logs) == 1, logs
    assert all("2 workers" not in block for block in logs)  # the cell's output stays in the cell
    assert (ARTIFACTS / "cluster-panel-logs.png").stat().st_size > 1_000


WIDGETS_SETUP = """\
%load_ext jupyter_futures
import time
import jupyter_futures as jf

client = jf.init(n_workers=2)
client.wait_for_workers()"""

NAP = """\
nap = jf.submit(time.sleep, 1.5, name="nap")
nap"""

POW = """\
f = jf.submit(pow, 2, 10)
f.result()
f"""

DASHBOARD = "jf.dashboard()"

SHUTDOWN = """\
jf.shutdown()
print("cluster shut down")"""

# A widget rendered by the widget manager (the live view), not the saved HTML snapshot.
LIVE = ".widget-html-content .jf-widget"
# Either view: a widget whose future settled is replaced by its snapshot in the same place.
ANY = ".jf-widget"


def test_future_widget_and_dashboard_render_live(lab: Lab, tmp_path: Path) -> None:
    write_notebook(lab.root / "widgets.ipynb", [WIDGETS_SETUP, NAP, POW, DASHBOARD, SHUTDOWN])
    results = browse(
        lab,
        tmp_path,
        "widgets",
        [
            {"do": "open", "path": "widgets.ipynb"},
            RUN,
            # The nap is displayed live while it runs, then turns to done (its snapshot).
            RUN,
            {"do": "wait", "cell": 1, "selector": LIVE, "text": "running", "as": "nap_running"},
            {"do": "wait", "cell": 1, "selector": ANY, "text": "done", "as": "nap_done"},
            RUN,
            {"do": "wait", "cell": 2, "selector": ANY, "text": "1024", "as": "pow"},
            RUN,
            {"do": "wait", "cell": 3, "selector": ANY, "text": "Workers", "as": "dashboard"},
            {
                "do": "evaluate",
                "as": "dashboard_workers",
                "expression": """(() => {
                    const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[3];
                    const table = cell.querySelector('.jf-widget table');
                    return table ? table.querySelectorAll('tr').length - 1 : -1;
                })()""",
            },
            {"do": "screenshot", "file": "lab.png"},
            {"do": "screenshot", "selector": ".jp-Cell:nth-child(4) .jp-OutputArea", "file": "dashboard.png"},
            RUN,
            {"do": "wait", "cell": 4, "selector": OUTPUT, "text": "cluster shut down"},
        ],
    )
    assert "nap" in results["nap_running"][0]
    assert "done" in results["nap_done"][0]
    assert "1024" in results["pow"][0] and "pow" in results["pow"][0]
    dashboard = results["dashboard"][0]
    assert "Futures" in dashboard and "CPU" in dashboard, dashboard
    assert results["dashboard_workers"] == 2, results
    assert (ARTIFACTS / "widgets-dashboard.png").stat().st_size > 5_000
