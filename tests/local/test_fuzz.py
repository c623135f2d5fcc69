"""The frame fuzzer (``benchmarks/fuzz.py``), short: its frames checked against a verifier
of their own, a canary shown to fire when loaded, then thousands of frames of every kind
against a live cluster's kernel and worker inboxes, and the command end to end.

::

    fuzz_frames.Corpus.frame(kind) ── Verifier.decode (this test's) ──► the reason it names
    canary payload ── pickle.loads (here, on purpose) ──► its marker exists
    fuzz.fuzz(client, plan) ── zmq PUSH, raw AF_UNIX (ZMTP 1.0 by hand, greetings) ──►
        kernel inbox (MAXMSGSIZE lowered to 1 MiB), worker 1's inbox (256 MiB)
        every drop counted by its reason, no canary loaded, no crash, one log line each,
        real work right throughout
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest

import jupyter_futures as jf
from benchmarks import fuzz
from benchmarks.fuzz_frames import KINDS, SHORT, Corpus
from jupyter_futures.local import protocol as P
from jupyter_futures.local import transport

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "ipc:///nowhere/w1"


def corpus(tmp_path: Path) -> tuple[Corpus, P.Verifier, bytes]:
    """A corpus of real frames to ADDRESS (signed here, then accepted by its verifier)."""
    key = os.urandom(32)
    codec = P.Codec(key)
    signer = codec.signer(ADDRESS)
    verifier = codec.verifier(ADDRESS)
    real = [signer.seal(signer.encode((P.RUN, [i] * (i % 7)))) for i in range(20)]
    for frame in real:
        verifier.decode(frame)  # delivered: every one is a replay from now on
    foreign = codec.signer("ipc:///nowhere/scheduler")
    other = [foreign.seal(foreign.encode((P.DONE, 1, []))) for _ in range(5)]
    return Corpus(ADDRESS, real, other, key, tmp_path), verifier, key


def test_every_kind_of_frame_is_dropped_for_the_reason_the_fuzzer_expects(tmp_path: Path) -> None:
    c, verifier, _ = corpus(tmp_path)
    rng = random.Random(1)
    for kind in KINDS:
        for _ in range(300):
            frame, reason = c.frame(kind, rng)
            before = dict(verifier.dropped_by)
            with pytest.raises(P.SignatureError):
                verifier.decode(frame)
            grew = {r for r, n in verifier.dropped_by.items() if n != before.get(r, 0)}
            assert grew == {reason}, (kind, len(frame))
    assert list(tmp_path.iterdir()) == []  # no canary was loaded on the way


def test_a_canary_fires_when_loaded(tmp_path: Path) -> None:
    """The positive control: "no canary unpickled" means something only if one would show."""
    c, _, _ = corpus(tmp_path)
    rng = random.Random(2)
    for n in range(3):  # unsigned, signed with a wrong key, spliced into a real header
        frame, reason = c.frame("canary", rng)
        assert reason == "bad signature"
        kind, canary = pickle.loads(frame[SHORT:])
        assert kind == P.HEARTBEAT and canary is None
        assert (tmp_path / f"c{n + 1}").is_dir()


@pytest.mark.timeout(110)
def test_thousands_of_hostile_frames_are_counted_by_reason_and_harm_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(transport, "MAX_FRAME", 2**20)  # the kernel's inbox, made below
    plan = fuzz.FuzzPlan(frames=40_000, connections=40, oversized_kernel=4, oversized_worker=1, seconds=60)
    with caplog.at_level(logging.WARNING, logger="jupyter_futures"), jf.init(2) as client:
        client.wait_for_workers()
        out = fuzz.fuzz(client, plan)
        status = jf.status()
    sent = {t: out["sent"][t] for t in fuzz.TARGETS}
    for t in fuzz.TARGETS:
        for kind in KINDS:
            assert sent[t][kind] >= 1500, (t, kind)  # a few thousand of each, both inboxes
        assert out["dropped"][t] == out["expected"][t], t
        assert out["dropped"][t]["replayed"] == sent[t]["replayed"] + sent[t]["reordered"]
        assert out["dropped"][t]["undecodable"] == sent[t]["undecodable"]
        assert out["dropped"][t]["malformed"] == sent[t]["malformed"]
        assert sent[t]["oversized"] >= 1 and sent[t]["(of which by raw ZMTP 1.0)"] >= 500
    frames = sum(sent[t][k] for t in fuzz.TARGETS for k in KINDS)
    assert status["messages"]["dropped"] == frames  # oversized ones never reached a verifier
    assert status["messages"]["kernel"] == sum(sent["kernel"][k] for k in KINDS)
    assert out["canaries_unpickled"] == 0
    assert fuzz.crashes(out) == 0 and out["crashes"]["new_workers"] == []
    assert out["work"]["wrong"] == 0 and out["work"]["rounds"] >= 2 and out["work"]["errors"] == []
    assert 1 <= out["log_lines"]["kernel"] <= 2 and 1 <= out["log_lines"]["worker"] <= 2
    logged = [r for r in caplog.records if fuzz.DROP_MESSAGE in r.getMessage()]
    assert 1 <= len(logged) <= 2
    assert out["send_timeouts"] == 0


@pytest.mark.timeout(110)
def test_the_command_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    args = ["--frames", "5000", "--connections", "10", "--seconds", "40", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.fuzz", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads(out.read_text())["run"]
    assert run["failure"] is None and run["counts_match"] and run["child_leftovers"] == []
    for label in (
        "sent, by kind",
        "dropped, by reason",
        "jf.status() messages",
        "unpickled canaries",
        "log lines about drops (kernel, worker)",
        "real work: rounds, wrong results",
        "leftovers",
        "wall time s",
    ):
        assert label in proc.stdout, label


@pytest.mark.timeout(60)
def test_signed_frames_with_wrong_fields_are_counted_and_logged_with_the_throttle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A peer with the key but out of step (a worker of another version, a bug) sends
    messages of a known kind whose fields are wrong. Like a signed frame that does not
    unpickle ("undecodable": a bug, not an attack), each should be dropped, counted as
    malformed and logged with the throttle, not logged with a traceback every time."""
    import zmq

    with caplog.at_level(logging.WARNING, logger="jupyter_futures"), jf.init(1) as client:
        client.wait_for_workers()
        cluster = client.backend.cluster  # type: ignore[attr-defined]
        signer = P.Codec(cluster._key).signer(cluster.inbox.address)
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PUSH)
        sock.connect(cluster.inbox.address)
        for _ in range(200):
            sock.send(signer.seal(signer.encode((P.DONE, 1, [("not", "a", "result", "tuple")]))))
        sock.close(linger=5000)
        ctx.term()
        for _ in range(200):  # every frame read (bounded)
            if cluster.inbox.verifier.received >= 200:
                break
            assert jf.submit(abs, -1).result(10) == 1  # a round trip: the I/O thread read on
        assert jf.submit(pow, 2, 5).result(30) == 32
        status = jf.status()
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(noisy) <= 2, f"{len(noisy)} log records for 200 frames"
    assert status["messages"]["dropped_by"].get("malformed", 0) == 200
