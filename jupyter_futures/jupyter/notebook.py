"""The notebook side of the API: :func:`dashboard` and :func:`progress`.

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
    from ..api import init
    from ..client import Client
    from .widgets.dashboard import Dashboard

    client = init()
    if not isinstance(client, Client):
        raise NotInKernelError("the dashboard is available in the kernel, not inside tasks")
    return Dashboard(client)


def progress(futures: Iterable[Future[Any]], label: str = "") -> Progress:
    """A progress bar over ``futures``: done, failed, total, rate and time left.

    Examples
    --------
    >>> fs = [jf.submit(work, i) for i in range(1000)]
    >>> jf.progress(fs)
    """
    from .widgets.progress import Progress

    return Progress(futures, label)
