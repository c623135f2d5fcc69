"""The matplotlib backend of workers: ``plt.show()`` in a task shows its figures in the
cell that submitted the task.

Workers start with ``MPLBACKEND=module://jupyter_futures.mpl_backend``. Figures are drawn
by Agg; ``show()`` hands each open figure to IPython's ``display()``, which in a task sends
it to the kernel (``worker_output.py``), then closes them, as the inline backend does.
"""

from __future__ import annotations

from typing import Any

from matplotlib._pylab_helpers import Gcf
from matplotlib.backends.backend_agg import FigureCanvasAgg

FigureCanvas = FigureCanvasAgg


def show(*args: Any, **kwargs: Any) -> None:
    from IPython.display import display

    try:
        for manager in Gcf.get_all_fig_managers():
            display(manager.canvas.figure)
    finally:
        Gcf.destroy_all()
