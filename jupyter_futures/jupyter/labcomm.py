"""The kernel side of the JupyterLab "Cluster" panel: a comm that streams ``status()``.

::

    JupyterLab (labextension/src/handler.ts)       kernel (this module)
    ─────────────────────────────────────────       ──────────────────────────────────────
    comm_open  target "jupyter_futures.dashboard" ─► StatusPublisher.open: keep the comm,
                                                      send the current snapshot at once
    ◄──────────────── comm_msg {"type": "status"} ◄─ publisher thread, alive only while a
                                                      comm is open: every 0.5 s it takes a
                                                      snapshot and sends it to every open
                                                      comm when it differs from the last one
    ◄──────────────── comm_msg {"type": "stream"} ◄─ the same thread, from a task-stream
                                                      buffer (task_stream.py): the bars made
                                                      or grown since the last message (all of
                                                      them, "reset", to a comm just opened)
    comm_msg {"type": "refresh"} ──────────────────► send the current snapshot again
    comm_msg {"type": "logs"} ─────────────────────► reply {"type": "logs", "logs": what
                                                      each worker wrote outside tasks}
    comm_close ────────────────────────────────────► forget the comm; when none is left the
                                                      thread stops

Everything travels over the kernel's own connection, so the panel needs no extra port and
works where only the Jupyter server is reachable (Binder, JupyterHub). The panel is read-only:
nothing it sends can start, stop or change a cluster, and a kernel without a running cluster
answers ``"status": null``.

Comm messages go out through ipykernel's IOPub thread, which is safe to use from the
publisher thread.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any, Literal, Protocol, TypedDict

from ..client import Client
from ..current import current_client_or_none
from .stream_bars import WINDOW, StreamBuffer

__all__ = ["TARGET", "StatusPublisher", "register_comm_target", "unregister_comm_target"]

TARGET = "jupyter_futures.dashboard"
INTERVAL = 0.5

log = logging.getLogger(__name__)


class StatusMessage(TypedDict):
    """Kernel to panel: the latest ``jf.status()``, or ``None`` when no cluster runs."""

    type: Literal["status"]
    status: dict[str, Any] | None


class StreamMessage(TypedDict):
    """Kernel to panel: task-stream bars (``Bar.as_json``; the panel's ``IStreamBar``) made
    or grown since the last message, by id; ``reset``: forget earlier bars first (a new
    comm, or another cluster). ``now`` is the kernel's ``time.monotonic()``, the clock of
    the bars' times."""

    type: Literal["stream"]
    now: float
    window: float
    reset: bool
    bars: list[list[Any]]


class RefreshMessage(TypedDict):
    """Panel to kernel: send the current snapshot now."""

    type: Literal["refresh"]


class LogsRequest(TypedDict):
    """Panel to kernel: send the workers' logs."""

    type: Literal["logs"]


class LogsMessage(TypedDict):
    """Kernel to panel: the end of each worker's log by worker id, or ``None`` when no
    cluster runs."""

    type: Literal["logs"]
    logs: dict[str, str] | None


class CommLike(Protocol):
    """The part of ``comm.base_comm.BaseComm`` this module uses."""

    comm_id: str

    def send(self, data: Any = ...) -> None: ...
    def close(self) -> None: ...
    def on_msg(self, callback: Any) -> None: ...
    def on_close(self, callback: Any) -> None: ...


def cluster_status() -> dict[str, Any] | None:
    """``status()`` of the kernel's cluster as plain JSON, or ``None`` if none is running.

    Never starts a cluster: the panel only looks.
    """
    client = current_client_or_none()
    if not isinstance(client, Client) or client.closed:
        return None
    try:
        snapshot = client.status()
    except Exception:  # the cluster is shutting down under us
        return None
    # Round trip through JSON so that what we compare is exactly what the panel will get.
    result: dict[str, Any] = json.loads(json.dumps(snapshot, default=str))
    return result


def _live_client() -> Client | None:
    client = current_client_or_none()
    return client if isinstance(client, Client) and not client.closed else None


def cluster_logs() -> dict[str, str] | None:
    """``logs()`` of the kernel's cluster with string keys (JSON's), or ``None``."""
    client = current_client_or_none()
    if not isinstance(client, Client) or client.closed:
        return None
    try:
        return {str(worker): text for worker, text in client.logs().items()}
    except Exception:  # the cluster is shutting down under us
        return None


class StatusPublisher:
    """Sends status snapshots to the open panel comms of one kernel.

    Parameters
    ----------
    interval
        Seconds between two looks at the cluster while a comm is open.
    source
        Returns the snapshot to send (defaults to :func:`cluster_status`).
    """

    def __init__(self, interval: float = INTERVAL, source: Any = cluster_status) -> None:
        self.interval = interval
        self._source = source
        self._lock = threading.Lock()
        self._comms: dict[str, CommLike] = {}
        self._last: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream_lock = threading.Lock()
        self._stream_client: Client | None = None
        self._stream: StreamBuffer | None = None

    @property
    def comms(self) -> list[CommLike]:
        with self._lock:
            return list(self._comms.values())

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- comm target ---------------------------------------------------------------------
    def open(self, comm: CommLike, msg: dict[str, Any] | None = None) -> None:
        """The comm target: called by the kernel's comm manager on ``comm_open``."""
        comm.on_msg(self._on_msg)
        comm.on_close(self._on_close)
        with self._lock:
            self._comms[comm.comm_id] = comm
        self._send_to(comm, self._snapshot())
        self.publish_stream(new=comm)
        self._ensure_thread()

    def _on_msg(self, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data", {})
        comm = self._comms.get(msg.get("content", {}).get("comm_id", ""))
        if comm is None or not isinstance(data, dict):
            return
        if data.get("type") == "refresh":
            self._send_to(comm, self._snapshot())
        elif data.get("type") == "logs":
            reply: LogsMessage = {"type": "logs", "logs": cluster_logs()}
            self._send_to(comm, json.dumps(reply))

    def _on_close(self, msg: dict[str, Any]) -> None:
        self.forget(msg.get("content", {}).get("comm_id", ""))

    def forget(self, comm_id: str) -> None:
        """Stop sending to ``comm_id``; the thread ends with the last comm."""
        with self._lock:
            self._comms.pop(comm_id, None)
            last = not self._comms
        if last:
            self.stop()

    def close(self) -> None:
        """Close every open comm and stop the thread."""
        for comm in self.comms:
            try:
                comm.close()
            except Exception:
                log.debug("closing comm %s failed", comm.comm_id, exc_info=True)
        with self._lock:
            self._comms.clear()
        self.stop()

    # -- publishing ------------------------------------------------------------------------
    def _snapshot(self) -> str:
        message: StatusMessage = {"type": "status", "status": self._source()}
        return json.dumps(message, sort_keys=True)

    def _send_to(self, comm: CommLike, payload: str) -> None:
        try:
            comm.send(json.loads(payload))
        except Exception:  # a comm torn down by a kernel restart: forget it
            log.debug("sending to comm %s failed", comm.comm_id, exc_info=True)
            with self._lock:
                self._comms.pop(comm.comm_id, None)

    def publish_once(self) -> bool:
        """Send the snapshot to every open comm if it changed; True if it was sent."""
        payload = self._snapshot()
        if payload == self._last:
            return False
        for comm in self.comms:
            self._send_to(comm, payload)
        self._last = payload
        return True

    def publish_stream(self, new: CommLike | None = None) -> bool:
        """Send the task-stream bars made or grown since the last call to every open comm,
        and every bar in the window to ``new`` (just opened); True if anything was sent."""
        with self._stream_lock:
            client = _live_client()
            reset = client is not self._stream_client
            if reset:  # another cluster (or none): its bars start over, everywhere
                self._stream_client = client
                self._stream = StreamBuffer() if client is not None else None
            buf = self._stream
            if buf is not None and client is not None:
                try:
                    buf.pull(client.backend)
                except Exception:  # the cluster is shutting down under us
                    log.debug("task stream update failed", exc_info=True)
            changed = [b.as_json() for b in buf.changed()] if buf is not None else []
            every = [b.as_json() for b in buf.bars()] if buf is not None and (reset or new) else []
            now = buf.now if buf is not None else 0.0
        sent = False
        for comm in self.comms:
            full = reset or comm is new
            bars = every if full else changed
            if bars or full:
                message: StreamMessage = {
                    "type": "stream",
                    "now": now,
                    "window": WINDOW,
                    "reset": full,
                    "bars": bars,
                }
                self._send_to(comm, json.dumps(message))
                sent = True
        return sent

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publish_once()
                self.publish_stream()
            except Exception:  # never let the panel take the kernel down
                log.warning("cluster panel update failed", exc_info=True)

    def _ensure_thread(self) -> None:
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive():
                if not self._stop.is_set():
                    return
                thread.join(timeout=5)  # stopping: let it finish before starting anew
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="jupyter-futures-labcomm", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it is started again by the next ``open``)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._last = None


def _comm_manager(ipython: Any) -> Any:
    kernel = getattr(ipython, "kernel", None)
    if kernel is None:
        return None  # a terminal IPython: no frontend to talk to
    manager = getattr(kernel, "comm_manager", None)
    if manager is None:
        import comm

        manager = comm.get_comm_manager()
    return manager


def _current_ipython() -> Any:
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def register_comm_target(ipython: Any = None) -> StatusPublisher | None:
    """Let the JupyterLab "Cluster" panel connect to this kernel.

    Called by ``%load_ext jupyter_futures``; calling it again is harmless. Returns the
    publisher, or ``None`` outside a Jupyter kernel (e.g. in a terminal IPython).

    Parameters
    ----------
    ipython
        The running ``InteractiveShell``; by default ``get_ipython()``.
    """
    ipython = ipython if ipython is not None else _current_ipython()
    manager = _comm_manager(ipython) if ipython is not None else None
    if manager is None:
        return None
    existing = getattr(manager, "targets", {}).get(TARGET)
    publisher = getattr(existing, "__self__", None)
    if isinstance(publisher, StatusPublisher):
        return publisher
    publisher = StatusPublisher()
    manager.register_target(TARGET, publisher.open)
    return publisher


def unregister_comm_target(ipython: Any = None) -> None:
    """Undo :func:`register_comm_target`: close open panel comms and stop sending."""
    ipython = ipython if ipython is not None else _current_ipython()
    manager = _comm_manager(ipython) if ipython is not None else None
    if manager is None:
        return
    existing = getattr(manager, "targets", {}).get(TARGET)
    publisher = getattr(existing, "__self__", None)
    if isinstance(publisher, StatusPublisher):
        publisher.close()
        manager.unregister_target(TARGET, existing)
