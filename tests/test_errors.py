"""The exception tree and remote exceptions (no cluster needed)."""

from __future__ import annotations

import pickle
import signal

import pytest

import jupyter_futures as jf
from jupyter_futures.errors import make_remote_exception, remote_exception_class


class Custom(Exception):
    pass


def test_remote_class_is_named_like_the_original() -> None:
    klass = remote_exception_class(ZeroDivisionError)
    assert klass.__name__ == "ZeroDivisionError"
    assert issubclass(klass, jf.RemoteException) and issubclass(klass, ZeroDivisionError)
    assert remote_exception_class(ZeroDivisionError) is klass  # cached


def test_remote_exception_keeps_traceback_and_pickles() -> None:
    exc = make_remote_exception(Custom("bad"), "test_errors.Custom", "bad", "Traceback...\nCustom: bad\n")
    assert isinstance(exc, Custom) and isinstance(exc, jf.RemoteException)
    assert "Traceback" in str(exc.__cause__)
    again = pickle.loads(pickle.dumps(exc))
    assert isinstance(again, Custom) and isinstance(again, jf.RemoteException)
    assert again.remote_traceback == exc.remote_traceback


def test_remote_exception_without_a_cause() -> None:
    exc = make_remote_exception(None, "mod.Gone", "mod.Gone: it broke", "tb")
    assert type(exc) is jf.RemoteException
    assert "it broke" in str(exc)


def test_worker_death_names_the_signal() -> None:
    assert "SIGKILL" in jf.WorkerDiedException.describe_exit(-signal.SIGKILL)
    assert "code 3" in jf.WorkerDiedException.describe_exit(3)
    assert "heartbeats" in jf.WorkerDiedException.describe_exit(None)
    exc = pickle.loads(pickle.dumps(jf.ActorDiedError("gone", exitcode=-9, worker=2)))
    assert isinstance(exc, jf.ActorDiedError) and exc.exitcode == -9 and exc.worker == 2


def test_builtin_bases_users_catch() -> None:
    assert issubclass(jf.FutureTimeoutError, TimeoutError)
    assert issubclass(jf.ObjectStoreFullError, MemoryError)
    assert issubclass(jf.SerializationError, TypeError)
    assert issubclass(jf.ClusterClosedError, RuntimeError)


def test_error_names_on_the_wire_come_back_as_their_classes() -> None:
    from jupyter_futures.errors import error_class

    for name in ("ActorDiedError", "WorkerDiedException", "ObjectLost", "UnsatisfiableRequirementError"):
        assert error_class(name).__name__ == name
    with pytest.raises(LookupError, match="NoSuchError"):
        error_class("NoSuchError")  # never silently the base class


def test_the_package_raises_no_bare_builtin_errors() -> None:
    import ast
    from pathlib import Path

    package = Path(jf.__file__).parent
    bare = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = getattr(node.exc.func, "id", None)
                if name in ("RuntimeError", "TimeoutError"):
                    bare.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not bare, bare


def test_every_exception_class_is_in_errors() -> None:
    import ast
    from pathlib import Path

    package = Path(jf.__file__).parent
    elsewhere = []
    for path in package.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception")) for b in node.bases
            ):
                elsewhere.append(f"{path.relative_to(package)}:{node.name}")
    assert not elsewhere, elsewhere
