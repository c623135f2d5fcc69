"""zmq sockets for the control plane: one inbox per process, one outbox per peer.

Every process binds a PULL socket (its inbox) at ``ipc://<dir>/<name>`` and connects one
PUSH socket per peer it talks to. Messages between two processes therefore travel on one
ordered pipe, and a socket is only ever used for one direction, so any thread may send as
long as it holds the outbox's lock (zmq sockets are not thread-safe by themselves).

The directory is created 0700 so only this user can connect; TCP is never used locally.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import zmq

from .protocol import Codec, SignatureError

log = logging.getLogger("jupyter_futures")


def make_socket_dir(cluster_id: str) -> Path:
    """A fresh private directory for the cluster's ipc sockets."""
    path = Path(tempfile.gettempdir()) / f"jf-{cluster_id}"
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    return path


def ipc_address(directory: Path, name: str) -> str:
    return f"ipc://{directory / name}"


RECONNECT_FIRST_MS = 2  # zmq's default, 100 ms, was most of a new worker's first task
RECONNECT_MAX_MS = 10  # a worker that is slow to start costs a failed connect per 10 ms


def _configure(sock: zmq.Socket[Any]) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    # The kernel connects to a worker's inbox as it starts the worker, before the worker
    # has bound it: zmq tries again after RECONNECT_IVL, doubling up to the maximum.
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_FIRST_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)


class Outbox:
    """A PUSH socket to one peer, safe to use from any thread."""

    __slots__ = ("_codec", "_lock", "_sock", "closed")

    def __init__(self, ctx: zmq.Context[Any], address: str, codec: Codec) -> None:
        self._sock = ctx.socket(zmq.PUSH)
        _configure(self._sock)
        self._sock.connect(address)
        self._lock = threading.Lock()
        self._codec = codec
        self.closed = False

    def send(self, msg: tuple[Any, ...]) -> bool:
        """Send without blocking; False when the peer is gone or the box is closed."""
        data = self._codec.encode(msg)
        with self._lock:
            if self.closed:
                return False
            try:
                self._sock.send(data, flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                return False
        return True

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self._sock.close(linger=0)


class Inbox:
    """The PULL socket a process binds; read by its I/O thread only."""

    def __init__(self, ctx: zmq.Context[Any], address: str, codec: Codec) -> None:
        self.sock = ctx.socket(zmq.PULL)
        _configure(self.sock)
        self.sock.bind(address)
        self.address = address
        self._codec = codec

    def drain(self, limit: int = 1000) -> list[tuple[Any, ...]]:
        """Every message waiting now (up to ``limit``), signatures checked.

        Messages that fail the check are dropped and counted on the codec.
        """
        out: list[tuple[Any, ...]] = []
        sock, codec = self.sock, self._codec
        for _ in range(limit):
            try:
                data = sock.recv(flags=zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            try:
                out.append(codec.decode(data))
            except SignatureError as exc:
                log.warning("dropped a control message: %s", exc)
                continue
        return out

    def close(self) -> None:
        self.sock.close(linger=0)
        if self.address.startswith("ipc://"):
            try:
                os.unlink(self.address[len("ipc://") :])
            except FileNotFoundError:
                pass
