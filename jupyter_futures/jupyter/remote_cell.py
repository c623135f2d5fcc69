"""Running a ``%%remote`` cell on a worker, then taking its names out one by one.

::

    kernel                                            worker
    %%remote NAME ── submit(run_cell, cell, variables) ──► exec(cell) in a fresh namespace
                                                          └─► CellOutput: the last value,
                                                              the assigned names, the error
    NAME ◄──── submit(take, output, LAST, locality=output) ─► the last expression's value
    x, y ◄──── submit(take, output, "x", locality=output) ──► the value of x, taken where
                                                              the cell's output lives
    --actor A: call_actor(A, "__jf_run__", run_in_actor, cell, variables) runs the same
               code in a namespace that A keeps from one cell to the next.

Futures among the variables are the kernel's dependencies: the worker receives their
values (an ``AttributeError`` for a Future's method on such a value says so). A cell with
top-level ``await`` runs as a coroutine, in an event loop of its own. A cell that raises
still produces its output (with the names it assigned before the error);
``take(output, LAST)`` raises the error again, with the cell's own traceback, so the
cell's future fails the way the cell did. This module is imported on workers: it needs
neither IPython nor ipywidgets.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import traceback
import types
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from ..errors import SerializationError, _RemoteTraceback

LAST = "\x00last"
"""The key ``take`` reads for the cell's last expression (not a valid identifier)."""


@dataclass(frozen=True)
class CellCode:
    """A cell as shipped to a worker."""

    source: str
    filename: str  # the kernel's name for the cell, so tracebacks read "Cell In[n]"
    first_line: int  # line of the cell where ``source`` starts (2 under a ``%%remote`` line)
    names: tuple[str, ...]  # names to hand back to the kernel
    retries: int = 0  # run the cell again this many times if it raises
    futures: tuple[str, ...] = ()  # variables that are Futures in the kernel (values here)


@dataclass
class CellOutput:
    """What a cell left behind: its value, its names, and its error if it raised."""

    value: Any = None
    names: dict[str, Any] = field(default_factory=dict)
    unpicklable: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None
    error_text: str = ""

    def __repr__(self) -> str:
        state = f"raised {type(self.error).__name__}" if self.error else "ok"
        return f"<CellOutput {state}, names {sorted(self.names)}>"


class Namespace:
    """An actor that holds nothing but the namespace of ``%%remote --actor`` cells."""

    def __repr__(self) -> str:
        return "<remote namespace>"


def run_cell(cell: CellCode, variables: dict[str, Any]) -> CellOutput:
    """Run a cell in a fresh namespace seeded with the kernel's variables (on a worker)."""
    for attempt in range(cell.retries + 1):
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        namespace.update(variables)
        output = _execute(cell, namespace, variables)
        if output.error is None or attempt == cell.retries:
            return output
    raise AssertionError("unreachable")


def run_in_actor(
    instance: Any, namespace: dict[str, Any], cell: CellCode, variables: dict[str, Any]
) -> CellOutput:
    """Run a cell in the namespace an actor keeps between cells (on the actor's thread).

    ``self`` is the actor's instance, as in one of its methods."""
    namespace.setdefault("__name__", "__main__")
    namespace.setdefault("__builtins__", builtins)
    namespace["self"] = instance
    namespace.update(variables)
    return _execute(cell, namespace, variables)


def take(output: CellOutput, key: str) -> Any:
    """One value out of a cell's output: ``LAST`` for its result, or a name it assigned."""
    if key == LAST:
        if output.error is not None:
            raise output.error from _RemoteTraceback(output.error_text)
        return output.value
    if key in output.names:
        return output.names[key]
    if key in output.unpicklable:
        raise SerializationError(
            f"{key} stays on the worker: {output.unpicklable[key]}. Keep such objects in an "
            "actor namespace (%%remote --actor NAME) and use them there."
        )
    if output.error is not None:
        raise NameError(f"{key} was not assigned: the cell raised {type(output.error).__name__} first")
    raise NameError(f"the cell did not assign {key} (the code that does was not run)")


