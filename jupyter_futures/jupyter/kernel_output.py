"""Remote output goes to the cell that submitted the work, live, whatever runs now.

::

    cell In[3] starts ── pre_run_cell ──► CellLog: (time, In[3]'s parent header)
    jf.submit(f) in In[3] ──────────────► the scheduler notes when it was submitted
    ... later, while In[7] runs ...
    worker prints ── the backend's output handler (tid, stream, text) ──► CellRouter
        backend.output_origin(tid): the kernel futures it descends from, and when
        tid submitted by the kernel:        the cell that was running at its submission
        tid submitted by a task:            the cell of the kernel futures behind that task
    ──► iopub: stream / display_data / update_display_data with In[3]'s parent header

A write to ``sys.stdout`` from the I/O thread would land in whichever cell runs now, so
the router publishes on iopub itself, through the kernel's session (ipykernel's iopub
socket may be used from any thread).

The same knowledge keeps cells fair: ``attach`` gives the backend a group hook
(``backend.GroupHook``) that names the running cell's number, so each cell's work is a
group of its own, and engines serve the groups of equal priority in turn::

    jf.submit(f) in In[7] ── backend: group = running_cell(shell) = 7 ──► the engine's
    ready queue: In[3]'s million queued tasks and In[7]'s take turns

A front end that executes a notebook top to bottom and saves it (nbconvert --execute,
papermill, nbclient) stops listening to a cell once the kernel reports it done, so what
arrives later is lost. There, ``CellWaiter`` holds the cell open instead::

    batch run: cell In[3] ends ── post_run_cell ──► wait for the futures In[3] submitted
        (bounded, interruptible) ──► their output is in (it precedes each result)
        ──► future widgets publish their final snapshot ──► the kernel reports In[3] done

A batch run is an execute request that allows no stdin (nbclient sends ``allow_stdin:
false``; JupyterLab, Notebook, VS Code, consoles and nbval allow it), or one forced with
``JUPYTER_FUTURES_CELL_OUTPUT=wait``; ``=live`` never waits. A live front end keeps the
live behaviour: cells return at once and output lands in them as it comes.
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import json
import logging
import os
import sys
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..backend import DISPLAY_STREAM, DisplayBundle

if TYPE_CHECKING:
    from ..client import Client

log = logging.getLogger("jupyter_futures")

MAX_CELLS = 4096
MAX_TIDS = 4096
MAX_NESTING = 8


def running_cell(shell: Any) -> int:
    """The execution count the front end shows for the running cell.

    IPython 9 counts the cell before running it (IPython 8 after), so
    ``shell.execution_count`` is already the next cell's number there; the running cell's
    own result object carries its number in both."""
    running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    number = getattr(running, "execution_count", None)
    return number if isinstance(number, int) else int(shell.execution_count)


def kernel_shell() -> Any:
    """The IPython shell of the Jupyter kernel we run in, or None (never imports IPython)."""
    if "ipykernel" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return shell if getattr(shell, "kernel", None) is not None else None


class CellLog:
    """When each cell of a kernel started, and its parent header (the execute request)."""

    def __init__(self, shell: Any) -> None:
        self.kernel = shell.kernel
        self._times: list[float] = []
        self._headers: list[dict[str, Any]] = []
        shell.events.register("pre_run_cell", self.cell_started)
        self.cell_started()  # the cell running now (the one that loaded us)

    def cell_started(self, *_info: Any) -> None:
        header = self.current()
        if not header:
            return
        if len(self._times) >= MAX_CELLS:
            del self._times[: MAX_CELLS // 2], self._headers[: MAX_CELLS // 2]
        self._times.append(time.monotonic())
        self._headers.append(header)

    def current(self) -> dict[str, Any]:
        parent = self.kernel.get_parent("shell") or {}
        return dict(parent.get("header") or {})

    def cell_at(self, when: float) -> dict[str, Any] | None:
        """The header of the cell that was running at ``when``."""
        i = bisect.bisect_right(self._times, when) - 1
        return self._headers[i] if i >= 0 else None


_logs: weakref.WeakKeyDictionary[Any, CellLog] = weakref.WeakKeyDictionary()


def cell_log(shell: Any) -> CellLog:
    log_ = _logs.get(shell)
    if log_ is None:
        log_ = _logs[shell] = CellLog(shell)
    return log_


class CellRouter:
    """The backend's output handler in a kernel: publishes task output under its cell."""

    def __init__(self, shell: Any, client: Client) -> None:
        self.cells = cell_log(shell)
        self.kernel = shell.kernel
        self._client = weakref.ref(client)
        self._parents: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def __call__(self, tid: int, stream: str, text: str) -> None:
        parent = self.parent_of(tid) or self.cells.current()
        if stream == DISPLAY_STREAM:
            bundle: DisplayBundle = json.loads(text)
            kind = "update_display_data" if bundle.get("update") else "display_data"
            content = {k: bundle.get(k) or {} for k in ("data", "metadata", "transient")}
            self._publish(kind, content, parent, b"display_data")
        else:
            self._publish("stream", {"name": stream, "text": text}, parent, f"stream.{stream}".encode())

    def _publish(self, kind: str, content: dict[str, Any], parent: dict[str, Any], topic: bytes) -> None:
        k = self.kernel
        k.session.send(k.iopub_socket, kind, content, parent={"header": parent}, ident=topic)

    def parent_of(self, tid: int, depth: int = 0) -> dict[str, Any] | None:
        """The header of the cell whose work ``tid`` is (None if unknown)."""
        known = self._parents.get(tid)
        if known is not None:
            return known
        client = self._client()
        if client is None or client.closed or depth > MAX_NESTING:
            return None
        origin = client.backend.output_origin(tid)
        if origin is None:
            return None
        parent = None
        if origin.roots != (tid,):  # nested work: the cell of the kernel futures it came from
            found = {}
            for root in origin.roots:
                if root != tid and (p := self.parent_of(root, depth + 1)) is not None:
                    found[p.get("msg_id")] = p
            if len(found) == 1:
                parent = next(iter(found.values()))
        if parent is None:
            parent = self.cells.cell_at(origin.submitted)
        if parent is not None:
            self._parents[tid] = parent
            if len(self._parents) > MAX_TIDS:
                self._parents.popitem(last=False)
        return parent


