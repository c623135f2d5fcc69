"""The frame fuzzer: ``python -m benchmarks.fuzz [--frames N] [--seconds S] [--json PATH]``.

::

    orchestrator ─► child: transport.MAX_FRAME lowered to 1 MiB in this process (the
      │             kernel's inbox refuses a frame over it for the price of a small one),
      │             jf.init(2), then:
      │   record    real frames on their way (warm-up work): into the kernel's inbox (its
      │             Verifier.decode, wrapped) and into worker 1's (a recorder in place of
      │             the kernel's outbox socket to it)
      │   flood     --frames frames, half to each inbox, of every kind of fuzz_frames.py,
      │             shuffled together with raw connections (AF_UNIX, on the ipc socket) and
      │             oversized frames, from zmq PUSH sockets of another context, reopened
      │             every RECONNECT_EVERY frames; meanwhile a thread does real work
      │             (a 1 MiB array made on a worker, summed on a worker) and checks each result
      │   count     until jf.status()["messages"] shows every frame (bounded): by reason,
      │             against what each frame's kind says; canaries unpickled (marker files);
      │             log lines about drops (the kernel's logger, the workers' jf.logs());
      │             crashes (a worker pid gone, the kernel's I/O thread, its housekeeping)
      └─► then: leftovers (isolation.py), the table, the JSON file

The kernel's and the worker's drops are told apart with the kernel inbox's own counters
(``cluster.inbox.verifier.dropped_by``, which ``jf.status()`` adds the workers' reports to).
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import zmq

import jupyter_futures as jf
from benchmarks import isolation, report
from benchmarks.chaos import leftovers_here
from benchmarks.fuzz_frames import (
    CONNECTION_KINDS,
    FIXED_REASON,
    KINDS,
    SHORT,
    Corpus,
    raw_connection,
    send_zmtp1,
)
from benchmarks.tasks import array_sum, leaf
from jupyter_futures.local import protocol as P
from jupyter_futures.local import transport

DEFAULT_JSON = isolation.ROOT / "benchmarks" / "results" / "fuzz.json"
START_MARGIN = 90.0  # seconds a child may take beyond --seconds: start-up, checks, shutdown
RECONNECT_EVERY = 2000  # frames a sending socket carries before it is closed and made again
SEND_TIMEOUT_MS = 10_000  # a send that waits this long for room is given up (and counted)
DROP_MESSAGE = "dropped a control message"
WORK_ELEMENTS = 131_072  # the real work's arrays: 1 MiB, in a worker's store
TARGETS = ("kernel", "worker")
ZMTP1_BATCH = 10  # frames per raw ZMTP 1.0 connection


@dataclass(frozen=True)
class FuzzPlan:
    frames: int = 100_000  # in all, half to each inbox, every kind equally
    connections: int = 200  # raw connections per inbox, every kind equally
    zmtp1_share: float = 0.05  # of the frames, sent by hand as a ZMTP 1.0 peer, ZMTP1_BATCH a connection
    oversized_kernel: int = 8  # over the kernel inbox's MAXMSGSIZE (kernel_max_frame)
    oversized_worker: int = 1  # over a worker's: the real 256 MiB limit
    kernel_max_frame: int = 2**20
    seconds: float = 300.0  # the flood and the counting, bounded
    seed: int = 0


# -- recording real frames ----------------------------------------------------------------


class _Recorder:
    """In place of an outbox's zmq socket: keeps a copy of every frame it sends."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.frames: list[bytes] = []

    def send(self, data: bytes, flags: int = 0) -> None:
        self.frames.append(bytes(data))
        self.sock.send(data, flags=flags)

    def close(self, linger: int | None = None) -> None:
        self.sock.close(linger=linger)


@contextmanager
def recording(cluster: Any, wid: int) -> Iterator[tuple[list[bytes], list[bytes]]]:
    """(frames the kernel's inbox accepted, frames the kernel sent worker ``wid``) while
    the block runs."""
    to_kernel: list[bytes] = []
    inbox = cluster.inbox.verifier
    decode = P.Verifier.decode

    def recorded(self: P.Verifier, data: bytes) -> tuple[Any, ...]:
        msg = decode(self, data)
        if self is inbox:
            to_kernel.append(bytes(data))
        return msg

    box = cluster.outboxes[wid]
    rec = _Recorder(box._sock)
    setattr(P.Verifier, "decode", recorded)  # noqa: B010 - a method, replaced for a while
    with box._lock:
        box._sock = rec
    try:
        yield to_kernel, rec.frames
    finally:
        setattr(P.Verifier, "decode", decode)  # noqa: B010
        with box._lock:
            box._sock = rec.sock


