"""The messages the kernel and the workers exchange, and how they are signed.

A message is a tuple ``(kind, *fields)`` pickled with protocol 5 and sent as one zmq
frame, ``MAC | sender id | sequence number | payload`` (one frame because each send costs
a wake-up; see :class:`Codec`). Keyed BLAKE2b is a MAC by design (no HMAC construction
needed) and twice as fast as HMAC-SHA256 here. The MAC and the sequence number are checked
before the payload is unpickled, so a peer without the cluster key cannot make us unpickle
anything, and a frame recorded and sent again (by a process of the same user that can
reach the socket) is dropped.

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
import logging
import pickle
import secrets
import struct
import time
from hashlib import blake2b
from typing import Any

# The records the messages carry belong to the core; they are named here too (re-exported),
# as the wire's vocabulary, so both ends of a pipe import them from one place.
from ..backend import DISPLAY_STREAM as DISPLAY_STREAM  # OUTPUT's rich stream: a JSON DisplayBundle
from ..backend import DisplayBundle as DisplayBundle
from ..core.specs import DRIVER as DRIVER
from ..core.specs import NO_REQUIREMENTS as NO_REQUIREMENTS
from ..core.specs import Outcome as Outcome
from ..core.specs import Requirements as Requirements
from ..core.specs import TaskKind as TaskKind
from ..core.specs import TaskMsg as TaskMsg
from ..core.specs import TaskSpec as TaskSpec
from ..core.specs import WorkerStats as WorkerStats
from ..errors import BadMessageError as SignatureError
from ..errors import MessageTooLargeError

log = logging.getLogger("jupyter_futures")

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
HEADER = struct.Struct("<8sQ")  # the sender's id, its sequence number
MAX_FRAME = 256 * 2**20
"""The largest frame a process accepts (zmq drops the connection of a peer that sends
more); the sender refuses to send one, with :class:`~jupyter_futures.errors.MessageTooLargeError`.
Values travel in the object store, so a real message is far smaller: a batch of 64 tasks
with inline arguments is a few MiB."""
LOG_EVERY = 60.0  # seconds between two warnings about dropped frames (the first is logged at once)


def _destination_key(key: bytes, address: str) -> bytes:
    """The key a frame to ``address`` is signed with: a frame for one process does not
    verify at another (a frame captured on its way to one worker cannot be replayed to a
    new one, which has seen no sequence numbers yet)."""
    return blake2b(address.encode(), key=key, digest_size=32).digest()


class Codec:
    """The cluster's key: makes the :class:`Signer` of each outbox and the :class:`Verifier`
    of each inbox.

    ::

        frame = MAC(header + payload) | header: sender id (8 random bytes), seq (u64) | payload

    The MAC is keyed BLAKE2b under a key derived for the destination's address. A sender
    numbers its frames 1, 2, 3 ... on its one ordered pipe; a receiver keeps the last number
    of each sender and rejects any that does not increase: a replayed, reordered or
    redirected frame is dropped before anything is unpickled."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("cluster key must be 16 to 64 bytes")
        self._key = key

    def signer(self, address: str) -> Signer:
        return Signer(_destination_key(self._key, address), address)

    def verifier(self, address: str) -> Verifier:
        return Verifier(_destination_key(self._key, address))


class Signer:
    """One sender's end of one pipe: pickles, numbers and signs its messages.

    ``encode`` pickles (any thread, no lock); ``seal`` numbers and signs, and must be
    called in the order the frames are sent (the outbox's lock), so numbers increase on
    the wire."""

    __slots__ = ("_header", "_key", "_seq", "address", "sender")

    def __init__(self, key: bytes, address: str) -> None:
        self._key = key
        self.sender = secrets.token_bytes(8)
        self._seq = 0
        self.address = address

    def encode(self, msg: tuple[Any, ...]) -> bytes:
        payload = pickle.dumps(msg, protocol=5)
        size = len(payload) + SIG_SIZE + HEADER.size
        if size > MAX_FRAME:
            kind = KIND_NAMES.get(msg[0], msg[0]) if msg else "empty"
            raise MessageTooLargeError(
                f"a {kind} message of {size / 2**20:.0f} MiB is over the {MAX_FRAME / 2**20:.0f} MiB "
                "limit of a control message; pass large values as arguments or with jf.put(), "
                "which go through the object store"
            )
        return payload

    def seal(self, payload: bytes) -> bytes:
        self._seq += 1
        body = HEADER.pack(self.sender, self._seq) + payload
        return blake2b(body, key=self._key, digest_size=SIG_SIZE).digest() + body


class Verifier:
    """An inbox's check of every frame: the MAC, then the sender's sequence number, then
    the unpickling; counts what it drops, by reason, and logs it with a throttle."""

    __slots__ = ("_key", "_last", "_logged_at", "_unlogged", "dropped", "dropped_by", "received")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._last: dict[bytes, int] = {}  # sender id -> the last sequence number accepted
        self.dropped = 0
        self.dropped_by: dict[str, int] = {}
        self.received = 0
        self._logged_at = -LOG_EVERY
        self._unlogged = 0

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """Check a frame, then unpickle it. Raises SignatureError on any mismatch."""
        self.received += 1
        if len(data) <= SIG_SIZE + HEADER.size:
            raise self._drop("short", f"message too short ({len(data)} bytes)")
        body = memoryview(data)[SIG_SIZE:]
        expected = blake2b(body, key=self._key, digest_size=SIG_SIZE).digest()
        if not hmac.compare_digest(data[:SIG_SIZE], expected):
            raise self._drop("bad signature", "bad signature")
        sender, seq = HEADER.unpack_from(body)
        if seq <= self._last.get(sender, 0):
            raise self._drop("replayed", f"replayed or reordered message (sequence {seq})")
        self._last[sender] = seq
        try:
            msg = pickle.loads(body[HEADER.size :])
        except Exception as exc:  # a signed frame that does not unpickle: a bug, not an attack
            raise self._drop("undecodable", f"undecodable message: {exc!r}") from None
        if not isinstance(msg, tuple) or not msg or not isinstance(msg[0], int):
            raise self._drop("malformed", "malformed message")
        return msg

    def reject(self, msg: tuple[Any, ...], exc: BaseException) -> None:
        """A signed message whose fields its handler could not take (a peer out of step:
        another version, a bug): dropped as malformed, counted and logged like the rest."""
        kind = KIND_NAMES.get(msg[0], msg[0])
        self._drop("malformed", f"a {kind} message its handler could not take: {exc!r}", exc)

    def _drop(self, reason: str, text: str, exc: BaseException | None = None) -> SignatureError:
        """Count a dropped frame; log the first at once, then one summary per LOG_EVERY
        seconds (a flood of bad frames must not flood the log, or a notebook's cells)."""
        self.dropped += 1
        self.dropped_by[reason] = self.dropped_by.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            more = f" ({self._unlogged} more dropped since the last warning)" if self._unlogged else ""
            log.warning("dropped a control message: %s%s", text, more, exc_info=exc)
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1
        return SignatureError(text)
