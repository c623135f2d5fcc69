"""The kernel side of the multi-host test, run inside its own network namespace.

Talks on stdout (one JSON object per line) and listens on stdin: it asks the test to cut
a worker's link (``{"cut": address}``) and waits for ``go``. Functions are defined here,
in ``__main__``, so they travel by value, as a notebook's do.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import jupyter_futures as jf


def say(**what: Any) -> None:
    print(json.dumps(what), flush=True)


def probe(tag: str) -> dict[str, Any]:
    """Where it ran: its pid, what its /dev/shm holds after it writes its own mark."""
    from distributed import get_worker

    with open(f"/dev/shm/jf-probe-{tag}", "w") as f:
        f.write(tag)
    return {"pid": os.getpid(), "worker": get_worker().address, "shm": sorted(os.listdir("/dev/shm"))}


def square(x: int) -> int:
    return x * x


def total(*xs: int) -> int:
    return sum(xs)


def slow(seconds: float) -> str:
    time.sleep(seconds)
    from distributed import get_worker

    return str(get_worker().address)


def main(address: str) -> None:
    client = jf.init(address=address)
    client.wait_for_workers(2, timeout=60)
    workers = sorted(w["id"] for w in jf.status()["workers"])
    probes = [jf.submit(probe, str(i), locality=w).result(60) for i, w in enumerate(workers)]
    say(workers=workers, probes=probes)
    parts = [jf.submit(square, i, locality=workers[i % 2]) for i in range(10)]
    say(dag=jf.submit(total, *parts).result(60))
    f = jf.submit(slow, 5.0)
    deadline = time.monotonic() + 30
    while (where := client.backend.future_view(f.id).worker) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    say(cut=where)
    assert sys.stdin.readline().strip() == "go"
    started = time.monotonic()
    finished_on = f.result(120)
    say(rerun_on=finished_on, after=time.monotonic() - started)
    jf.shutdown()
    say(done=True)


if __name__ == "__main__":
    main(sys.argv[1])
