"""The environment the tests run in is what the README's set-up command makes: the
JupyterLab "Cluster" panel installed with the package, and one extra for Jupyter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_jupyterlab_lists_the_cluster_panel_enabled_and_ok() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    listing = ANSI.sub("", done.stdout + done.stderr)
    ours = [line.split() for line in listing.splitlines() if line.split()[:1] == ["jupyter-futures"]]
    assert ours, (
        "this environment has no jupyter-futures JupyterLab extension; installing the package "
        f"from the checkout builds it (pip install -e .):\n{listing}"
    )
    assert ours[0][2:4] == ["enabled", "OK"], listing


def test_the_server_has_the_panels_entry_point_to_serve() -> None:
    # What JupyterLab puts in the page it serves, and the file the browser then loads.
    config = pytest.importorskip("jupyterlab_server.config")
    from jupyter_core.paths import jupyter_path

    extensions = config.get_federated_extensions(jupyter_path("labextensions"))
    assert "jupyter-futures" in extensions
    ours = extensions["jupyter-futures"]
    entry = Path(ours["ext_path"]) / ours["jupyterlab"]["_build"]["load"]
    assert entry.is_file() and entry.stat().st_size > 0, entry
    assert ours["install"]["packageName"] == "jupyter_futures"  # so `labextension list` says "python"


def named_extras(text: str) -> set[str]:
    """The extras in install commands: ``.[a,b]``, ``jupyter_futures[a]``."""
    found: set[str] = set()
    for group in re.findall(r"(?:\.|jupyter_futures)\[([\w,\s-]+)\]", text):
        found |= {name.strip() for name in group.split(",")}
    return found


def test_one_extra_installs_the_jupyter_side_and_every_named_extra_exists() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    defined = set(re.findall(r"^([\w-]+) = \[", section, re.M))
    places = ["README.md", "binder/postBuild", ".ci/run", "benchmarks/README.md", "labextension/README.md"]
    named = {place: named_extras((ROOT / place).read_text()) for place in places}
    for place, extras in named.items():
        assert extras <= defined, f"{place} names extras that pyproject.toml lacks: {extras - defined}"
    # Besides the test and benchmark set-ups, one name for "what a notebook user installs",
    # one for the Dask backend (which brings the pinned Dask), one for joblib's backend and
    # one for GPU figures (NVML).
    user_facing = set().union(*named.values()) - {"test", "bench"}
    assert user_facing == {"notebook", "dask", "joblib", "gpu"}, user_facing
    readme_first_command = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert '.venv/bin/pip install -e ".[notebook]"' in readme_first_command


def test_one_version_and_a_wheel_of_the_package_only() -> None:
    import json

    import tomllib

    import jupyter_futures as jf

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"] and "version" not in project["project"]
    assert project["tool"]["hatch"]["version"] == {"source": "nodejs", "path": "labextension/package.json"}
    assert jf.__version__ == json.loads((ROOT / "labextension" / "package.json").read_text())["version"]
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["jupyter_futures"]


def test_a_worker_imports_what_a_worker_needs_and_not_the_api() -> None:
    """``import jupyter_futures`` loads its public names on first use, so a worker process
    (which imports the package first) stays lean; and the names are all there for users."""
    kernel_side = {
        "jupyter_futures.api",
        "jupyter_futures.client",
        "jupyter_futures.local.cluster",
        "jupyter_futures.local.backend",
        "jupyter_futures.jupyter",
        "jupyter_futures.core.scheduler",
        "importlib.metadata",
        "IPython",
        "ipywidgets",
        "distributed",
        "psutil",  # imported by the heartbeat thread, after the worker said HELLO
    }
    probe = "import sys, jupyter_futures.local.worker.process\nprint(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert loaded & kernel_side == set(), sorted(loaded & kernel_side)
    assert "jupyter_futures.local.worker.process" in loaded

    import jupyter_futures as jf

    assert all(getattr(jf, name) is not None for name in jf.__all__)
    assert set(jf.__all__) <= set(dir(jf))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jf.nope  # noqa: B018
