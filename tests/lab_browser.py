"""JupyterLab in a real headless Chromium, for the browser tests (``tests/jupyter/test_ui.py``,
``tests/on_dask/test_dask_panel.py``).

::

    pytest ──► jupyter lab  (temporary root, config, data and runtime dirs; token; free port)
      │          └─► kernel ──► the notebook's cluster
      └──► node tests/ui/lab.mjs ──► Chromium (fresh profile) ──► http://127.0.0.1:<port>/lab

The browser side is a list of steps (open, click, wait for text, screenshot) run by
``tests/ui/lab.mjs`` with playwright-core; every wait is for something to appear in the
page. Screenshots, the browser console and the server log go to ``test-artifacts/``.

Needs ``/usr/bin/chromium``, Node, ``tests/ui/node_modules`` and the built extension in
``jupyter_futures/labextension``; ``.ci/run`` provides all four, elsewhere the tests are
skipped with the reason (``MISSING``).
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

ROOT = Path(__file__).resolve().parents[1]
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


MISSING = _missing()
BROWSER = [pytest.mark.skipif(MISSING is not None, reason=str(MISSING)), pytest.mark.timeout(420)]
"""The marks of a browser test module: ``pytestmark = BROWSER``."""


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


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def browse(lab: Lab, tmp_path: Path, name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
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


# A notebook cell: an actor defined in the notebook, created, called once (shows 5).
ACTOR = """\
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n

counter = jf.create_actor(Counter).result()
jf.call_actor(counter, "add", 5).result()"""
