"""The pure core: the scheduler's state machine, its records and placement rules.

Events go in, typed instructions come out; nothing here does I/O, starts a thread or reads
a clock (every event carries ``now``), and it imports only the standard library and
:mod:`jupyter_futures.errors`, so the rules are tested without processes. The local engine
(``jupyter_futures.local``) is the shell that carries the instructions out.

::

    specs.py         TaskSpec, TaskMsg, Outcome, Requirements: what a future is and how it ended
    instructions.py  RunTasks, CreateActor, ... Resolved, KillWorker: what the shell must do
    scheduler.py     SchedulerState: the events, and the rules of a future's life
      dispatch.py      ready futures to workers          (placement.py: fit, score, prefetch)
      ready.py         ready queues: by priority, then the groups (cells) in turn
      actor_rules.py   actor calls in order, restarts    worker_deaths.py: resubmit, lost values
      host.py          what those rule modules may use of the scheduler (a Protocol)
    records.py       TaskState, ActorState, framework errors     views.py: status, locality
"""
