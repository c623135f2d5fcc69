"""Remote errors shown in IPython as local ones: one traceback, caller's frames then remote.

::

    ZeroDivisionError                 Traceback (most recent call last)
    Cell In[7], line 1                  ◄─ the kernel's frames (jupyter_futures' own hidden)
    ----> 1 f.result()
    Cell In[3], line 2, in slow         ◄─ the worker's frames, parsed from the remote
          1 def slow(x):                   traceback; source from the kernel's linecache,
    ----> 2     return 1 / x               which holds every cell, so they read "Cell In[n]"
    ZeroDivisionError: division by zero

``RemoteException._render_traceback_`` (the hook IPython calls) lands here. Code run by
``%%remote`` is compiled under the cell's name in the kernel, so its frames read
``Cell In[n], line k`` too.

Errors jupyter_futures raises in the kernel for a mistake in the user's call (a bad
option, a timeout, a closed cluster) end where the user called it::

    cell ──► api.submit ──► client_base.submit ──► _requirements: raise ValueError
    shown:   Cell In[4], line 1 ----> jf.submit(f, min_cpu=-1)      ValueError: ...

``install`` registers :func:`show_error` as IPython's custom exception handler; it drops
the frames of this package at the end of such a traceback (``%xmode verbose`` shows
them) and hands everything else to IPython unchanged.
"""

from __future__ import annotations

import linecache
import os
import re
import sysconfig
import types
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..errors import NotInKernelError

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # jupyter_futures/
_FRAME = re.compile(r'^  File "(?P<file>.+)", line (?P<line>\d+), in (?P<name>.+)$')
_CHAIN = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)
_CONTEXT_BEFORE = 2


@dataclass
class RemoteFrame:
    filename: str
    lineno: int
    name: str


@dataclass
class Section:
    """One exception of a (possibly chained) traceback text."""

    frames: list[RemoteFrame] = field(default_factory=list)
    message: list[str] = field(default_factory=list)
    chained_by: str = ""  # the sentence that leads to the next section


def is_framework(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR)


def parse(text: str) -> list[Section]:
    """The sections of a traceback as ``traceback.format_exception`` wrote it."""
    sections = [Section()]
    in_frames = False
    for line in text.splitlines():
        cur = sections[-1]
        if line == "Traceback (most recent call last):":
            in_frames = True
            continue
        if line in _CHAIN:
            cur.chained_by = line
            sections.append(Section())
            in_frames = False
            continue
        m = _FRAME.match(line)
        if in_frames and m:
            cur.frames.append(RemoteFrame(m["file"], int(m["line"]), m["name"]))
            continue
        if in_frames and line.startswith("    "):
            continue  # source and caret lines: re-read from the kernel's linecache
        if line.strip() or cur.message:
            in_frames = False
            cur.message.append(line)
    for s in sections:
        while s.message and not s.message[-1].strip():
            s.message.pop()
    return [s for s in sections if s.frames or s.message]


class _Style:
    def __init__(self, color: bool) -> None:
        on = color
        self.cyan = "\x1b[36m" if on else ""
        self.green = "\x1b[32m" if on else ""
        self.red = "\x1b[31m" if on else ""
        self.off = "\x1b[39m" if on else ""


def format_frame(frame: RemoteFrame, shell: Any, style: _Style) -> str:
    """One frame as IPython shows it: where, then the lines up to the one that raised."""
    s = style
    label = shell.compile.format_code_name(frame.filename) if shell is not None else None
    if label is not None:
        where = f"{s.cyan}{label[0]}{s.off} {s.green}{label[1]}, line {frame.lineno}{s.off}"
    else:
        path = frame.filename.replace(os.path.expanduser("~"), "~", 1)
        where = f"{s.cyan}File {s.off}{s.green}{path}:{frame.lineno}{s.off}"
    if frame.name != "<module>":
        where += f", in {s.cyan}{frame.name}{s.off}"
    lines = [where]
    for n in range(max(1, frame.lineno - _CONTEXT_BEFORE), frame.lineno + 1):
        code = linecache.getline(frame.filename, n).rstrip("\n")
        if not code and n != frame.lineno:
            continue
        marker = "----> " if n == frame.lineno else "      "
        lines.append(f"{s.green}{marker}{n}{s.off} {code}")
    return "\n".join(lines) + "\n"


# cloudpickle ships a function's code with the file name "<dynamic-code>": find which of the
# kernel's functions (or the code of a %%remote cell) a remote frame came from.
DYNAMIC = "<dynamic-code>"
_remote_cell_code: list[types.CodeType] = []


def remember_cell_code(code: types.CodeType) -> None:
    """Code compiled from a ``%%remote`` cell: functions it defines may come back in frames."""
    _remote_cell_code.append(code)
    del _remote_cell_code[:-256]


def _code_objects(namespace: dict[str, Any]) -> list[types.CodeType]:
    roots: list[types.CodeType] = list(_remote_cell_code)
    for value in list(namespace.values()):
        if isinstance(value, types.FunctionType):
            roots.append(value.__code__)
        elif isinstance(value, type) and value.__module__ == "__main__":
            for attr in vars(value).values():
                fn = getattr(attr, "__func__", None) or getattr(attr, "fget", None) or attr
                if isinstance(fn, types.FunctionType):
                    roots.append(fn.__code__)
    out = []
    while roots:
        code = roots.pop()
        out.append(code)
        roots.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return out


