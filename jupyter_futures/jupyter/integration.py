"""What a client started in IPython gets, whether or not ``%load_ext`` ran::

jf.init() ──► current.on_start ──► client_started(client)
                                     ├─ in a Jupyter kernel: remote output to the submitting cell
                                     ├─ errors raised for the user's mistakes end at their line
                                     └─ the Client's HTML card as its rich display
"""

from __future__ import annotations

import sys
from typing import Any

from ..client import Client
from .kernel_output import attach
from .tracebacks import install
from .widgets.client_card import card


def client_started(client: Client) -> None:
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is None:
        return
    if "ipykernel" in sys.modules:
        attach(client)
    install(shell)
    show_cards(shell)


def show_cards(shell: Any) -> None:
    """Clients display as their card in this shell (text/plain stays their repr)."""
    shell.display_formatter.formatters["text/html"].for_type(Client, card)
