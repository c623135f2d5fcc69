"""The notebook side of the API: :func:`dashboard`, :func:`task_stream` and :func:`progress`.

Both return ipywidgets that show themselves when they are a cell's value (or passed to
``display``) and keep a text and HTML snapshot of their last state in the output, for
saved notebooks. ipywidgets is imported on the first call, not with the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import NotInKernelError

if TYPE_CHECKING:
    from ..futures import Future
    from .widgets.dashboard import Dashboard
    from .widgets.progress import Progress
    from .widgets.stream_widget import TaskStreamWidget


def dashboard() -> Dashboard:
    """A live dashboard of the current cluster (started if none is running).

    Per worker: CPU %, RSS, shared-memory store use, running tasks, actors. Futures by
    state, the latest ones and the failures with their errors; actors with their calls;
    objects in the store and the kernel variables that hold them. It updates about twice
    a second while work runs and rests when nothing changes.

    Examples
    --------
    >>> jf.dashboard()          # as the last line of a cell
    """
    from .widgets.dashboard import Dashboard

    return Dashboard(_kernel_client("the dashboard"))


def task_stream(window: float = 30.0, width: int = 720) -> TaskStreamWidget:
    """The task stream of the current cluster: the last ``window`` seconds of runs.

    One lane per worker and one per actor; a bar per run (runs of one function back to
    back join one bar), coloured by the future's name, failed runs red, cancelled ones
    orange; hovering a bar says what it ran, how long it took and where. It scrolls live
    while work runs and rests when nothing does; its output keeps the picture as SVG, so
    a saved notebook shows it. ``.svg()`` returns that SVG. The dashboard shows it too.

    Examples
    --------
    >>> jf.task_stream()        # as the last line of a cell
    """
    from .widgets.stream_widget import TaskStreamWidget

    return TaskStreamWidget(_kernel_client("the task stream"), window, width)


def _kernel_client(what: str) -> Any:
    from ..api import init
    from ..client import Client

    client = init()
    if not isinstance(client, Client):
        raise NotInKernelError(f"{what} is available in the kernel, not inside tasks")
    return client


def progress(futures: Iterable[Future[Any]], label: str = "") -> Progress:
    """A progress bar over ``futures``: done, failed, total, rate and time left.

    Examples
    --------
    >>> fs = [jf.submit(work, i) for i in range(1000)]
    >>> jf.progress(fs)
    """
    from .widgets.progress import Progress

    return Progress(futures, label)