# -- batch runs: a cell ends once its remote output is in --------------------------------

CELL_OUTPUT = "JUPYTER_FUTURES_CELL_OUTPUT"
"""``wait``: cells wait for their remote work; ``live``: never; unset or ``auto``: wait in
batch runs only."""
CELL_WAIT_LIMIT = "JUPYTER_FUTURES_CELL_WAIT"
"""The most seconds a cell waits for its remote work in a batch run (default 600)."""
DEFAULT_WAIT = 600.0


def batch_run(kernel: Any) -> bool:
    """The cell running now belongs to a run without a live front end."""
    mode = os.environ.get(CELL_OUTPUT, "auto").strip().lower()
    if mode in ("wait", "live"):
        return mode == "wait"
    parent = kernel.get_parent("shell") or {}
    content = parent.get("content") or {}
    return content.get("allow_stdin", True) is False


def wait_limit() -> float:
    try:
        return max(0.0, float(os.environ.get(CELL_WAIT_LIMIT, DEFAULT_WAIT)))
    except ValueError:
        return DEFAULT_WAIT


class CellWaiter:
    """In a batch run, keeps each cell open until the remote work it submitted settled."""

    def __init__(self, shell: Any) -> None:
        self.kernel = shell.kernel
        self._client: weakref.ref[Client] | None = None
        self._before: set[int] = set()  # the unsettled futures as the cell started
        shell.events.register("pre_run_cell", self.cell_started)
        shell.events.register("post_run_cell", self.cell_finished)

    def follow(self, client: Client) -> None:
        self._client = weakref.ref(client)

    def client(self) -> Client | None:
        client = self._client() if self._client is not None else None
        return client if client is not None and not client.closed else None

    def cell_started(self, *_info: Any) -> None:
        client = self.client()
        self._before = set(_unsettled(client)) if client is not None else set()

    def cell_finished(self, result: Any = None) -> None:
        client = self.client()
        if client is None or not batch_run(self.kernel):
            return
        if result is not None and not getattr(result, "success", True):
            return  # the run stops at this error: report it now, not after the work ends
        mine = [f for tid, f in _unsettled(client).items() if tid not in self._before]
        limit = wait_limit()
        try:
            _, late = cf.wait(mine, timeout=limit)
        except KeyboardInterrupt:
            late = {f for f in mine if not f.done()}
            print(f"interrupted: not waiting for {len(late)} future(s) of this cell", file=sys.stderr)
            return
        if late:
            print(
                f"{len(late)} future(s) of this cell still running after {limit:.0f} s: what they "
                f"print or show later is not saved here (set {CELL_WAIT_LIMIT} to wait longer)",
                file=sys.stderr,
            )
        ticker = sys.modules.get("jupyter_futures.jupyter.widgets.ticker")
        if ticker is not None:  # the final views of this cell's widgets, before it ends
            ticker.settle_widgets()


def _unsettled(client: Client) -> dict[int, Any]:
    """The kernel's futures not settled yet, by id."""
    return {f.id: f for f in client.backend.unsettled()}


_waiters: weakref.WeakKeyDictionary[Any, CellWaiter] = weakref.WeakKeyDictionary()


def cell_waiter(shell: Any) -> CellWaiter:
    waiter = _waiters.get(shell)
    if waiter is None:
        waiter = _waiters[shell] = CellWaiter(shell)
    return waiter


_routers: weakref.WeakKeyDictionary[Any, CellRouter] = weakref.WeakKeyDictionary()


def attach(client: Client) -> CellRouter | None:
    """In a Jupyter kernel, send ``client``'s remote output to the submitting cells, make
    each cell's work a group of its own (its turns, its row in the dashboard), hold cells
    of batch runs open until their output is in (and let the JupyterLab cluster panel
    connect, see ``labcomm.py``). Outside a kernel, nothing."""
    router = _routers.get(client)
    if router is not None:
        return router
    shell = kernel_shell()
    if shell is None:
        return None
    from .labcomm import register_comm_target

    router = _routers[client] = CellRouter(shell, client)
    client.backend.set_output_handler(router)
    client.backend.set_group_hook(lambda: running_cell(shell))
    cell_waiter(shell).follow(client)
    register_comm_target(shell)
    return router
