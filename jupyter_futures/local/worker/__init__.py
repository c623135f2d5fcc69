"""A worker process: ``python -m jupyter_futures.local.worker`` (see ``process.py``)."""
