"""Another local user against a cluster: the victim and the attacker are two unprivileged
users of this machine, made by the test (it needs root for that, and skips without it).

::

    test (root) ── useradd jf-victim, jf-attacker
       ├── victim:   python (as jf-victim) ── jf.init ── workers ── /dev/shm/jf-<id>/ (0700)
       │                                                          <tmp>/jf-<id>/spill/ (0700)
       └── attacker: python (as jf-attacker): lists, plants pickles under every name it can
                     guess, makes look-alike cluster directories, locks and files, runs a
                     cluster of its own; the victim's results must be right, its init must
                     work, nothing planted may be unpickled, and the sweeps touch nothing of
                     the attacker's

Both run the test's interpreter. Where it sits in a directory other users cannot enter
(``/root`` here), each runs in a mount namespace of its own with the interpreter's
installation bound at a path they can reach.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import jupyter_futures

REPO = Path(jupyter_futures.__file__).resolve().parents[1]
USERS = ("jf-victim", "jf-attacker")
TIMEOUT = 90

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("useradd", "userdel", "runuser", "unshare")),
    reason="needs root (to create two unprivileged users) and useradd, runuser and unshare",
)


def _reachable(path: Path) -> bool:
    """Whether a user other than the owner can reach ``path`` (every parent searchable)."""
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in [path, *path.parents])


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, int]]:
    made = []
    for name in USERS:
        if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                check=True,
                capture_output=True,
            )
            made.append(name)
    uids = {n: int(subprocess.run(["id", "-u", n], capture_output=True, text=True).stdout) for n in USERS}
    yield uids
    for name in made:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory both users share, as they share /tmp (sticky, world-writable)."""
    path = Path(tempfile.mkdtemp(prefix="xuser-", dir="/tmp"))
    os.chmod(path, 0o1777)
    (path / "marks").mkdir(mode=0o777)
    os.chmod(path / "marks", 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class As:
    """Python code run as one of the users, with this checkout and its libraries."""

    def __init__(self, user: str, tmp: Path) -> None:
        self.user = user
        self.tmp = tmp

    def _argv(self, code: str) -> list[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "TMPDIR": str(self.tmp),
            "HOME": str(self.tmp),
            "PYTHONPATH": f"{REPO}:{sysconfig.get_paths()['purelib']}:{sysconfig.get_paths()['platlib']}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        env_args = [f"{k}={v}" for k, v in env.items()]
        base = Path(sys.base_prefix)
        python = Path(sys.executable).resolve()
        if _reachable(python.parent):
            return ["runuser", "-u", self.user, "--", "env", "-i", *env_args, str(python), "-c", code]
        # The interpreter's installation, bound where the user can reach it, in a mount
        # namespace of this command alone (its processes, workers included, share it).
        bound = self.tmp / f"python-{self.user}"
        bound.mkdir(exist_ok=True)
        inner = bound / python.relative_to(base)
        script = 'mount --bind "$1" "$2" && shift 2 && exec runuser -u "$@"'
        return [
            "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
            str(base), str(bound), self.user, "--", "env", "-i", *env_args, str(inner), "-c", code,
        ]  # fmt: skip

    def run(self, code: str, stdin: str = "") -> str:
        out = subprocess.run(
            self._argv(textwrap.dedent(code)), input=stdin, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert out.returncode == 0, f"{self.user} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def start(self, code: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self._argv(textwrap.dedent(code)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _finish(proc: subprocess.Popen[str], stdin: str = "") -> str:
    out, err = proc.communicate(stdin, timeout=TIMEOUT)
    assert proc.returncode == 0, f"failed:\n{out}\n{err}"
    return out


VICTIM = """
    import json, sys
    import numpy as np
    import jupyter_futures as jf

    c = jf.init(2, store_capacity=3 * 2**20)  # 1 MiB values: most of them spill to disk
    values = [jf.submit(np.full, 2**17, float(i)) for i in range(10)]
    jf.wait(values, timeout=60)
    mine = [jf.put(np.full(2**17, 100.0 + i)) for i in range(4)]  # the kernel's own, spilled too
    print(json.dumps({"cluster": c.cluster_id, "tids": [f.id for f in values + mine]}), flush=True)
    sys.stdin.readline()  # the attacker plays now
    sums = [float(jf.submit(np.sum, f).result(60)) for f in values + mine]
    direct = [float(f.result(60)[0]) for f in values + mine]
    print(json.dumps({"sums": sums, "direct": direct, "status": jf.status()["workers"][0]["alive"]}))
    jf.shutdown()
"""

PLANT = """
    import json, os, pickle, sys

    class Mark:  # unpickling this leaves a mark: the victim ran the attacker's code
        def __reduce__(self):
            return (open, ({marks!r} + "/pwned-" + str(os.getpid()), "w"))

    cluster, tids = {cluster!r}, {tids!r}
    shm, tmp = "/dev/shm/jf-" + cluster, {tmp!r} + "/jf-" + cluster
    payload = pickle.dumps(Mark(), protocol=5)
    report = {{"listed": [], "planted": [], "refused": 0}}
    for d in (shm, tmp, tmp + "/spill"):
        try:
            report["listed"].append(sorted(os.listdir(d)))
        except OSError:
            report["refused"] += 1
    # Every name an object of theirs could have, where it could be (old layouts too).
    names = [f"{{o}}_{{t}}_{{n}}" for o in ("w0", "w1", "w2", "w3") for t in tids for n in range(1, 4)]
    names += [f"jf_{{cluster}}_{{o}}_{{t}}" for o in ("w0", "w1", "w2") for t in tids]
    for d in ("/dev/shm", shm, tmp, tmp + "/spill", {tmp!r} + "/jf-" + cluster + "-spill"):
        for name in names:
            try:
                with open(os.path.join(d, name), "xb") as f:
                    f.write(payload)
                os.chmod(os.path.join(d, name), 0o644)
                report["planted"].append(d)
            except OSError:
                report["refused"] += 1
    print(json.dumps(report))
"""


def test_another_user_can_neither_read_nor_plant_objects(users: dict[str, int], shared_tmp: Path) -> None:
    victim = As("jf-victim", shared_tmp)
    attacker = As("jf-attacker", shared_tmp)
    proc = victim.start(VICTIM)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline() or "{}")
        assert first, proc.stderr.read() if proc.stderr else ""
        marks = str(shared_tmp / "marks")
        code = PLANT.format(cluster=first["cluster"], tids=first["tids"], tmp=str(shared_tmp), marks=marks)
        report = json.loads(attacker.run(code))
        result = json.loads(_finish(proc, "go\n"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    planted_inside = [d for d in report["planted"] if first["cluster"] in d and not d.endswith("-spill")]
    assert report["listed"] == [] and planted_inside == [], report
    expected = [2**17 * float(i) for i in range(10)] + [2**17 * (100.0 + i) for i in range(4)]
    assert result["sums"] == expected
    assert result["direct"] == [float(i) for i in range(10)] + [100.0 + i for i in range(4)]
    assert os.listdir(shared_tmp / "marks") == [], "a planted pickle was unpickled"
    assert not Path(f"/dev/shm/jf-{first['cluster']}").exists()
    assert not (shared_tmp / f"jf-{first['cluster']}").exists()
    for name in os.listdir("/dev/shm"):  # what the attacker planted at the top stayed theirs
        if os.lstat(f"/dev/shm/{name}").st_uid == users["jf-attacker"]:
            os.unlink(f"/dev/shm/{name}")


DECOYS = """
    import fcntl, json, os, sys
    import jupyter_futures as jf

    c = jf.init(1)  # a cluster of this user's own, alive meanwhile
    assert c.submit(abs, -3).result(60) == 3
    tmp = {tmp!r}
    made = []
    def mkdir(path):
        os.mkdir(path, 0o700); made.append(path)
    def touch(path, mode=0o600):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode); made.append(path); return fd
    held = []
    # Look-alike cluster directories: one whose lock is held, one whose lock is free (a
    # "dead" cluster, not the victim's to sweep), files under cluster names, old-style locks.
    mkdir("/dev/shm/jf-a1a1a1a1a1"); fd = touch("/dev/shm/jf-a1a1a1a1a1/lock")
    fcntl.flock(fd, fcntl.LOCK_EX); held.append(fd)
    mkdir("/dev/shm/jf-b2b2b2b2b2"); os.close(touch("/dev/shm/jf-b2b2b2b2b2/lock"))
    os.close(touch("/dev/shm/jf-c3c3c3c3c3"))
    os.close(touch("/dev/shm/jf_d4d4d4d4d4.lock"))
    os.close(touch("/dev/shm/jf_d4d4d4d4d4_w1_1", 0o666))
    mkdir("/dev/shm/.jf-staging-e5e5e5e5e5"); os.utime("/dev/shm/.jf-staging-e5e5e5e5e5", (0, 0))
    mkdir(tmp + "/jf-f6f6f6f6f6")
    os.close(touch(tmp + "/jf-0707070707"))
    print(json.dumps({{"cluster": c.cluster_id, "made": made}}), flush=True)
    sys.stdin.readline()
    for path in reversed(made):
        (os.rmdir if os.path.isdir(path) else os.unlink)(path)
    c.shutdown()
"""

INIT = """
    import json
    import jupyter_futures as jf

    c = jf.init(2)
    total = c.submit(sum, [c.submit(pow, 2, i) for i in range(10)]).result(60)
    cluster = c.cluster_id
    c.shutdown()
    print(json.dumps({"total": total, "cluster": cluster}))
"""


def test_another_users_clusters_and_files_never_block_init(users: dict[str, int], shared_tmp: Path) -> None:
    attacker = As("jf-attacker", shared_tmp).start(DECOYS.format(tmp=str(shared_tmp)))
    try:
        assert attacker.stdout is not None
        decoys = json.loads(attacker.stdout.readline() or "{}")
        assert decoys, attacker.stderr.read() if attacker.stderr else ""
        for _ in range(2):  # the second init sweeps after the first: still nothing of theirs
            result = json.loads(As("jf-victim", shared_tmp).run(INIT))
            assert result["total"] == 2**10 - 1
            assert not Path(f"/dev/shm/jf-{result['cluster']}").exists()
        assert [p for p in decoys["made"] if not os.path.lexists(p)] == []
        live = f"/dev/shm/jf-{decoys['cluster']}/lock"
        assert os.path.exists(live), "the attacker's live cluster was swept"
        _finish(attacker, "done\n")
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
    assert not Path(f"/dev/shm/jf-{decoys['cluster']}").exists()


def test_a_stranger_can_not_make_a_clusters_directory_first(users: dict[str, int], shared_tmp: Path) -> None:
    """The cluster id is random, but if another user made its directory first, init must
    refuse it (never adopt it) rather than keep objects where they can reach them."""
    code = """
        import os, secrets
        import jupyter_futures.local.cluster as cl
        wanted = secrets.token_hex(5)
        cl.secrets.token_hex = lambda n: wanted  # the id the stranger guessed
        print(wanted, flush=True)
        input()
        try:
            cl.LocalCluster(1, {"cpu": 1.0}, 2**20, lambda *a: None, lambda *a: None)
        except OSError as exc:
            print("refused", type(exc).__name__)
    """
    victim = As("jf-victim", shared_tmp).start(code)
    squat = ""
    try:
        assert victim.stdout is not None
        wanted = victim.stdout.readline().strip()
        squat = f"/dev/shm/jf-{wanted}"
        As("jf-attacker", shared_tmp).run(f"import os; os.mkdir({squat!r}); os.chmod({squat!r}, 0o777)")
        out = _finish(victim, "go\n")
        assert "refused" in out, out
        assert os.stat(squat).st_uid == users["jf-attacker"] and os.listdir(squat) == []
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        if squat:
            shutil.rmtree(squat, ignore_errors=True)
