"""The kernel's ``Client`` as a card in a notebook: what Dask's client card shows.

::

    Client._repr_html_ / _repr_mimebundle_ ──► card(client) ──► Client.status()
        ┌ jupyter_futures Client  17e65a45cc · 2 workers ─────────────────────────┐
        │ Workers 2 · CPUs 2 · memory 24 GiB · RSS 61 MiB                         │
        │ Store 8.0 MiB / 5.9 GiB in shared memory · 3 objects                    │
        │ Futures 20 done, 1 running · Actors 1                                   │
        │ Dashboard: jf.dashboard() or %futures dashboard; the Cluster panel      │
        │ ▸ Workers (a table: CPU, RSS, store, running, actors)                   │
        └─────────────────────────────────────────────────────────────────────────┘

A static snapshot, taken when the card is drawn (the dashboard is the live view): plain
HTML styled with JupyterLab's theme variables (``html.py``), so it needs no ipywidgets
and reads the same in nbviewer; ``text/plain`` stays the client's ``repr``. Memory is in
binary units (MiB, GiB), as everywhere else.
"""

from __future__ import annotations

from typing import Any

from . import html as h


def card(client: Any) -> str:
    """The HTML card of ``client`` (a :class:`jupyter_futures.Client`)."""
    title = f"jupyter_futures Client {h.esc(client.cluster_id)}"
    if client.closed:
        return h.box(h.dim("closed: jf.init() starts a new cluster"), title=title)
    try:
        st = client.status()
    except Exception as exc:  # a repr must not raise: the cluster may be going away
        return h.box(h.dim(f"status unavailable ({h.esc(type(exc).__name__)})"), title=title)
    workers = st["workers"]
    alive = [w for w in workers if w["alive"]]
    cpus = sum(w["capacity"].get("cpu", 0) for w in alive)
    gpus = sum(w["capacity"].get("gpu", 0) for w in alive)
    ram = sum(w["capacity"].get("ram", 0) for w in alive)
    rss = sum(w["rss"] for w in alive)
    kernel = st.get("kernel_store") or {"used": 0, "capacity": 0}  # where the engine has one
    where = "in Dask workers' memory" if client.backend.name == "dask" else "in shared memory"
    used = kernel["used"] + sum(w["store_used"] for w in workers)
    capacity = kernel["capacity"] + sum(w["store_capacity"] for w in workers)
    objects = st["objects"]
    counts = ", ".join(f"{n:,} {s}" for s, n in sorted(st["futures"].items())) or "none"
    summary = [
        ("Workers", f"{len(alive)}" + (f" of {len(workers)}" if len(alive) != len(workers) else "")),
        ("CPUs", f"{cpus:g}" + (f" · GPUs {gpus:g}" if gpus else "")),
        ("Memory", f"{h.nbytes(ram)} offered · {h.nbytes(rss)} in use (RSS)"),
        (
            "Store",
            f"{h.nbytes(used)} / {h.nbytes(capacity)} {where} · {objects['count']:,} objects"
            + (f" · {h.nbytes(objects['spilled'])} spilled" if objects["spilled"] else ""),
        ),
        ("Futures", counts),
        ("Actors", f"{len(st['actors']):,}"),
    ]
    rows = "".join(
        f'<tr><td style="padding: 1px 12px 1px 0; color: {h.FG_DIM}">{name}</td>'
        f'<td style="padding: 1px 0">{h.esc(value)}</td></tr>'
        for name, value in summary
    )
    hint = (
        f'<div style="margin-top: 4px">{h.dim("Dashboard:")} <code>jf.dashboard()</code> or '
        "<code>%futures dashboard</code> for a live view; in JupyterLab, the "
        "<b>Cluster</b> panel in the left sidebar</div>"
    )
    return h.box(
        f'<table style="border-collapse: collapse">{rows}</table>{hint}{_workers(workers)}',
        title=f"{title} · {len(alive)} workers",
    )


def _workers(workers: list[dict[str, Any]]) -> str:
    if not workers:
        return ""
    rows = [
        [
            f"{h.dot('running' if w['running'] else ('done' if w['alive'] else 'failed'))}{w['id']}",
            h.dim(str(w["pid"])),
            f"{w['cpu_percent']:.0f}%",
            h.nbytes(w["rss"]),
            f"{h.nbytes(w['store_used'])} / {h.nbytes(w['store_capacity'])}",
            str(len(w["running"])),
            str(len(w["actors"])),
        ]
        for w in workers
    ]
    table = h.table(["worker", "pid", "CPU", "RSS", "store", "running", "actors"], rows)
    return (
        f'<details style="margin-top: 4px"><summary style="cursor: pointer; color: {h.FG_DIM}">'
        f"Workers</summary>{table}</details>"
    )
