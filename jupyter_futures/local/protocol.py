"""The messages the kernel and the workers exchange, and how they are signed.

A message is a tuple ``(kind, *fields)`` pickled with protocol 5 and sent as one zmq
frame, ``hmac_sha256(key, payload) + payload`` (one frame because each send costs a
wake-up). The signature is checked before the payload is unpickled, so a peer without the
cluster key cannot make us unpickle anything.

::

    kernel (scheduler)                                    worker
       RUN [TaskMsg, ...]              ───────────────►    runs them (FIFO, slots)
       CREATE_ACTOR TaskMsg / ACTOR_CALL TaskMsg ──────►   actor thread
       CANCEL tid / KILL_ACTOR aid / FREE [names]  ────►
       RESOLVED [(tid, Outcome)]       ───────────────►    wakes futures held by tasks
       SYS_PATH [entries]              ───────────────►    the kernel's sys.path changed
       ◄──────────────── HELLO wid, pid, capacity
       ◄──────────────── DONE [(tid, attempt, Outcome)]    batched when tasks are short
       ◄──────────────── HEARTBEAT wid, stats
       ◄──────────────── SUBMIT TaskSpec / PUT / ACQUIRE / RELEASE / BLOCKED / UNBLOCKED
       ◄──────────────── CANCEL / KILL_ACTOR / MISSING tid (a copy vanished before it was read)
       ◄──────────────── OUTPUT tid, stream, text   (stream "display": a JSON DisplayBundle)
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

# Message kinds (small ints keep the hot messages short).
HELLO = 1
DONE = 2
HEARTBEAT = 3
SUBMIT = 4
ACQUIRE = 5
RELEASE = 6
BLOCKED = 7
UNBLOCKED = 8
OUTPUT = 9
RUN = 10
CREATE_ACTOR = 11
ACTOR_CALL = 12
CANCEL = 13
KILL_ACTOR = 14
FREE = 15
RESOLVED = 16
SHUTDOWN = 17
PUT = 18
MISSING = 19
SYS_PATH = 20

KIND_NAMES = {v: k for k, v in globals().items() if isinstance(v, int) and k.isupper()}

DRIVER = 0
"""The process id of the kernel-side client; workers are 1, 2, ..."""

TaskKind = Literal["task", "put", "actor", "call"]


@dataclass(slots=True)
class Outcome:
    """How a future ended: a value (inline bytes or a shared-memory object) or an error.

    ``status`` is ``"ok"``, ``"error"`` (a remote exception, pickled in ``data`` with its
    traceback in ``text``) or ``"died"`` (a framework error: ``text`` is the message and
    ``error_type`` names the class from :mod:`jupyter_futures.errors`).
    """

    status: Literal["ok", "error", "cancelled"]
    data: bytes | None = None  # inline pickle (value or exception)
    segment: str | None = None  # shared-memory object name when not inline
    nbytes: int = 0
    contained: tuple[int, ...] = ()  # futures referenced from inside the value
    text: str = ""  # remote traceback, or the framework error message
    error_type: str = ""  # remote type name, or an errors.py class name
    where: int | None = None  # worker that produced it
    duration: float = 0.0
    code: int | None = None  # exit code, for a worker death


@dataclass(slots=True)
class Requirements:
    """Resources a future needs free on its worker while it runs."""

    cpu: float = 0.0
    ram: float = 0.0
    gpu: float = 0.0
    custom: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        out = {"cpu": self.cpu, "ram": self.ram, "gpu": self.gpu}
        out.update(self.custom)
        return {k: v for k, v in out.items() if v}


@dataclass(slots=True)
class TaskSpec:
    """Everything needed to run (or re-run, for lineage) one future."""

    tid: int
    kind: TaskKind
    fn_hash: bytes = b""
    fn_bytes: bytes | None = None
    args: bytes = b""  # pickled (args, kwargs) with futures as persistent ids
    deps: tuple[int, ...] = ()
    requirements: Requirements = field(default_factory=Requirements)
    locality: tuple[int, int] | None = None  # (worker, object id)
    max_retries: int = 0
    allow_reconstruction: bool = True
    actor: int | None = None  # actor id, for "actor" and "call"
    method: str = ""
    max_restarts: int = 0
    name: str = ""  # shown in status and widgets
    owner: int = DRIVER  # process that submitted it


@dataclass(slots=True)
class TaskMsg:
    """A task as sent to a worker: the spec plus where each input's value lives."""

    tid: int
    attempt: int
    kind: TaskKind
    fn_hash: bytes
    fn_bytes: bytes | None
    args: bytes
    inputs: dict[int, Outcome]
    actor: int | None = None
    method: str = ""
    name: str = ""


class WorkerStats(TypedDict):
    """What a worker's heartbeat reports."""

    pid: int
    rss: int
    cpu_percent: float
    store_used: int
    store_capacity: int
    spilled: int
    objects: int
    running: list[int]


DISPLAY_STREAM = "display"
"""The OUTPUT stream of rich output (``display()`` in a task): its text is a JSON DisplayBundle."""


class DisplayBundle(TypedDict):
    """A ``display()`` made in a task, as a Jupyter ``display_data`` message carries it.

    Binary mime types (``image/png``) are base64 text, as in the Jupyter protocol."""

    data: dict[str, Any]
    metadata: dict[str, Any]
    transient: dict[str, Any]
    update: bool


SIG_SIZE = 32


class SignatureError(ValueError):
    """A message whose signature does not match; it is dropped unread."""


class Codec:
    """Signs and checks messages with the cluster's key (HMAC-SHA256)."""

    __slots__ = ("_key", "dropped")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("cluster key must be at least 16 bytes")
        self._key = key
        self.dropped = 0

    def encode(self, msg: tuple[Any, ...]) -> bytes:
        """One frame: the 32-byte signature, then the pickled message."""
        payload = pickle.dumps(msg, protocol=5)
        return hmac.new(self._key, payload, hashlib.sha256).digest() + payload

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """Check the signature, then unpickle. Raises SignatureError on any mismatch."""
        if len(data) <= SIG_SIZE:
            self.dropped += 1
            raise SignatureError(f"message too short ({len(data)} bytes)")
        sig, payload = data[:SIG_SIZE], data[SIG_SIZE:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(sig, expected):
            self.dropped += 1
            raise SignatureError("bad signature")
        try:
            msg = pickle.loads(payload)
        except Exception as exc:  # any unpickling failure makes a bad message
            self.dropped += 1
            raise SignatureError(f"undecodable message: {exc!r}") from None
        if not isinstance(msg, tuple) or not msg or not isinstance(msg[0], int):
            self.dropped += 1
            raise SignatureError("malformed message")
        return msg
