"""Message signing and the message data types."""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
from hashlib import blake2b
from pathlib import Path

import pytest
import zmq

from jupyter_futures.errors import MessageTooLargeError
from jupyter_futures.local import protocol as P
from jupyter_futures.local.protocol import Codec, Outcome, Requirements, SignatureError, TaskMsg, TaskSpec
from jupyter_futures.local.transport import RECONNECT_FIRST_MS, RECONNECT_MAX_MS, Inbox, Outbox, ipc_address

KEY = b"k" * 32
ADDRESS = "ipc:///tmp/jf-0123456789/w1"


def pair(key: bytes = KEY, address: str = ADDRESS) -> tuple[P.Signer, P.Verifier]:
    """One sender's end of a pipe, and the receiving inbox's check."""
    return Codec(key).signer(address), Codec(key).verifier(address)


def frame(signer: P.Signer, msg: tuple[object, ...]) -> bytes:
    return signer.seal(signer.encode(msg))


def signed(payload: bytes, key: bytes = KEY, seq: int = 1, sender: bytes = b"s" * 8) -> bytes:
    """A frame made by hand, as the protocol defines it."""
    body = P.HEADER.pack(sender, seq) + payload
    dkey = blake2b(ADDRESS.encode(), key=key, digest_size=32).digest()
    return blake2b(body, key=dkey, digest_size=32).digest() + body


def test_a_frame_is_the_keyed_blake2b_of_header_and_payload_under_the_destinations_key():
    signer, verifier = pair()
    data = frame(signer, (P.SHUTDOWN,))
    sender, seq = P.HEADER.unpack_from(data, 32)
    assert (sender, seq) == (signer.sender, 1)
    assert data == signed(data[32 + P.HEADER.size :], seq=1, sender=sender)
    with pytest.raises(SignatureError, match="bad signature"):  # an HMAC-SHA256 frame is not ours
        verifier.decode(hmac.new(KEY, data[32:], hashlib.sha256).digest() + data[32:])


def test_a_frame_for_one_process_does_not_verify_at_another():
    signer, _ = pair()
    _, other = pair(address="ipc:///tmp/jf-0123456789/w2")
    with pytest.raises(SignatureError, match="bad signature"):
        other.decode(frame(signer, (P.RUN, [])))


def test_a_replayed_or_reordered_frame_is_dropped():
    signer, verifier = pair()
    first, second, third = (frame(signer, (P.HEARTBEAT, 1, {"n": i})) for i in range(3))
    assert verifier.decode(first) == (P.HEARTBEAT, 1, {"n": 0})
    with pytest.raises(SignatureError, match="replayed"):
        verifier.decode(first)
    assert verifier.decode(third) == (P.HEARTBEAT, 1, {"n": 2})  # a gap is allowed
    with pytest.raises(SignatureError, match="replayed"):
        verifier.decode(second)  # but nothing older than what was accepted
    assert verifier.dropped_by == {"replayed": 2}


def test_each_sender_is_numbered_on_its_own():
    (a, verifier), (b, _) = pair(), pair()
    frames = [frame(a, (P.HEARTBEAT, 1, {})), frame(b, (P.HEARTBEAT, 2, {}))]
    assert a.sender != b.sender
    assert [verifier.decode(f)[1] for f in reversed(frames)] == [2, 1]


