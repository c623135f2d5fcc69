"""Where the time goes: ``python -m benchmarks --profile WORKLOAD [--systems S] [--smoke]``.

::

    python -m benchmarks.system_runner SYSTEM --groups GROUP --profile FILE
        start-up, warm-up, then: py-spy record --pid <runner> --subprocesses (the driver, the
        workers, all their threads, --rate samples a second) only while GROUP runs, once
        (or repeated until MIN_SAMPLED_S have passed)
        │
        ├─► results/profile-SYSTEM-WORKLOAD.speedscope.json   a timeline per process and thread
        │                                                     (open it in https://www.speedscope.app)
        └─► results/profile-SYSTEM-WORKLOAD.txt               per process and thread: the time
                                                              sampled, the functions that used it

A thread's total is the time py-spy saw it on a stack; threads waiting in ``poll`` or on a
condition show as such (``Poller.poll``, ``Condition.wait``). The group runs once, at full
size unless ``--smoke``, and again until a second has passed (a smoke-sized group takes a
few ms); start-up and the warm-up are not sampled.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import config, procs

ROOT = Path(__file__).resolve().parents[1]
MIN_SAMPLED_S = 1.0  # the least time a profiled group runs for


class ProfilerMissing(RuntimeError):
    """py-spy is not installed, or may not sample the processes it starts."""


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise ProfilerMissing("py-spy is not installed: pip install -e '.[bench]' (or pip install py-spy)")
    return found


@contextmanager
def profiling(out: Path | None, rate: int) -> Iterator[None]:
    """Sample this process and every process it has or starts, while the block runs
    (used by the system runner around the workload it measures). Nothing when ``out`` is None."""
    if out is None:
        yield
        return
    cmd = [py_spy(), "record", "--pid", str(os.getpid()), "--subprocesses", "--rate", str(rate)]
    cmd += ["--format", "speedscope", "--output", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert spy.stdout is not None
    # "py-spy> Sampling process ..." once it is attached; bounded, like every wait here
    ready, _, _ = select.select([spy.stdout], [], [], 30)
    first = spy.stdout.readline() if ready else "(no answer in 30 s)"
    if "Sampling" not in first:
        spy.kill()
        rest = spy.stdout.read()[-300:] if ready else ""
        raise ProfilerMissing(f"py-spy could not sample this process: {first.strip()} {rest}")
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # it writes the file and exits
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def record(system: str, workload: str, out_dir: Path, smoke: bool, rate: int, timeout: float) -> Path:
    """Run ``workload``'s group of ``system`` once, sampled while it runs; returns the
    speedscope file."""
    groups = [g for g in config.resolve_groups([workload]) if g != "lifecycle"]
    if not groups:
        raise ValueError(f"{workload} is measured from fresh interpreters; profile a workload group instead")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"profile-{system}-{workload}"
    speedscope = stem.with_suffix(".speedscope.json")
    speedscope.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.system_runner", system, "--groups", groups[0]]
    # Once, or again until MIN_SAMPLED_S have passed: a smoke-sized group is over in a few
    # ms, before py-spy has taken a sample of every process.
    cmd += [
        "--out",
        str(stem.with_suffix(".result.json")),
        "--repeat",
        "10000",
        "--budget",
        str(MIN_SAMPLED_S),
    ]
    cmd += ["--profile", str(speedscope), "--rate", str(rate), *(["--smoke"] if smoke else [])]
    tag = procs.new_tag()
    env = procs.runner_env(tag, str(ROOT))
    py_spy()  # a clear error now rather than a failed run
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        procs.kill(procs.tagged(tag, exclude=(os.getpid(),)))
    if not speedscope.exists():
        why = (done.stdout + done.stderr).strip()[-500:]
        raise ProfilerMissing(f"no profile was written (exit {done.returncode}): {why}")
    return speedscope


def summarize(profile: dict[str, Any], driver: int | None = None, top: int = 8) -> str:
    """Per process and thread, busiest first: seconds sampled, then the functions that
    used them (self time: the function on top of the stack). ``driver``: the pid of the
    process that drives the engine (the others are its workers)."""
    frames = profile["shared"]["frames"]
    threads = []
    for p in profile["profiles"]:
        own: Counter[int] = Counter()
        for stack, weight in zip(p["samples"], p["weights"]):
            if stack:
                own[stack[-1]] += weight
        threads.append((sum(p["weights"]), p["name"], own))
    lines = []
    for total, name, own in sorted(threads, key=lambda t: -t[0]):
        if total <= 0:
            continue
        role = "driver" if driver is not None and name.startswith(f"Process {driver} ") else "worker"
        lines.append(f"{role} · {name}: {total:.3f} s sampled")
        for index, spent in own.most_common(top):
            f = frames[index]
            where = f"{Path(f['file']).name}:{f.get('line') or '?'}"
            lines.append(f"  {100 * spent / total:5.1f}%  {f['name']}  ({where})")
    return "\n".join(lines) + "\n"


def main(systems: list[str], workload: str, out_dir: Path, smoke: bool, rate: int, timeout: float) -> int:
    for system in systems:
        print(f"[{system}] profiling {workload} ...", file=sys.stderr, flush=True)
        try:
            speedscope = record(system, workload, out_dir, smoke, rate, timeout)
        except ProfilerMissing as exc:
            print(f"[{system}] {exc}", file=sys.stderr)
            return 2
        result = json.loads(
            speedscope.with_name(speedscope.name.replace(".speedscope.json", ".result.json")).read_text()
        )
        text = summarize(json.loads(speedscope.read_text()), driver=result.get("pid"))
        summary = speedscope.with_name(speedscope.name.replace(".speedscope.json", ".txt"))
        summary.write_text(text)
        print(text, end="")
        print(f"\nwritten: {speedscope}  (open in https://www.speedscope.app)\n         {summary}")
    return 0
