"""The status the backends return and the JupyterLab panel's TypeScript model are one
definition: every key of ``jupyter_futures.backend``'s status TypedDicts is a field of the
matching interface in ``labextension/src/model.ts``, and the other way round."""

from __future__ import annotations

import re
from pathlib import Path

import jupyter_futures as jf
from jupyter_futures.backend import REQUIRED_STATUS_KEYS, iter_status_keys

MODEL = Path(__file__).resolve().parents[2] / "labextension" / "src" / "model.ts"


def interface_fields(source: str, name: str) -> dict[str, bool]:
    """``{field: optional}`` of ``export interface name { ... }``."""
    body = re.search(rf"export interface {name} \{{(.*?)\n\}}", source, re.S)
    assert body is not None, f"{name} is not in model.ts"
    fields = re.findall(r"^\s{2}(\w+)(\??):", body[1], re.M)
    return {f: bool(opt) for f, opt in fields}


def test_the_panel_model_mirrors_the_backend_status() -> None:
    source = MODEL.read_text()
    for interface, keys in iter_status_keys():
        fields = interface_fields(source, interface)
        assert set(fields) == set(keys), interface
    cluster = interface_fields(source, "IClusterStatus")
    assert {k for k, optional in cluster.items() if not optional} == set(REQUIRED_STATUS_KEYS)


def test_a_real_status_has_the_declared_shape() -> None:
    with jf.Client(1) as c:
        c.wait_for_workers()
        st = c.status()
        assert set(REQUIRED_STATUS_KEYS) <= set(st)
        keys = dict(iter_status_keys())
        assert set(st["workers"][0]) == set(keys["IWorkerStatus"])


def test_the_logs_messages_match_the_kernel_side() -> None:
    from jupyter_futures.jupyter import labcomm

    source = MODEL.read_text()
    assert set(interface_fields(source, "ILogsRequest")) == set(labcomm.LogsRequest.__annotations__)
    assert set(interface_fields(source, "ILogsMessage")) == set(labcomm.LogsMessage.__annotations__)
