"""The magics in a real IPython shell, with a real cluster: %load_ext, %futures, %%remote.

Also the pure parts they rest on: which variables a cell reads and which names it assigns
(``cell_analysis.py``), and the option parsers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from argparse import ArgumentTypeError
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

import jupyter_futures as jf
from jupyter_futures.jupyter.cell_analysis import analyse
from jupyter_futures.jupyter.magics import parse_indices, parse_resources, parse_size

ANSI = re.compile(r"\x1b\[[0-9;]*m")

# -- the analysis (no cluster) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "reads", "assigns"),
    [
        ("x = 1\nx + 1", set(), ("x",)),
        ("x = x + 1", {"x"}, ("x",)),
        ("big = np.zeros(3)\nbig.sum()", {"np"}, ("big",)),
        ("total += step", {"total", "step"}, ("total",)),
        ("for i in range(n):\n    acc = i\nacc", {"range", "n", "acc"}, ("i", "acc")),
        ("if c:\n    y = 1\nelse:\n    y = 2\ny", {"c"}, ("y",)),
        ("if c:\n    y = 1\ny", {"c", "y"}, ("y",)),
        ("def f(a):\n    return a + g\nf(1)", {"g"}, ("f",)),
        ("def f(a=default):\n    pass", {"default"}, ("f",)),
        ("[i * k for i in items]", {"k", "items"}, ()),
        ("{k: v for k, v in pairs}", {"pairs"}, ()),
        ("lambda q: q + r", {"r"}, ()),
        ("class A(Base):\n    z = q\n    def m(self):\n        return w", {"Base", "q", "w"}, ("A",)),
        ("import numpy as np\nfrom os import path\nnp.ones(2)", set(), ()),
        ("with open(p) as fh:\n    data = fh.read()", {"open", "p"}, ("fh", "data")),
        ("try:\n    r = 1\nexcept E as e:\n    pass\nr", {"E", "r"}, ("r",)),
        ("del old", {"old"}, ()),
        ("(y := y0 + 1)\ny", {"y0"}, ("y",)),
        ("obj.attr = value", {"obj", "value"}, ()),
        ("a, (b, *c) = seq", {"seq"}, ("a", "b", "c")),
        ("match cmd:\n    case [name, *rest]:\n        out = name\n", {"cmd"}, ("name", "rest", "out")),
    ],
)
def test_analysis(source: str, reads: set[str], assigns: tuple[str, ...]) -> None:
    names = analyse(source)
    assert names.reads == reads
    assert names.assigns == assigns


def test_analysis_result_and_imports() -> None:
    names = analyse("import numpy as np\nx = np.ones(3)\nx.sum()")
    assert names.ends_with_expression
    assert names.imports == {"np"}
    assert not analyse("x = 1").ends_with_expression
    with pytest.raises(SyntaxError):
        analyse("x = = 1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1000", 1000), ("512MB", 512 * 10**6), ("4GiB", 4 * 2**30), ("1.5g", 1_500_000_000), ("2 kib", 2048)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_and_resources_refuse_nonsense() -> None:
    for bad in ("", "4XB", "GB", "-1MB"):
        with pytest.raises(ArgumentTypeError, match="not a size"):
            parse_size(bad)
    assert parse_resources("licence=1, fpga=0.5") == {"licence": 1.0, "fpga": 0.5}
    for bad in ("licence", "=1", "licence=many"):
        with pytest.raises(ArgumentTypeError, match="name=amount"):
            parse_resources(bad)
    assert parse_indices("0,2") == [0, 2] and parse_indices("1") == [1]
    with pytest.raises(ArgumentTypeError, match="GPU indices"):
        parse_indices("0,first")


# -- the shell --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    ip.run_cell("%load_ext jupyter_futures", store_history=False)
    yield ip
    ip.run_cell("%unload_ext jupyter_futures", store_history=False)


@pytest.fixture
def ip(shell: InteractiveShell, shared_client: jf.Client) -> Iterator[InteractiveShell]:
    """The shell with the extension loaded and the module's cluster running."""
    before = set(shell.user_ns)
    yield shell
    for name in set(shell.user_ns) - before:
        del shell.user_ns[name]


