"""The frame fuzzer's ammunition: hostile frames for one inbox, each with the reason its
receiver must give for dropping it, and raw connections that never become zmq peers.

::

    Corpus (per inbox): real frames recorded on their way to it (already delivered),
                        real frames recorded on their way to another process,
                        its ipc address, the cluster's key (for the keyed kinds only)
       │
       ▼ frame(kind)                                         expected drop reason
    random       random bytes, 0 .. 2 KiB long                  short (<= 48 bytes) / bad signature
    truncated    a real frame cut short                         short / bad signature
    flipped      a real frame with one bit flipped              bad signature
    replayed     a real frame sent again, as recorded            replayed
    reordered    real frames sent again, shuffled               replayed
    wrong key    a well-formed frame signed under another key   bad signature
    redirected   a real frame meant for another process         bad signature
    canary       a pickle that creates a marker if ever loaded,
                 unsigned, signed wrong, or spliced into a
                 real frame's header                            bad signature
    undecodable  signed with the cluster's key, not a pickle    undecodable   (a peer with the
    malformed    signed with the cluster's key, not a message   malformed      key, out of step)

    oversized    over the inbox's MAXMSGSIZE, each on a connection of its own: zmq drops the
                 connection before the receiver sees it (no reason: never counted)
    raw_connection(kind) on the ipc socket itself (AF_UNIX): connect and close, a partial
                 or bogus zmq greeting, garbage, or a stalled greeting held open a while
    send_zmtp1(frames) frames of the kinds above, framed by hand as an unversioned (ZMTP
                 1.0) peer would on a raw AF_UNIX connection: libzmq takes any first byte but
                 0xFF (a versioned greeting) and 0 (an invalid length) as such a peer's, so
                 these reach the receiver as frames like any other (which is why "garbage"
                 starts with a zero byte: it must be refused at once, and is)

No frame of a keyed kind is ever anything but a failed unpickle or a harmless literal: the
fuzzer never makes the receiver load a pickle that could do something.
"""

from __future__ import annotations

import os
import pickle
import random
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from jupyter_futures.local import protocol as P

SHORT = P.SIG_SIZE + P.HEADER.size  # a frame of this many bytes or fewer is "short"
KINDS: tuple[str, ...] = (
    "random",
    "truncated",
    "flipped",
    "replayed",
    "reordered",
    "wrong key",
    "redirected",
    "canary",
    "undecodable",
    "malformed",
)
FIXED_REASON = {
    "flipped": "bad signature",
    "replayed": "replayed",
    "reordered": "replayed",
    "wrong key": "bad signature",
    "redirected": "bad signature",
    "canary": "bad signature",
    "undecodable": "undecodable",
    "malformed": "malformed",
}
CONNECTION_KINDS: tuple[str, ...] = (
    "connect-close",
    "partial greeting",
    "garbage",
    "bogus mechanism",
    "stall",
)
RANDOM_MAX = 2048

# A ZMTP 3.0 greeting: signature (0xFF, 8 padding bytes, 0x7F), version 3.0, the mechanism
# name (20 bytes), as-server, filler: 64 bytes, what a zmq peer sends first.
_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"


def greeting(mechanism: bytes = b"NULL") -> bytes:
    return _SIGNATURE + b"\x03\x00" + mechanism.ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