def _locate(frame: RemoteFrame, namespace: dict[str, Any]) -> RemoteFrame:
    if frame.filename != DYNAMIC:
        return frame
    for code in _code_objects(namespace):
        if frame.name not in (code.co_name, getattr(code, "co_qualname", "")):
            continue
        lines = [n for _, _, n in code.co_lines() if n is not None]
        if lines and code.co_firstlineno <= frame.lineno <= max(lines):
            return RemoteFrame(code.co_filename, frame.lineno, frame.name)
    return frame


def _local_traceback(exc: BaseException) -> types.TracebackType | None:
    """The caller's traceback up to where it entered jupyter_futures."""
    if getattr(exc, "_jf_hide_caller", False):
        return None
    kept = []
    tb = exc.__traceback__
    while tb is not None and not is_framework(tb.tb_frame.f_code.co_filename):
        kept.append(tb)
        tb = tb.tb_next
    out = None
    for tb in reversed(kept):
        out = types.TracebackType(out, tb.tb_frame, tb.tb_lasti, tb.tb_lineno)
    return out


def render(exc: BaseException) -> list[str]:
    """IPython's structured traceback of a remote error (the ``_render_traceback_`` hook)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise NotInKernelError("not in IPython")  # IPython falls back to its own rendering
    style = _Style(str(getattr(shell, "colors", "")).lower() != "nocolor")
    text = getattr(exc, "_jf_cell_traceback", "") or getattr(exc, "remote_traceback", "")
    sections = parse(text)
    saved = exc.__cause__, exc.__context__, exc.__suppress_context__
    exc.__cause__, exc.__context__, exc.__suppress_context__ = None, None, True
    try:
        local: list[str] = shell.InteractiveTB.structured_traceback(type(exc), exc, _local_traceback(exc))
    finally:
        exc.__cause__, exc.__context__, exc.__suppress_context__ = saved
    if not sections:
        return local
    remote: list[str] = []
    namespace = getattr(shell, "user_ns", {})
    for i, section in enumerate(sections):
        frames = [_locate(f, namespace) for f in section.frames if not is_framework(f.filename)]
        remote += [format_frame(f, shell, style) for f in frames]
        if i < len(sections) - 1:  # an earlier exception of a chain: its message, then why
            remote.append("\n".join(_color_message(section.message, style)) + f"\n\n{section.chained_by}\n")
    last = sections[-1].message
    tail = "\n".join(_color_message(last, style)) if last else local[-1]
    return local[:-1] + remote + [tail]


def _color_message(lines: list[str], style: _Style) -> list[str]:
    if not lines:
        return []
    first = lines[0]
    name, sep, rest = first.partition(":")
    if sep and " " not in name:
        first = f"{style.red}{name}{style.off}:{rest}"
    return [first, *lines[1:]]


# -- errors raised in the kernel for the user's mistakes ------------------------------------

_LIBRARIES = tuple(
    os.path.abspath(p) + os.sep
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_RAISE = re.compile(r"^\s*(?:.*:\s*)?raise\b")


def _library(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_LIBRARIES)


def _entries(tb: types.TracebackType | None) -> list[types.TracebackType]:
    out = []
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next
    return out


def _raised_by_us(exc: BaseException, entries: list[types.TracebackType]) -> bool:
    """Did jupyter_futures raise ``exc`` on purpose (not a bug of its own, not user code)?"""
    from ..errors import JupyterFuturesError, RemoteException

    if isinstance(exc, RemoteException) or not entries:
        return False  # a remote error has its own rendering; see render()
    if isinstance(exc, KeyboardInterrupt):
        return True  # the user's own interrupt, wherever in our waits it landed
    last = entries[-1]
    code = last.tb_frame.f_code
    if is_framework(code.co_filename) and not isinstance(exc, AssertionError):
        return bool(_RAISE.match(linecache.getline(code.co_filename, last.tb_lineno)))
    return isinstance(exc, JupyterFuturesError)  # raised through the standard library


def user_traceback(exc: BaseException, tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without the frames of jupyter_futures (and the library code it called) at its
    end, for an error it raised on purpose; ``tb`` itself for any other error."""
    entries = _entries(tb)
    if not _raised_by_us(exc, entries):
        return tb
    cut = len(entries)
    for i in range(len(entries) - 1, -1, -1):
        filename = entries[i].tb_frame.f_code.co_filename
        if is_framework(filename):
            cut = i
        elif not _library(filename):
            break  # the user's own code: everything from here up stays
    if cut == 0 or cut == len(entries):
        return tb
    out = None
    for entry in reversed(entries[:cut]):
        out = types.TracebackType(out, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return out


def show_error(
    shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: int | None = None
) -> None:
    """IPython's custom exception handler: show the error, as IPython would, from the
    user's own frames. ``%xmode verbose`` shows every frame."""
    if str(getattr(shell.InteractiveTB, "mode", "")).lower() != "verbose":
        tb = user_traceback(value, tb)
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


HANDLED = (Exception, KeyboardInterrupt)


def install(shell: Any) -> None:
    """Render remote errors (:func:`render`), and use :func:`show_error` for errors in
    cells unless another handler is set already."""
    if render not in errors.traceback_renderers:
        errors.traceback_renderers.append(render)
    if not shell.custom_exceptions:
        shell.set_custom_exc(HANDLED, show_error)


def uninstall(shell: Any) -> None:
    if shell.custom_exceptions == HANDLED:
        shell.set_custom_exc((), None)
