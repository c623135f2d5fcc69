"""The matplotlib backend of workers: ``plt.show()`` in a task shows its figures in the
cell that submitted the task, and a task's figures are its own.

::

    task 7: plt.plot(...) ─► Gcf.figs ─► TaskFigures[7] ─► plt.show() ─► display(fig) ─► cell of 7
    task 8: plt.figure()  ─► Gcf.figs ─► TaskFigures[8]    (figure 1 of task 8, not 2)
    task 7 ends ─► worker_output.end_task(7) ─► figures 7 still open are closed

Workers start with ``MPLBACKEND=module://jupyter_futures.capture.mpl_backend``. Figures are drawn
by Agg; ``show()`` hands each open figure of the calling task to IPython's ``display()``,
which in a task sends it to the kernel (``worker_output.py``), then closes them, as the
inline backend does.

pyplot keeps its figures in one process-wide registry (``Gcf.figs``), but several tasks
run at once in a worker (runner threads, actor threads) and one after another. So the
registry is replaced, when this backend is loaded, by one that keeps a registry per task:
``plt.gcf()``, figure numbers, ``plt.show()`` and ``plt.close("all")`` see only the
calling task's figures, and whatever a task leaves open is closed when it ends, so it can
never turn up in a later task's ``plt.show()``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from matplotlib._pylab_helpers import Gcf
from matplotlib.backends.backend_agg import FigureCanvasAgg

from . import output as worker_output

FigureCanvas = FigureCanvasAgg

Managers = OrderedDict[Any, Any]  # figure number -> manager, the active one last


class TaskFigures(MutableMapping[Any, Any]):
    """``Gcf.figs`` for a process that runs tasks: the calling task's figures only.

    Figures made outside any task (``current_task()`` is None) share one registry, as in
    a plain process."""

    def __init__(self, current_task: Callable[[], int | None]) -> None:
        self._current = current_task
        self._lock = threading.Lock()
        self._by_task: dict[int | None, Managers] = {}

    def _mine(self, create: bool = False) -> Managers:
        tid = self._current()
        with self._lock:
            figs = self._by_task.get(tid)
            if figs is None:
                figs = OrderedDict()
                if create:
                    self._by_task[tid] = figs
        return figs

    def end_task(self, tid: int) -> None:
        """Close the figures ``tid`` left open (called when it ends, on its thread)."""
        with self._lock:
            figs = self._by_task.pop(tid, None)
        for manager in (figs or {}).values():
            cid = getattr(manager, "_cidgcf", None)
            if cid is not None:
                manager.canvas.mpl_disconnect(cid)
            manager.destroy()

    # -- what Gcf and pyplot use of an OrderedDict ----------------------------------
    def __getitem__(self, num: Any) -> Any:
        return self._mine()[num]

    def __setitem__(self, num: Any, manager: Any) -> None:
        self._mine(create=True)[num] = manager

    def __delitem__(self, num: Any) -> None:
        del self._mine()[num]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._mine()))

    def __reversed__(self) -> Iterator[Any]:
        return reversed(list(self._mine()))

    def __len__(self) -> int:
        return len(self._mine())

    def keys(self) -> Any:
        return self._mine().keys()

    def values(self) -> Any:  # reversed(Gcf.figs.values()) must work: an odict view
        return self._mine().values()

    def items(self) -> Any:
        return self._mine().items()

    def move_to_end(self, num: Any, last: bool = True) -> None:
        self._mine().move_to_end(num, last)

    def clear(self) -> None:
        self._mine().clear()


def _install() -> TaskFigures:
    figures = TaskFigures(worker_output.running_task)
    for num, manager in Gcf.figs.items():  # made before this backend loaded: nobody's
        figures._by_task.setdefault(None, OrderedDict())[num] = manager
    Gcf.figs = figures  # type: ignore[assignment]
    worker_output.at_task_end(figures.end_task)
    return figures


figures = _install()


def show(*args: Any, **kwargs: Any) -> None:
    from IPython.display import display

    try:
        for manager in Gcf.get_all_fig_managers():  # the calling task's figures
            display(manager.canvas.figure)
    finally:
        Gcf.destroy_all()
