"""Actors: state on one worker, calls in order, their own thread, death and restarts."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

import jupyter_futures as jf


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start
        self.log: list[int] = []

    def incr(self, k: int = 1) -> int:
        self.n += k
        self.log.append(k)
        return self.n

    def pid(self) -> int:
        return os.getpid()

    def history(self) -> list[int]:
        return self.log

    def fail(self) -> None:
        raise KeyError("missing")

    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds


def test_state_lives_on_the_worker(shared_client: jf.Client) -> None:
    counter = jf.create_actor(Counter, 10).result(30)
    assert isinstance(counter, jf.ActorHandle)
    assert counter.incr(5).result(30) == 15
    assert jf.call_actor(counter, "incr", k=2).result(30) == 17
    assert counter.pid().result(30) != os.getpid()
    jf.kill_actor(counter)


def test_call_actor_accepts_the_creation_future(shared_client: jf.Client) -> None:
    future = jf.create_actor(Counter)
    assert jf.call_actor(future, "incr", 3).result(30) == 3
    jf.kill_actor(future)


def test_thousand_calls_keep_their_order(shared_client: jf.Client) -> None:
    counter = jf.create_actor(Counter).result(30)
    fs = [counter.incr(i) for i in range(1000)]
    totals = jf.gather(fs, timeout=60)
    assert counter.history().result(30) == list(range(1000))
    assert totals[-1] == sum(range(1000))
    jf.kill_actor(counter)


def test_calls_with_pending_inputs_stay_in_order(shared_client: jf.Client) -> None:
    counter = jf.create_actor(Counter).result(30)
    late = jf.submit(lambda: (time.sleep(0.5), 100)[1])
    first = counter.incr(late)  # waits for its input...
    second = counter.incr(1)  # ...and this one waits behind it
    assert first.result(30) == 100 and second.result(30) == 101
    jf.kill_actor(counter)


def test_actor_error_is_remote_and_actor_survives(shared_client: jf.Client) -> None:
    counter = jf.create_actor(Counter).result(30)
    with pytest.raises(KeyError):
        counter.fail().result(30)
    assert counter.incr().result(30) == 1
    with pytest.raises(AttributeError, match="no method 'nope'"):
        jf.call_actor(counter, "nope").result(30)
    jf.kill_actor(counter)


def test_actor_runs_on_its_own_thread(shared_client: jf.Client) -> None:
    """A busy actor does not stop its worker from running tasks."""
    counter = jf.create_actor(Counter).result(30)
    busy = counter.sleep(2.0)
    start = time.monotonic()
    assert jf.gather([jf.submit(abs, -i) for i in range(4)], timeout=30) == [0, 1, 2, 3]
    assert time.monotonic() - start < 1.9
    assert busy.result(30) == 2.0
    jf.kill_actor(counter)


class Server:
    """An actor that owns a thread, a listening socket and an open file."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.file = open(path, "a")  # noqa: SIM115
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            self.accepted += 1
            conn.sendall(b"hello")
            conn.close()

    def port(self) -> int:
        return self.sock.getsockname()[1]

    def write(self, text: str) -> int:
        self.file.write(text)
        self.file.flush()
        return self.accepted


def test_actor_owns_thread_socket_and_file(shared_client: jf.Client, tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    server = jf.create_actor(Server, str(path)).result(30)
    port = server.port().result(30)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        assert conn.recv(5) == b"hello"
    assert server.write("line\n").result(30) == 1
    assert path.read_text() == "line\n"
    jf.kill_actor(server)


def test_actor_call_from_a_task(shared_client: jf.Client) -> None:
    counter = jf.create_actor(Counter).result(30)
    assert jf.submit(lambda c: c.incr(7).result(), counter).result(30) == 7
    jf.kill_actor(counter)


def test_kill_actor_fails_later_calls(shared_client: jf.Client) -> None:
    counter = jf.create_actor(Counter).result(30)
    jf.kill_actor(counter)
    with pytest.raises(jf.ActorDiedError, match="kill_actor"):
        counter.incr().result(30)


def test_create_actor_with_impossible_requirement(shared_client: jf.Client) -> None:
    with pytest.raises(jf.UnsatisfiableRequirementError):
        jf.create_actor(Counter, min_gpu=1)
