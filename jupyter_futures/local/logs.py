"""What workers write outside any task: one private file per worker, read by ``jf.logs()``.

::

    kernel: create(directory, wid) ─► <the cluster's 0700 socket directory>/w<wid>.log (0600)
    worker: redirect(path): its fds 1 and 2 ─► that file: prints from threads that run no
            task, warnings, logging's last resort, a crash's traceback, and (faulthandler)
            the stacks of a segfault or abort
            bound(): past LOG_MAX bytes only the last LOG_KEEP stay (its heartbeat thread)
    kernel: read(directory, wid=None) ─► {wid: the last LOG_TAIL bytes}, dead workers'
            included (wids are never reused), until shutdown removes the directory

What a task prints goes to its cell instead (``capture/output.py``); this is the rest.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import stat
import sys
from pathlib import Path

LOG_MAX = 4 * 2**20  # bytes a worker's log may reach before it is cut to its tail
LOG_KEEP = 2**20
LOG_TAIL = 64 * 1024  # bytes of each log that read() returns
_NAME = re.compile(r"w(\d+)\.log")


def path_for(directory: Path, wid: int) -> Path:
    return directory / f"w{wid}.log"


def create(directory: Path, wid: int) -> Path:
    """A new, empty log for worker ``wid``, only this user's (never a file found there)."""
    path = path_for(directory, wid)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    return path


def open_for_append(path: str | Path) -> int:
    """The log opened to append, checked to be this user's regular file."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if st.st_uid != os.getuid() or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise PermissionError(f"{path} is not this user's log file")
    return fd


def redirect(path: str | Path) -> None:
    """(In a worker) Send fds 1 and 2, and faulthandler's dumps, to the log."""
    fd = open_for_append(path)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    with contextlib.suppress(Exception):  # a file, not a terminal: a line at a time still
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    faulthandler.enable(file=sys.__stderr__ or sys.stderr, all_threads=True)


def bound(fd: int = 2) -> None:
    """(In a worker) Cut the log behind ``fd`` to its last LOG_KEEP bytes once past LOG_MAX."""
    try:
        size = os.fstat(fd).st_size
        if size <= LOG_MAX:
            return
        with open(os.readlink(f"/proc/self/fd/{fd}"), "rb") as f:
            f.seek(size - LOG_KEEP)
            tail = f.read()
        os.ftruncate(fd, 0)
        os.write(fd, b"[... earlier lines cut: the log keeps its last %d bytes]\n" % LOG_KEEP + tail)
    except OSError:
        pass


def read(directory: Path, wid: int | None = None, limit: int = LOG_TAIL) -> dict[int, str]:
    """The end of each worker's log (or of ``wid``'s), by worker id."""
    out: dict[int, str] = {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return out
    for name in names:
        m = _NAME.fullmatch(name)
        if m is None or (wid is not None and int(m.group(1)) != wid):
            continue
        try:
            fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            size = os.fstat(fd).st_size
            os.lseek(fd, max(0, size - limit), os.SEEK_SET)
            data = os.read(fd, limit)
        finally:
            os.close(fd)
        out[int(m.group(1))] = data.decode("utf-8", "replace")
    return dict(sorted(out.items()))
