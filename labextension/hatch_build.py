"""Build function for hatch-jupyter-builder (see ``[tool.hatch.build.hooks.jupyter-builder]``).

Wheels and sdists get the prebuilt JupyterLab extension when the JavaScript toolchain is
there. Editable installs never build it, and neither does a checkout without
``labextension/node_modules``: the Python package works without the extension, and CI
builds it explicitly (``npm ci && npm run build:prod`` in ``labextension/``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def build_labextension(target_name: str, version: str, **kwargs: Any) -> None:
    """Run ``hatch_jupyter_builder.npm_builder`` unless this build should skip it."""
    path = Path(kwargs.get("path", "labextension"))
    if version == "editable":
        log.info("editable install: not building the JupyterLab extension")
        return
    if not (path / "node_modules").is_dir():
        log.warning(
            "%s has no node_modules: building without the JupyterLab extension "
            "(run `npm ci` there first to include it)",
            path,
        )
        return
    from hatch_jupyter_builder import npm_builder

    npm_builder(target_name, version, **kwargs)
