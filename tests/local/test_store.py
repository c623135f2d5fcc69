"""The shared-memory object store, its spill directory, and the sweep of dead clusters.

Stores live in the real ``/dev/shm`` under a fresh cluster id; the sweep tests use a
private directory in its place so they never touch another cluster's files.
"""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from jupyter_futures.errors import ObjectStoreFullError
from jupyter_futures.local import store as store_module
from jupyter_futures.local.serialize import Packed, pack_value, unpack
from jupyter_futures.local.store import (
    MIN_SHM_FREE,
    ClusterLock,
    ObjectStore,
    choose_shm_dir,
    cluster_dir,
    fallback_dir,
    map_object,
    owner_objects,
    private_tmp_dir,
    remove_owner_objects,
    segment_name,
    spill_dir_for,
    sweep_dead_clusters,
)

SHM = Path("/dev/shm")
SIZE = 10_000  # payload bytes of one test object


def payload(tag: int, size: int = SIZE) -> Packed:
    return pack_value(np.full(size, tag, dtype=np.uint8))


def tag_of(view: memoryview) -> int:
    arr = unpack(view)
    assert len(set(arr.tolist())) == 1
    return int(arr[0])


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def cluster() -> Iterator[str]:
    """A fresh cluster id, locked as a kernel locks its cluster (so no other cluster's
    sweep takes our files); whatever a test leaves under it is removed afterwards."""
    cluster = secrets.token_hex(5)
    lock = ClusterLock(SHM, cluster)
    yield cluster
    lock.release()  # with the cluster's directory
    shutil.rmtree(private_tmp_dir(cluster), ignore_errors=True)


@pytest.fixture
def make_store(cluster: str) -> Iterator[Callable[..., ObjectStore]]:
    stores: list[ObjectStore] = []

    def make(capacity: int, owner: str = "w1") -> ObjectStore:
        s = ObjectStore(cluster, owner, SHM, capacity)
        stores.append(s)
        return s

    yield make
    for s in stores:
        s.close()


@pytest.fixture
def store(make_store: Callable[..., ObjectStore]) -> ObjectStore:
    """Room for three test objects."""
    return make_store(3 * payload(0).nbytes)


def where(s: ObjectStore, name: str) -> str:
    in_shm, in_spill = (s.obj_dir / name).exists(), (s.spill_dir / name).exists()
    assert not (in_shm and in_spill), f"{name} is in both places"
    return "shm" if in_shm else "spill" if in_spill else "nowhere"


# -- put, view, free --------------------------------------------------------------------


def test_put_then_view_round_trips(store: ObjectStore):
    name = store.put(1, payload(7))
    assert name == segment_name("w1", 1, 1) == "w1_1_1"
    assert store.obj_dir == SHM / f"jf-{store.cluster}" and mode(store.obj_dir) == 0o700
    assert name in store and store.objects == 1
    assert store.used == payload(7).nbytes
    out = unpack(store.view(name))
    assert not out.flags.writeable and out.shape == (SIZE,) and out[0] == 7


def test_object_file_is_readable_by_its_owner_only(store: ObjectStore):
    name = store.put(1, payload(1))
    assert mode(store.obj_dir / name) == 0o600


def test_another_process_maps_the_object_by_name(store: ObjectStore):
    name = store.put(1, payload(3))
    assert tag_of(map_object(store.obj_dir, spill_dir_for(store.cluster), name)) == 3


def test_putting_the_same_id_again_replaces_the_object_under_a_new_name(store: ObjectStore):
    name = store.put(1, payload(1))
    reader = store.view(name)
    again = store.put(1, payload(2))
    assert again != name and where(store, name) == "nowhere"
    assert tag_of(store.view(again)) == 2 and tag_of(reader) == 1  # never written over
    assert store.objects == 1 and store.used == payload(2).nbytes


def test_every_put_has_a_new_name(store: ObjectStore):
    names = [store.put(1, payload(1)) for _ in range(3)] + [store.put(2, payload(2))]
    assert len(set(names)) == 4