_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def _execute(cell: CellCode, namespace: dict[str, Any], variables: dict[str, Any]) -> CellOutput:
    tree = ast.parse(cell.source, cell.filename)
    ast.increment_lineno(tree, cell.first_line - 1)
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        del tree.body[-1]
    if "display" not in namespace:
        namespace["display"] = _display
    output = CellOutput()
    try:
        body = compile(tree, cell.filename, "exec", flags=_AWAIT)
        tail = compile(last, cell.filename, "eval", flags=_AWAIT) if last is not None else None
        if _awaits(body) or (tail is not None and _awaits(tail)):
            output.value = asyncio.run(_run_async(body, tail, namespace))
        else:
            exec(body, namespace)
            if tail is not None:
                output.value = eval(tail, namespace)
    except Exception as exc:  # a cancel (a BaseException) goes through
        _explain_future_value(exc, cell, variables)
        tb = _from_cell(exc.__traceback__, cell.filename)
        output.error_text = "".join(traceback.format_exception(type(exc), exc, tb))
        error = _picklable_error(exc.with_traceback(None), output.error_text)
        error._jf_cell_traceback = output.error_text  # type: ignore[attr-defined]  # see tracebacks.py
        output.error = error
    if namespace.get("display") is _display:
        del namespace["display"]
    for name in cell.names:
        if name not in namespace:
            continue
        value = namespace[name]
        problem = _pickling_problem(value)
        if problem is None:
            output.names[name] = value
        else:
            output.unpicklable[name] = problem
    problem = _pickling_problem(output.value) if output.error is None else None
    if problem is not None:
        output.error = SerializationError(f"the cell's result cannot be sent back: {problem}")
        output.value = None
    return output


def _awaits(code: types.CodeType) -> bool:
    return bool(code.co_flags & inspect.CO_COROUTINE)


async def _run_async(body: types.CodeType, tail: types.CodeType | None, namespace: dict[str, Any]) -> Any:
    """The cell as a coroutine: code compiled with top-level await evaluates to one."""
    run = eval(body, namespace)
    if _awaits(body):
        await run
    if tail is None:
        return None
    value = eval(tail, namespace)
    return await value if _awaits(tail) else value


def _from_cell(tb: types.TracebackType | None, filename: str) -> types.TracebackType | None:
    """The traceback from the cell's own frame on (this module and asyncio left out)."""
    first = tb.tb_next if tb is not None else None
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return tb if tb is not None else first


# What a kernel-side Future offers that its value (most likely) does not.
_FUTURE_API = frozenset(
    ("result", "exception", "done", "cancel", "cancelled", "running", "add_done_callback", "state")
)


def _explain_future_value(exc: Exception, cell: CellCode, variables: dict[str, Any]) -> None:
    """``total.result()`` on the value of a kernel Future: say why ``total`` is no Future here."""
    if not isinstance(exc, AttributeError) or exc.name not in _FUTURE_API:
        return
    for name in cell.futures:
        if name in variables and exc.obj is variables[name]:
            exc.args = (
                f"{exc.args[0] if exc.args else exc} ({name} is a Future in the kernel: a %%remote "
                f"cell waits for it and receives its value, so {name} here is what "
                f"{name}.result() gives there)",
            )
            return


def _display(*objs: Any, **kwargs: Any) -> Any:
    """``display`` for cells, as IPython provides it in the kernel."""
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is installed beside the kernel
        print(*objs)
        return None
    return display(*objs, **kwargs)


_CHEAP = (int, float, complex, bool, str, bytes, type(None))


def _pickling_problem(value: Any) -> str | None:
    """Why ``value`` cannot be sent back, or None. Large buffers are not copied to find out."""
    if isinstance(value, _CHEAP):
        return None
    try:
        cloudpickle.dumps(value, protocol=5, buffer_callback=lambda _buffer: None)
    except Exception as exc:
        return f"a {type(value).__name__} cannot be pickled ({type(exc).__name__}: {exc})"
    return None


def _picklable_error(exc: Exception, text: str) -> BaseException:
    if _pickling_problem(exc) is None:
        return exc
    message = text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
    return RuntimeError(message)
