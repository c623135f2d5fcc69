"""The Dask backend: the same API, magics and widgets on a Dask distributed cluster
(``jf.init(address=...)``). ``backend.py`` is the kernel side, ``worker.py`` what runs in
the Dask workers, ``packing.py`` how futures inside arguments become Dask inputs."""

from .backend import DaskBackend

__all__ = ["DaskBackend"]
