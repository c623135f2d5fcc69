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


# A day's work in miniature: functions and a class defined in the notebook, a fan-in DAG,
# an actor, and failures, over about two seconds.
STREAM_SETUP = """\
import time
import jupyter_futures as jf
from jupyter_futures.jupyter import labcomm

labcomm.register_comm_target()
client = jf.init(n_workers=2)
client.wait_for_workers()


def load(i):
    time.sleep(0.05 + 0.01 * (i % 5))
    return list(range(i))


def fit(*parts):
    time.sleep(0.2)
    return sum(map(sum, parts))


def boom(i):
    time.sleep(0.05)
    raise ValueError(i)


class Model:
    def step(self, k):
        time.sleep(0.05)
        return k"""

STREAM_WORK = """\
model = jf.create_actor(Model).result()
parts = [jf.submit(load, i) for i in range(24)]
fits = [jf.submit(fit, *parts[i:i + 6]) for i in range(0, 24, 6)]
steps = [model.step(k) for k in range(8)]
bad = [jf.submit(boom, i) for i in range(2)]
jf.wait(fits + steps + bad)
print("work done", sum(f.result() for f in fits))"""

STREAM_CELL = "jf.task_stream()"

# The panel's bars, as the browser drew them.
STREAM_BARS = """(() => [...document.querySelectorAll('.jf-Cluster .jf-Cluster-streamBar')].map(r => ({
    name: r.dataset.name, state: r.dataset.state, fill: r.getAttribute('fill'),
    width: Number(r.getAttribute('width'))})))()"""

STREAM_LANES = """(() => [...document.querySelectorAll('.jf-Cluster .jf-Cluster-streamLane')]
    .map(t => t.textContent))()"""

CELL_STREAM = """(() => {
    const svg = document.querySelectorAll('.jp-Notebook .jp-Cell')[2].querySelector('svg.jf-task-stream');
    return svg ? [...svg.querySelectorAll('rect[data-name]')].map(r => r.dataset.name) : null;
})()"""


def test_task_stream_in_the_panel_and_in_a_cell(lab: Lab, tmp_path: Path) -> None:
    write_notebook(lab.root / "stream.ipynb", [STREAM_SETUP, STREAM_WORK, STREAM_CELL, SHUTDOWN])
    panel = ".jf-Cluster"
    results = browse(
        lab,
        tmp_path,
        "stream",
        [
            {"do": "open", "path": "stream.ipynb"},
            {"do": "click", "selector": PANEL_TAB},
            RUN,
            {"do": "wait", "selector": f'{panel}[data-state="connected"]'},
            {"do": "wait", "selector": ".jf-Cluster-worker", "count": 2},
            RUN,
            {"do": "wait", "cell": 1, "selector": OUTPUT, "text": "work done"},
            {"do": "wait", "selector": '.jf-Cluster-streamBar[data-name="fit"]', "count": 1},
            {"do": "wait", "selector": '.jf-Cluster-streamBar[data-state="failed"]'},
            {"do": "wait", "selector": '.jf-Cluster-streamBar[data-name="Model.step"]'},
            {"do": "hover", "selector": '.jf-Cluster-streamBar[data-name="fit"]'},
            {"do": "wait", "selector": ".jf-Cluster-streamHover", "text": "fit", "as": "hover"},
            {"do": "evaluate", "expression": STREAM_BARS, "as": "bars"},
            {"do": "evaluate", "expression": STREAM_LANES, "as": "lanes"},
            {"do": "screenshot", "selector": panel, "file": "panel-stream.png"},
            RUN,
            {"do": "wait", "cell": 2, "selector": 'svg.jf-task-stream rect[data-name="load"]'},
            {"do": "evaluate", "expression": CELL_STREAM, "as": "cell_bars"},
            {
                "do": "screenshot",
                "selector": ".jp-Cell:nth-child(3) .jp-OutputArea",
                "file": "cell-stream.png",
            },
            RUN,
            {"do": "wait", "cell": 3, "selector": OUTPUT, "text": "cluster shut down"},
        ],
    )
    bars = results["bars"]
    names = {b["name"] for b in bars}
    assert {"load", "fit", "boom", "Model.step"} <= names, names
    colours = {b["name"]: b["fill"] for b in bars if b["state"] == "done"}
    assert len({colours["load"], colours["fit"], colours["Model.step"]}) == 3, colours
    assert {b["fill"] for b in bars if b["state"] == "failed"} == {"#d62728"}, bars
    assert all(b["width"] >= 1 for b in bars)
    assert results["lanes"][:2] == ["worker 1", "worker 2"] and results["lanes"][2].startswith("Model #")
    hover = results["hover"][0]
    assert "fit ·" in hover and " ms" in hover and "worker" in hover, hover  # "2 runs of fit · 402 ms, ..."
    assert {"load", "fit", "boom", "Model.step"} <= set(results["cell_bars"]), results["cell_bars"]
    assert (ARTIFACTS / "stream-panel-stream.png").stat().st_size > 2_000
    assert (ARTIFACTS / "stream-cell-stream.png").stat().st_size > 2_000


# A notebook on a (recorded) two-GPU machine: tests/fake_nvml answers NVML's calls.
GPU_PANEL = """(() => [...document.querySelectorAll('.jf-Cluster .jf-Cluster-gpu')].map(b => b.title))()"""


def test_panel_shows_each_workers_gpu(lab: Lab, tmp_path: Path) -> None:
    import shutil

    fake = Path(__file__).resolve().parents[1] / "fake_nvml"
    machine = tmp_path / "machine.json"
    shutil.copy(fake / "two_h100.json", machine)
    setup = f"""\
import os, sys
sys.path.insert(0, {str(fake)!r})
os.environ["JF_FAKE_NVML"] = {str(machine)!r}
import jupyter_futures as jf
from jupyter_futures.jupyter import labcomm

labcomm.register_comm_target()
client = jf.init(n_workers=3)
client.wait_for_workers()
client"""
    write_notebook(lab.root / "gpus.ipynb", [setup, SHUTDOWN])
    results = browse(
        lab,
        tmp_path,
        "gpus",
        [
            {"do": "open", "path": "gpus.ipynb"},
            {"do": "click", "selector": PANEL_TAB},
            RUN,
            {"do": "wait", "cell": 0, "selector": OUTPUT, "text": "3 workers"},
            {"do": "wait", "selector": ".jf-Cluster-worker", "count": 3},
            {"do": "wait", "selector": ".jf-Cluster-gpu", "count": 2, "as": "gpu_bars"},
            {"do": "evaluate", "as": "gpu_titles", "expression": GPU_PANEL},
            {"do": "screenshot", "selector": ".jf-Cluster", "file": "panel.png"},
            RUN,
            {"do": "wait", "cell": 1, "selector": OUTPUT, "text": "cluster shut down"},
        ],
    )
    titles = sorted(results["gpu_titles"])
    assert titles == [
        "GPU 0 (NVIDIA H100 80GB HBM3): 539 MiB / 79.6 GiB, 0% busy",
        "GPU 1 (NVIDIA H100 80GB HBM3): 539 MiB / 79.6 GiB, 0% busy",
    ], titles
    assert all("GPU" in text and "79.6 GiB" in text for text in results["gpu_bars"])
    assert (ARTIFACTS / "gpus-panel.png").stat().st_size > 5_000
