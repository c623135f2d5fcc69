"""JupyterLab in a real headless Chromium: notebook output and the Cluster panel.

::

    pytest ──► jupyter lab  (temporary root, config, data and runtime dirs; token; free port)
      │          └─► kernel ──► jupyter_futures cluster (2 worker processes)
      └──► node tests/ui/lab.mjs ──► Chromium (fresh profile) ──► http://127.0.0.1:<port>/lab

The browser side is a list of steps (open, click, wait for text, screenshot) run by
``tests/ui/lab.mjs`` with playwright-core; every wait is for something to appear in the
page. Screenshots, the browser console and the server log go to ``test-artifacts/``.

Needs ``/usr/bin/chromium``, Node, ``tests/ui/node_modules`` and the built extension in
``jupyter_futures/labextension``; ``.ci/run`` provides all four, elsewhere the test is
skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "tests" / "ui"
ARTIFACTS = ROOT / "test-artifacts"
BUILT = ROOT / "jupyter_futures" / "labextension"
CHROMIUM = Path(os.environ.get("JF_CHROMIUM", "/usr/bin/chromium"))
NODE = shutil.which("node")
PANEL_TAB = '.jp-SideBar .lm-TabBar-tab[data-id="jupyter-futures-cluster"]'
RUN = {"do": "command", "id": "notebook:run-cell-and-select-next"}
OUTPUT = ".jp-OutputArea-output"


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if NODE is None:
        return "no node on PATH"
    if not (UI / "node_modules" / "playwright-core").is_dir():
        return "playwright-core not installed (npm ci in tests/ui)"
    if not (BUILT / "package.json").exists():
        return "labextension not built (npm run build:prod in labextension)"
    return None


pytestmark = [
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
    pytest.mark.timeout(420),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab server and the directories it owns."""

    url: str
    token: str
    root: Path
    proc: subprocess.Popen[bytes]
    started: list[psutil.Process] = field(default_factory=list)

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


def _isolated_env(tmp: Path) -> dict[str, str]:
    """Jupyter dirs of our own, and the freshly built extension first on the path."""
    env = dict(os.environ)
    for name in ("config", "data", "runtime", "path/labextensions"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    (tmp / "path" / "labextensions" / "jupyter-futures").symlink_to(BUILT)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_PATH=str(tmp / "path"),
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    # No "would you like news?" toast over the screenshots, no update check.
    settings = tmp / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"checkForUpdates": False, "fetchNews": "false"})
    )
    return env


def _wait_ready(lab: Lab, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited with {lab.proc.returncode}; see test-artifacts/")
        try:
            lab.api("GET", "/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)  # polling for the server to listen
    raise AssertionError(f"jupyter lab did not answer within {timeout} s")


def _kill(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _stop(lab: Lab) -> None:
    """Shut the server down (it stops its kernels first); kill whatever is left."""
    lab.started.extend(lab.descendants())
    if lab.proc.poll() is None:
        try:
            lab.api("POST", "/api/shutdown")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            lab.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.proc.pid, signal.SIGKILL)
            lab.proc.wait(timeout=10)
    _, alive = psutil.wait_procs(lab.started, timeout=10)
    _kill(alive)
    assert not alive, f"still running after the server stopped: {[p.pid for p in alive]}"


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    ARTIFACTS.mkdir(exist_ok=True)
    token = os.urandom(16).hex()
    port = _free_port()
    root = tmp_path / "root"
    root.mkdir()
    env = _isolated_env(tmp_path / "jupyter")
    log = (ARTIFACTS / f"{request.node.name}.jupyterlab.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        "--allow-root",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, proc=proc)
    try:
        _wait_ready(server)
        yield server
    finally:
        try:
            _stop(server)
        finally:
            log.close()


def _write_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _browse(lab: Lab, tmp_path: Path, name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Run ``steps`` in a fresh Chromium; returns what they recorded. Chromium is gone after."""
    profile = tmp_path / f"chromium-{name}"
    for old in ARTIFACTS.glob(f"{name}-*"):  # screenshots and logs of an earlier run
        old.unlink()
    config = {
        "name": name,
        "url": lab.url,
        "token": lab.token,
        "artifacts": str(ARTIFACTS),
        "profile": str(profile),
        "chromium": str(CHROMIUM),
        "timeoutMs": 90_000,
        "steps": steps,
    }
    config_path = tmp_path / f"{name}.json"
    config_path.write_text(json.dumps(config))
    assert NODE is not None
    driver = subprocess.Popen(
        [NODE, str(UI / "lab.mjs"), str(config_path)],
        cwd=UI,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a hung run can be killed with its browser
    )
    try:
        stdout, stderr = driver.communicate(timeout=360)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)
        stdout, stderr = driver.communicate()
    left = [p for p in psutil.process_iter(["cmdline"]) if str(profile) in str(p.info["cmdline"])]
    _kill(left)
    assert not left, f"Chromium still running after the browser closed: {[p.pid for p in left]}"
    lines = stdout.strip().splitlines()
    if driver.returncode != 0 or not lines:
        pytest.fail(f"browser steps failed (exit {driver.returncode}):\n{stdout}\n{stderr}")
    outcome: dict[str, Any] = json.loads(lines[-1])
    assert outcome["ok"], outcome
    results: dict[str, Any] = outcome["results"]
    return results


# The notebook a user would write: start a cluster, submit, look at the result.
SETUP = """\
import jupyter_futures as jf
from jupyter_futures.jupyter import labcomm

labcomm.register_comm_target()
client = jf.init(n_workers=2)
client.wait_for_workers()
client"""

SUBMIT = """\
f = jf.submit(pow, 2, 10)
f.result()
f"""

ACTOR = """\
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n

counter = jf.create_actor(Counter).result()
jf.call_actor(counter, "add", 5).result()"""

# Run in the kernel after the panel closed: the publishing thread must be gone.
PUBLISHER_STOPPED = """\
import threading as _t
for _th in _t.enumerate():
    if _th.name == "jupyter-futures-labcomm":
        _th.join(30)  # bounded; a loaded machine may take a while to finish its last snapshot
print("publishers:", sum(_th.name == "jupyter-futures-labcomm" for _th in _t.enumerate()))
jf.shutdown()"""


def test_cluster_panel_follows_the_notebook_kernel(lab: Lab, tmp_path: Path) -> None:
    _write_notebook(lab.root / "cluster.ipynb", [SETUP, SUBMIT, ACTOR, PUBLISHER_STOPPED])
    panel = ".jf-Cluster"
    results = _browse(
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
    _write_notebook(lab.root / "widgets.ipynb", [WIDGETS_SETUP, NAP, POW, DASHBOARD, SHUTDOWN])
    results = _browse(
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
