"""zmq sockets for the control plane: one inbox per process, one outbox per peer.

Every process binds a PULL socket (its inbox) at ``ipc://<dir>/<name>`` and connects one
PUSH socket per peer it talks to. Messages between two processes therefore travel on one
ordered pipe, and a socket is only ever used for one direction, so any thread may send as
long as it holds the outbox's lock (zmq sockets are not thread-safe by themselves).

The directory is created 0700 so only this user can connect; TCP is never used locally.
Every frame is signed for its destination and numbered by its sender (protocol.Codec):
another process of the same user, which can connect, can neither forge nor replay one.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import zmq

from .protocol import MAX_FRAME, Codec, SignatureError

INBOX_HWM = 100_000  # frames queued per peer in an inbox before they wait in the peer


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
    """A PUSH socket to one peer, safe to use from any thread.

    Messages are pickled in the caller's thread, then numbered, signed and sent under the
    lock, so their sequence numbers increase in the order they reach the pipe."""

    __slots__ = ("_lock", "_signer", "_sock", "closed")

    def __init__(self, ctx: zmq.Context[Any], address: str, codec: Codec) -> None:
        self._sock = ctx.socket(zmq.PUSH)
        _configure(self._sock)
        self._sock.connect(address)
        self._lock = threading.Lock()
        self._signer = codec.signer(address)
        self.closed = False

    def send(self, msg: tuple[Any, ...]) -> bool:
        """Send without blocking; False when the peer is gone or the box is closed.

        Raises MessageTooLargeError for a message over ``protocol.MAX_FRAME``."""
        payload = self._signer.encode(msg)
        with self._lock:
            if self.closed:
                return False
            try:
                self._sock.send(self._signer.seal(payload), flags=zmq.NOBLOCK)
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
        # A peer that sends a larger frame is disconnected by zmq before we read it, and
        # frames wait in their sender's queue, not ours, past RCVHWM per peer.
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        self.sock.setsockopt(zmq.RCVHWM, INBOX_HWM)
        self.sock.bind(address)
        self.address = address
        self.verifier = codec.verifier(address)

    def drain(self, limit: int = 1000) -> list[tuple[Any, ...]]:
        """Every message waiting now (up to ``limit``), signatures checked.

        Messages that fail the check are dropped, counted and logged (with a throttle) by
        the inbox's verifier.
        """
        out: list[tuple[Any, ...]] = []
        sock, verifier = self.sock, self.verifier
        for _ in range(limit):
            try:
                data = sock.recv(flags=zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            try:
                out.append(verifier.decode(data))
            except SignatureError:
                continue
        return out

    @property
    def dropped(self) -> int:
        """How many frames this inbox dropped (see ``verifier.dropped_by`` for why)."""
        return self.verifier.dropped

    def close(self) -> None:
        self.sock.close(linger=0)
        if self.address.startswith("ipc://"):
            try:
                os.unlink(self.address[len("ipc://") :])
            except FileNotFoundError:
                pass
