"""The embedded local engine: worker processes on this machine, a shared-memory object
store in each, and the I/O shell around the core scheduler.

::

    LocalBackend (backend.py) ── calls ──► LocalCluster (cluster.py) ── runs ──► core.SchedulerState
         │ serialize.py, functions.py            │ transport.py, protocol.py (signed zmq)
         │ store.py (shared memory)              ▼
         └────────── reads values ◄──────── worker processes (worker/)
"""
