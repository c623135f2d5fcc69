"""Arguments for the Dask backend: the futures anywhere inside them, and where each value is.

::

    pack((args, kwargs)) ─► cloudpickle with persistent ids: every Future, anywhere (also
        inside custom objects, which Dask does not look into) becomes its id in the blob
    locate(futures) ─► where = {fid: ("d", i) | ("v", j)}, inputs, values
        ("d", i): a Dask key, passed to Dask as input i, so Dask waits for it and moves it
        ("v", j): a value this kernel already holds (an actor call's result), sent along
    worker.unpack(blob, where, inputs, values) ─► the arguments with the values in place
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import cloudpickle

from .. import errors
from ..futures import Future


def pack(value: Any) -> tuple[bytes, list[Future[Any]]]:
    """``value`` pickled with each Future as its id, and those futures (each once)."""
    found: dict[int, Future[Any]] = {}

    class Finder(cloudpickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, Future):
                found[obj.id] = obj
                return obj.id
            return None

    data = io.BytesIO()
    try:
        Finder(data, protocol=5).dump(value)
    except Exception as exc:
        raise errors.SerializationError(f"the arguments do not pickle: {exc!r}") from exc
    return data.getvalue(), list(found.values())


def locate(
    futures: list[Future[Any]], dask_future: Callable[[Future[Any]], Any]
) -> tuple[dict[int, tuple[str, int]], list[Any], list[Any]]:
    """Where each future's value comes from: its Dask future (``dask_future(f)``, None when
    the kernel holds the value itself) or the value, for futures that are all done."""
    where: dict[int, tuple[str, int]] = {}
    inputs: list[Any] = []
    values: list[Any] = []
    for f in futures:
        dfut = dask_future(f)
        if dfut is not None:
            where[f.id] = ("d", len(inputs))
            inputs.append(dfut)
        else:
            where[f.id] = ("v", len(values))
            values.append(f.result())
    return where, inputs, values
