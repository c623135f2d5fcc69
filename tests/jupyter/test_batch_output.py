"""Batch runs (nbconvert --execute, papermill) save remote output in the cell it belongs to.

Such a front end stops listening to a cell once the kernel reports it done, so output that
comes later would be lost; a cell of a batch run ends only once the work it submitted has
settled. Each test writes a notebook whose cells submit work that prints and shows a plot
after the cell has returned, executes it for real, and reads the saved notebook.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

SETUP = "%load_ext jupyter_futures\nimport jupyter_futures as jf\njf.init(1).wait_for_workers()"

SUBMIT = """
def late(label):
    import time
    import matplotlib.pyplot as plt
    time.sleep(1.5)  # the cell has returned long before
    print("late print from", label)
    plt.plot([1, 2, 3])
    plt.show()
    return label

f = jf.submit(late, "submit")
"""

REMOTE = """%%remote
import time
import matplotlib.pyplot as plt
time.sleep(1.5)
print("late print from remote")
_ = plt.plot([3, 2, 1])
plt.show()
"""

LOCAL = 'print("a local cell")'


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (SETUP, SUBMIT, REMOTE, LOCAL, "jf.shutdown()")]
    nbformat.write(nb, path)


def run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def texts(cell: dict[str, Any]) -> str:
    return "".join(o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream")


def images(cell: dict[str, Any]) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell["outputs"])


def check_saved(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells
    setup, submitted, remote, local, _ = cells
    assert "late print from submit" in texts(submitted), submitted["outputs"]
    assert images(submitted) == 1, submitted["outputs"]
    assert "late print from remote" in texts(remote), remote["outputs"]
    assert images(remote) == 1, remote["outputs"]
    snapshots = [o["data"]["text/plain"] for o in remote["outputs"] if "text/plain" in o.get("data", {})]
    assert any("done" in s for s in snapshots), snapshots  # the widget's final state was saved
    assert texts(local) == "a local cell\n"  # nothing strayed into the next cells
    assert not images(setup) and not images(local)
    assert not any(o["output_type"] == "error" for c in cells for o in c["outputs"])


@pytest.mark.parametrize("tool", ["nbconvert", "papermill"])
def test_late_output_is_saved_in_its_cell(tool: str, tmp_path: Path) -> None:
    source = tmp_path / "late.ipynb"
    write_notebook(source)
    saved = tmp_path / "late-run.ipynb"
    if tool == "nbconvert":
        command = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute"]
        run([*command, "--output", saved.name, source.name], tmp_path)
    else:
        run([sys.executable, "-m", "papermill", source.name, saved.name, "--kernel", "python3"], tmp_path)
    check_saved(saved)


# -- the wait itself, in a kernel driven as a batch front end drives it -------------------

SLOW = "slow = jf.submit(time.sleep, 60)"


def start_kernel(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    from kernels import SETUP as KERNEL_SETUP
    from kernels import start

    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits it
    kernel = start()
    kernel.run(KERNEL_SETUP)
    return kernel


def finish(kernel: Any) -> None:
    from kernels import stop

    try:
        kernel.run("slow.cancel()\njf.shutdown()")
    finally:
        stop(kernel)


def batch_cell(kernel: Any, code: str) -> str:
    return kernel.kc.execute(code, allow_stdin=False)  # type: ignore[no-any-return]


def no_reply_within(kernel: Any, msg_id: str, seconds: float) -> bool:
    try:
        kernel.reply(msg_id, timeout=seconds)
    except AssertionError:
        return True
    return False


def test_an_interrupt_ends_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = start_kernel(monkeypatch)
    try:
        msg_id = batch_cell(kernel, SLOW)
        assert no_reply_within(kernel, msg_id, 2.0)  # held open: its future runs
        started = time.monotonic()
        kernel.km.interrupt_kernel()
        assert kernel.reply(msg_id, timeout=10)["status"] == "ok"
        assert time.monotonic() - started < 5
        kernel.wait_for(lambda: kernel._idle(msg_id))
        assert "not waiting for 1 future" in "".join(kernel.stream_text(msg_id))
    finally:
        finish(kernel)


def test_the_wait_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = start_kernel(monkeypatch, JUPYTER_FUTURES_CELL_WAIT="1")
    try:
        started = time.monotonic()
        msg_id = batch_cell(kernel, SLOW)
        assert kernel.reply(msg_id, timeout=20)["status"] == "ok"
        assert time.monotonic() - started < 10
        kernel.wait_for(lambda: kernel._idle(msg_id))
        assert "still running after 1 s" in "".join(kernel.stream_text(msg_id))
    finally:
        finish(kernel)


def test_a_live_front_end_never_waits_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = start_kernel(monkeypatch, JUPYTER_FUTURES_CELL_OUTPUT="live")
    try:
        started = time.monotonic()
        kernel.run(SLOW)  # interactive (stdin allowed): returns at once
        msg_id = batch_cell(kernel, "again = jf.submit(time.sleep, 60)")  # batch, but told "live"
        assert kernel.reply(msg_id, timeout=20)["status"] == "ok"
        assert time.monotonic() - started < 10
        kernel.run("again.cancel()")
    finally:
        finish(kernel)
