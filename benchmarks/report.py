"""Results: summary statistics, the machine description, the text table and the JSON file."""

from __future__ import annotations

import datetime
import platform
import statistics
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import psutil

from benchmarks.config import FLOOR_METRICS, METRIC_BY_NAME, METRICS, REFERENCE

PACKAGES = (
    "numpy",
    "pyzmq",
    "psutil",
    "cloudpickle",
    "jupyter_futures",
    "ray",
    "dask",
    "distributed",
    "ipyparallel",
)

RATIO_NOTE = (
    "ratio: how many times better jupyter_futures is than the peer (>1: jupyter_futures is "
    "faster / leaner): peer/jf for times and memory, jf/peer for rates"
)


def new_entry() -> dict[str, Any]:
    """A metric's raw record, as system runs write it and the runner merges it."""
    return {"samples": [], "warmup": [], "na": None, "error": None}


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    """Median and range of a metric's samples, next to the samples themselves."""
    s = entry.get("samples") or []
    return {
        "median": statistics.median(s) if s else None,
        "min": min(s) if s else None,
        "max": max(s) if s else None,
        **entry,
    }


def ratio(metric: str, ref: float | None, peer: float | None) -> float | None:
    if not ref or not peer:
        return None
    return ref / peer if METRIC_BY_NAME[metric].higher_is_better else peer / ref


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
    }


def packages() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def meta(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": packages(),
        "args": args,
        "ratio": RATIO_NOTE,
    }


def ratios(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    ref = systems.get(REFERENCE, {}).get("metrics", {})
    out: dict[str, dict[str, float | None]] = {}
    for m in METRICS:
        ref_median = _valid_median(ref.get(m.name))
        out[m.name] = {
            name: ratio(m.name, ref_median, _valid_median(s["metrics"].get(m.name)))
            for name, s in systems.items()
            if name != REFERENCE
        }
    return out


def _valid_median(entry: dict[str, Any] | None) -> float | None:
    """The median, unless the metric also failed (no ratio from a half-failed metric)."""
    if not entry or entry.get("error"):
        return None
    median: float | None = entry.get("median")
    return median


# -- text --------------------------------------------------------------------------------


def num(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def cell(entry: dict[str, Any] | None, repeat: int = 1, width: int = 90) -> tuple[str, str, str]:
    """(median, [min - max], note): the note says why there is no number, if so."""
    if not entry:
        return "-", "", "missing"
    if entry.get("error"):
        return "-", "", f"ERROR: {entry['error']}"[:width]
    if entry.get("median") is None:
        return "-", "", (f"n/a ({entry['na']})" if entry.get("na") else "no sample")
    n = len(entry["samples"])
    note = f"{n} of {repeat} samples" if n < repeat else ""
    return num(entry["median"]), f"[{num(entry['min'])} - {num(entry['max'])}]", note


def _rows(table: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in table if len(r) > i and len(r) != 1) for i in range(len(table[0]))]
    lines = []
    for r in table:
        if len(r) == 1:  # free text, not a column row
            lines.append(r[0])
            continue
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
    return lines


def text(results: dict[str, Any]) -> str:
    m, systems = results["meta"], results["systems"]
    mach = m["machine"]
    lines = [
        f"jupyter_futures benchmarks, {m['date']}",
        f"{mach['cpu']}, {mach['logical_cores']} cores, {mach['ram_gib']} GiB RAM, {m['python']}, "
        f"repeat {m['args'].get('repeat')}{', SMOKE sizes' if m['args'].get('smoke') else ''}",
        "values: median [min - max] over repetitions; " + RATIO_NOTE,
        "",
    ]
    table = [["workload", "unit", "system", "median", "[min - max]", "ratio", ""]]
    for metric in (m for m in METRICS if any(m.name in s["metrics"] for s in systems.values())):
        table.append([""])
        for i, (name, s) in enumerate(systems.items()):
            med, rng, note = cell(s["metrics"].get(metric.name), m["args"].get("repeat", 1))
            r = results["ratios"].get(metric.name, {}).get(name)
            shown_ratio = "ref" if name == REFERENCE else (f"{r:.2f}" if r else "-")
            first = i == 0
            table.append(
                [
                    metric.name if first else "",
                    metric.unit if first else "",
                    name,
                    med,
                    rng,
                    shown_ratio,
                    note,
                ]
            )
    lines += _rows(table)

    if results.get("floors"):
        lines += ["", "floors (same machine, same run):"]
        rows = [["", "metric", "unit", "median", "[min - max]", ""]]
        for f in FLOOR_METRICS:
            med, rng, note = cell(results["floors"]["metrics"].get(f.name))
            rows.append(["", f.name, f.unit, med, rng, note])
        lines += _rows(rows)

    lines += ["", "systems:"]
    for name, s in systems.items():
        status = s["status"] + (f" ({s['error']})" if s.get("error") else "")
        lines.append(f"  {name} {s.get('version') or ''}: {status}, {s['wall_s']:.1f} s wall")
        if s.get("notes"):
            lines.append(f"    {s['notes']}")
        if s.get("n_processes"):
            lines.append(f"    processes in the tree after warm-up: {s['n_processes']} (driver included)")
        for left in s.get("leftovers", []):
            lines.append(f"    LEFTOVER (killed): {left}")
    return "\n".join(lines) + "\n"
