"""The cluster dashboard: workers, futures, actors and the object store, live.

::

    Dashboard ── its own ticker thread, every 0.5 s while work runs ──► Client.status()
        │            + latest futures, failures (backend views)          + kernel variables
        │      ──► one HTML view (sent only when it changed) ──► the widget's comm
        └── nothing pending, running or queued for two ticks, and no cell running: the
            thread ends and the saved snapshot is refreshed; a cell starting wakes it

Sections: per worker CPU %, RSS, store used/capacity as bars, running tasks, actors;
futures by state, the latest with state and duration, failures with their error; what is
queued per cell and priority (``status()["queued"]``: cells take turns); the task
stream (the last 30 s of runs, a lane per worker and per actor: ``task_stream.py``); actors
with class, worker, calls and their worker's memory; objects, bytes, spilled, and which
kernel variables hold futures. Above it, Scale (to the number in its field) and Restart
buttons call ``client.scale(n)`` and ``client.restart()`` on a thread of their own.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets

from ...backend import FutureView, sizes_from_info
from ...futures import Future
from ..stream_bars import StreamBuffer
from . import html as h
from . import task_stream as ts
from .base import SnapshotWidget
from .ticker import Tick, Ticker, cell_running

LATEST = 8
FAILURES = 5
QUEUES = 8  # rows of the queued-work table
VARIABLES = 8
SCAN_LIMIT = 100_000  # elements of a list or dict looked at for futures
IDLE_TICKS = 2
MAX_WORKERS = 256  # the most the Scale field offers
STREAM_WIDTH = 640


class Dashboard(SnapshotWidget):
    """A live view of a cluster; see :func:`jupyter_futures.dashboard`."""

    def __init__(self, client: Any, namespace: dict[str, Any] | None = None, interval: float = 0.5) -> None:
        super().__init__()
        self.client = client
        self.namespace = namespace if namespace is not None else _user_namespace()
        self.updates = 0  # times the view changed (each one a comm message)
        self.cpu_time = 0.0  # CPU seconds spent updating
        self._idle = 0
        self._failed_seen = -1
        self._failures: list[FutureView] = []
        self._last: tuple[str, str] | None = None
        self._last_time = time.time()
        self._controls: Controls | None = None
        self.stream = StreamBuffer()
        self.ticker = Ticker("jupyter-futures-dashboard", interval)
        self.tick()
        self.ticker.add(self)

    def tick(self) -> Tick:
        started = time.thread_time()
        try:
            return self._tick()
        finally:
            self.cpu_time += time.thread_time() - started

    def _tick(self) -> Tick:
        if self.client.closed:  # keep the last view, marked as such
            html, text = self._last or ("", "jupyter_futures dashboard")
            when = time.strftime("%H:%M:%S", time.localtime(self._last_time))
            note = f"<div>{h.dim(f'the cluster was shut down; as it was at {when}:')}</div>"
            self.show(note + html, f"{text} (at {when}; the cluster was shut down)")
            self.finish()
            return Tick.DONE
        status = self.client.status()
        counts = status["futures"]
        busy = bool(counts.get("pending") or counts.get("running")) or any(
            a["calls_queued"] for a in status["actors"]
        )
        self._idle = 0 if busy else self._idle + 1
        settled = self._idle >= IDLE_TICKS and not cell_running()
        html, text = self._last = self._render(status)
        self._last_time = time.time()
        before = self.value
        self.show(html, text, settled=settled)
        if self.value != before:
            self.updates += 1
        return Tick.IDLE if settled else Tick.BUSY

    def close(self) -> None:
        self.ticker.close()
        if self._controls is not None:
            self._controls.close()
        super().close()

    # -- controls: scale and restart -----------------------------------------------------
    @property
    def controls(self) -> Controls:
        """The row of buttons shown above the dashboard (made when first asked for)."""
        if self._controls is None:
            self._controls = Controls(self.client, on_done=self.ticker.wake)
        return self._controls

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.client.closed:
            display(self.controls)
        super()._ipython_display_()

    # -- rendering -------------------------------------------------------------------
    def _render(self, st: dict[str, Any]) -> tuple[str, str]:
        workers = st["workers"]
        counts = st["futures"]
        objects = st["objects"]
        latest = self.client.backend.latest_futures(LATEST)
        failed = counts.get("failed", 0)
        if failed != self._failed_seen:
            self._failures = self.client.backend.failed_futures(FAILURES)
            self._failed_seen = failed
        rss = {w["id"]: w["rss"] for w in workers}
        on_dask = st.get("engine") == "dask"
        self.stream.pull(self.client.backend)
        parts = [
            self._workers(workers, "managed" if on_dask else "store"),
            _gpus(workers),
            self._futures(counts, latest),
            _queued(st.get("queued") or []),
            _section("Task stream", ts.svg(self.stream, STREAM_WIDTH) + ts.legend(self.stream)),
            self._actors(st["actors"], rss),
            self._store(objects, "in Dask workers' memory" if on_dask else "in shared memory"),
            _dropped(st.get("messages")),
        ]
        futures = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no futures"
        text = (
            f"jupyter_futures cluster {st.get('cluster', '')}: {len(workers)} workers; {futures}; "
            f"{len(st['actors'])} actors; {objects['count']} objects, {h.nbytes(objects['bytes'])}"
        )
        return "".join(parts), text

    def _workers(self, workers: list[dict[str, Any]], store: str) -> str:
        rows = []
        for w in workers:
            cpu = w["cpu_percent"]
            used, cap = w["store_used"], w["store_capacity"]
            running = [_task_name(self.client, t) for t in w["running"][:3]]
            more = len(w["running"]) - len(running)
            rows.append(
                [
                    f"{h.dot('running' if w['running'] else ('done' if w['alive'] else 'pending'))}{w['id']}",
                    h.bar(cpu / 100, width="6em", label=f"{cpu:.0f}%"),
                    h.nbytes(w["rss"]),
                    h.bar(
                        used / cap if cap else 0,
                        h.COLORS["done"],
                        "6em",
                        f"{h.nbytes(used)} / {h.nbytes(cap)}",
                    ),
                    h.esc(", ".join(running) + (f" +{more}" if more > 0 else "")) or h.dim("idle"),
                    str(len(w["actors"])),
                ]
            )
        return _section("Workers", h.table(["worker", "CPU", "RSS", store, "running", "actors"], rows))

    def _futures(self, counts: dict[str, int], latest: list[FutureView]) -> str:
        total = sum(counts.values()) or 1
        order = ["done", "running", "pending", "failed", "cancelled"]
        bar = h.stacked_bar([(counts.get(s, 0) / total, h.COLORS[s]) for s in order])
        legend = " ".join(f"{h.dot(s)}{s} {counts.get(s, 0):,}" for s in order if counts.get(s))
        rows = [
            [
                f"{h.dot(v.state)}{h.esc(v.name)}",
                h.dim(str(v.id)),
                v.state,
                h.seconds(v.elapsed) if v.elapsed else "",
            ]
            for v in latest
        ]
        html = f"<div>{bar} {legend or h.dim('no futures')}</div>"
        if rows:
            html += h.table(["latest", "id", "state", "time"], rows)
        if self._failures:
            html += h.table(
                ["failed", "error"],
                [
                    [
                        h.esc(v.name),
                        f'<code style="color: {h.COLORS["failed"]}">{h.esc(v.error[:200])}</code>',
                    ]
                    for v in self._failures
                ],
            )
        return _section("Futures", html)

    def _actors(self, actors: list[dict[str, Any]], rss: dict[int, int]) -> str:
        if not actors:
            return ""
        rows = [
            [
                f"{h.dot({'alive': 'done', 'dead': 'failed'}.get(a['state'], 'pending'))}{h.esc(a['class'])}",
                h.dim(str(a["id"])),
                str(a["worker"] if a["worker"] is not None else "-"),
                h.esc(a["state"]),
                f"{a['calls_done']:,} done, {a['calls_queued']:,} queued",
                h.nbytes(rss[a["worker"]]) if a["worker"] in rss else "",
            ]
            for a in actors
        ]
        return _section("Actors", h.table(["class", "id", "worker", "state", "calls", "worker RSS"], rows))

    def _store(self, objects: dict[str, int], where: str) -> str:
        html = (
            f"<div>{objects['count']:,} objects, {h.nbytes(objects['bytes'])} {where}"
            + (f", {h.nbytes(objects['spilled'])} spilled to disk" if objects["spilled"] else "")
            + "</div>"
        )
        held = holders(self.namespace, self.client.backend.value_sizes)[:VARIABLES]
        if held:
            rows = [[f"<code>{h.esc(name)}</code>", f"{n:,}", h.nbytes(b)] for name, n, b in held]
            html += h.table(["kernel variable", "futures", "bytes"], rows)
        return _section("Object store", html)


class Controls(ipywidgets.HBox):  # type: ignore[misc]
    """Scale and Restart buttons for a cluster. A click runs on a thread of its own (a
    restart takes a second or two), says what it is doing, and is ignored meanwhile."""

    def __init__(self, client: Any, on_done: Callable[[], None] | None = None) -> None:
        self.client = client
        self._on_done = on_done
        self.workers = ipywidgets.BoundedIntText(
            value=max(1, int(client.n_workers or 1)),
            min=1,
            max=MAX_WORKERS,
            description="workers",
            layout=ipywidgets.Layout(width="150px"),
        )
        self.scale_button = ipywidgets.Button(description="Scale", tooltip="start or retire workers")
        self.restart_button = ipywidgets.Button(description="Restart", tooltip="replace every worker")
        self.message = ipywidgets.Label("")
        self.scale_button.on_click(
            lambda _b: self._run("scaling", lambda: client.scale(int(self.workers.value)))
        )
        self.restart_button.on_click(lambda _b: self._run("restarting", client.restart))
        self._busy = threading.Lock()
        self.done = threading.Event()  # set when the last click's work is over
        self.done.set()
        super().__init__([self.workers, self.scale_button, self.restart_button, self.message])
        self.add_class("jf-dashboard-controls")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = "cluster controls: Scale, Restart (live while the kernel runs)"
        return bundle

    def _run(self, what: str, action: Callable[[], None]) -> None:
        if not self._busy.acquire(blocking=False):
            return
        self.done.clear()
        self.message.value = f"{what}…"
        self.scale_button.disabled = self.restart_button.disabled = True

        def work() -> None:
            try:
                action()
                self.message.value = f"{self.client.n_workers} workers"
            except Exception as exc:
                self.message.value = f"{type(exc).__name__}: {exc}"
            finally:
                self.scale_button.disabled = self.restart_button.disabled = False
                self._busy.release()
                self.done.set()
                if self._on_done is not None:
                    self._on_done()

        threading.Thread(target=work, name="jupyter-futures-dashboard-control", daemon=True).start()


def holders(
    namespace: dict[str, Any], sizes: Callable[[list[Future[Any]]], list[int]] = sizes_from_info
) -> list[tuple[str, int, int]]:
    """Kernel variables holding futures: ``(name, futures, bytes of their values)``, largest
    first; ``sizes`` is the engine's ``value_sizes`` (asked once for all of them)."""
    found = [
        (name, fs)
        for name, value in list(namespace.items())
        if not name.startswith("_") and (fs := _futures_in(value))
    ]
    every = [f for _, fs in found for f in fs]
    size = dict(zip((id(f) for f in every), sizes(every))) if every else {}
    out = [(name, len(fs), sum(size.get(id(f), 0) for f in fs)) for name, fs in found]
    out.sort(key=lambda r: (-r[2], -r[1], r[0]))
    return out


