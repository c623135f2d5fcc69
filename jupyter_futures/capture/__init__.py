"""What user code writes inside a task, caught on the worker for the kernel: print and
``display()`` (``output.py``) and matplotlib figures (``mpl_backend.py``). Engine-neutral:
the local worker and the Dask worker plug in how to send it and which task is running."""
