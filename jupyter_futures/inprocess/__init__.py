"""The in-process engine: tasks and actors on threads of the kernel itself.

``jf.init(processes=False)`` uses it. Nothing is pickled or copied and everything runs in
this process, so ``breakpoint()`` and pdb work inside tasks, as with Dask's threaded
scheduler and Ray's old local mode. It is for debugging: no isolation from the kernel, and
Python code runs one thread at a time.
"""

from .backend import ThreadBackend

__all__ = ["ThreadBackend"]
