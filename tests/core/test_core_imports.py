"""The core is pure: its modules import only the standard library, ``jupyter_futures.errors``
and ``jupyter_futures.runs`` (the task stream's log, which every engine keeps), and of the
standard library nothing that does I/O, starts threads or reads clocks; ``runs`` neither."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import jupyter_futures.core

CORE = Path(jupyter_futures.core.__file__).parent
IMPURE = {
    "asyncio",
    "multiprocessing",
    "os",
    "select",
    "selectors",
    "signal",
    "socket",
    "subprocess",
    "threading",
    "time",
}


def imports_of(path: Path) -> list[str]:
    """Absolute names of what a core module imports ("jupyter_futures.core.x" for ".x")."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.append(node.module or "")
            else:
                base = ["jupyter_futures", "core"][: 3 - node.level]
                names.append(".".join([*base, node.module or ""]).rstrip("."))
    return names


PURE = {"jupyter_futures.errors", "jupyter_futures.runs"}


def test_the_run_log_is_pure_too():
    names = imports_of(CORE.parent / "runs.py")
    assert all(
        n == "__future__" or (n.split(".")[0] in sys.stdlib_module_names and n.split(".")[0] not in IMPURE)
        for n in names
    ), names


def test_core_imports_only_the_standard_library_and_errors():
    modules = sorted(CORE.glob("*.py"))
    assert len(modules) > 5
    bad = []
    for path in modules:
        for name in imports_of(path):
            top = name.split(".")[0]
            ours = name in PURE or name.startswith("jupyter_futures.core")
            stdlib = top in sys.stdlib_module_names and top not in IMPURE
            if not (ours or stdlib or name == "__future__"):
                bad.append(f"{path.name}: {name}")
    assert bad == []
