"""Packing values and call arguments into blobs, and reading them back."""

from __future__ import annotations

import mmap
import pickle
import struct
import threading

import numpy as np
import pytest

from jupyter_futures.errors import SerializationError
from jupyter_futures.local.functions import FunctionCache
from jupyter_futures.local.serialize import (
    ALIGN,
    MAGIC,
    Packed,
    collecting,
    pack_args,
    pack_value,
    reduce_future,
    referenced_globals,
    unpack,
    unpack_args,
)


class FakeFuture:
    """Pickles the way a Future does, without a cluster."""

    def __init__(self, tid: int) -> None:
        self.tid = tid

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return reduce_future(self.tid)


def roundtrip(obj: object, writable: bool = False) -> object:
    return unpack(pack_value(obj).to_bytes(), writable=writable)


def buffer_offsets(blob: bytes) -> list[tuple[int, int]]:
    magic, nbuf, _ = struct.unpack_from("<IIQ", blob, 0)
    assert magic == MAGIC
    return [struct.unpack_from("<QQ", blob, 16 + 16 * i) for i in range(nbuf)]


def aligned_copy(blob: bytes) -> mmap.mmap:
    """The blob in page-aligned memory, as it is in a shared-memory segment."""
    mm = mmap.mmap(-1, len(blob))
    mm[:] = blob
    return mm


# -- values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [None, 42, "text", {"a": [1, 2.5, None], "b": ("x", {3})}, b"", b"\x00" * 100_000, bytearray(b"abc")],
    ids=["none", "int", "str", "nested", "empty-bytes", "large-bytes", "bytearray"],
)
def test_plain_values_round_trip(obj: object):
    assert roundtrip(obj) == obj


def test_packed_size_is_the_blob_size():
    packed = pack_value([np.arange(10), "header", np.ones((3, 3))])
    assert len(packed.to_bytes()) == packed.nbytes
    assert len(packed.buffers) == 2


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(1000, dtype=np.int64),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
        np.empty(0),
        np.array(2.5),
    ],
    ids=["int64", "fortran", "structured", "empty", "0-d"],
)
def test_numpy_arrays_round_trip(arr: np.ndarray):
    out = roundtrip(arr)
    assert isinstance(out, np.ndarray)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert np.array_equal(out, arr)
    assert out.flags.f_contiguous == arr.flags.f_contiguous


def test_numpy_array_is_a_read_only_view_of_the_blob():
    mm = aligned_copy(pack_value(np.arange(1000, dtype=np.float64)).to_bytes())
    out = unpack(memoryview(mm))
    assert not out.flags.writeable
    assert np.shares_memory(out, np.frombuffer(mm, dtype=np.uint8))  # no copy
    with pytest.raises(ValueError):
        out[0] = 1.0
    assert not unpack(pack_value(np.arange(3)).to_bytes()).flags.writeable  # inline, too
    del out
    mm.close()


def test_arrays_inside_a_value_are_writable_views_of_a_writable_blob():
    mm = aligned_copy(pack_value({"a": np.zeros(1000), "b": [np.ones(10)]}).to_bytes())
    out = unpack(memoryview(mm))
    assert np.shares_memory(out["a"], np.frombuffer(mm, dtype=np.uint8))  # still no copy
    out["a"][0] = 5.0  # objects that draw or update into their arrays can
    out["b"][0] += 1
    assert out["a"][0] == 5.0 and out["b"][0][0] == 2.0
    del out
    mm.close()


def test_arrays_inside_a_value_from_read_only_bytes_are_writable_copies():
    blob = pack_value([np.zeros(10), np.zeros(5)]).to_bytes()
    out = unpack(blob)
    assert all(a.flags.writeable for a in out)
    out[0][0] = 1.0
    assert unpack(blob)[0][0] == 0.0


