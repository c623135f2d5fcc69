"""User code from where users keep it: modules outside the project and the working
directory, a kernel started elsewhere, bound methods of big objects, closures."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import textwrap
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from jupyter_client.manager import start_new_kernel
from kernels import Kernel, stop

import jupyter_futures as jf

MODEL = """
import numpy as np

class Model:
    pickled = 0  # how many times an instance was pickled in this process

    def __init__(self, megabytes):
        self.weights = np.ones(megabytes * 2**20 // 8)

    def predict(self, x):
        return float(self.weights[:4].sum()) * x

    def __getstate__(self):
        type(self).pickled += 1
        return self.__dict__


def triple(x):
    return 3 * x
"""


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A folder of the user's, outside the project and the working directory, that a
    fresh interpreter cannot import from; removed from sys.path and sys.modules after."""
    with tempfile.TemporaryDirectory(prefix="user-code-") as d:
        folder = Path(d) / "lib"
        folder.mkdir()
        saved = list(sys.path)
        yield folder
        sys.path[:] = saved
        for name in [n for n, m in sys.modules.items() if getattr(m, "__file__", "") and d in m.__file__]:
            del sys.modules[name]


def write_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def where_am_i() -> str:
    return os.getcwd()


def test_a_folder_added_to_sys_path_after_start_reaches_the_workers(
    client: jf.Client, user_dir: Path
) -> None:
    assert jf.submit(pow, 2, 3).result(10) == 8  # workers are up, with the old sys.path
    write_module(user_dir, "later_mod", MODEL)
    sys.path.insert(0, str(user_dir))
    import later_mod  # type: ignore[import-not-found]

    assert jf.gather([jf.submit(later_mod.triple, i) for i in range(6)], timeout=30) == [0, 3, 6, 9, 12, 15]
    # A replacement worker, started after the change, gets it too.
    pid = jf.submit(os.getpid).result(10)
    os.kill(pid, 9)
    assert jf.gather([jf.submit(later_mod.triple, 1) for _ in range(4)], timeout=30) == [3] * 4


def test_workers_start_in_the_kernels_directory_with_its_sys_path(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(user_dir, "next_to_notebook", MODEL)
    monkeypatch.chdir(user_dir)  # a notebook's folder: "" on sys.path means "here"
    monkeypatch.syspath_prepend("")
    import next_to_notebook  # type: ignore[import-not-found]

    with jf.Client(2) as c:
        assert c.submit(where_am_i).result(30) == str(user_dir)
        assert c.submit(next_to_notebook.triple, 5).result(30) == 15


def test_a_kernel_started_elsewhere_runs_a_package_next_to_its_notebook(tmp_path: Path) -> None:
    notebook_dir = tmp_path / "project"
    (notebook_dir / "helpers").mkdir(parents=True)
    (notebook_dir / "helpers" / "__init__.py").write_text("def double(x):\n    return 2 * x\n")
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115  # closed by stop()
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, stderr=log, cwd=str(notebook_dir))
    kernel = Kernel(km, kc)
    kernel.log = log
    try:
        printed = kernel.run(
            "import jupyter_futures as jf, helpers, os\n"
            "jf.init(2)\n"
            "print(jf.gather([jf.submit(helpers.double, i) for i in range(3)], timeout=30))\n"
            "print(jf.submit(os.getcwd).result(30))\n"
            "jf.shutdown()\n"
        )
    finally:
        stop(kernel)
    assert printed.splitlines() == ["[0, 2, 4]", str(notebook_dir)]


def test_a_bound_method_of_a_big_object_is_stored_once_and_not_kept(
    client: jf.Client, user_dir: Path
) -> None:
    write_module(user_dir, "models", MODEL)
    sys.path.insert(0, str(user_dir))
    import models  # type: ignore[import-not-found]

    model = models.Model(megabytes=50)
    kernel = psutil.Process()
    before = kernel.memory_info().rss
    results = jf.gather([jf.submit(model.predict, i) for i in range(20)], timeout=60)
    assert results == [4.0 * i for i in range(20)]
    assert models.Model.pickled == 1  # once, not once per call
    grown = kernel.memory_info().rss - before
    assert grown < 120 * 2**20, f"the kernel grew by {grown / 2**20:.0f} MiB for 20 calls"
    stored = jf.status()["objects"]["count"]
    assert stored >= 1

    # The kernel keeps neither the method, nor its instance, nor the stored copy past
    # the last future that needs them.
    gone = weakref.ref(model)
    del model, results
    gc.collect()
    assert gone() is None
    cache = client.backend.functions
    assert len(cache) == 0 or all(e[1].stored is None for e in cache._entries.values())
    jf.submit(pow, 1, 1).result(10)  # an event: pending releases are carried out
    assert jf.status()["objects"]["count"] < stored


def test_a_function_submitted_once_is_not_kept_alive(client: jf.Client) -> None:
    def make() -> object:
        big = np.arange(1000)

        def closure(i: int) -> int:
            return int(big[i])

        return closure

    fn = make()
    f = jf.submit(fn, 7)
    assert f.result(30) == 7
    gone = weakref.ref(fn)
    del fn, f
    gc.collect()
    assert gone() is None


def test_a_closure_over_a_large_array_is_pickled_once(client: jf.Client) -> None:
    big = np.arange(2_000_000)  # 16 MB captured by the closure

    def pick(i: int) -> int:
        return int(big[i])

    shipped = client.backend.functions.get(pick)
    assert shipped.stored is not None and len(shipped.fn_bytes) < 1000  # a reference, not 16 MB
    assert jf.gather([jf.submit(pick, i) for i in (1, 10, 100)], timeout=30) == [1, 10, 100]
    assert client.backend.functions.get(pick) is shipped
