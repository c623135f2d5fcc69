"""A real kernel (jupyter_client) on a real Dask cluster: %%remote, output in the
submitting cell while another cell runs, and the interrupt of a blocking cell."""

from __future__ import annotations

import pytest
from dask_cluster import DaskCluster, dask_cluster  # noqa: F401 - fixtures
from kernels import SETUP, Kernel, start, stop

pytestmark = pytest.mark.timeout(240)


def test_remote_cells_and_live_output_in_the_submitting_cell_on_dask(dask_cluster: DaskCluster) -> None:
    k: Kernel = start()
    try:
        k.run(SETUP.replace("jf.init(2)", f"jf.init(address={dask_cluster.address!r})"))
        assert "dask" in k.run("print(repr(client))")
        # %%remote on a Dask worker, its value back as the cell's result
        msg_id = k.execute("%%remote total --block\nx = 20\nprint('on a dask worker')\nx + 22")
        assert k.reply(msg_id)["status"] == "ok"
        k.wait_for(
            lambda: any(
                m["msg_type"] == "execute_result" and "42" in m["content"]["data"]["text/plain"]
                for m in k.of("execute_result")
                if m["parent_header"].get("msg_id") == msg_id
            )
        )
        assert "on a dask worker" in "".join(k.stream_text(msg_id))
        # a task printing slowly: its lines land in its own cell while another cell runs
        first = k.execute(
            "def talk(n):\n"
            "    for i in range(n):\n"
            "        print(f'tick {i}', flush=True)\n"
            "        time.sleep(0.3)\n"
            "    return n\n"
            "talker = jf.submit(talk, 6)"
        )
        k.reply(first)
        second = k.execute("time.sleep(1.5)\nprint('second cell')")
        k.reply(second)
        k.wait_for(lambda: "tick 5" in "".join(k.stream_text(first)), timeout=60)
        assert "tick" not in "".join(k.stream_text(second))
        assert "second cell" in "".join(k.stream_text(second))
        # a task submitted by a task prints into the cell of the kernel's task it came from
        nested = k.execute(
            "def inner():\n"
            "    print('inner says hi', flush=True)\n"
            "    return 1\n"
            "def outer():\n"
            "    return jf.submit(inner).result(30) + 1\n"
            "print(jf.submit(outer).result(60))"
        )
        k.reply(nested)
        k.wait_for(lambda: "inner says hi" in "".join(k.stream_text(nested)), timeout=30)
        assert "2" in "".join(k.stream_text(nested))
        # an interrupted --block cell stops its remote work
        blocked = k.execute(
            "%%remote spun --block\nprint('spinning', flush=True)\nwhile True:\n    time.sleep(0.05)"
        )
        k.wait_for(lambda: "spinning" in "".join(k.stream_text(blocked)), timeout=60)
        k.km.interrupt_kernel()
        reply = k.reply(blocked)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        assert "KeyboardInterrupt" in reply["ename"]
        # nothing of this kernel runs on the workers any more, and its status says cancelled
        check = (
            "from jupyter_futures.dask import worker as remote\n"
            "keys = client.backend._client.run(remote.running_keys, client.cluster_id)\n"
            "print(json.dumps([sum(map(len, keys.values())), jf.status()['futures']]))"
        )
        k.wait_for(lambda: (s := k.json(check))[0] == 0 and s[1].get("cancelled"), timeout=30)
        # the widgets and the dashboard show the Dask cluster
        k.run("f = jf.submit(pow, 2, 5)\nf")  # a future widget
        k.wait_for(lambda: any("done" in str(m["content"]) for m in k.of("comm_msg")), timeout=30)
        k.run("d = jf.dashboard()\nd")
        snapshot = k.run("d.tick()\nprint(d.text)")
        assert "2 workers" in snapshot and "done" in snapshot, snapshot
        k.run("jf.shutdown()")
    finally:
        stop(k)