def test_writable_unpack_gives_a_private_writable_copy():
    blob = pack_value(np.arange(1000, dtype=np.float64)).to_bytes()
    out = unpack(blob, writable=True)
    assert out.flags.writeable
    assert not np.shares_memory(out, np.frombuffer(blob, dtype=np.uint8))
    out[0] = -1.0
    assert unpack(blob)[0] == 0.0


def test_buffers_are_64_byte_aligned():
    arrays = [np.arange(n, dtype=np.uint8) for n in (1, 7, 100, 4097)]
    blob = pack_value(["short header", *arrays]).to_bytes()
    offsets = buffer_offsets(blob)
    assert len(offsets) == 4
    assert all(off % ALIGN == 0 for off, _ in offsets)
    assert [n for _, n in offsets] == [1, 7, 100, 4097]
    mm = aligned_copy(blob)
    out = unpack(memoryview(mm))
    assert all(a.ctypes.data % ALIGN == 0 for a in out[1:])
    assert all(np.array_equal(a, b) for a, b in zip(out[1:], arrays))
    del out
    mm.close()


def test_value_that_does_not_pickle_raises_serialization_error():
    with pytest.raises(SerializationError, match="lock"):
        pack_value({"guard": threading.Lock()})


def test_futures_inside_a_value_are_recorded_as_contained():
    packed = pack_value({"x": FakeFuture(3), "more": [FakeFuture(4)]})
    assert sorted(packed.contained) == [3, 4]


# -- garbage ---------------------------------------------------------------------------


def test_unpack_of_a_blob_with_a_bad_magic_number_raises():
    with pytest.raises(SerializationError, match="magic"):
        unpack(b"\x00" * 64)


@pytest.mark.parametrize("blob", [b"", b"abc"], ids=["empty", "short"])
def test_unpack_of_a_too_short_blob_raises_serialization_error(blob: bytes):
    with pytest.raises(SerializationError):
        unpack(blob)


def test_unpack_of_a_truncated_blob_raises_serialization_error():
    blob = pack_value({"key": "value" * 10}).to_bytes()
    with pytest.raises(SerializationError):
        unpack(blob[:-5])


def test_a_damaged_pickle_stream_is_called_corrupt():
    blob = bytearray(pack_value({"key": "value" * 10}).to_bytes())
    blob[-20:-1] = b"\xff" * 19  # inside the pickle stream, its length unchanged
    with pytest.raises(SerializationError, match="corrupt or truncated"):
        unpack(bytes(blob))


def refuse(reason: str) -> None:
    raise pickle.UnpicklingError(reason)


class Refuses:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (refuse, ("not here",))


class Rebuilt:
    def __init__(self) -> None:
        self.n = 1

    def __setstate__(self, state: dict[str, int]) -> None:
        raise ValueError("bad state")


def test_an_object_whose_own_unpickling_raises_is_named_not_called_corrupt():
    blob = pack_value({"fine": np.arange(3), "bad": [Refuses()]}).to_bytes()
    with pytest.raises(SerializationError) as info:
        unpack(blob, what="the result of future 7")
    message = str(info.value)
    assert "corrupt" not in message
    assert message.startswith("could not unpickle the result of future 7")
    assert f"{__name__}.refuse raised UnpicklingError: not here" in message
    assert type(info.value.__cause__) is pickle.UnpicklingError


def test_a_failing_setstate_names_its_class():
    expected = rf"rebuilding {__name__}\.Rebuilt raised ValueError: bad state"
    with pytest.raises(SerializationError, match=expected):
        unpack(pack_value(Rebuilt()).to_bytes())


def test_a_missing_module_is_named():
    gone = b"gone_module_xyz"[: len(__name__)]  # same length: the stream stays well formed
    stream = pickle.dumps(Rebuilt(), protocol=5).replace(__name__.encode(), gone)
    packed = Packed(stream, [], [])
    with pytest.raises(SerializationError, match="No module named") as info:
        unpack(packed.to_bytes())
    assert "corrupt" not in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_referenced_globals_reads_the_stream_without_loading_it():
    stream = pickle.dumps([Refuses(), Rebuilt(), Rebuilt(), np.arange(2)], protocol=5)
    names = referenced_globals(stream)
    assert f"{__name__}.refuse" in names and f"{__name__}.Rebuilt" in names
    assert names.count(f"{__name__}.Rebuilt") == 1
    with pytest.raises(ValueError):
        referenced_globals(stream[:-3])


