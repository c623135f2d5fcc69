"""The zygote: ``python -m jupyter_futures.local.worker.zygote REPLY_FD``, started by the kernel.

::

    kernel ── stdin: {"spawn": wid, "config", "cwd", "env"} | {"stop": true} ──► zygote
    kernel ◄── REPLY_FD: {"ready": pid} | {"spawned": wid, "pid"} | {"exited": pid, "code"} ──┘
                                                    │ fork()
                                                    └──► worker (process.run), a session of its own

It imports what a worker needs once, starts no thread and opens no socket, then forks a
worker per request in a few milliseconds (a fresh interpreter takes a few hundred), so a
dead worker is replaced at once. The kernel itself is never forked: it has threads and zmq
contexts. Each child gets the kernel's working directory, environment and ``sys.path`` of
the moment it is asked for, and stdin from ``/dev/null``; its stdout and stderr go to its
own log file (``local/logs.py``), as a fresh worker's do. The zygote reaps its children through
pidfds and reports each exit code. It dies with the kernel, by SIGKILL
(``PR_SET_PDEATHSIG``), and its workers with it, by theirs: at once, whatever they run.
What they leave is the cluster's reaper's to remove (``local/reaper.py``), which the
kernel tells about each of them too.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import traceback
from typing import Any

from . import process


def _child(request: dict[str, Any], keep: list[int]) -> None:
    """In the forked child: become the worker the request describes; never returns."""
    code = 1
    try:
        for fd in keep:
            if fd != 0:
                os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # not the zygote's request pipe
        os.close(null)
        os.setsid()  # out of the kernel's process group, as the kernel's own spawns are
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        config = dict(request["config"], parent=os.getppid())  # the zygote: it dies with the kernel
        process.run(config)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def serve(requests: int, reply_fd: int, kernel: int) -> None:
    def say(**message: Any) -> None:
        os.write(reply_fd, (json.dumps(message) + "\n").encode())  # one line, one write: atomic

    children: dict[int, int] = {}  # pidfd -> pid
    pending = b""
    say(ready=os.getpid())
    while True:
        ready, _, _ = select.select([requests, *children], [], [])
        for fd in ready:
            if fd != requests:
                pid = children.pop(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                say(exited=pid, code=os.waitstatus_to_exitcode(status))
                continue
            chunk = os.read(requests, 65536)
            if not chunk:  # the kernel closed its end: it is gone or shutting down
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                if request.get("stop"):
                    return
                pid = os.fork()
                if pid == 0:
                    _child(request, [requests, reply_fd, *children])
                children[os.pidfd_open(pid)] = pid
                say(spawned=request["spawn"], pid=pid)
        if os.getppid() != kernel:
            return


def main() -> None:
    reply_fd = int(sys.argv[1])
    kernel = os.getppid()
    if not process.die_with_parent(kernel, signal.SIGKILL):  # and its workers with it: theirs
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's interrupt is not for us
    serve(sys.stdin.fileno(), reply_fd, kernel)


if __name__ == "__main__":
    main()