def _futures_in(value: Any) -> list[Future[Any]]:
    if isinstance(value, Future):
        return [value]
    items: Any
    if isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        return []
    if not items or not isinstance(items[0], Future):
        return []
    return [f for f in items[:SCAN_LIMIT] if isinstance(f, Future)]


def _queued(rows: list[dict[str, int]]) -> str:
    """Pending work per cell (a group: the cell that submitted it) and priority, the
    highest priority first, then the newest cell; equal priorities take turns by cell."""
    if not rows:
        return ""
    shown = [
        [
            f"In[{r['group']}]" if r["group"] > 0 else h.dim("outside cells"),
            str(r["priority"]),
            f"{r['tasks']:,}",
        ]
        for r in rows[:QUEUES]
    ]
    more = len(rows) - len(shown)
    if more > 0:
        rest = sum(r["tasks"] for r in rows[QUEUES:])
        shown.append([h.dim(f"{more} more"), "", f"{rest:,}"])
    return _section("Queued", h.table(["cell", "priority", "pending"], shown))


def _gpus(workers: list[dict[str, Any]]) -> str:
    """Each worker's GPUs (``status()["workers"][i]["gpus"]``): utilisation and memory, the
    whole device's; shown only where some worker has one."""
    rows = []
    for w in workers:
        for g in w.get("gpus") or []:
            util, used, total = g.get("utilization"), g.get("memory_used"), g.get("memory_total")
            rows.append(
                [
                    f"{h.dot('running' if util else 'done')}{w['id']}",
                    f"{g['index']} {h.dim(h.esc(g.get('name') or ''))}",
                    h.bar(util / 100, width="6em", label=f"{util:.0f}%") if util is not None else h.dim("?"),
                    h.bar(used / total, h.COLORS["done"], "6em", f"{h.nbytes(used)} / {h.nbytes(total)}")
                    if used is not None and total
                    else h.dim("?"),
                ]
            )
    if not rows:
        return ""
    return _section("GPUs", h.table(["worker", "GPU", "busy", "memory"], rows))


def _dropped(messages: dict[str, Any] | None) -> str:
    """Control frames the cluster dropped unread (a bad signature, a replay ...): shown only
    when there are some, as a hint that something else talks to the cluster's sockets."""
    if not messages or not messages.get("dropped"):
        return ""
    reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(messages["dropped_by"].items()) if n)
    line = (
        f"{messages['dropped']:,} dropped (kernel {messages['kernel']:,}, "
        f"workers {messages['workers']:,}): {h.esc(reasons)}"
    )
    return _section("Dropped messages", h.dim(line))


def _task_name(client: Any, tid: int) -> str:
    view = client.backend.future_view(tid)
    return view.name if view is not None else str(tid)


def _section(title: str, body: str) -> str:
    if not body:
        return ""
    return (
        f'<div style="margin-top: 6px"><div style="font-weight: 600; border-bottom: 1px solid {h.BORDER}; '
        f'margin-bottom: 2px">{h.esc(title)}</div>{body}</div>'
    )


def _user_namespace() -> dict[str, Any]:
    if "IPython" not in sys.modules:
        return {}
    from IPython import get_ipython

    shell = get_ipython()
    return shell.user_ns if shell is not None else {}