def test_unpack_args_names_the_call():
    packed, _ = pack_args((Refuses(),), {})
    with pytest.raises(SerializationError, match="could not unpickle the arguments of task 5"):
        unpack_args(packed.to_bytes(), lambda tid: None, what="the arguments of task 5")


def test_an_inputs_own_error_passes_through_unwrapped():
    class Lost(Exception):
        pass

    def lose(tid: int) -> None:
        raise Lost(f"input {tid} is gone")

    packed, _ = pack_args((FakeFuture(4),), {})
    with pytest.raises(Lost, match="input 4 is gone"):
        unpack_args(packed.to_bytes(), lose)


# -- arguments -------------------------------------------------------------------------


def test_arguments_round_trip_with_futures_replaced_by_values():
    packed, deps = pack_args((1, FakeFuture(3), [FakeFuture(4)]), {"k": FakeFuture(5), "n": "x"})
    assert deps == [3, 4, 5]
    args, kwargs = unpack_args(packed.to_bytes(), lambda tid: tid * 10)
    assert args == (1, 30, [40])
    assert kwargs == {"k": 50, "n": "x"}


def test_argument_arrays_travel_out_of_band():
    packed, deps = pack_args((np.arange(100),), {})
    assert deps == [] and len(packed.buffers) == 1
    (arr,), _ = unpack_args(packed.to_bytes(), lambda tid: None)
    assert np.array_equal(arr, np.arange(100))


def test_unpicklable_positional_argument_is_named():
    with pytest.raises(SerializationError, match=r"argument 1 .*lock") as info:
        pack_args((1, threading.Lock()), {})
    assert "keyword" not in str(info.value)


def test_unpicklable_keyword_argument_is_named():
    with pytest.raises(SerializationError, match="keyword argument 'guard'"):
        pack_args((1,), {"ok": 2, "guard": threading.Lock()})


def test_collecting_restores_the_outer_collector():
    with collecting("value") as outer:
        pickled_inside = pack_args((FakeFuture(1),), {})[1]
        pack_value(FakeFuture(2))
        reduce_future(9)
    assert pickled_inside == [1]
    assert outer == [9]


# -- functions -------------------------------------------------------------------------


def square(x: int) -> int:
    return x * x


def test_function_cache_pickles_each_function_once():
    cache = FunctionCache()
    shipped = cache.get(square)
    again = cache.get(square)
    assert shipped.fn_hash == again.fn_hash and len(shipped.fn_hash) == 16
    assert again is shipped  # served from the cache, not pickled again


def test_function_cache_tells_functions_apart():
    cache = FunctionCache()
    assert cache.get(square).fn_hash != cache.get(lambda x: x + 1).fn_hash
    assert cache.get(square).fn_hash == FunctionCache().get(square).fn_hash


def test_function_that_does_not_pickle_raises_serialization_error():
    lock = threading.Lock()

    def uses_lock() -> None:
        with lock:
            pass

    with pytest.raises(SerializationError, match="uses_lock"):
        FunctionCache().get(uses_lock)


def test_a_call_without_arguments_packs_to_a_constant_that_unpacks_fresh() -> None:
    from jupyter_futures.local.serialize import pack_args, unpack_args

    first, deps = pack_args((), {})
    second, _ = pack_args((), {})
    assert deps == [] and first.header is second.header  # no pickling per call
    args, kwargs = unpack_args(first.to_bytes(), lambda tid: None)
    assert args == () and kwargs == {}
    kwargs["x"] = 1  # the caller may fill it: the next call still gets an empty one
    assert unpack_args(second.to_bytes(), lambda tid: None) == ((), {})