class Canary:
    """Unpickled, it makes the directory ``path``: the fuzzer counts what exists there."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


# What a peer with the key but out of step could send: not a pickle, or not a message.
_UNDECODABLE = (
    pickle.dumps((P.HEARTBEAT, 1, {}), protocol=5)[:-3],  # truncated
    b"\xff\xfe\xfd",  # no such opcode
    b"\x80\x05",  # a protocol header and nothing else
)
_MALFORMED = tuple(
    pickle.dumps(m, protocol=5) for m in ([P.HEARTBEAT, 1], (), ("heartbeat",), 42, {"kind": 3}, (None, 1))
)


def reason_for_length(frame: bytes) -> str:
    return "short" if len(frame) <= SHORT else "bad signature"


@dataclass
class Corpus:
    """What the fuzzer knows of one inbox (see the module docstring)."""

    address: str
    recorded: list[bytes]  # real frames to this inbox, already delivered
    foreign: list[bytes]  # real frames to another process
    key: bytes  # the cluster's: only for the keyed kinds (undecodable, malformed)
    canaries: Path  # where an unpickled canary would leave its mark

    def __post_init__(self) -> None:
        if not self.recorded or not self.foreign:
            raise ValueError("the fuzzer needs real frames, recorded, to and from elsewhere")
        self._codec = P.Codec(self.key)
        self._wrong = P.Codec(os.urandom(32)).signer(self.address)
        self._canary_n = 0
        self._shuffled: list[bytes] = []

    def frame(self, kind: str, rng: random.Random) -> tuple[bytes, str]:
        """One frame of ``kind`` and the reason its receiver must drop it for."""
        if kind == "random":
            f = rng.randbytes(rng.randrange(RANDOM_MAX + 1))
            return f, reason_for_length(f)
        if kind == "truncated":
            real = rng.choice(self.recorded)
            f = real[: rng.randrange(len(real))]
            return f, reason_for_length(f)
        if kind == "flipped":
            flipped = bytearray(rng.choice(self.recorded))
            bit = rng.randrange(len(flipped) * 8)
            flipped[bit // 8] ^= 1 << (bit % 8)
            return bytes(flipped), FIXED_REASON[kind]
        if kind == "replayed":
            return rng.choice(self.recorded), FIXED_REASON[kind]
        if kind == "reordered":
            if not self._shuffled:  # the whole recording again, in a new order each time
                self._shuffled = list(self.recorded)
                rng.shuffle(self._shuffled)
            return self._shuffled.pop(), FIXED_REASON[kind]
        if kind == "wrong key":
            real = rng.choice(self.recorded)
            return self._wrong.seal(real[SHORT:]), FIXED_REASON[kind]
        if kind == "redirected":
            return rng.choice(self.foreign), FIXED_REASON[kind]
        if kind == "canary":
            return self._canary(rng), FIXED_REASON[kind]
        # A keyed frame comes from a sender of its own: frames of one sender that travel on
        # several connections may arrive out of order, and are then (rightly) "replayed".
        if kind == "undecodable":
            return self._codec.signer(self.address).seal(rng.choice(_UNDECODABLE)), FIXED_REASON[kind]
        if kind == "malformed":
            return self._codec.signer(self.address).seal(rng.choice(_MALFORMED)), FIXED_REASON[kind]
        raise ValueError(f"unknown frame kind {kind!r}")

    def _canary(self, rng: random.Random) -> bytes:
        self._canary_n += 1
        payload = pickle.dumps((P.HEARTBEAT, Canary(str(self.canaries / f"c{self._canary_n}"))), protocol=5)
        how = self._canary_n % 3
        if how == 0:  # unsigned: a MAC of zeros, a header of our own
            return bytes(P.SIG_SIZE) + P.HEADER.pack(rng.randbytes(8), 1) + payload
        if how == 1:  # signed, under a key that is not the cluster's
            return self._wrong.seal(payload)
        real = rng.choice(self.recorded)  # a real frame's MAC and header, our payload
        return real[:SHORT] + payload

    def oversized(self, limit: int) -> bytes:
        """One byte over ``limit`` (the inbox's MAXMSGSIZE), well formed up to its size."""
        return bytes(P.SIG_SIZE) + P.HEADER.pack(b"\x00" * 8, 1) + bytes(limit + 1 - SHORT)


def ipc_path(address: str) -> str:
    if not address.startswith("ipc://"):
        raise ValueError(f"not an ipc address: {address}")
    return address[len("ipc://") :]


def raw_connection(address: str, kind: str, rng: random.Random, held: list[socket.socket]) -> None:
    """One raw connection to the inbox's socket file; a ``stall`` is kept in ``held`` (the
    caller closes those later), every other kind is closed here."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        s.connect(ipc_path(address))
        if kind == "partial greeting":
            s.sendall(greeting()[: rng.randrange(1, 64)])
        elif kind == "garbage":
            s.sendall(b"\x00" + rng.randbytes(rng.randrange(1, 512)))
        elif kind == "bogus mechanism":
            s.sendall(greeting(b"BOGUS"))
        elif kind == "stall":
            s.sendall(_SIGNATURE[:3])
            held.append(s)
            return
        elif kind != "connect-close":
            raise ValueError(f"unknown connection kind {kind!r}")
    except OSError:
        pass  # the peer hung up first: what this probe is for
    s.close()


def _zmtp1(body: bytes, more: bool = False) -> bytes:
    """One ZMTP 1.0 frame: its length (flags included) in one byte, or 0xFF and 8 bytes."""
    n = len(body) + 1
    head = bytes([n]) if n < 255 else b"\xff" + struct.pack(">Q", n)
    return head + (b"\x01" if more else b"\x00") + body


def send_zmtp1(address: str, frames: list[bytes]) -> bool:
    """``frames`` as an unversioned zmq peer sends them, after its (empty) identity, on a
    raw connection that is closed at once; False if the connection failed."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(5.0)
        s.connect(ipc_path(address))
        s.sendall(_zmtp1(b"") + b"".join(_zmtp1(f) for f in frames))
        return True
    except OSError:
        return False
    finally:
        s.close()