def one_round(i: int, timeout: float = 30.0) -> tuple[bool, float]:
    """Real work: a 1 MiB array made on a worker, summed on a worker; (right, seconds)."""
    t0 = time.perf_counter()
    value = float(i % 1000)
    array = jf.submit(leaf, WORK_ELEMENTS, value)
    total = jf.submit(array_sum, array).result(timeout)
    return total == value * WORK_ELEMENTS, time.perf_counter() - t0


def warm_up(client: jf.Client, wid: int, rounds: int = 20) -> tuple[list[bytes], list[bytes]]:
    """Real frames both ways, every one already delivered when this returns."""
    cluster: Any = client.backend.cluster  # type: ignore[attr-defined]
    with recording(cluster, wid) as (to_kernel, to_worker):
        deadline = time.monotonic() + 30
        for i in range(rounds * 10):
            one_round(i)
            heartbeats = len(to_kernel) >= 3 * 2  # a few of each worker's at least
            if (i >= rounds and heartbeats and to_worker) or time.monotonic() > deadline:
                break
        recorded = list(to_kernel), list(to_worker)
    # Every frame the worker was sent is read once a task sent to it after them is done
    # (one ordered pipe): replays of them are replays, never the first copy to arrive.
    for i in range(200):
        f = jf.submit(leaf, 8, float(i))
        f.result(30)
        if any(loc.worker == wid for loc in jf.locality(f)):
            break
    return recorded


# -- real work meanwhile ------------------------------------------------------------------


class WorkChecker(threading.Thread):
    """Real work, round after round, each result checked, until ``stop``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(name="fuzz-work", daemon=True)
        self.seconds = seconds
        self.rounds = self.wrong = 0
        self.errors: list[str] = []
        self.max_round = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        for i in range(1_000_000):
            if self._halt.is_set() or time.monotonic() > deadline:
                return
            try:
                right, took = one_round(i)
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                self.wrong += 1
                continue
            self.rounds += 1
            self.wrong += not right
            self.max_round = max(self.max_round, took)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)


class DropLog(logging.Handler):
    """Counts the kernel's log records about dropped frames."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        if DROP_MESSAGE in record.getMessage():
            self.lines += 1


# -- the flood ----------------------------------------------------------------------------


class Sender:
    """zmq PUSH sockets of a context of our own, one per inbox, made again now and then
    (the receiver sees peers come and go, as it would from many processes)."""

    def __init__(self, addresses: dict[str, str]) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.addresses = addresses
        self.socks: dict[str, zmq.Socket[Any]] = {}
        self.carried: Counter[str] = Counter()
        self.timeouts = 0

    def _sock(self, target: str) -> zmq.Socket[Any]:
        sock = self.socks.get(target)
        if sock is None or self.carried[target] >= RECONNECT_EVERY:
            if sock is not None:
                sock.close(linger=SEND_TIMEOUT_MS)  # what it holds is still delivered
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
            sock.connect(self.addresses[target])
            self.socks[target] = sock
            self.carried[target] = 0
        return sock

    def send(self, target: str, frame: bytes) -> bool:
        try:
            self._sock(target).send(frame)
        except zmq.Again:
            self.timeouts += 1
            return False
        self.carried[target] += 1
        return True

    def oversized(self, target: str, frame: bytes) -> None:
        """On a connection of its own: zmq drops the connection that carries it."""
        sock = self.ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        sock.connect(self.addresses[target])
        try:
            sock.send(frame, copy=False)
        except zmq.Again:
            self.timeouts += 1
        sock.close(linger=1000)

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close(linger=SEND_TIMEOUT_MS)
        self.ctx.term()  # returns once every frame is out (or its linger is over)