def test_free_removes_the_object(store: ObjectStore):
    name = store.put(1, payload(1))
    store.free(name)
    assert name not in store and where(store, name) == "nowhere"
    assert store.used == 0 and store.objects == 0
    with pytest.raises(FileNotFoundError):
        map_object(store.obj_dir, store.spill_dir, name)
    store.free(name)  # freeing twice is harmless


def test_a_mapping_outlives_the_free_of_its_object(store: ObjectStore):
    name = store.put(1, payload(5))
    view = store.view(name)
    store.free(name)
    assert tag_of(view) == 5


def test_a_mapping_is_copy_on_write(store: ObjectStore):
    """Objects inside a value are writable in the reader, and no write reaches the store."""
    name = store.put(1, pack_value({"pixels": np.zeros(SIZE, dtype=np.uint8)}))
    view = store.view(name)
    other = map_object(store.obj_dir, store.spill_dir, name)
    assert not view.readonly
    value = unpack(view)
    value["pixels"][:] = 9  # in this process's pages only
    assert int(value["pixels"].sum()) == 9 * SIZE
    with open(store.obj_dir / name, "rb") as f:
        assert set(f.read()[-SIZE:]) == {0}  # the store's copy is untouched
    assert int(unpack(other)["pixels"].sum()) == 0  # and so is every other reader's
    assert int(unpack(map_object(store.obj_dir, store.spill_dir, name, populate=True))["pixels"].sum()) == 0


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_populating_a_mapping_copies_nothing(make_store: Callable[..., ObjectStore]):
    """Mapping every page at once must share the store's pages, not copy them in."""
    size = 64 * 2**20
    s = make_store(2 * size)
    name = s.put(1, payload(3, size=size))
    before = rss_anon()
    view = map_object(s.obj_dir, s.spill_dir, name, populate=True)
    arr = unpack(view)
    assert int(arr[::4096].sum()) == 3 * len(arr[::4096])  # every page read
    assert rss_anon() - before < size // 4
    del arr, view


def test_an_array_that_is_the_value_stays_read_only(store: ObjectStore):
    name = store.put(1, payload(4, size=2**21))
    arr = unpack(map_object(store.obj_dir, store.spill_dir, name, populate=True))
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0] = 1
    copy = unpack(store.view(name), writable=True)
    copy[0] = 1
    assert arr[0] == 4 and tag_of(store.view(name)) == 4


# -- capacity and spilling --------------------------------------------------------------


def test_putting_past_capacity_spills_the_least_recently_used(store: ObjectStore):
    names = [store.put(i, payload(i)) for i in (1, 2, 3)]
    assert store.spilled == 0
    store.view(names[0])  # 1 is now more recent than 2
    fourth = store.put(4, payload(4))
    assert store.spilled == 1 and store.objects == 4
    assert [where(store, n) for n in [*names, fourth]] == ["shm", "spill", "shm", "shm"]
    assert store.used <= store.capacity
    assert store.spilled_bytes == payload(2).nbytes


def test_spilled_object_still_reads_back_through_map_object(store: ObjectStore):
    names = [store.put(i, payload(i)) for i in (1, 2, 3, 4, 5)]
    assert store.spilled == 2
    for i, name in enumerate(names, start=1):
        assert tag_of(map_object(store.obj_dir, spill_dir_for(store.cluster), name)) == i


def test_spill_files_and_directory_are_private(store: ObjectStore):
    names = [store.put(i, payload(i)) for i in (1, 2, 3, 4)]
    assert where(store, names[0]) == "spill"
    assert mode(store.spill_dir) == 0o700
    assert mode(store.spill_dir / names[0]) == 0o600


def test_view_restores_a_spilled_object(store: ObjectStore):
    names = [store.put(i, payload(i)) for i in (1, 2, 3, 4)]
    assert where(store, names[0]) == "spill"
    assert tag_of(store.view(names[0])) == 1
    assert where(store, names[0]) == "shm"
    assert where(store, names[1]) == "spill"  # made room for it
    assert store.spilled == 1 and store.used <= store.capacity
    assert mode(store.obj_dir / names[0]) == 0o600


