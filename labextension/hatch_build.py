"""Build function for hatch-jupyter-builder (see ``[tool.hatch.build.hooks.jupyter-builder]``).

Every build from a checkout, editable installs included, gets the JupyterLab extension::

    pip install [-e] .  ──► build_labextension()
                              │  npm ci               when node_modules is missing or older
                              │                       than package-lock.json
                              │  npm run build:prod   when the built extension is missing or
                              ▼                       older than a source
                  jupyter_futures/labextension/   ──(shared-data)──►  <env>/share/jupyter/
                                                                      labextensions/jupyter-futures

Node.js and npm are needed only to build: a wheel or an sdist carries the built extension.
Without them, an up-to-date or stale build is used as it is, and a missing one is an error
that says what to do, never a package that silently lacks its panel.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOURCES = ("src", "style", "package.json", "package-lock.json", "tsconfig.json")
STAMP = Path("node_modules") / ".installed-from.sha256"  # the package-lock.json it came from


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        for f in [path] if path.is_file() else path.rglob("*"):
            if f.is_file():
                newest = max(newest, f.stat().st_mtime)
    return newest


def _lock_hash(path: Path) -> str:
    return hashlib.sha256((path / "package-lock.json").read_bytes()).hexdigest()


def _run(cmd: list[str], cwd: Path) -> None:
    log.info("running %s in %s", " ".join(cmd), cwd)
    # The build script runs `jupyter-builder`: pip puts its isolated build environment's
    # scripts on PATH; a build without isolation finds it beside this interpreter.
    path = os.pathsep.join([os.environ.get("PATH", ""), sysconfig.get_path("scripts")])
    env = dict(os.environ, PATH=path)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def build_labextension(target_name: str, version: str, **kwargs: Any) -> None:
    """Build the extension into ``outputDir`` of ``package.json`` when it is missing or stale."""
    path = Path(kwargs.get("path", "labextension")).resolve()
    built = path.parent / "jupyter_futures" / "labextension" / "package.json"
    npm = shutil.which(str(kwargs.get("npm", "npm")))
    stale = not built.is_file() or _newest([path / s for s in SOURCES]) > built.stat().st_mtime
    if not stale:
        log.info("the JupyterLab extension is up to date (%s)", built.parent)
        return
    if npm is None:
        if built.is_file():
            log.warning("npm not found: using the JupyterLab extension built before (%s)", built.parent)
            return
        raise RuntimeError(
            "Building jupyter_futures from a checkout builds its JupyterLab extension (the "
            "Cluster panel), which needs Node.js 20 or newer and npm on PATH. Install them "
            "(https://nodejs.org, or `conda install nodejs`), or install without the panel "
            "with SKIP_JUPYTER_BUILDER=1."
        )
    stamp = path / STAMP
    if not stamp.is_file() or stamp.read_text().strip() != _lock_hash(path):
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], path)
        stamp.write_text(_lock_hash(path) + "\n")
    _run([npm, "run", "--silent", str(kwargs.get("build_cmd", "build:prod"))], path)
    if not built.is_file():
        raise RuntimeError(f"`npm run build:prod` in {path} did not write {built}")
