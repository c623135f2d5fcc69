"""A real IPython kernel for tests, seen as a front end sees it (jupyter_client): every
iopub message in order, with its parent header, and the shell replies.

Shared by the tests that run cells in a kernel (tests/jupyter/test_kernel.py and others).
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager, start_new_kernel

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SHM = Path("/dev/shm")

SETUP = """
%load_ext jupyter_futures
import json, os, time
import jupyter_futures as jf
client = jf.init(2)
client.wait_for_workers()
"""

OBJECTS = """
import numpy as np
kept = jf.put(np.ones(1_000_000))      # in the kernel's own store
made = jf.submit(np.ones, 1_000_000)   # in a worker's store
made.result()
"""


class Kernel:
    """A kernel and its channels; every iopub message is kept, in order of arrival."""

    def __init__(self, km: KernelManager, kc: Any) -> None:
        self.km = km
        self.kc = kc
        self.messages: list[dict[str, Any]] = []
        self.log: Any = None
        self.replies: dict[str, dict[str, Any]] = {}

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid  # type: ignore[union-attr]

    def execute(self, code: str) -> str:
        return self.kc.execute(code)  # type: ignore[no-any-return]

    def pump(self, timeout: float = 0.05) -> None:
        """Move whatever arrived on iopub and shell into ``messages`` and ``replies``."""
        while True:
            try:
                self.messages.append(self.kc.get_iopub_msg(timeout=timeout))
            except queue.Empty:
                break
            timeout = 0
        while True:
            try:
                reply = self.kc.get_shell_msg(timeout=0)
            except queue.Empty:
                break
            self.replies[reply["parent_header"]["msg_id"]] = reply

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not true after {timeout} s; last messages: {self.summary()[-8:]}\n{self.diagnosis()}"
                )

    def reply(self, msg_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_for(lambda: self.replies.get(msg_id), timeout)["content"]  # type: ignore[no-any-return]

    def run(self, code: str, timeout: float = 60.0) -> str:
        """Run a cell to its end; returns what it printed (failing if it raised)."""
        msg_id = self.execute(code)
        content = self.reply(msg_id, timeout)
        self.wait_for(lambda: self._idle(msg_id), timeout)
        printed = "".join(self.stream_text(msg_id))
        assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}\n{printed}"
        return printed

    def json(self, code: str) -> Any:
        """Run a cell whose last line prints JSON, and decode it."""
        return json.loads(self.run(code).strip().splitlines()[-1])

    def _idle(self, msg_id: str) -> bool:
        return any(
            m["msg_type"] == "status"
            and m["content"]["execution_state"] == "idle"
            and m["parent_header"].get("msg_id") == msg_id
            for m in self.messages
        )

    def of(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] == msg_type]

    def stream_text(self, msg_id: str) -> list[str]:
        return [m["content"]["text"] for m in self.of("stream") if m["parent_header"].get("msg_id") == msg_id]

    def diagnosis(self) -> str:
        """What the kernel is doing now: every thread's stack (py-spy) and its stderr's end."""
        try:
            stacks = subprocess.run(
                [str(Path(sys.executable).with_name("py-spy")), "dump", "--pid", str(self.pid)],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            dump = stacks.stdout or stacks.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            dump = f"(no stack dump: {exc})"
        self.log.seek(0, 2)
        end = self.log.tell()
        self.log.seek(max(0, end - 4000))
        stderr = self.log.read()
        self.log.seek(end)
        return f"the kernel's threads now:\n{dump}\nthe end of its stderr:\n{stderr}"

    def summary(self) -> list[str]:
        return [f"{m['msg_type']} {str(m['content'])[:80]}" for m in self.messages]


def start() -> Kernel:
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115  # the kernel's stderr, shown if it ends badly; closed by stop()
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, stderr=log)
    kernel = Kernel(km, kc)
    kernel.log = log
    return kernel


def stop(kernel: Kernel) -> None:
    """Shut the kernel down as a front end does; fail if it had to be killed."""
    process = kernel.km.provisioner.process  # type: ignore[union-attr]
    try:
        kernel.kc.stop_channels()
    finally:
        kernel.km.shutdown_kernel(now=False)
    kernel.log.seek(0)
    log = [line for line in kernel.log.read().splitlines() if "without encryption" not in line]
    kernel.log.close()
    assert process.returncode == 0, f"the kernel exited with {process.returncode}:\n" + "\n".join(log[-30:])