def test_a_message_over_the_frame_limit_is_refused_by_its_sender(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(P, "MAX_FRAME", 4096)
    signer, _ = pair()
    with pytest.raises(MessageTooLargeError, match=r"OUTPUT message .* limit"):
        signer.encode((P.OUTPUT, 1, 2, "stdout", "x" * 5000))
    assert isinstance(MessageTooLargeError("x"), SignatureError)


def test_dropped_frames_are_logged_once_then_summarised(caplog: pytest.LogCaptureFixture):
    _, verifier = pair()
    with caplog.at_level(logging.WARNING, logger="jupyter_futures"):
        for _ in range(1000):
            with pytest.raises(SignatureError):
                verifier.decode(b"x" * 100)
    assert verifier.dropped == verifier.received == 1000
    assert len(caplog.records) == 1 and "bad signature" in caplog.records[0].getMessage()


def test_records_pickle_as_their_fields_in_order():
    out = Outcome(status="error", data=b"d", text="t", error_type="E", where=2, duration=1.5, code=-9)
    spec = TaskSpec(
        tid=1, kind="call", actor=4, method="m", requirements=Requirements(gpu=1, custom={"a": 2})
    )
    for record in (out, spec, spec.requirements):
        payload = pickle.dumps(record, protocol=5)
        assert pickle.loads(payload) == record
        assert b"status" not in payload and b"requirements" not in payload  # no field names sent


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def test_round_trip_of_a_run_message():
    signer, verifier = pair()
    msg = TaskMsg(
        tid=3,
        attempt=1,
        kind="task",
        fn_hash=b"h",
        fn_bytes=None,
        args=b"a",
        inputs={1: Outcome(status="ok", segment="jf_x_w1_1", nbytes=10, where=1)},
    )
    data = frame(signer, (P.RUN, [msg]))
    assert isinstance(data, bytes) and len(data) > 32
    assert verifier.decode(data) == (P.RUN, [msg])
    assert verifier.dropped == 0


def test_round_trip_of_a_task_spec():
    signer, verifier = pair()
    spec = TaskSpec(
        tid=5,
        kind="task",
        deps=(1, 2),
        requirements=Requirements(cpu=2, custom={"x": 1.0}),
        locality=(1, 2),
        max_retries=3,
        name="f",
    )
    assert verifier.decode(frame(signer, (P.SUBMIT, spec))) == (P.SUBMIT, spec)


def test_peers_with_the_same_key_understand_each_other():
    signer, verifier = pair()
    assert verifier.decode(frame(signer, (P.HEARTBEAT, 1, {}))) == (P.HEARTBEAT, 1, {})


@pytest.mark.parametrize("index", [0, 10, -1])
def test_flipped_bit_in_the_payload_is_rejected(index: int):
    signer, verifier = pair()
    data = frame(signer, (P.DONE, [(1, 1, Outcome(status="ok"))]))
    sig, payload = data[:32], data[32:]
    with pytest.raises(SignatureError, match="bad signature"):
        verifier.decode(sig + flip(payload, index))
    assert verifier.dropped == 1


@pytest.mark.parametrize("index", [0, 31])
def test_flipped_bit_in_the_signature_is_rejected(index: int):
    signer, verifier = pair()
    data = frame(signer, (P.HELLO, 1, 1234, {"cpu": 1.0}))
    sig, payload = data[:32], data[32:]
    with pytest.raises(SignatureError):
        verifier.decode(flip(sig, index) + payload)
    assert verifier.dropped == 1


def test_message_signed_with_another_key_is_rejected():
    _, verifier = pair()
    with pytest.raises(SignatureError):
        verifier.decode(frame(Codec(b"o" * 32).signer(ADDRESS), (P.SHUTDOWN,)))
    assert verifier.dropped == 1


def test_truncated_signature_is_rejected():
    signer, verifier = pair()
    data = frame(signer, (P.SHUTDOWN,))
    with pytest.raises(SignatureError):
        verifier.decode(data[:16] + data[32:])


@pytest.mark.parametrize("size", [0, 1, 32, 48])
def test_message_too_short_to_hold_a_signature_and_header_is_rejected(size: int):
    signer, verifier = pair()
    data = frame(signer, (P.SHUTDOWN,))[:size]
    with pytest.raises(SignatureError, match="too short"):
        verifier.decode(data)
    assert verifier.dropped == 1


@pytest.mark.parametrize(
    "msg", [["list", 1], "text", (), ("kind", 1), None], ids=["list", "str", "empty", "str-kind", "none"]
)
def test_signed_payload_that_is_not_a_message_is_rejected(msg: object):
    _, verifier = pair()
    with pytest.raises(SignatureError, match="malformed"):
        verifier.decode(signed(pickle.dumps(msg, protocol=5)))
    assert verifier.dropped == 1


def test_signed_payload_that_does_not_unpickle_is_rejected():
    _, verifier = pair()
    with pytest.raises(SignatureError, match="undecodable"):
        verifier.decode(signed(b"\x80\x05not a pickle"))
    assert verifier.dropped == 1


def test_dropped_counts_every_rejection():
    signer, verifier = pair()
    good = frame(signer, (P.SHUTDOWN,))
    for data in (good[:32], good[:32] + b"x" * 20, signed(pickle.dumps([1]), seq=5)):
        with pytest.raises(SignatureError):
            verifier.decode(data)
    verifier.decode(good)
    assert verifier.dropped == 3
    assert verifier.dropped_by == {"short": 1, "bad signature": 1, "malformed": 1}


@pytest.mark.parametrize("size", [15, 65])
def test_keys_blake2b_cannot_take_are_refused(size: int):
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        Codec(b"k" * size)
    Codec(b"k" * 16), Codec(b"k" * 64)


def test_message_kinds_are_distinct_and_named():
    kinds = [
        "HELLO",
        "DONE",
        "HEARTBEAT",
        "SUBMIT",
        "ACQUIRE",
        "RELEASE",
        "BLOCKED",
        "UNBLOCKED",
        "OUTPUT",
        "RUN",
        "CREATE_ACTOR",
        "ACTOR_CALL",
        "CANCEL",
        "KILL_ACTOR",
        "FREE",
        "RESOLVED",
        "SHUTDOWN",
        "PUT",
        "MISSING",
    ]
    values = [getattr(P, k) for k in kinds]
    assert len(set(values)) == len(values)
    assert P.DRIVER not in values
    assert all(P.KIND_NAMES[v] == k for k, v in zip(kinds, values))


def test_requirements_as_dict_drops_zeros():
    assert Requirements().as_dict() == {}
    assert Requirements(cpu=2, gpu=0).as_dict() == {"cpu": 2}
    req = Requirements(ram=2.0**30, custom={"licence": 1.0, "unused": 0.0})
    assert req.as_dict() == {"ram": 2.0**30, "licence": 1.0}


def test_an_outbox_connected_before_its_peer_binds_delivers_once_it_does(tmp_path: Path) -> None:
    """The kernel connects to a worker's inbox as it starts the worker, before the worker
    binds it: the first message must follow as soon as the inbox exists, not at zmq's
    default reconnect interval (100 ms, once most of a new worker's first task)."""
    ctx = zmq.Context()
    codec = Codec(KEY)
    address = ipc_address(tmp_path, "inbox")
    box = Outbox(ctx, address, codec)
    inbox = None
    try:
        assert box._sock.getsockopt(zmq.RECONNECT_IVL) == RECONNECT_FIRST_MS
        assert box._sock.getsockopt(zmq.RECONNECT_IVL_MAX) == RECONNECT_MAX_MS <= 10
        assert box.send((P.SHUTDOWN,))  # queued while nobody listens
        inbox = Inbox(ctx, address, codec)
        poller = zmq.Poller()
        poller.register(inbox.sock, zmq.POLLIN)
        assert poller.poll(5000), "the queued message never arrived"
        assert inbox.drain() == [(P.SHUTDOWN,)]
    finally:
        box.close()
        if inbox is not None:
            inbox.close()
        ctx.term()
