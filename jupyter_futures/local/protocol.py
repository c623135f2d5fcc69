"""The messages the kernel and the workers exchange, and how they are signed.

A message is a tuple ``(kind, *fields)`` pickled with protocol 5 and sent as one zmq
frame, ``blake2b(payload, key=key) + payload`` (one frame because each send costs a
wake-up). Keyed BLAKE2b is a MAC by design (no HMAC construction needed) and twice as fast
as HMAC-SHA256 here. The signature is checked before the payload is unpickled, so a peer
without the cluster key cannot make us unpickle anything.

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

import hmac
import pickle
from hashlib import blake2b
from typing import Any

# The records the messages carry belong to the core; they are named here too (re-exported),
# as the wire's vocabulary, so both ends of a pipe import them from one place.
from ..backend import DISPLAY_STREAM as DISPLAY_STREAM  # OUTPUT's rich stream: a JSON DisplayBundle
from ..backend import DisplayBundle as DisplayBundle
from ..core.specs import DRIVER as DRIVER
from ..core.specs import Outcome as Outcome
from ..core.specs import Requirements as Requirements
from ..core.specs import TaskKind as TaskKind
from ..core.specs import TaskMsg as TaskMsg
from ..core.specs import TaskSpec as TaskSpec
from ..core.specs import WorkerStats as WorkerStats
from ..errors import BadMessageError as SignatureError

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

KIND_NAMES = {  # DRIVER, imported above, is a process id, not a kind
    v: k for k, v in globals().items() if isinstance(v, int) and k.isupper() and k != "DRIVER"
}


SIG_SIZE = 32


class Codec:
    """Signs and checks messages with the cluster's key (keyed BLAKE2b, 32 bytes)."""

    __slots__ = ("_key", "dropped")

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("cluster key must be 16 to 64 bytes")
        self._key = key
        self.dropped = 0

    def encode(self, msg: tuple[Any, ...]) -> bytes:
        """One frame: the 32-byte signature, then the pickled message."""
        payload = pickle.dumps(msg, protocol=5)
        return blake2b(payload, key=self._key, digest_size=SIG_SIZE).digest() + payload

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """Check the signature, then unpickle. Raises SignatureError on any mismatch."""
        if len(data) <= SIG_SIZE:
            self.dropped += 1
            raise SignatureError(f"message too short ({len(data)} bytes)")
        sig, payload = data[:SIG_SIZE], data[SIG_SIZE:]
        expected = blake2b(payload, key=self._key, digest_size=SIG_SIZE).digest()
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