def test_object_larger_than_capacity_goes_straight_to_disk(make_store: Callable[..., ObjectStore]):
    s = make_store(payload(0).nbytes)
    small = s.put(1, payload(1))
    big = s.put(2, payload(2, size=3 * SIZE))
    assert where(s, big) == "spill" and where(s, small) == "shm"
    assert s.used == payload(1).nbytes
    assert tag_of(s.view(big)) == 2
    assert where(s, big) == "spill"  # too big to come back


def test_free_of_a_spilled_object_removes_its_file(store: ObjectStore):
    names = [store.put(i, payload(i)) for i in (1, 2, 3, 4)]
    store.free(names[0])
    assert where(store, names[0]) == "nowhere"
    assert store.spilled == 0 and store.objects == 3


def test_close_removes_every_object(store: ObjectStore):
    names = [store.put(i, payload(i)) for i in range(1, 6)]
    store.close()
    assert store.objects == 0 and store.used == 0
    assert [where(store, n) for n in names] == ["nowhere"] * 5


def test_map_object_finds_an_object_that_moved(store: ObjectStore):
    name = store.put(1, payload(1))
    spill = spill_dir_for(store.cluster)
    assert tag_of(map_object(store.obj_dir, spill, name)) == 1
    for i in (2, 3, 4):
        store.put(i, payload(i))
    assert where(store, name) == "spill"
    assert tag_of(map_object(store.obj_dir, spill, name)) == 1


def test_a_preexisting_file_never_stands_in_for_the_value(store: ObjectStore):
    # A file already sitting under the object's name (a leftover, or planted by another
    # user of the shared /dev/shm) must not be what readers get.
    name = segment_name("w1", 9, 1)
    (store.obj_dir / name).write_bytes(payload(66).to_bytes())
    try:
        assert store.put(9, payload(9)) == name
    except (OSError, ObjectStoreFullError):
        return  # refusing to store it is fine too
    assert tag_of(map_object(store.obj_dir, spill_dir_for(store.cluster), name)) == 9


def test_existing_spill_directory_is_made_private(store: ObjectStore):
    store.spill_dir.mkdir(mode=0o755, parents=True)
    os.chmod(store.spill_dir, 0o777)
    try:
        for i in (1, 2, 3, 4):
            store.put(i, payload(i))
    except (OSError, ObjectStoreFullError):
        return  # refusing a directory it did not make is fine too
    assert store.spilled == 1
    assert mode(store.spill_dir) & 0o077 == 0


def test_remove_owner_objects_removes_one_owners_files(make_store: Callable[..., ObjectStore]):
    mine, other = make_store(payload(0).nbytes, "w1"), make_store(payload(0).nbytes, "w2")
    mine_names = [mine.put(i, payload(i)) for i in (1, 2)]  # one of them spilled
    kept = other.put(1, payload(9))
    assert remove_owner_objects(mine.obj_dir, mine.spill_dir, "w1") == 2
    assert [where(mine, n) for n in mine_names] == ["nowhere", "nowhere"]
    assert where(other, kept) == "shm"


# -- the cluster lock and the sweep ---------------------------------------------------------


@pytest.fixture
def fake_shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private stand-in for /dev/shm, with a private temporary directory beside it, so a
    sweep sees (and may remove) only what the test made."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    shm = tmp_path / "shm"
    shm.mkdir()
    return shm


def leftovers_of(directory: Path, cluster: str) -> list[Path]:
    """Make the files and directories a crashed cluster leaves behind; returns them all."""
    objects = cluster_dir(directory, cluster)
    objects.mkdir(mode=0o700, exist_ok=True)
    files = [objects / "w1_5_1", objects / "w0_6_2", objects / ".w1_7_3.tmp"]
    for f in files:
        f.write_bytes(b"x")
    tmp = private_tmp_dir(cluster)
    tmp.mkdir(mode=0o700, exist_ok=True)
    dirs = [spill_dir_for(cluster), tmp]
    spill_dir_for(cluster).mkdir(mode=0o700, exist_ok=True)
    (spill_dir_for(cluster) / "w1_8_4").write_bytes(b"x")
    (tmp / "scheduler").write_bytes(b"x")
    return [*files, objects, *dirs]