def schedule(plan: FuzzPlan, rng: random.Random) -> list[tuple[str, str, str]]:
    """(what, target, kind) for every frame, connection and oversized frame, shuffled; a
    ``zmtp1`` item sends ZMTP1_BATCH frames of random kinds on one raw connection."""
    batches = int(plan.frames * plan.zmtp1_share) // ZMTP1_BATCH
    items = [("zmtp1", TARGETS[i % 2], "") for i in range(batches)]
    frames = plan.frames - batches * ZMTP1_BATCH
    items += [("frame", TARGETS[i % 2], KINDS[(i // 2) % len(KINDS)]) for i in range(frames)]
    items += [
        ("connection", t, CONNECTION_KINDS[i % len(CONNECTION_KINDS)])
        for t in TARGETS
        for i in range(plan.connections)
    ]
    items += [("oversized", "kernel", "oversized")] * plan.oversized_kernel
    items += [("oversized", "worker", "oversized")] * plan.oversized_worker
    rng.shuffle(items)
    return items


def observed(cluster: Any, before: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
    """Drops by reason since ``before``, of the kernel's inbox and of the workers'."""
    messages = jf.status().get("messages")
    total = Counter(messages["dropped_by"] if messages else {})
    kernel = Counter(cluster.inbox.verifier.dropped_by)
    now = {"kernel": kernel, "worker": total - kernel}
    return {t: now[t] - before.get(t, Counter()) for t in TARGETS}


def fuzz(client: jf.Client, plan: FuzzPlan) -> dict[str, Any]:
    """Flood the kernel's inbox and worker 1's; the figures of the table."""
    cluster: Any = client.backend.cluster  # type: ignore[attr-defined]
    client.wait_for_workers(timeout=60)
    rng = random.Random(plan.seed)
    wid = min(cluster.outboxes)
    addresses = {"kernel": cluster.inbox.address, "worker": cluster.outboxes[wid]._signer.address}
    to_kernel, to_worker = warm_up(client, wid)
    canaries = Path(tempfile.mkdtemp(prefix="fuzz-canaries-"))
    corpus = {
        "kernel": Corpus(addresses["kernel"], to_kernel, to_worker, cluster._key, canaries),
        "worker": Corpus(addresses["worker"], to_worker, to_kernel, cluster._key, canaries),
    }
    pids = sorted(cluster.pids())
    before = observed(cluster, {})
    droplog = DropLog()
    logging.getLogger("jupyter_futures").addHandler(droplog)
    sent: dict[str, Counter[str]] = {t: Counter() for t in TARGETS}
    expected: dict[str, Counter[str]] = {t: Counter() for t in TARGETS}
    held: list[socket.socket] = []
    worker_limit = P.MAX_FRAME  # the workers' own transport.MAX_FRAME: not lowered
    limits = {"kernel": cluster.inbox.sock.getsockopt(zmq.MAXMSGSIZE), "worker": worker_limit}
    work = WorkChecker(plan.seconds)
    sender = Sender(addresses)
    t0 = time.perf_counter()
    deadline = time.monotonic() + plan.seconds
    work.start()
    try:
        for what, target, kind in schedule(plan, rng):
            if time.monotonic() > deadline:
                break
            if what == "frame":
                frame, reason = corpus[target].frame(kind, rng)
                if sender.send(target, frame):
                    sent[target][kind] += 1
                    expected[target][reason] += 1
            elif what == "zmtp1":
                kinds = [rng.choice(KINDS) for _ in range(ZMTP1_BATCH)]
                batch = [corpus[target].frame(k, rng) for k in kinds]
                if send_zmtp1(addresses[target], [f for f, _ in batch]):
                    for k, (_, reason) in zip(kinds, batch):
                        sent[target][k] += 1
                        sent[target]["(of which by raw ZMTP 1.0)"] += 1
                        expected[target][reason] += 1
            elif what == "connection":
                raw_connection(addresses[target], kind, rng, held)
                sent[target][f"connection: {kind}"] += 1
            else:
                sender.oversized(target, corpus[target].oversized(limits[target]))
                sent[target]["oversized"] += 1
        sender.close()
        sent_s = time.perf_counter() - t0
        counted = observed(cluster, before)
        for _ in range(int(plan.seconds * 10) + 1):  # the workers report theirs with heartbeats
            if all(counted[t] == expected[t] for t in TARGETS) or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling counters that move with heartbeats, under a deadline
            counted = observed(cluster, before)
        counted_s = time.perf_counter() - t0
    finally:
        for s in held:
            s.close()
        work.stop()
        logging.getLogger("jupyter_futures").removeHandler(droplog)
    after_right, _ = one_round(-1)  # and once more, with the flood over
    alive = sorted(cluster.pids())
    worker_log = client.logs().get(wid, "")
    out: dict[str, Any] = {
        "plan": asdict(plan),
        "fuzzed_worker": wid,
        "limits": limits,
        "sent": {t: dict(sent[t]) for t in TARGETS},
        "expected": {t: dict(expected[t]) for t in TARGETS},
        "dropped": {t: dict(counted[t]) for t in TARGETS},
        "counts_match": all(counted[t] == expected[t] for t in TARGETS),
        "messages": jf.status().get("messages"),
        "send_timeouts": sender.timeouts,
        "crashes": {
            "workers_gone": [p for p in pids if p not in alive],
            "new_workers": [p for p in alive if p not in pids],
            "io_thread_alive": cluster._thread.is_alive(),
            "housekeeping_errors": dict(cluster.housekeeping_errors),
        },
        "canaries_unpickled": len(list(canaries.iterdir())),
        "log_lines": {"kernel": droplog.lines, "worker": worker_log.count(DROP_MESSAGE)},
        "work": {
            "rounds": work.rounds + 1,
            "wrong": work.wrong + (not after_right),
            "errors": work.errors[:5],
            "max_round_s": work.max_round,
        },
        "sent_s": sent_s,
        "wall_s": counted_s,
    }
    shutil.rmtree(canaries, ignore_errors=True)
    return out


def crashes(d: dict[str, Any]) -> int:
    c = d.get("crashes") or {}
    return (
        len(c.get("workers_gone", []))
        + (not c.get("io_thread_alive", False))
        + sum((c.get("housekeeping_errors") or {}).values())
    )


def run(plan: FuzzPlan, on_cluster: Any = None) -> dict[str, Any]:
    """A cluster of our own, fuzzed, shut down, and what it left behind.

    The kernel's inbox is made with ``transport.MAX_FRAME`` lowered (in this process only:
    the workers keep the real limit), so an oversized frame costs 1 MiB, not 256."""
    saved = transport.MAX_FRAME
    transport.MAX_FRAME = plan.kernel_max_frame
    cluster_id: str | None = None
    out: dict[str, Any] = {}
    try:
        client = jf.init(2)
    finally:
        transport.MAX_FRAME = saved
    try:
        client.wait_for_workers(timeout=60)
        cluster_id = out["cluster"] = client.cluster_id
        if on_cluster is not None:
            on_cluster(cluster_id)
        out.update(fuzz(client, plan))
    finally:
        client.shutdown()
        out["leftovers"] = leftovers_here(cluster_id)
    return out


# -- the table ----------------------------------------------------------------------------


def text(results: dict[str, Any]) -> str:
    d = results["run"]
    plan = results["meta"]["args"]
    lines = [
        f"frame fuzzer, {results['meta']['date']}: {plan['frames']:,} frames, half to the kernel's inbox "
        f"(MAXMSGSIZE lowered to {plan['kernel_max_frame'] / 2**20:g} MiB), half to worker "
        f"{d.get('fuzzed_worker', '?')}'s (256 MiB)",
        "",
    ]
    if d.get("failure"):
        lines.append(f"FAILED: {d['failure']}")
    sent = d.get("sent", {})
    if sent:
        kinds = [
            k
            for k in (*KINDS, "(of which by raw ZMTP 1.0)", "oversized")
            if any(k in sent[t] for t in TARGETS)
        ]
        kinds += sorted({k for t in TARGETS for k in sent[t] if k.startswith("connection")})
        rows = [["sent, by kind", "to kernel", "to worker", "must be dropped as"]]
        for k in kinds:
            why = (
                "refused by zmq (never read)"
                if k == "oversized"
                else "(no frame)"
                if k.startswith("connection")
                else ""
                if k.startswith("(")
                else _reason_of(k)
            )
            rows.append([k, *[f"{sent[t].get(k, 0):,}" for t in TARGETS], why])
        lines += [isolation.rows(rows), ""]
        reasons = sorted({r for t in TARGETS for r in (*d["expected"][t], *d["dropped"][t])})
        rows = [["dropped, by reason", "kernel: expected", "counted", "worker: expected", "counted"]]
        for r in reasons:
            rows.append([r, *[f"{d[w][t].get(r, 0):,}" for t in TARGETS for w in ("expected", "dropped")]])
        msgs = d.get("messages") or {}
        rows.append(
            [
                "jf.status() messages",
                f"dropped {msgs.get('dropped', 0):,}",
                f"kernel {msgs.get('kernel', 0):,}",
                f"workers {msgs.get('workers', 0):,}",
                "",
            ]
        )
        lines += [isolation.rows(rows), ""]
    work = d.get("work", {})
    left = d.get("leftovers", []) + d.get("child_leftovers", [])
    rows = [
        ["figure", "value"],
        ["counts match every frame's kind", "yes" if d.get("counts_match") else "NO"],
        [
            "crashes (workers gone, I/O thread, housekeeping errors)",
            str(crashes(d)) if "crashes" in d else "-",
        ],
        ["unpickled canaries", str(d.get("canaries_unpickled", "-"))],
        [
            "log lines about drops (kernel, worker)",
            f"{d.get('log_lines', {}).get('kernel', '-')}, {d.get('log_lines', {}).get('worker', '-')}",
        ],
        ["real work: rounds, wrong results", f"{work.get('rounds', '-')}, {work.get('wrong', '-')}"],
        ["real work: slowest round s", f"{work.get('max_round_s', 0):.2f}"],
        ["sends that timed out", str(d.get("send_timeouts", "-"))],
        ["leftovers", "none" if not left else f"{len(left)}: {left[0][:60]}"],
        ["wall time s (sending; until all counted)", f"{d.get('sent_s', 0):.1f}; {d.get('wall_s', 0):.1f}"],
    ]
    lines.append(isolation.rows(rows))
    for err in work.get("errors", []):
        lines.append(f"real work error: {err}")
    return "\n".join(lines) + "\n"


def _reason_of(kind: str) -> str:
    return FIXED_REASON.get(kind, f"short (<= {SHORT} bytes) or bad signature")


def ok(d: dict[str, Any]) -> bool:
    return bool(
        not d.get("failure")
        and d.get("counts_match")
        and crashes(d) == 0
        and d.get("canaries_unpickled") == 0
        and d.get("work", {}).get("wrong") == 0
        and not d.get("leftovers")
        and not d.get("child_leftovers")
    )


# -- command line -------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    d = FuzzPlan()
    p.add_argument("--frames", type=int, default=d.frames, help=f"frames in all (default {d.frames:,})")
    p.add_argument("--connections", type=int, default=d.connections, help="raw connections per inbox")
    p.add_argument("--oversized-kernel", type=int, default=d.oversized_kernel)
    p.add_argument("--oversized-worker", type=int, default=d.oversized_worker)
    p.add_argument("--seconds", type=float, default=d.seconds, help="bound on the flood and the counting")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def plan_of(args: argparse.Namespace) -> FuzzPlan:
    return FuzzPlan(
        frames=args.frames,
        connections=args.connections,
        oversized_kernel=args.oversized_kernel,
        oversized_worker=args.oversized_worker,
        seconds=args.seconds,
        seed=args.seed,
    )


def child(args: argparse.Namespace) -> int:
    return isolation.child_main(args.out, lambda on_cluster: run(plan_of(args), on_cluster))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        return child(args)
    plan = plan_of(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    workdir = args.json.parent / "logs"
    workdir.mkdir(exist_ok=True)
    flags = [
        *("--frames", str(plan.frames), "--connections", str(plan.connections)),
        *("--oversized-kernel", str(plan.oversized_kernel), "--oversized-worker", str(plan.oversized_worker)),
        *("--seconds", str(plan.seconds), "--seed", str(plan.seed)),
    ]
    print("[fuzz] running ...", file=sys.stderr, flush=True)
    child_run = isolation.run_child(
        "benchmarks.fuzz", ["--child", *flags], plan.seconds + START_MARGIN, workdir, "fuzz"
    )
    entry = dict(child_run.data)
    entry["failure"] = child_run.failure()
    entry["child_leftovers"] = child_run.leftovers
    entry["child_wall_s"] = child_run.wall
    entry["log"] = child_run.log
    results = {"meta": report.meta({**asdict(plan), "json": str(args.json)}), "run": entry}
    isolation.write_json(args.json, results)
    print(text(results), end="")
    print(f"\nwritten: {args.json}")
    return 0 if ok(entry) else 1


if __name__ == "__main__":
    raise SystemExit(main())
