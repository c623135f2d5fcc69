"""What every jupyter_futures widget shares: a live HTML view that is also its snapshot.

::

    state ──render──► (html, text) ──► widget.value: the live view, over the widget's comm
                              └──────► text/html and text/plain of the output itself

    displayed ──► live: widget view + snapshot          (display_data with a display id)
       settles ──► static: the snapshot alone           (update_display_data)
       changes again ──► live                           (update_display_data)
       finished (future resolved, cluster gone) ──► static, and the widget is closed

A settled output holds no widget view, so a saved notebook (JupyterLab without saved
widget state, nbviewer, nbconvert, nbval) shows the last state instead of "model not
found"; the view looks the same either way, being the same HTML. Closing finished widgets
frees their models in the kernel and the front end.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import ipywidgets

from ..kernel_output import kernel_shell
from .html import box

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class SnapshotWidget(ipywidgets.HTML):  # type: ignore[misc]
    """An HTML widget whose output also carries a text/plain and text/html snapshot."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._display_id = uuid.uuid4().hex
        self._displayed = False  # shown in a kernel's output, under our display id
        self._static = False  # that output shows the snapshot alone
        self._text = ""
        self._published = ""  # the HTML the output shows now
        self._output_lock = threading.Lock()

    # -- state -----------------------------------------------------------------------
    def show(self, inner_html: str, text: str, *, settled: bool = False) -> None:
        """Update the view; ``settled`` turns the output into its snapshot (until it changes)."""
        view = box(inner_html)
        if view != self.value:  # type: ignore[has-type]
            self.value = view
        self._text = text
        if settled:
            self._publish(static=True)
        elif self._static:
            self._publish(static=False)

    def finish(self) -> None:
        """The state is final: leave the snapshot in the output and close the widget."""
        self._publish(static=True)
        if self.comm is not None:
            self.close()

    @property
    def text(self) -> str:
        """The text/plain snapshot of the current state."""
        return self._text

    def snapshot(self) -> dict[str, str]:
        """The text/plain and text/html parts of this widget's output."""
        return {"text/plain": self._text, "text/html": self.value}

    # -- display ---------------------------------------------------------------------
    def bundle(self) -> dict[str, Any]:
        """What an output of this widget holds: its view while open, and the snapshot."""
        out: dict[str, Any] = {}
        if self.comm is not None:  # a closed widget has no view left
            out = super()._repr_mimebundle_() or {}
        out.update(self.snapshot())
        return out

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return self.bundle()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        with self._output_lock:  # an update from the ticker thread waits for the display
            bundle = self.bundle()
            # Noted before it is sent: an interrupt landing right after the output went out
            # must not leave it shown but unknown (its later updates would be dropped).
            self._displayed = kernel_shell() is not None  # a console has nothing to update
            self._static = WIDGET_VIEW not in bundle
            self._published = bundle["text/html"]
            display(bundle, raw=True, display_id=self._display_id)

    def _publish(self, static: bool) -> None:
        from IPython.display import update_display

        with self._output_lock:
            if not self._displayed or (static == self._static and self._published == self.value):
                return
            bundle = self.snapshot() if static else self.bundle()
            update_display(bundle, raw=True, display_id=self._display_id)
            self._static = static
            self._published = bundle["text/html"]

    def __repr__(self) -> str:
        return self._text or super().__repr__()