def test_sweep_removes_a_dead_clusters_leftovers(fake_shm: Path):
    dead = secrets.token_hex(5)
    paths = leftovers_of(fake_shm, dead)
    assert sweep_dead_clusters(fake_shm) == [dead]
    assert [p for p in paths if p.exists()] == []


def test_sweep_removes_a_cluster_whose_lock_file_is_not_held(fake_shm: Path):
    dead = secrets.token_hex(5)
    paths = leftovers_of(fake_shm, dead)
    lock = cluster_dir(fake_shm, dead) / "lock"
    lock.write_bytes(b"")  # its kernel was killed: the file stays, the flock went with it
    assert sweep_dead_clusters(fake_shm) == [dead]
    assert not lock.exists()
    assert [p for p in paths if p.exists()] == []


def test_sweep_removes_directories_a_dead_cluster_left_in_tmp(fake_shm: Path):
    dead = secrets.token_hex(5)
    paths = leftovers_of(fake_shm, dead)
    shutil.rmtree(cluster_dir(fake_shm, dead))
    assert sweep_dead_clusters(fake_shm) == [dead]
    assert not any(p.exists() for p in paths)


def test_sweep_keeps_a_live_clusters_files(fake_shm: Path):
    live, dead = secrets.token_hex(5), secrets.token_hex(5)
    lock = ClusterLock(fake_shm, live)
    try:
        kept = leftovers_of(fake_shm, live)
        gone = leftovers_of(fake_shm, dead)
        assert sweep_dead_clusters(fake_shm) == [dead]
        assert all(p.exists() for p in kept) and lock.path.exists()
        assert not any(p.exists() for p in gone)
    finally:
        lock.release()


def test_sweep_leaves_unrelated_files_alone(fake_shm: Path):
    names = ["jf_notacluster", "jf-XYZ123", "other_file", "jf-abcdef01"]
    others = [fake_shm / name for name in names]
    for f in others:
        f.write_bytes(b"x")  # a file under a cluster's name is not a cluster directory
    unrelated_dir = Path(tempfile.gettempdir()) / "jf-bench-results"
    unrelated_dir.mkdir()
    assert sweep_dead_clusters(fake_shm) == []
    assert all(f.exists() for f in others) and unrelated_dir.exists()


def test_sweep_of_a_dead_cluster_spares_a_live_one_with_a_longer_id(fake_shm: Path):
    dead = secrets.token_hex(3)
    live = dead + secrets.token_hex(2)
    lock = ClusterLock(fake_shm, live)
    try:
        kept = leftovers_of(fake_shm, live)
        leftovers_of(fake_shm, dead)
        assert sweep_dead_clusters(fake_shm) == [dead]
        assert lock.path.exists()
        assert all(p.exists() for p in kept)
    finally:
        lock.release()


def test_sweep_spares_a_live_cluster_that_keeps_its_objects_elsewhere(fake_shm: Path, tmp_path: Path):
    # One kernel fell back to a file-backed directory (its /dev/shm was full); another
    # kernel, on /dev/shm, starts and sweeps. The first one's sockets and spill must stay.
    fallback = fallback_dir()  # jf-objects-<uid> in the test's private temporary directory
    fallback.mkdir(mode=0o700)
    live = secrets.token_hex(5)
    lock = ClusterLock(fallback, live)
    try:
        sockets_and_spill = leftovers_of(fallback, live)[4:]
        sweep_dead_clusters(fake_shm)
        assert [d for d in sockets_and_spill if not d.exists()] == []
    finally:
        lock.release()


def test_released_lock_lets_the_cluster_be_swept(fake_shm: Path):
    cluster = secrets.token_hex(5)
    lock = ClusterLock(fake_shm, cluster)
    assert mode(lock.path) == 0o600 and mode(lock.dir) == 0o700
    paths = leftovers_of(fake_shm, cluster)
    assert sweep_dead_clusters(fake_shm) == []
    lock.release()
    assert not lock.path.exists() and not lock.dir.exists()
    assert sweep_dead_clusters(fake_shm) == [cluster]
    assert [p for p in paths if p.exists()] == []
    lock.release()  # releasing twice is harmless


