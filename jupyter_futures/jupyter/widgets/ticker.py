"""A timer thread for live widgets that runs only while something is changing.

::

    Ticker ── thread (every INTERVAL s) ──► sub.tick() for each subscriber
        BUSY: keep ticking     IDLE: nothing to do until woken     DONE: forget it
        every subscriber IDLE or DONE ──► the thread ends (no polling while nothing runs)
    wake() ◄── a new subscriber; a cell starting or ending (pre/post_run_cell)
    tick_now() ── one pass on the caller's thread (a batch-run cell about to end)

Work starts in cells, so a subscriber may stay BUSY while a cell runs (see
``cell_running``): a cell that computes for a while and then submits is still seen.

Each dashboard has a Ticker of its own; future, actor and progress widgets share one.
Threads are named ``jupyter-futures-*`` (tests check that none outlives its cluster):
subscribers answer DONE once their cluster is shut down.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
import time
import weakref
from typing import Any, Protocol

log = logging.getLogger("jupyter_futures")

INTERVAL = 0.5
MIN_GAP = 0.02


class Tick(enum.Enum):
    BUSY = "busy"
    IDLE = "idle"
    DONE = "done"


class Subscriber(Protocol):
    def tick(self) -> Tick: ...


_tickers: weakref.WeakSet[Ticker] = weakref.WeakSet()
_hooked: weakref.WeakSet[Any] = weakref.WeakSet()


class Ticker:
    def __init__(self, name: str, interval: float = INTERVAL) -> None:
        self.name = name
        self.interval = interval
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._woken = False
        self._stopped = False
        self._event = threading.Event()  # set by wake() and close(): tick now
        self._pass_lock = threading.Lock()  # the thread's passes and tick_now() take turns
        _tickers.add(self)
        _hook_cells()

    def add(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.append(sub)
        self.wake()

    def remove(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def wake(self) -> None:
        """Tick now (starting the thread if it ended)."""
        with self._lock:
            self._woken = True
            self._event.set()
            if self._thread is None and self._subs and not self._stopped:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def close(self) -> None:
        with self._lock:
            self._subs.clear()
            self._stopped = True
            thread = self._thread
        self._event.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(2 * self.interval + 1)

    def tick_now(self) -> None:
        """Tick every subscriber once, on the calling thread (say, the shell's, so what
        they publish goes to the cell running now)."""
        self._pass()

    def _pass(self) -> bool:
        """One tick of every subscriber; True if one is busy. One pass at a time."""
        with self._pass_lock:
            with self._lock:
                subs = list(self._subs)
            busy = False
            for sub in subs:
                try:
                    state = sub.tick()
                except Exception:
                    log.exception("widget update failed")
                    state = Tick.DONE
                if state is Tick.DONE:
                    self.remove(sub)
                busy = busy or state is Tick.BUSY
            return busy

    def _run(self) -> None:
        while True:
            with self._lock:
                self._woken = False
                self._event.clear()
            busy = self._pass()
            with self._lock:
                if not (busy or self._woken) or not self._subs or self._stopped:
                    self._thread = None
                    return
            self._event.wait(self.interval)
            time.sleep(MIN_GAP)  # a burst of wake-ups makes one tick


_shared: list[Ticker] = []


def shared_ticker() -> Ticker:
    """The ticker of future, actor and progress widgets."""
    if not _shared:
        _shared.append(Ticker("jupyter-futures-widgets"))
    return _shared[0]


def settle_widgets() -> None:
    """Bring the future, actor and progress widgets up to date now, on the calling thread:
    a cell about to end publishes their final views under itself (see ``kernel_output``)."""
    if _shared:
        _shared[0].tick_now()


def wake_all(*_args: Any) -> None:
    for ticker in list(_tickers):
        ticker.wake()


_running_cells: list[bool] = [False]


def cell_running() -> bool:
    """A cell is executing in this kernel now (it may submit work at any moment)."""
    return _running_cells[0]


def _cell_started(*_args: Any) -> None:
    _running_cells[0] = True
    wake_all()


def _cell_finished(*_args: Any) -> None:
    _running_cells[0] = False
    wake_all()


def _hook_cells() -> None:
    """Wake every ticker when a cell starts or ends: new work starts in cells."""
    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and shell not in _hooked:
        shell.events.register("pre_run_cell", _cell_started)
        shell.events.register("post_run_cell", _cell_finished)
        # In a kernel this runs inside a cell (the one making the first widget).
        _running_cells[0] = getattr(shell, "kernel", None) is not None
        _hooked.add(shell)
