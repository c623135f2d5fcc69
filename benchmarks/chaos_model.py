"""What the chaos soak's faults destroyed, worked out from outside the engine.

::

    execution log (S/E lines, chaos_tasks.note) ─┐
    deaths (pid, frozen at, gone at, cause) ─────┼─► replay in time order ─► Losses
    the DAG (inputs, which values are stored) ───┘

Nothing here asks the engine: the soak's record of what ran where and when, and of which
worker it killed or stopped when, is replayed against the DAG with the engine's documented
rules for values (a value lives in the store of the worker that made it, as a file, and
outlives that worker: the kernel adopts a dead worker's files; it is freed once every task
that reads it has finished, as the soak's driver holds no future of a stored value; an
inline value, a float, lives in the kernel and is never lost). ``losses(...,
values_outlive_workers=False)`` replays the older rule, where a dead worker's values died
with it, for comparison.

Definitions (the soak's table uses exactly these):

- **execution**: one call of a task function (its ``S`` line), finished or not.
- **cut short**: an execution on a worker that was killed or stopped before it ended (a
  stop freezes the process at once; the engine kills it once it has missed its heartbeats),
  or that ended less than ``REPORT_WINDOW`` before and ran again: its report died with the
  worker (a worker sends the results of back-to-back short tasks together).
- **a death's moment**: its values stay readable (the files exist) until the engine has
  noticed the death. The soak sees that a little late (a pidfd; for a stopped worker, the
  engine's log line), so the death is dated at the first rerun of that worker's work or of
  its lineage when that comes earlier: the engine reruns none of it before it has noticed.
- **value lost**: at a worker's death, a value stored in it that was still *needed*: on the
  path from a value the run still lacks to the total, at that moment. A task that had
  started had read its inputs already; so had one that starts later but before any of its
  lost inputs runs again (it cannot have started without them: it was on its way).
- **tasks lost** = cut short + values lost: the work a fault destroyed that had to be redone.
- **inputs rebuilt**: at a death, values that had been made, then freed after use (by the
  engine's own rule), and are needed again to rebuild a lost value: lineage costs more
  than the loss itself, by design, and this counts by how much.
- **re-execution factor** = (executions - tasks) / tasks lost: at least 1 in a run that
  finished; the soak's target is at most 2. ``factor over needed`` = extra executions / (tasks
  lost + inputs rebuilt): 1 when the engine redoes exactly what the faults and its lineage
  rules require. ``beyond needed`` = extra executions - (tasks lost + inputs rebuilt): runs
  no fault made necessary (0 for such an engine; below 0 when the run ended, cut off by its
  time bound, before it had redone all it had to).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.chaos_tasks import Dag

KERNEL = -1  # where an inline value lives: the kernel, which no fault touches
REPORT_WINDOW = 0.05  # s: a result this close to its worker's death may not have been sent


@dataclass(frozen=True)
class Execution:
    key: str
    pid: int
    start: float
    end: float | None  # None: it never ended (cut short, or still running)


@dataclass(frozen=True)
class Death:
    """A worker that stopped making progress at ``frozen`` (the signal) and whose values
    were gone by ``gone`` at the latest (when it was seen dead: see the module docstring)."""

    pid: int
    frozen: float
    gone: float
    cause: str  # "kill", "stop" (the soak's faults) or "other" (the engine's own kill)


@dataclass
class Losses:
    tasks: int
    executions: int
    cut_short: int = 0
    values_lost: int = 0
    inputs_rebuilt: int = 0
    max_executions: int = 0
    max_executions_key: str = ""
    unfinished_elsewhere: int = 0  # executions that never ended on a worker that did not die
    never_finished: list[str] = field(default_factory=list)  # tasks with no finished execution
    malformed_lines: int = 0

    @property
    def extra(self) -> int:
        return self.executions - self.tasks

    @property
    def lost(self) -> int:
        return self.cut_short + self.values_lost

    @property
    def factor(self) -> float | None:
        return self.extra / self.lost if self.lost else None

    @property
    def factor_over_needed(self) -> float | None:
        """Extra executions per re-execution the faults made necessary, lineage included."""
        needed = self.lost + self.inputs_rebuilt
        return self.extra / needed if needed else None

    @property
    def beyond_needed(self) -> int:
        return self.extra - self.lost - self.inputs_rebuilt

    def as_dict(self) -> dict[str, object]:
        return {
            "tasks": self.tasks,
            "executions": self.executions,
            "extra_executions": self.extra,
            "cut_short": self.cut_short,
            "values_lost": self.values_lost,
            "tasks_lost": self.lost,
            "inputs_rebuilt": self.inputs_rebuilt,
            "reexecution_factor": self.factor,
            "factor_over_needed": self.factor_over_needed,
            "beyond_needed": self.beyond_needed,
            "max_executions": self.max_executions,
            "max_executions_task": self.max_executions_key,
            "unfinished_elsewhere": self.unfinished_elsewhere,
            "never_finished": self.never_finished[:20],
            "malformed_log_lines": self.malformed_lines,
        }


def read_executions(path: Path) -> tuple[list[Execution], int]:
    """The executions in a log, and how many of its lines did not parse.

    An ``E`` line closes the oldest open ``S`` of the same task on the same process (a
    worker runs one task at a time: it has one slot)."""
    open_runs: defaultdict[tuple[str, int], list[float]] = defaultdict(list)
    done: list[Execution] = []
    bad = 0
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0] not in ("S", "E"):
            bad += 1
            continue
        mark, key, pid_text, t_text = parts
        try:
            pid, t = int(pid_text), float(t_text)
        except ValueError:
            bad += 1
            continue
        if mark == "S":
            open_runs[(key, pid)].append(t)
        elif open_runs[(key, pid)]:
            done.append(Execution(key, pid, open_runs[(key, pid)].pop(0), t))
        else:
            bad += 1
    for (key, pid), starts in open_runs.items():
        done += [Execution(key, pid, s, None) for s in starts]
    done.sort(key=lambda e: e.start)
    return done, bad


class _Replay:
    """The values of the DAG as the run goes: where each lives, what runs, what is owed."""

    def __init__(self, dag: Dag, executions: list[Execution], values_outlive_workers: bool = True) -> None:
        self.dag = dag
        self.outlive = values_outlive_workers
        self.last_ends: defaultdict[int, list[tuple[float, str]]] = defaultdict(list)  # pid -> recent
        self.consumers = dag.consumers()
        self.starts: defaultdict[str, list[float]] = defaultdict(list)  # sorted, per task
        for e in sorted(executions, key=lambda e: e.start):
            self.starts[e.key].append(e.start)
        self.stored: dict[str, int | None] = dict.fromkeys(dag.inputs)
        self.running: defaultdict[str, set[int]] = defaultdict(set)
        self.ever_done: set[str] = set()
        self.owed: set[str] = set()  # re-executions counted as needed, not yet done
        self.frozen: set[int] = set()
        self.doomed: dict[int, set[str]] = {}  # frozen pid -> its work, until it is gone
        self.started_once: set[str] = set()
        self.cut_short = self.values_lost = self.inputs_rebuilt = 0

    def started(self, e: Execution) -> None:
        # The engine reruns a dead worker's work only once it has noticed the death: the
        # first such rerun dates the loss, if the death was seen later than that.
        if e.key in self.started_once:
            for pid, work in list(self.doomed.items()):
                if e.key in work:
                    self.gone(pid, e.start)
        self.started_once.add(e.key)
        if e.pid not in self.frozen:
            self.running[e.key].add(e.pid)

    def ended(self, e: Execution) -> None:
        self.running[e.key].discard(e.pid)
        assert e.end is not None
        recent = self.last_ends[e.pid]
        recent.append((e.end, e.key))
        del recent[: max(0, len(recent) - 64)]
        self.stored[e.key] = e.pid if e.key in self.dag.stored else KERNEL
        self.ever_done.add(e.key)
        self.owed.discard(e.key)
        for i in self.dag.inputs[e.key]:
            if all(self.stored[c] is not None for c in self.consumers[i]):
                self.stored[i] = None  # every reader has finished: the engine frees it

    def freeze(self, pid: int, now: float) -> None:
        if pid in self.frozen:
            return
        self.frozen.add(pid)
        work = set() if self.outlive else {k for k, where in self.stored.items() if where == pid}
        for k, pids in self.running.items():
            if pid in pids:
                pids.discard(pid)
                self.cut_short += 1
                work.add(k)
        for t, k in self.last_ends.pop(pid, []):  # finished, but the report may have died
            if now - t < REPORT_WINDOW and self._next_start(k, now) < math.inf:
                self.cut_short += 1
                work.add(k)
        stack = list(work)  # and its lineage: a rebuild reruns inputs first
        while stack:
            for i in self.dag.inputs[stack.pop()]:
                if i not in work:
                    work.add(i)
                    stack.append(i)
        self.doomed[pid] = work

    def gone(self, pid: int, now: float) -> None:
        self.freeze(pid, now)
        if self.doomed.pop(pid, None) is None:
            return  # dated already, by a rerun of its work
        lost = {k for k, where in self.stored.items() if where == pid}
        for k in lost:
            self.stored[k] = KERNEL if self.outlive else None
        if self.outlive:
            lost = set()
        required = self._required(lost, now)
        needed = lost & required
        self.values_lost += len(needed)
        self.owed |= needed
        rebuilt = {k for k in required if k in self.ever_done and k not in self.owed and k not in lost}
        self.inputs_rebuilt += len(rebuilt)
        self.owed |= rebuilt

    def _absent(self, k: str) -> bool:
        return self.stored[k] is None and not self.running[k]

    def _next_start(self, k: str, now: float) -> float:
        starts = self.starts.get(k, [])
        i = bisect.bisect_left(starts, now)
        return starts[i] if i < len(starts) else math.inf

    def _had_inputs(self, k: str, lost: set[str], now: float) -> bool:
        """Whether ``k`` evidently read the old copies of its inputs lost just now: it
        started before any of them ran again (it was on its way when the death was seen;
        its start line comes after its inputs are loaded)."""
        gone = [i for i in self.dag.inputs[k] if i in lost]
        start = self._next_start(k, now)
        return bool(gone) and start < math.inf and all(start < self._next_start(i, now) for i in gone)

    def _required(self, lost: set[str], now: float) -> set[str]:
        """Tasks that must (still, or again) run for the total to be made."""

        def missing(k: str) -> bool:
            return self._absent(k) and not self._had_inputs(k, lost, now)

        required: set[str] = set()
        stack = [self.dag.final] if missing(self.dag.final) else []
        while stack:
            k = stack.pop()
            if k in required:
                continue
            required.add(k)
            stack += [i for i in self.dag.inputs[k] if i not in required and missing(i)]
        return required


def losses(
    dag: Dag,
    executions: list[Execution],
    deaths: list[Death],
    malformed: int = 0,
    values_outlive_workers: bool = True,
) -> Losses:
    """Replay the run (see the module docstring for what each figure means)."""
    events: list[tuple[float, int, int]] = []  # (time, order at equal times, index)
    for i, e in enumerate(executions):
        events.append((e.start, 0, i))
        if e.end is not None:
            events.append((e.end, 1, i))
    for j, d in enumerate(deaths):
        events.append((d.frozen, 2, j))
        events.append((d.gone, 3, j))
    events.sort()
    replay = _Replay(dag, executions, values_outlive_workers)
    for t, order, idx in events:
        if order == 0:
            replay.started(executions[idx])
        elif order == 1:
            replay.ended(executions[idx])
        elif order == 2:
            replay.freeze(deaths[idx].pid, t)
        else:
            replay.gone(deaths[idx].pid, t)

    died = {d.pid for d in deaths}
    per_task = Counter(e.key for e in executions)
    top = per_task.most_common(1)
    finished = {e.key for e in executions if e.end is not None}
    return Losses(
        tasks=dag.tasks,
        executions=len(executions),
        cut_short=replay.cut_short,
        values_lost=replay.values_lost,
        inputs_rebuilt=replay.inputs_rebuilt,
        max_executions=top[0][1] if top else 0,
        max_executions_key=top[0][0] if top else "",
        unfinished_elsewhere=sum(1 for e in executions if e.end is None and e.pid not in died),
        never_finished=sorted(k for k in dag.inputs if k not in finished),
        malformed_lines=malformed,
    )
