"""Message signing and the message data types."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from hashlib import blake2b
from pathlib import Path

import pytest
import zmq

from jupyter_futures.local import protocol as P
from jupyter_futures.local.protocol import Codec, Outcome, Requirements, SignatureError, TaskMsg, TaskSpec
from jupyter_futures.local.transport import RECONNECT_FIRST_MS, RECONNECT_MAX_MS, Inbox, Outbox, ipc_address

KEY = b"k" * 32


def signed(payload: bytes, key: bytes = KEY) -> bytes:
    return blake2b(payload, key=key, digest_size=32).digest() + payload


def test_a_frame_is_the_keyed_blake2b_of_its_payload_then_the_payload():
    data = Codec(KEY).encode((P.SHUTDOWN,))
    assert data == signed(data[32:])
    with pytest.raises(SignatureError, match="bad signature"):  # an HMAC-SHA256 frame is not ours
        Codec(KEY).decode(hmac.new(KEY, data[32:], hashlib.sha256).digest() + data[32:])


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
    codec = Codec(KEY)
    msg = TaskMsg(
        tid=3,
        attempt=1,
        kind="task",
        fn_hash=b"h",
        fn_bytes=None,
        args=b"a",
        inputs={1: Outcome(status="ok", segment="jf_x_w1_1", nbytes=10, where=1)},
    )
    data = codec.encode((P.RUN, [msg]))
    assert isinstance(data, bytes) and len(data) > 32
    assert codec.decode(data) == (P.RUN, [msg])
    assert codec.dropped == 0


def test_round_trip_of_a_task_spec():
    codec = Codec(KEY)
    spec = TaskSpec(
        tid=5,
        kind="task",
        deps=(1, 2),
        requirements=Requirements(cpu=2, custom={"x": 1.0}),
        locality=(1, 2),
        max_retries=3,
        name="f",
    )
    assert codec.decode(codec.encode((P.SUBMIT, spec))) == (P.SUBMIT, spec)


def test_peers_with_the_same_key_understand_each_other():
    assert Codec(KEY).decode(Codec(KEY).encode((P.HEARTBEAT, 1, {}))) == (P.HEARTBEAT, 1, {})


@pytest.mark.parametrize("index", [0, 10, -1])
def test_flipped_bit_in_the_payload_is_rejected(index: int):
    codec = Codec(KEY)
    data = codec.encode((P.DONE, [(1, 1, Outcome(status="ok"))]))
    sig, payload = data[:32], data[32:]
    with pytest.raises(SignatureError, match="bad signature"):
        codec.decode(sig + flip(payload, index))
    assert codec.dropped == 1


@pytest.mark.parametrize("index", [0, 31])
def test_flipped_bit_in_the_signature_is_rejected(index: int):
    codec = Codec(KEY)
    data = codec.encode((P.HELLO, 1, 1234, {"cpu": 1.0}))
    sig, payload = data[:32], data[32:]
    with pytest.raises(SignatureError):
        codec.decode(flip(sig, index) + payload)
    assert codec.dropped == 1


def test_message_signed_with_another_key_is_rejected():
    codec = Codec(KEY)
    with pytest.raises(SignatureError):
        codec.decode(Codec(b"o" * 32).encode((P.SHUTDOWN,)))
    assert codec.dropped == 1


def test_truncated_signature_is_rejected():
    codec = Codec(KEY)
    data = codec.encode((P.SHUTDOWN,))
    with pytest.raises(SignatureError):
        codec.decode(data[:16] + data[32:])


@pytest.mark.parametrize("size", [0, 1, 32])
def test_message_too_short_to_hold_a_signature_is_rejected(size: int):
    codec = Codec(KEY)
    data = codec.encode((P.SHUTDOWN,))[:size]
    with pytest.raises(SignatureError, match="too short"):
        codec.decode(data)
    assert codec.dropped == 1


@pytest.mark.parametrize(
    "msg", [["list", 1], "text", (), ("kind", 1), None], ids=["list", "str", "empty", "str-kind", "none"]
)
def test_signed_payload_that_is_not_a_message_is_rejected(msg: object):
    codec = Codec(KEY)
    with pytest.raises(SignatureError, match="malformed"):
        codec.decode(signed(pickle.dumps(msg, protocol=5)))
    assert codec.dropped == 1


def test_signed_payload_that_does_not_unpickle_is_rejected():
    codec = Codec(KEY)
    with pytest.raises(SignatureError, match="undecodable"):
        codec.decode(signed(b"\x80\x05not a pickle"))
    assert codec.dropped == 1


def test_dropped_counts_every_rejection():
    codec = Codec(KEY)
    good = codec.encode((P.SHUTDOWN,))
    for data in (good[:32], good[:32] + b"x", signed(pickle.dumps([1]))):
        with pytest.raises(SignatureError):
            codec.decode(data)
    codec.decode(good)
    assert codec.dropped == 3


@pytest.mark.parametrize("size", [15, 65])
def test_keys_blake2b_cannot_take_are_refused(size: int):
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        Codec(b"k" * size)
    assert Codec(b"k" * 16).dropped == Codec(b"k" * 64).dropped == 0


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
