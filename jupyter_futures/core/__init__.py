"""The pure core: the scheduler's state machine, its records and placement rules.

Events go in, typed instructions come out; nothing here does I/O, starts a thread or reads
a clock (every event carries ``now``), so the rules are tested without processes. The
local engine (``jupyter_futures.local``) is the shell that carries the instructions out.
"""
