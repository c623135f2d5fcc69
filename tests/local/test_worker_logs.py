"""What workers write outside tasks lands in their logs (``jf.logs()``): prints from their
own threads, warnings, the stacks faulthandler dumps when one segfaults, dead workers' too;
what tasks print does not (it goes to their cell)."""

from __future__ import annotations

import os
import stat
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

import jupyter_futures as jf
from jupyter_futures.local import logs as worker_logs

pytestmark = pytest.mark.timeout(120)


def talk_later(tag: str) -> int:
    def run() -> None:
        time.sleep(0.2)
        print(f"thread says {tag}", flush=True)
        warnings.warn(f"warned {tag}", stacklevel=1)

    threading.Thread(target=run).start()
    print(f"task says {tag}")
    return os.getpid()


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_what_workers_write_outside_tasks_is_in_their_logs(client: jf.Client) -> None:
    pid = jf.submit(talk_later, "hello").result(30)
    wid = next(w["id"] for w in jf.status()["workers"] if w["pid"] == pid)
    assert wait_for(lambda: "warned hello" in jf.logs().get(wid, ""))
    text = jf.logs(wid)[wid]
    assert "thread says hello" in text and "UserWarning: warned hello" in text
    assert "task says hello" not in text, "a task's own output goes to its cell"
    assert set(jf.logs()) == {w["id"] for w in jf.status()["workers"]}
    path = worker_logs.path_for(client.backend.cluster.sock_dir, wid)  # type: ignore[attr-defined]
    mode = os.stat(path).st_mode
    assert stat.S_IMODE(mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_a_segfault_leaves_its_stacks_in_the_dead_workers_log(client: jf.Client) -> None:
    before = set(jf.logs())
    with pytest.raises(jf.WorkerDiedException):
        jf.submit(segfault).result(60)
    live = {x["id"] for x in jf.status()["workers"]}
    dumps = {w: t for w, t in jf.logs().items() if "Fatal Python error: Segmentation fault" in t}
    assert dumps, jf.logs()
    assert not set(dumps) & live, "the logs of the workers that died, kept after their death"
    assert all("in segfault" in t for t in dumps.values())  # the task's own frame is named
    replacements = {w["id"] for w in jf.status()["workers"]} - before
    assert replacements, "dead workers were replaced (forked by the zygote)"
    assert jf.submit(talk_later, "again").result(30)
    assert wait_for(lambda: any("warned again" in t for t in jf.logs().values()))


def test_a_log_is_cut_to_its_tail_past_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = worker_logs.create(tmp_path, 7)
    monkeypatch.setattr(worker_logs, "LOG_MAX", 1000)
    monkeypatch.setattr(worker_logs, "LOG_KEEP", 100)
    fd = worker_logs.open_for_append(path)
    try:
        os.write(fd, b"x" * 2000 + b"\nthe last line\n")
        worker_logs.bound(fd)
        os.write(fd, b"after the cut\n")
    finally:
        os.close(fd)
    text = worker_logs.read(tmp_path)[7]
    assert text.startswith("[... earlier lines cut") and text.endswith("the last line\nafter the cut\n")
    assert len(text) < 200
    with pytest.raises(FileExistsError):
        worker_logs.create(tmp_path, 7)  # never a file found there
    (tmp_path / "w8.log").symlink_to(path)
    with pytest.raises(OSError):
        worker_logs.open_for_append(tmp_path / "w8.log")
