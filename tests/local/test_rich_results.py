"""Rich results (figures, DataFrames, images, labelled arrays) come back usable.

A result's buffers are views of the shared-memory object, mapped copy-on-write: the
objects rebuilt on them can redraw, be edited and be displayed as if made here, while the
shared copy stays as it was. A numpy array that *is* the result stays a read-only view.
Each type is checked both large (through shared memory) and small (inline in a message).
"""

from __future__ import annotations

import gc
import io
import time
from typing import Any

import numpy as np
import pytest

import jupyter_futures as jf

SIZES = {"shared memory": 400, "inline": 8}


def make_figure(n: int) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.imshow(np.linspace(0, 1, n * n).reshape(n, n))
    ax.plot(np.arange(n), np.arange(n))
    return fig


def make_frame(n: int) -> Any:
    import pandas as pd

    return pd.DataFrame({"a": np.arange(n * n, dtype=np.float64), "b": np.ones(n * n)})


def make_image(n: int) -> Any:
    from PIL import Image

    return Image.fromarray(np.zeros((n, n, 3), dtype=np.uint8))


def make_data_array(n: int) -> Any:
    import xarray as xr

    return xr.DataArray(np.zeros((n, n)), dims=("x", "y"), coords={"x": np.arange(n)}, name="field")


def formatted(obj: object) -> dict[str, Any]:
    """What IPython's display() would send for ``obj`` (no shell needed)."""
    from IPython.core.formatters import DisplayFormatter

    formatter = DisplayFormatter()
    formatter.formatters["image/png"].for_type_by_name(
        "matplotlib.figure", "Figure", lambda fig: _figure_png(fig)
    )
    data, _ = formatter.format(obj)
    return data  # type: ignore[no-any-return]


def _figure_png(fig: Any) -> bytes:
    from IPython.core.pylabtools import print_figure

    return print_figure(fig, "png")  # type: ignore[no-any-return]


def in_shared_memory(f: jf.Future[Any]) -> bool:
    return f.backend.segment_of(f.id) is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize("where", list(SIZES))
def test_a_figure_result_draws_and_displays(shared_client: jf.Client, where: str) -> None:
    import matplotlib.pyplot as plt

    f = jf.submit(make_figure, SIZES[where])
    fig = f.result(60)
    assert in_shared_memory(f) == (where == "shared memory")
    try:
        out = io.BytesIO()
        fig.savefig(out, format="png")
        assert out.getvalue().startswith(b"\x89PNG")
        assert formatted(fig)["image/png"].startswith(b"\x89PNG")
        fig.axes[0].lines[0].set_ydata(np.zeros(SIZES[where]))  # edit, then draw again
        fig.canvas.draw()
    finally:
        plt.close("all")  # the figure joined this process's pyplot when it was unpickled


@pytest.mark.parametrize("where", list(SIZES))
def test_a_dataframe_result_can_be_edited_and_displayed(shared_client: jf.Client, where: str) -> None:
    f = jf.submit(make_frame, SIZES[where])
    df = f.result(60)
    assert in_shared_memory(f) == (where == "shared memory")
    df.loc[0, "a"] = -1.0
    df.iloc[1, 1] = 5.0
    df["b"] += 1
    assert df["a"].iloc[0] == -1.0 and df["b"].iloc[1] == 6.0 and df["b"].iloc[2] == 2.0
    assert "<table" in formatted(df)["text/html"]
    other = jf.submit(lambda frame: float(frame["b"].sum()), f).result(60)
    assert other == float(SIZES[where] ** 2)  # another reader sees the stored value


@pytest.mark.parametrize("where", list(SIZES))
def test_an_image_result_can_be_drawn_on_and_displayed(shared_client: jf.Client, where: str) -> None:
    from PIL import ImageDraw

    image = jf.submit(make_image, SIZES[where]).result(60)
    ImageDraw.Draw(image).line((0, 0, SIZES[where] - 1, SIZES[where] - 1), fill=(255, 0, 0))
    assert image.getpixel((0, 0)) == (255, 0, 0)
    assert formatted(image)["image/png"].startswith(b"\x89PNG")


@pytest.mark.parametrize("where", list(SIZES))
def test_a_data_array_result_can_be_edited_and_displayed(shared_client: jf.Client, where: str) -> None:
    f = jf.submit(make_data_array, SIZES[where])
    da = f.result(60)
    assert in_shared_memory(f) == (where == "shared memory")
    da[0, 0] = 1.0
    da.values[1, 1] = 2.0
    assert float(da.sum()) == 3.0
    assert "field" in formatted(da)["text/html"]
    assert jf.submit(lambda a: float(a.sum()), f).result(60) == 0.0  # the stored value is intact


def test_an_array_result_is_still_a_read_only_view(shared_client: jf.Client) -> None:
    f = jf.submit(np.zeros, 1_000_000)
    arr = f.result(60)
    assert in_shared_memory(f) and not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0] = 1.0
    copy = f.result(60, writable=True)
    copy[0] = 1.0
    assert arr[0] == 0.0
    small = jf.submit(np.zeros, 4).result(60)
    assert not small.flags.writeable  # inline arrays behave the same


def test_an_edited_result_outliving_its_future_keeps_its_memory(shared_client: jf.Client) -> None:
    """The mapping behind an edited DataFrame pins its object: the file is never recycled
    under it, and the edit stays this process's own."""
    f = jf.submit(make_frame, 400)
    df = f.result(60)
    assert in_shared_memory(f)
    tid = f.id
    df.loc[0, "b"] = 7.0
    del f
    gc.collect()
    for _ in range(6):  # free and make objects of the same size: recycling candidates
        jf.submit(make_frame, 400).result(60)
    time.sleep(0.6)  # a housekeeping tick drains releases
    assert tid in shared_client.backend.cluster.state.tasks
    assert df["b"].iloc[0] == 7.0 and float(df["b"].iloc[1:].sum()) == 400 * 400 - 1
    assert float(df["a"].sum()) == float(np.arange(400 * 400).sum())
    del df
    gc.collect()
    deadline = time.monotonic() + 10
    while tid in shared_client.backend.cluster.state.tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tid not in shared_client.backend.cluster.state.tasks


FIGURE_CELL = """
import numpy as np
def make_figure(n):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.imshow(np.linspace(0, 1, n * n).reshape(n, n))
    return fig
fig = jf.submit(make_figure, 400).result()
fig
"""


def test_a_figure_result_is_displayed_in_a_kernel() -> None:
    """As a notebook shows it: the cell's value, drawn by the inline backend."""
    from kernels import SETUP, start, stop

    kernel = start()
    try:
        kernel.run(SETUP)
        msg_id = kernel.execute(FIGURE_CELL)
        assert kernel.reply(msg_id)["status"] == "ok"
        kernel.wait_for(lambda: kernel._idle(msg_id))
        mine = [m for m in kernel.messages if m["parent_header"].get("msg_id") == msg_id]
        shown = [m for m in mine if m["msg_type"] in ("execute_result", "display_data")]
        assert any("image/png" in m["content"]["data"] for m in shown), kernel.summary()[-8:]
        complaints = [m["content"] for m in mine if m["msg_type"] in ("error", "stream")]
        assert not complaints, complaints  # no "read-only", no "Error in callback"
        kernel.run("jf.shutdown()")
    finally:
        stop(kernel)
