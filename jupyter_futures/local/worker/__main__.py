"""``python -m jupyter_futures.local.worker``: run one worker (the kernel starts them)."""

from .process import main

main()