def test_a_cluster_directory_appears_locked(fake_shm: Path):
    """Made under a staging name and renamed into place: a sweep never sees it unlocked,
    and a directory already under the name (made by someone else) is never adopted."""
    cluster = secrets.token_hex(5)
    lock = ClusterLock(fake_shm, cluster)
    try:
        assert [n for n in os.listdir(fake_shm) if n.startswith(".")] == []
        with pytest.raises(OSError):
            ClusterLock(fake_shm, cluster)
    finally:
        lock.release()


def test_a_half_made_cluster_directory_is_swept_once_old(fake_shm: Path):
    staging = fake_shm / ".jf-staging-0123456789"
    staging.mkdir(mode=0o700)
    sweep_dead_clusters(fake_shm)
    assert staging.exists()  # it may be being made now
    os.utime(staging, (0, 0))
    sweep_dead_clusters(fake_shm)
    assert not staging.exists()


# -- choosing the directory -----------------------------------------------------------------


def test_dev_shm_is_chosen_when_it_has_room():
    st = os.statvfs(SHM)
    if st.f_bavail * st.f_frsize < MIN_SHM_FREE:
        pytest.skip("this machine's /dev/shm is too small")
    assert choose_shm_dir(2**20) == SHM


@pytest.fixture
def full_dev_shm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """/dev/shm reports one free block; the temporary directory is private to the test.

    ``choose_shm_dir`` always looks at /dev/shm itself, so its free space is faked here.
    """
    real_statvfs = os.statvfs

    def tiny(path: os.PathLike[str] | str) -> os.statvfs_result:
        st = real_statvfs(path)
        if Path(path) != SHM:
            return st
        fields = list(st)
        fields[3] = fields[4] = 1  # f_bfree, f_bavail
        return os.statvfs_result(fields)

    monkeypatch.setattr(store_module.os, "statvfs", tiny)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / f"jf-objects-{os.getuid()}"


def test_small_dev_shm_falls_back_to_files_with_a_warning(full_dev_shm: Path):
    with pytest.warns(RuntimeWarning, match="MiB free"):
        chosen = choose_shm_dir(2**20)
    assert chosen == full_dev_shm
    assert chosen.is_dir() and mode(chosen) == 0o700


def test_existing_fallback_directory_that_is_not_private_is_refused(full_dev_shm: Path):
    full_dev_shm.mkdir()
    os.chmod(full_dev_shm, 0o777)
    with pytest.raises(PermissionError, match="not a private directory"):
        choose_shm_dir(2**20)


def test_freed_large_objects_are_recycled(make_store: Callable[..., ObjectStore]):
    store = make_store(64 * 2**20)  # the pool takes up to a quarter of the capacity
    big = Packed(b"header", [pickle.PickleBuffer(bytearray(3 * 2**20))], [])
    first = store.put(1, big)
    store.free(first)
    assert store.pool_bytes >= 3 * 2**20
    pooled = [n for n in os.listdir(store.obj_dir) if "free" in n]
    assert len(pooled) == 1
    second = store.put(2, Packed(b"other", [pickle.PickleBuffer(bytearray(b"x" * (3 * 2**20)))], []))
    assert store.pool_bytes == 0
    assert not (store.obj_dir / pooled[0]).exists()  # the same file, renamed and rewritten
    blob = map_object(store.obj_dir, store.spill_dir, second)
    assert bytes(blob[-3:]) == b"xxx"
    store.close()
    assert os.listdir(store.obj_dir) == ["lock"]


def _mappings_of(inode: int) -> int:
    """How many mappings of the file with this inode this process holds."""
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if len(f := line.split()) >= 5 and f[4] == str(inode))


