"""``jf.Client``: the kernel's handle on a cluster."""

from __future__ import annotations

from .local.backend import LocalBackend as Client

__all__ = ["Client"]
