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
values. A cell that raises still produces its output (with the names it assigned before
the error); ``take(output, LAST)`` raises the error again, with the cell's own traceback,
so the cell's future fails the way the cell did. This module is imported on workers: it
needs neither IPython nor ipywidgets.
"""

from __future__ import annotations

import ast
import builtins
import traceback
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from .errors import SerializationError, _RemoteTraceback

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
        output = _execute(cell, namespace)
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
    return _execute(cell, namespace)


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


def _execute(cell: CellCode, namespace: dict[str, Any]) -> CellOutput:
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
        exec(compile(tree, cell.filename, "exec"), namespace)
        if last is not None:
            output.value = eval(compile(last, cell.filename, "eval"), namespace)
    except Exception as exc:  # a cancel (a BaseException) goes through
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
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
