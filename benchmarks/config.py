"""What is measured: metric names (the JSON keys), units, directions and problem sizes."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024

#: Engines in the order they appear in the table; the first one is the reference.
SYSTEMS: tuple[str, ...] = ("jupyter_futures", "ray", "dask", "ipyparallel", "processpool")
REFERENCE = "jupyter_futures"
N_WORKERS = 2

#: Workload groups, in the order a system runner executes them.  ``lifecycle`` always runs:
#: every other group needs a started system.
GROUPS: tuple[str, ...] = ("lifecycle", "tasks", "actors", "data", "tree")


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    higher_is_better: bool
    group: str
    description: str


METRICS: tuple[Metric, ...] = (
    Metric("startup", "s", False, "lifecycle", "import + init until the first no-op task is done"),
    Metric("shutdown", "s", False, "lifecycle", "shutdown until no child process is left"),
    Metric("idle_pss", "MiB", False, "lifecycle", "PSS of the whole process tree, idle after warm-up"),
    Metric("task_rtt", "us", False, "tasks", "no-op task submit + wait, sequential (median)"),
    Metric("tasks_10k", "tasks/s", True, "tasks", "no-op tasks submitted at once, then all awaited"),
    Metric("actor_rtt", "us", False, "actors", "actor method call round trip, sequential (median)"),
    Metric("actor_10k", "calls/s", True, "actors", "pipelined calls to one actor, then all awaited"),
    Metric("put_256", "ms", False, "data", "put a float64 array into the store"),
    Metric("get_256", "ms", False, "data", "get that array back into the driver"),
    Metric("stored_arg_sum", "ms", False, "data", "task summing the array already in the store"),
    Metric("byvalue_arg_sum", "ms", False, "data", "task summing the array passed by value"),
    Metric("result_256", "ms", False, "data", "task creating and returning the array"),
    Metric("peak_mem_driver_rss", "MiB", False, "data", "peak driver RSS during the data workloads"),
    Metric("peak_mem_total_rss", "MiB", False, "data", "peak RSS summed over the process tree"),
    Metric("peak_mem_total_pss", "MiB", False, "data", "peak PSS summed over the process tree"),
    Metric("tree_reduce", "s", False, "tree", "pairwise sum of 1 MiB leaves up a binary tree"),
)

FLOOR_METRICS: tuple[Metric, ...] = (
    Metric("floor_zmq_rtt", "us", False, "floors", "pyzmq REQ/REP round trip, ipc://, two processes"),
    Metric("floor_zmq_rtt_tcp", "us", False, "floors", "pyzmq REQ/REP round trip over 127.0.0.1"),
    Metric("floor_memcpy", "GB/s", True, "floors", "numpy copy into an already touched buffer"),
)

METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS + FLOOR_METRICS}


def metrics_of(groups: list[str]) -> list[Metric]:
    return [m for m in METRICS if m.group in groups]


def resolve_groups(names: list[str]) -> list[str]:
    """Map metric or group names to the groups to run, in execution order."""
    wanted = {"lifecycle"}
    for name in names:
        if name in GROUPS:
            wanted.add(name)
        elif name in METRIC_BY_NAME and METRIC_BY_NAME[name].group in GROUPS:
            wanted.add(METRIC_BY_NAME[name].group)
        else:
            known = ", ".join(list(GROUPS) + [m.name for m in METRICS])
            raise ValueError(f"unknown workload {name!r}; known: {known}")
    return [g for g in GROUPS if g in wanted]


@dataclass(frozen=True)
class Sizes:
    rtt_calls: int  # sequential round trips per sample
    burst: int  # tasks / actor calls in flight at once
    array_bytes: int  # the big array of the data workloads
    tree_leaves: int
    leaf_bytes: int

    @property
    def array_len(self) -> int:
        return self.array_bytes // 8

    @property
    def leaf_len(self) -> int:
        return self.leaf_bytes // 8


FULL = Sizes(rtt_calls=1000, burst=10_000, array_bytes=256 * MIB, tree_leaves=1000, leaf_bytes=MIB)
SMOKE = Sizes(rtt_calls=20, burst=20, array_bytes=MIB, tree_leaves=15, leaf_bytes=MIB)
#: Every workload runs once at this size before its measured repetitions.
WARMUP = SMOKE