def run(ip: InteractiveShell, cell: str) -> tuple[Any, str]:
    """Run a cell; returns its result (raising its error) and what it printed."""
    with capture_output() as out:
        result = ip.run_cell(textwrap.dedent(cell), store_history=True)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    shown = "\n".join(o.data.get("text/plain", "") for o in out.outputs)
    return result.result, ANSI.sub("", out.stdout + out.stderr + shown)


def run_failing(ip: InteractiveShell, cell: str) -> tuple[BaseException, str]:
    """Run a cell that must fail; returns its error and the traceback it showed."""
    with capture_output() as out:
        result = ip.run_cell(textwrap.dedent(cell), store_history=True)
    error = result.error_before_exec or result.error_in_exec
    assert error is not None, f"the cell should have failed; it printed {out.stdout!r}"
    return error, ANSI.sub("", out.stdout + out.stderr)


def test_load_ext_starts_nothing_and_is_lazy() -> None:
    code = textwrap.dedent(
        """
        import sys, threading, psutil
        import jupyter_futures
        assert "IPython" not in sys.modules and "jupyter_futures.jupyter.magics" not in sys.modules
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
        c = Config(); c.HistoryManager.hist_file = ":memory:"
        ip = InteractiveShell.instance(config=c)
        ip.run_cell("%load_ext jupyter_futures")
        assert "remote" in ip.magics_manager.magics["cell"]
        assert "futures" in ip.magics_manager.magics["line"]
        assert psutil.Process().children() == []
        assert not [t for t in threading.enumerate() if t.name.startswith("jupyter-futures")]
        assert jupyter_futures.get_client.__module__ and not jupyter_futures.current._current
        ip.run_cell("%unload_ext jupyter_futures")
        assert "remote" not in ip.magics_manager.magics["cell"]
        assert "futures" not in ip.magics_manager.magics["line"]
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("ok"), out.stderr


def test_futures_magic_starts_and_stops_a_cluster(shell: InteractiveShell) -> None:
    try:
        _, printed = run(shell, "%futures status")
        assert "no cluster is running" in printed
        _, printed = run(shell, "%futures start -n 1 --resources licence=2")
        assert "started" in printed
        client = jf.get_client()
        assert isinstance(client, jf.Client) and client.n_workers == 1
        client.wait_for_workers()
        _, printed = run(shell, "%futures start")
        assert "already running" in printed
        _, printed = run(shell, "%futures")
        assert re.search(r"worker 1 \(pid \d+\)", printed) and "futures:" in printed
        _, printed = run(shell, "%futures dashboard")
        assert re.search(r"jupyter_futures cluster \w+: 1 workers", printed), printed
        jf.submit(abs, -1).result(30)
        _, printed = run(shell, "%futures stream")
        assert "task stream, last 30 s: worker 1: " in printed, printed
        _, printed = run(shell, "%futures stop")
        assert "stopped" in printed and client.closed
    finally:
        jf.shutdown()


def test_futures_magic_scales_restarts_and_shows_logs(shell: InteractiveShell) -> None:
    try:
        with pytest.raises(UsageError, match="no cluster is running"):
            shell.run_line_magic("futures", "scale 2")
        run(shell, "%futures start -n 1")
        client = jf.get_client()
        client.wait_for_workers()
        _, printed = run(shell, "%futures scale 3")
        assert "scaled to 3 workers" in printed and len(client.status()["workers"]) == 3
        before = {w["id"] for w in client.status()["workers"]}
        _, printed = run(shell, "%futures restart")
        assert "restarted every worker" in printed
        assert not before & {w["id"] for w in client.status()["workers"]}
        _, printed = run(shell, "%futures logs")
        assert printed.count("--- worker ") == len(client.logs()) >= 3
        with pytest.raises(UsageError, match="how many workers"):
            shell.run_line_magic("futures", "scale")
        with pytest.raises(UsageError, match="takes no number"):
            shell.run_line_magic("futures", "restart 2")
        with pytest.raises(UsageError, match="positive number"):
            shell.run_line_magic("futures", "scale 0")
    finally:
        jf.shutdown()


def test_remote_cell_binds_name_and_assigned_names(ip: InteractiveShell) -> None:
    ip.user_ns["base"] = 10
    _, printed = run(
        ip,
        """
        %%remote answer
        x = base + 1
        _scratch = x * 2
        y = [x, _scratch]
        x * 100
        """,
    )
    answer, x, y = ip.user_ns["answer"], ip.user_ns["x"], ip.user_ns["y"]
    assert all(isinstance(f, jf.Future) for f in (answer, x, y))
    assert "_scratch" not in ip.user_ns  # names starting with _ stay in the cell
    assert answer.result(30) == 1100
    assert x.result(30) == 11
    assert y.result(30) == [11, 22]
    assert "answer" in printed  # the future's widget, as text in a console


def test_block_shows_the_value_like_a_local_cell(ip: InteractiveShell) -> None:
    ip.user_ns["base"] = 2
    value, printed = run(ip, "%%remote --block\nprint('from the worker', base)\nbase ** 10")
    assert value == 1024
    assert "from the worker 2" in printed
    quiet, _ = run(ip, "%%remote --block\nbase ** 10;")
    assert quiet is None
    nothing, _ = run(ip, "%%remote --block\nz = base")
    assert nothing is None
    assert ip.user_ns["z"].result(30) == 2


def test_long_block_cells_show_one_bar_for_the_cell(ip: InteractiveShell) -> None:
    value, printed = run(ip, "%%remote --block\nimport time\ntime.sleep(2.5)\n'slept'")
    assert value == "slept"
    number = ip.execution_count - 1
    assert re.search(rf"%%remote In\[{number}\]: running on worker \d · 2\.\d s", printed), printed
    assert " / " not in printed  # the cell, not the tasks it is made of
    value, printed = run(ip, "%%remote --block\n'quick'")
    assert value == "quick" and "running" not in printed


def test_remote_cells_are_named_after_their_own_execution_count(
    ip: InteractiveShell, shared_client: jf.Client
) -> None:
    with capture_output() as out:
        result = ip.run_cell("%%remote --block\nx = 1\nx / 0", store_history=True)
    shown = ANSI.sub("", out.stdout + out.stderr)
    number = result.execution_count  # what the front end shows as In[n]
    assert re.search(rf"Cell In\[{number}\], line 3", shown), (number, shown)
    # a name keeps the cell's record: a cell nobody holds is freed once it is done
    result = ip.run_cell("%%remote\nnamed = 'named'", store_history=True)
    cluster = shared_client.backend.cluster
    names = cluster.query(lambda st: [t.spec.name for t in st.tasks.values()], cluster.state)
    assert f"%%remote In[{result.execution_count}]" in names, (result.execution_count, names[-3:])


def test_unpicklable_results_and_names_fail_clearly(ip: InteractiveShell) -> None:
    error, shown = run_failing(ip, "%%remote --block\nimport threading\nlock = threading.Lock()\nlock")
    assert isinstance(error, jf.SerializationError)
    assert "cannot be sent back" in str(error) and "UsageError" not in shown
    with pytest.raises(jf.SerializationError, match="lock stays on the worker"):
        ip.user_ns["lock"].result(30)


def test_only_the_variables_the_cell_reads_are_sent(ip: InteractiveShell) -> None:
    ip.user_ns["lock"] = threading.Lock()  # cannot be pickled: the cell fails if it is sent
    ip.user_ns["shadowed"] = threading.Lock()
    ip.user_ns["n"] = 5
    value, _ = run(ip, "%%remote --block\nshadowed = 3\nshadowed + n")
    assert value == 8
    error, shown = run_failing(ip, "%%remote --block\nlock.acquire()")
    assert "cannot be sent to a worker" in str(error)
    assert "lock" in str(error) and "UsageError" in shown


def test_a_future_variable_is_a_dependency_resolved_on_the_worker(ip: InteractiveShell) -> None:
    from witness import Witness, unpickled_here

    unpickled_here.clear()
    ip.user_ns["w"] = jf.submit(Witness, "made on a worker")
    value, _ = run(ip, "%%remote --block\n(type(w).__name__, w.label)")
    assert value == ("Witness", "made on a worker")
    assert unpickled_here == [], "the future's value went through the kernel"


def test_next_cell_uses_a_name_where_it_lives(ip: InteractiveShell, shared_client: jf.Client) -> None:
    run(ip, "%%remote\nimport numpy as np\narr = np.arange(1_000_000)")  # 8 MB: in shared memory
    arr = ip.user_ns["arr"]
    arr.result(30)
    [where] = jf.locality(arr)
    pid = {w["id"]: w["pid"] for w in shared_client.status()["workers"]}[where.worker]
    value, _ = run(ip, "%%remote --block\nimport os\n(os.getpid(), int(arr.sum()))")
    assert value == (pid, 499999500000)


def test_on_pins_the_cell_to_a_future_or_an_actor(ip: InteractiveShell, shared_client: jf.Client) -> None:
    import numpy as np

    pids = {w["id"]: w["pid"] for w in shared_client.status()["workers"]}
    made = [jf.submit(np.ones, 100_000) for _ in range(4)]
    jf.wait(made)
    for f in made:
        ip.user_ns["f"] = f
        [where] = jf.locality(f)
        value, _ = run(ip, "%%remote --on f --block\nimport os\nos.getpid()")
        assert value == pids[where.worker]
    counter = jf.create_actor(Tally).result(30)
    ip.user_ns["counter"] = counter
    worker = next(a["worker"] for a in shared_client.status()["actors"] if a["id"] == counter.id)
    value, _ = run(ip, "%%remote --on counter --block\nimport os\nos.getpid()")
    assert value == pids[worker]
    jf.kill_actor(counter)


class Tally:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> int:
        self.n += k
        return self.n


def test_actor_namespace_persists_between_cells(ip: InteractiveShell) -> None:
    run(ip, "%%remote --actor space --block\nimport os\ncount = 1\nstate = {'pid': os.getpid()}")
    assert isinstance(ip.user_ns["space"], jf.ActorHandle)
    ip.user_ns["count"] = 1000  # the actor's own count wins over the kernel's
    value, _ = run(ip, "%%remote --actor space --block\ncount += 1\n(count, state['pid'] == os.getpid())")
    assert value == (2, True)
    value, _ = run(ip, "%%remote --actor space --block\ncount")
    assert value == 2
    assert ip.user_ns["count"].result(30) == 2  # assigned names are futures in the kernel too
    jf.kill_actor(ip.user_ns["space"])


def test_actor_cell_runs_with_an_existing_actor_as_self(ip: InteractiveShell) -> None:
    ip.user_ns["tally"] = jf.create_actor(Tally).result(30)
    ip.user_ns["tally"].add(5).result(30)
    value, _ = run(ip, "%%remote --actor tally --block\nself.add(2)\nself.n")
    assert value == 7
    assert ip.user_ns["tally"].add(1).result(30) == 8
    jf.kill_actor(ip.user_ns["tally"])


def test_remote_errors_read_like_local_ones(ip: InteractiveShell) -> None:
    run(ip, "def inverse(x):\n    return 1 / x\n")
    error, shown = run_failing(ip, "%%remote --block\ny = 0\ninverse(y)")
    assert isinstance(error, ZeroDivisionError)
    assert re.search(r"Cell In\[\d+\], line 3\n(.*\n)*----> 3 inverse\(y\)", shown), shown
    assert re.search(r"Cell In\[\d+\], line 2, in inverse\n.*\n----> 2     return 1 / x", shown), shown
    assert "jupyter_futures" not in shown and "remote_cell" not in shown
    assert shown.rstrip().endswith("ZeroDivisionError: division by zero")
    # A name the failed cell assigned before the error is still there; the others fail.
    assert ip.user_ns["y"].result(30) == 0


def test_result_of_a_failed_task_reads_like_a_local_error(ip: InteractiveShell) -> None:
    run(ip, "def inverse(x):\n    return 1 / x\n")
    error, shown = run_failing(ip, "import jupyter_futures as jf\njf.submit(inverse, 0).result()")
    assert isinstance(error, ZeroDivisionError)
    assert re.search(r"----> 2 jf.submit\(inverse, 0\).result\(\)", shown), shown
    assert re.search(r"Cell In\[\d+\], line 2, in inverse", shown), shown
    assert "futures.py" not in shown and "concurrent" not in shown


def test_syntax_errors_are_shown_as_local_ones(ip: InteractiveShell) -> None:
    with capture_output() as out:
        ip.run_cell("%%remote\nx = = 1", store_history=True)
    shown = ANSI.sub("", out.stdout + out.stderr)
    assert "SyntaxError" in shown and "line 2" in shown


def test_retries_run_the_cell_again(ip: InteractiveShell, tmp_path: Path) -> None:
    ip.user_ns["marker"] = str(tmp_path / "attempts")
    cell = """
        %%remote --block {flag}
        with open(marker, "a") as fh:
            fh.write("x")
        if len(open(marker).read()) < 3:
            raise RuntimeError("flaky")
        "third time lucky"
        """
    error, _ = run_failing(ip, cell.format(flag=""))
    assert isinstance(error, RuntimeError)
    os.unlink(tmp_path / "attempts")
    value, _ = run(ip, cell.format(flag="--retries 2"))
    assert value == "third time lucky"


def test_no_reconstruct_and_requirements_reach_the_scheduler(
    ip: InteractiveShell, shared_client: jf.Client
) -> None:
    run(ip, "%%remote cell --no-reconstruct --cpu 1 --ram 1MB\nkept = 1\nkept")
    cell = ip.user_ns["cell"]
    assert cell.result(30) == 1
    cluster = shared_client.backend.cluster
    specs = cluster.query(lambda st: {t: s.spec for t, s in st.tasks.items()}, cluster.state)
    kept = specs[ip.user_ns["kept"].id]
    run_spec = specs[kept.deps[0]]
    assert run_spec.name.startswith("%%remote In[")
    assert run_spec.allow_reconstruction is False and kept.allow_reconstruction is False
    assert run_spec.requirements.cpu == 1 and run_spec.requirements.ram == 1e6
    run(ip, "%%remote urgent --priority 3\n1")
    specs = cluster.query(lambda st: {t: s.spec for t, s in st.tasks.items()}, cluster.state)
    urgent = specs[ip.user_ns["urgent"].id]
    assert urgent.priority == 3 and specs[urgent.deps[0]].priority == 3  # the cell and its result


def test_nested_work_in_a_cell(ip: InteractiveShell) -> None:
    value, _ = run(
        ip,
        """
        %%remote --block
        import jupyter_futures as jf
        parts = [jf.submit(pow, 2, i) for i in range(5)]
        sum(jf.gather(parts))
        """,
    )
    assert value == 31


def test_rich_display_in_a_cell(ip: InteractiveShell) -> None:
    _, printed = run(ip, "%%remote --block\nfrom IPython.display import HTML\ndisplay(HTML('<b>hi</b>'))\n1")
    assert "IPython.core.display.HTML object" in printed  # a console shows the text part


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%remote 1abc\n1", "NAME must be a Python name"),
        ("%%remote class\n1", "NAME must be a Python name"),
        ("%%remote --bogus\n1", "unrecognized arguments"),
        ("%%remote --ram lots\n1", "is not a size"),
        ("%%remote --resources gpu\n1", "name=amount"),
        ("%%remote --resources gpu=1\n1", "use --gpu 1"),
        ("%%remote --resources licence=1,ram=2e9\n1", "use --ram 2e+09"),
        ("%%remote --retries -1\n1", "--retries must be 0 or more"),
        ("%%remote --on nowhere\n1", "no variable named nowhere"),
        ("%%remote --on base\n1", "expected a future or an actor handle"),
        ("%%remote --actor ns --on f\n1", "--on cannot be combined with --actor"),
        ("%%remote --actor ns --priority 1\n1", "--priority cannot be combined with --actor"),
        ("%%remote --actor base\n1", "not an actor handle"),
        ("%%remote --cpu 64\n1", "no worker can ever meet"),
        ("%futures start --bogus", "unrecognized arguments"),
        ("%futures stop -n 2", "cluster options go with %futures start"),
        ("%futures reboot", "invalid choice"),
    ],
)
def test_bad_options_give_clear_errors(ip: InteractiveShell, cell: str, message: str) -> None:
    ip.user_ns["base"] = 1
    ip.user_ns["f"] = jf.put(1)
    error, shown = run_failing(ip, cell)
    assert type(error).__name__ == "UsageError", shown
    assert message in str(error)


def test_futures_and_actors_show_as_widgets(ip: InteractiveShell) -> None:
    ip.user_ns["f"] = jf.submit(pow, 3, 3)
    ip.user_ns["f"].result(30)
    _, printed = run(ip, "f")
    assert re.search(r"pow \(future \d+\): done in .*: 27", printed), printed
    ip.user_ns["t"] = jf.create_actor(Tally).result(30)
    _, printed = run(ip, "t")
    assert re.search(r"Tally actor \d+: (starting|alive)", printed), printed
    jf.kill_actor(ip.user_ns["t"])


def test_framework_frames_are_hidden_from_errors_of_the_users_own_call(ip: InteractiveShell) -> None:
    ip.user_ns["jf"] = jf
    for cell, message in [
        ("jf.submit(pow, 2, 3, min_cpu=-1)", "ValueError: min_cpu must be a non-negative number"),
        ("jf.submit(pow, 2, 3, resources={'gpu': 1})", "ValueError: use min_gpu="),
        ("jf.submit(42)", "TypeError: submit() needs a callable"),
        ("import time\njf.submit(time.sleep, 1).result(timeout=0.01)", "FutureTimeoutError: future"),
    ]:
        _, shown = run_failing(ip, cell)
        last = cell.splitlines()[-1]
        assert re.search(rf"Cell In\[\d+\], line \d+\n(.*\n)*----> \d+ {re.escape(last)}", shown), shown
        assert message in shown, shown
        assert "jupyter_futures" not in shown and "concurrent" not in shown, shown
    run(ip, "%xmode verbose")  # every frame, for whoever debugs jupyter_futures itself
    try:
        _, shown = run_failing(ip, "jf.submit(pow, 2, 3, min_cpu=-1)")
        assert "jupyter_futures/client.py" in shown  # the facade's frame, and the engine's below it
    finally:
        run(ip, "%xmode context")
    # An error of the user's own code keeps its frames.
    _, shown = run_failing(ip, "def mine():\n    raise ValueError('mine')\nmine()")
    assert "----> 2     raise ValueError('mine')" in shown, shown


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x = 1\n!ls -l", "line 3: `!ls -l` is a shell command"),
        ("files = !ls", "line 2: `!ls` is a shell command"),
        ("x = 1\n%time x", "line 3: `%time` is an IPython magic"),
        ("%%time\nx = 1", "`%%time` is a cell magic"),
        ("len?", "line 2: `len?` asks IPython for help"),
        ("x = 1\nreturn x", "line 3: `return` outside a function"),
        ("yield 1", "line 2: `yield` outside a function"),
    ],
)
def test_what_only_the_kernel_runs_is_refused_by_name(ip: InteractiveShell, body: str, message: str) -> None:
    error, shown = run_failing(ip, f"%%remote --block\n{body}")
    assert type(error).__name__ == "UsageError", shown
    assert message in str(error)
    assert "SyntaxError" not in shown and "invalid syntax" not in shown


def test_top_level_await_runs_on_the_worker(ip: InteractiveShell) -> None:
    value, _ = run(
        ip,
        """
        %%remote --block
        import asyncio, os
        async def pid_later():
            await asyncio.sleep(0.01)
            return os.getpid()
        first = await pid_later()
        await asyncio.sleep(0, first)
        """,
    )
    assert isinstance(value, int) and value != os.getpid()
    assert ip.user_ns["first"].result(30) == value
    error, shown = run_failing(ip, "%%remote --block\nimport asyncio\nawait asyncio.sleep(0)\n1 / 0")
    assert isinstance(error, ZeroDivisionError)
    assert re.search(r"Cell In\[\d+\], line 4\n(.*\n)*----> 4 1 / 0", shown), shown
    assert "asyncio" not in shown.split("----> 4")[1] and "base_events" not in shown, shown


def test_a_future_variable_used_as_a_future_says_it_is_its_value(ip: InteractiveShell) -> None:
    ip.user_ns["total"] = jf.submit(sum, [1, 2, 3])
    error, shown = run_failing(ip, "%%remote --block\ntotal.result() + 1")
    assert isinstance(error, AttributeError)
    assert "'int' object has no attribute 'result'" in shown
    assert "total is a Future in the kernel" in shown and "total here is what total.result()" in shown
    value, _ = run(ip, "%%remote --block\ntotal + 1")  # what the message says to write
    assert value == 7
    # The rule is in the magic's help (%%remote?).
    doc = ip.find_cell_magic("remote").__doc__
    assert "``total`` is what ``total.result()`` gives in the kernel" in doc
