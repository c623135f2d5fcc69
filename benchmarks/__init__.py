"""Side-by-side benchmarks of jupyter_futures against Ray, Dask, ipyparallel and
``concurrent.futures.ProcessPoolExecutor``.

::

    python -m benchmarks                      orchestrator (runner.py)
      │  for each system, in its own session / process group, with a timeout:
      ├─► python -m benchmarks.system_runner <system> ...   driver + 2 workers
      │       writes its samples to a JSON file after every workload group
      │   then: kill whatever that process tree left behind, and report it
      ├─► (--repeat more) python -m benchmarks.system_runner <system> --lifecycle
      │       fresh interpreters for the startup / shutdown samples
      └─► python -m benchmarks.system_runner floors
              pyzmq REQ/REP and memcpy floors on the same machine
      then report.py prints the table and writes the JSON file.

Modules: ``config`` (workload names, units, sizes), ``tasks`` (the functions and actor
class the workers run), ``procs`` (process trees, memory, cleanup), ``workloads`` (the
measurements, written against ``systems.base.System``), ``systems/*`` (one adapter per
engine), ``floors``, ``system_runner``, ``runner``, ``report``.  Beside them, each with its
own command: ``chaos`` (workers killed and stopped under a DAG: ``chaos_tasks``,
``chaos_faults``, ``chaos_model``), ``fuzz`` (hostile frames: ``fuzz_frames``), both run
in a process of their own by ``isolation``.
"""