def test_a_recycled_file_keeps_one_writable_mapping_across_reuses(make_store: Callable[..., ObjectStore]):
    store = make_store(64 * 2**20)
    mib = 2**20
    name = store.put(1, pack_value(np.full(3 * mib // 8, 1.0)))
    inode = os.stat(store.obj_dir / name).st_ino
    for tid, (count, fill) in enumerate([(3 * mib, 2.0), (2 * mib, 3.0), (2 * mib, 4.0)], start=2):
        store.free(name)
        name = store.put(tid, pack_value(np.full(count // 8, fill)))
        assert os.stat(store.obj_dir / name).st_ino == inode  # the same file, written over
        assert _mappings_of(inode) == 1  # the owner's one mapping, kept; never a second
        reader = unpack(map_object(store.obj_dir, store.spill_dir, name))
        assert reader.shape == (count // 8,) and (reader == fill).all()  # readers see this value
        del reader
    store.free(name)
    store.close()
    assert _mappings_of(inode) == 0 and store.pool_bytes == 0
    assert os.listdir(store.obj_dir) == ["lock"]


def test_a_spilled_or_evicted_recycled_object_lets_go_of_its_mapping(make_store: Callable[..., ObjectStore]):
    store = make_store(8 * 2**20)  # room for two 3 MiB objects; the pool takes 2 MiB at most
    store.pool_cap = 4 * 2**20
    first = store.put(1, pack_value(np.ones(3 * 2**20 // 8)))
    store.free(first)
    reused = store.put(2, pack_value(np.full(3 * 2**20 // 8, 2.0)))
    inode = os.stat(store.obj_dir / reused).st_ino
    assert _mappings_of(inode) == 1
    store.put(3, pack_value(np.ones(3 * 2**20 // 8)))
    store.put(4, pack_value(np.ones(3 * 2**20 // 8)))  # no room: the least recently used spills
    assert store.spilled == 1 and reused not in store._mem
    assert _mappings_of(inode) == 0
    spilled = unpack(map_object(store.obj_dir, store.spill_dir, reused))
    assert (spilled == 2.0).all()


def test_small_objects_are_not_recycled(make_store: Callable[..., ObjectStore]):
    store = make_store(64 * 2**20)
    name = store.put(1, Packed(b"tiny", [], []))
    store.free(name)
    assert store.pool_bytes == 0


# -- a full disk --------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A private 1 MiB file system for the spill directory (a tmpfs, mounted as root)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small file system needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_a_full_disk_fails_the_put_clearly_and_loses_nothing(
    make_store: Callable[..., ObjectStore], small_disk: Path
):
    obj = 400 * 1024  # two fit on the disk, the third does not
    s = make_store(2 * obj + 4096)
    s.spill_dir = small_disk / "spill"
    names = [s.put(i, payload(i, size=obj)) for i in (1, 2, 3, 4)]  # 1 and 2 spill
    assert [where(s, n) for n in names] == ["spill", "spill", "shm", "shm"]
    full = r"memory is full .* no object can move to disk .*No space left"
    with pytest.raises(ObjectStoreFullError, match=full):
        s.put(5, payload(5, size=obj))
    assert [tag_of(s.view(n)) for n in names] == [1, 2, 3, 4]  # nothing stored was lost
    assert [n for n in os.listdir(s.spill_dir) if n.endswith(".tmp")] == []  # no partial file
    assert s.objects == 4 and s.used <= s.capacity
    with pytest.raises(ObjectStoreFullError, match="fits neither"):
        s.put(6, payload(6, size=3 * obj))  # too big for memory, and for the disk
    assert sorted(os.listdir(s.spill_dir)) == sorted(names[:2])
    s.free(names[0])
    assert tag_of(s.view(s.put(5, payload(5, size=obj)))) == 5  # room again: it works


def test_owner_objects_lists_one_owners_values_in_memory_and_on_disk(
    make_store: Callable[..., ObjectStore],
):
    mine, other = make_store(payload(0).nbytes, "w1"), make_store(payload(0).nbytes, "w2")
    names = [mine.put(i, payload(i)) for i in (1, 2, 3)]  # two of them spilled
    big = mine.put(9, pack_value(np.ones(2**18)))
    mine.free(big)  # pooled or gone: not a value
    other.put(1, payload(9))
    assert sorted(owner_objects(mine.obj_dir, mine.spill_dir, "w1")) == sorted(names)
    assert len(owner_objects(mine.obj_dir, mine.spill_dir, "w2")) == 1
