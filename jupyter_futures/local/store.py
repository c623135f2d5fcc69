"""The shared-memory object store: one file per object, owned by the process that made it.

::

    producer (worker or kernel)                     any reader on this machine
    ObjectStore.put(tid, packed)                    map_object(name)
      └─ <shm>/jf_<cluster>_<owner>_<tid>  ──mmap──►  copy-on-write view: buffers (numpy
         (0600; past capacity the least recently       arrays) are views of it, with no
          used objects move to <spill>/ and are        copy; a write copies that page into
          mapped from there)                           the reader, never into the store

    free(name) ─► the pool: a big file is renamed jf_<cluster>_<owner>_free<N> and kept,
                  with the owner's writable mapping of it; the next put of a similar size
                  renames it back and copies into that mapping (touched, mapped memory:
                  one memcpy, no page faults, no pwrite)

Names carry the cluster id. The kernel holds ``flock`` on ``<shm>/jf_<cluster>.lock`` for
the cluster's life, so ``sweep_dead_clusters`` can tell a dead cluster's leftovers from a
live one's, whatever became of its processes. Readers keep their mapping after the owner
unlinks a file (POSIX semantics), so freeing never pulls memory from under a live view.
Moving an object between memory and disk writes the new copy before removing the old, so a
reader always finds one of the two.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import mmap
import os
import re
import shutil
import stat
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Container
from pathlib import Path

from ..errors import ObjectStoreFullError
from .serialize import Packed

log = logging.getLogger("jupyter_futures")

POOL_MIN = 2**20  # objects this large are written into recycled files when one fits
POPULATE_MIN = 2**20
_NAME = re.compile(r"^jf_([0-9a-f]{6,32})(?:_|\.lock$)")
_DIR = re.compile(r"^jf-([0-9a-f]{6,32})(?:-spill)?$")
MIN_SHM_FREE = 256 * 2**20


def private_dir(path: Path) -> Path:
    """Create ``path`` 0700, or accept it only if it is already ours, private and real.

    The names are predictable, so a directory someone else made (or a symlink) must never
    be trusted to hold objects that will be unpickled.
    """
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(
                f"{path} exists but is not a private directory of this user; remove it"
            ) from None
    return path


def choose_shm_dir(wanted: int, shm: Path = Path("/dev/shm")) -> Path:
    """``/dev/shm`` when it can hold ``wanted`` bytes, else a file-backed directory."""
    if shm.is_dir() and os.access(shm, os.W_OK):
        st = os.statvfs(shm)
        free = st.f_bavail * st.f_frsize
        if free >= min(wanted, MIN_SHM_FREE * 4) and free >= MIN_SHM_FREE:
            return shm
        reason = f"/dev/shm has only {free / 2**20:.0f} MiB free"
    else:
        reason = "there is no writable /dev/shm"
    fallback = private_dir(fallback_dir())
    warnings.warn(
        f"{reason}; the object store uses files in {fallback} instead (slower, "
        "but the same API). Give the container more shared memory to avoid this.",
        RuntimeWarning,
        stacklevel=3,
    )
    return fallback


def fallback_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"jf-objects-{os.getuid()}"


def segment_name(cluster: str, owner: str, tid: int) -> str:
    return f"jf_{cluster}_{owner}_{tid}"


def spill_dir_for(cluster: str) -> Path:
    return Path(tempfile.gettempdir()) / f"jf-{cluster}-spill"


def _write(path: Path, packed: Packed, create: bool) -> None:
    """Write a packed value to ``path`` (a new file, or a recycled one of ours)."""
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.ftruncate(fd, packed.nbytes)
        packed.write_to_fd(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _write_recycled(path: Path, packed: Packed, mapping: mmap.mmap | None) -> mmap.mmap:
    """Write a packed value into a recycled file through the owner's shared mapping of it
    (kept from the file's last use, or made now); returns the mapping, to keep.

    The file's pages are reserved first (``posix_fallocate``, a few ms when they already
    exist): a write through a mapping into a page tmpfs cannot supply is a SIGBUS, where
    this is a plain ``ENOSPC``."""
    size = packed.nbytes
    fd = os.open(path, os.O_RDWR)
    try:
        if os.fstat(fd).st_size > size:
            os.ftruncate(fd, size)
        os.posix_fallocate(fd, 0, size)
        if mapping is None:  # else it spans the file at its largest, which holds ``size``
            mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            _populate(mapping, MADV_POPULATE_WRITE)  # page tables once, not a fault per page
    finally:
        os.close(fd)
    with memoryview(mapping) as view:
        packed.write_into(view[:size])
    return mapping


def map_object(shm_dir: Path, spill_dir: Path, name: str, populate: bool = False) -> memoryview:
    """Map an object copy-on-write from memory, or from the spill directory if it moved.

    The mapping is private: reading shares the store's pages (no copy), and a write
    copies just the page written into this process, so it never reaches the shared copy
    or another reader. Objects unpickled from it are therefore writable, as their types
    expect (a figure redrawn, a DataFrame column changed); ``unpack`` marks a numpy
    array that is the value itself read-only, which is what callers are promised.

    ``populate`` maps every page at once (one call instead of a fault per page), for a
    reader that is about to read all of it. It asks for read faults
    (``MADV_POPULATE_READ``): ``MAP_POPULATE`` on a writable private mapping would copy
    every page."""
    for directory in (shm_dir, spill_dir, shm_dir):
        try:
            fd = os.open(directory / name, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            size = os.fstat(fd).st_size
            mm = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        if populate and size > POPULATE_MIN:
            _populate(mm, MADV_POPULATE_READ)
        return memoryview(mm)
    raise FileNotFoundError(name)


# Linux 5.14; absent from the mmap module before Python 3.13
MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def _populate(mm: mmap.mmap, advice: int) -> None:
    try:
        mm.madvise(advice)
    except (OSError, AttributeError, ValueError):
        pass  # an older kernel (or not Linux): pages are faulted in as they are touched


class ObjectStore:
    """The objects one process produced, with a memory capacity and LRU spilling."""

    def __init__(self, cluster: str, owner: str, shm_dir: Path, capacity: int) -> None:
        self.cluster = cluster
        self.owner = owner
        self.shm_dir = shm_dir
        self.spill_dir = spill_dir_for(cluster)
        self.capacity = capacity
        self.used = 0
        self._mem: OrderedDict[str, int] = OrderedDict()  # name -> bytes, LRU first
        self._disk: dict[str, int] = {}
        # Files of freed objects, kept to be written over: their pages are already touched,
        # which on a VM is several times faster than fresh memory. A file is only recycled
        # after the scheduler freed it, and it frees nothing any process still maps.
        # Each keeps this process's writable mapping once it has one (size, name, mapping).
        self._pool: list[tuple[int, str, mmap.mmap | None]] = []
        self._mappings: dict[str, mmap.mmap] = {}  # stored objects written through one
        self.pool_bytes = 0
        self.pool_cap = min(capacity // 4, 2**30)
        self._pool_seq = itertools.count()
        # The kernel's user thread puts while its I/O thread frees; a worker's task threads
        # read while its I/O thread frees. Every public operation takes this lock.
        self._lock = threading.RLock()

    # -- bookkeeping ---------------------------------------------------------------
    @property
    def objects(self) -> int:
        return len(self._mem) + len(self._disk)

    @property
    def spilled_bytes(self) -> int:
        return sum(self._disk.values())

    @property
    def spilled(self) -> int:
        return len(self._disk)

    def __contains__(self, name: object) -> bool:
        return name in self._mem or name in self._disk

    # -- operations ----------------------------------------------------------------
    def put(self, tid: int, packed: Packed) -> str:
        """Store a packed value; returns its segment name."""
        with self._lock:
            name = segment_name(self.cluster, self.owner, tid)
            if name in self:
                self.free(name)
            size = packed.nbytes
            if size > self.capacity:
                self._write_spilled(name, packed)
                return name
            self._make_room(size)
            pooled = self._take_pooled(size)
            try:
                if pooled is None:
                    _write(self.shm_dir / name, packed, create=True)
                else:
                    pname, mapping = pooled
                    os.rename(self.shm_dir / pname, self.shm_dir / name)
                    try:
                        self._mappings[name] = _write_recycled(self.shm_dir / name, packed, mapping)
                    except BaseException:
                        if mapping is not None:
                            mapping.close()
                        (self.shm_dir / name).unlink(missing_ok=True)
                        raise
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.ENOMEM):
                    raise  # EEXIST above all: a file we did not make must never stand in for ours
                log.warning("shared memory full (%s); writing %s to disk", exc, name)
                self._write_spilled(name, packed)
                return name
            self._mem[name] = size
            self.used += size
            return name

    def _write_spilled(self, name: str, packed: Packed) -> None:
        private_dir(self.spill_dir)
        try:
            _write(self.spill_dir / name, packed, create=True)
        except OSError as exc:
            raise ObjectStoreFullError(
                f"object of {packed.nbytes / 2**20:.1f} MiB fits neither in the store "
                f"({self.capacity / 2**20:.0f} MiB) nor on disk ({self.spill_dir}): {exc}"
            ) from exc
        self._disk[name] = packed.nbytes

    def _take_pooled(self, size: int) -> tuple[str, mmap.mmap | None] | None:
        """The smallest recycled file that holds ``size`` bytes without wasting half, and
        this process's mapping of it if it kept one."""
        if size < POOL_MIN:
            return None
        fits = [(psize, i) for i, (psize, _, _) in enumerate(self._pool) if size <= psize <= 2 * size]
        if not fits:
            return None
        psize, i = min(fits)
        self.pool_bytes -= psize
        _, pname, mapping = self._pool.pop(i)
        return pname, mapping

    def _drop_pooled(self, i: int) -> None:
        psize, pname, mapping = self._pool.pop(i)
        self.pool_bytes -= psize
        if mapping is not None:
            mapping.close()
        (self.shm_dir / pname).unlink(missing_ok=True)

    def _forget_mapping(self, name: str) -> None:
        mapping = self._mappings.pop(name, None)
        if mapping is not None:
            mapping.close()

    def _make_room(self, size: int) -> None:
        while self._pool and self.used + self.pool_bytes + size > self.capacity:
            self._drop_pooled(0)
        while self._mem and self.used + size > self.capacity:
            victim, vsize = next(iter(self._mem.items()))
            self._spill(victim, vsize)

    def _spill(self, name: str, size: int) -> None:
        private_dir(self.spill_dir)
        tmp = self.spill_dir / f".{name}.tmp"
        shutil.copyfile(self.shm_dir / name, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.spill_dir / name)
        (self.shm_dir / name).unlink(missing_ok=True)
        self._forget_mapping(name)
        del self._mem[name]
        self.used -= size
        self._disk[name] = size

    def _restore(self, name: str) -> None:
        size = self._disk[name]
        if size > self.capacity:
            return
        self._make_room(size)
        tmp = self.shm_dir / f".{name}.tmp"
        shutil.copyfile(self.spill_dir / name, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.shm_dir / name)
        (self.spill_dir / name).unlink(missing_ok=True)
        del self._disk[name]
        self._mem[name] = size
        self.used += size

    def view(self, name: str) -> memoryview:
        """The owner's own read of an object: marks it recently used, restores a spilled one."""
        with self._lock:
            if name in self._mem:
                self._mem.move_to_end(name)
            elif name in self._disk:
                self._restore(name)
            return map_object(self.shm_dir, self.spill_dir, name)

    def free(self, name: str) -> None:
        with self._lock:
            size = self._mem.pop(name, None)
            if size is not None:
                self.used -= size
                if size >= POOL_MIN and self.pool_bytes + size <= self.pool_cap:
                    pname = f"jf_{self.cluster}_{self.owner}_free{next(self._pool_seq)}"
                    os.rename(self.shm_dir / name, self.shm_dir / pname)
                    self._pool.append((size, pname, self._mappings.pop(name, None)))
                    self.pool_bytes += size
                else:
                    self._forget_mapping(name)
                    (self.shm_dir / name).unlink(missing_ok=True)
            elif self._disk.pop(name, None) is not None:
                (self.spill_dir / name).unlink(missing_ok=True)

    def adopt(self, names: list[str]) -> None:
        """Take over objects another store of this cluster made (a retiring worker's), by
        name: no copy, the files stay where they are and are this store's to free now."""
        with self._lock:
            for name in names:
                for directory, book in ((self.shm_dir, self._mem), (self.spill_dir, self._disk)):
                    try:
                        size = os.stat(directory / name, follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue
                    book[name] = size
                    if book is self._mem:
                        self.used += size
                    break
            self._make_room(0)

    def forget(self, names: list[str]) -> None:
        """Stop keeping ``names`` without removing them (another store adopted them)."""
        with self._lock:
            for name in names:
                size = self._mem.pop(name, None)
                if size is not None:
                    self.used -= size
                    self._forget_mapping(name)
                self._disk.pop(name, None)

    def close(self) -> None:
        """Remove every object this store holds."""
        with self._lock:
            self.pool_cap = 0
            for name in list(self._mem):
                self.free(name)
            for name in list(self._disk):
                self.free(name)
            while self._pool:
                self._drop_pooled(0)


def remove_owner_objects(shm_dir: Path, cluster: str, owner: str, keep: Container[str] = ()) -> int:
    """Remove every object of one owner (a dead worker's, for instance), except ``keep``
    (those another store adopted)."""
    prefix = f"jf_{cluster}_{owner}_"
    count = 0
    for directory in (shm_dir, spill_dir_for(cluster)):
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in names:
            if name in keep:
                continue
            if name.startswith(prefix) or name.startswith(f".{prefix}"):
                (directory / name).unlink(missing_ok=True)
                count += 1
    return count


class ClusterLock:
    """Held by the kernel for the life of a cluster; its absence marks leftovers.

    The lock file appears under its name already locked (made and locked under a private
    name, then linked into place), so a concurrent sweep never sees it unlocked."""

    def __init__(self, shm_dir: Path, cluster: str) -> None:
        self.path = shm_dir / f"jf_{cluster}.lock"
        staging = shm_dir / f".jf-staging-{cluster}-{os.getpid()}"
        self._fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.link(staging, self.path)
        except OSError:
            os.close(self._fd)
            raise
        finally:
            staging.unlink(missing_ok=True)

    def release(self) -> None:
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1


def _cluster_alive(cluster: str, lock_dirs: tuple[Path, ...]) -> bool:
    """A cluster is alive while its kernel holds the lock, wherever it keeps its objects."""
    for directory in lock_dirs:
        try:
            fd = os.open(directory / f"jf_{cluster}.lock", os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return False


def sweep_dead_clusters(shm_dir: Path) -> list[str]:
    """Remove segments, spill and socket directories of clusters whose kernel is gone."""
    try:
        names = os.listdir(shm_dir)
    except FileNotFoundError:
        return []
    clusters = {m.group(1) for n in names if (m := _NAME.match(n.lstrip(".")))}
    tmp = Path(tempfile.gettempdir())
    clusters |= {m.group(1) for n in os.listdir(tmp) if (m := _DIR.match(n))}
    lock_dirs = tuple(dict.fromkeys((shm_dir, Path("/dev/shm"), fallback_dir())))
    swept = []
    for cluster in sorted(clusters):
        if _cluster_alive(cluster, lock_dirs):
            continue
        mine = (f"jf_{cluster}_", f"jf_{cluster}.lock")
        for name in names:
            if name.lstrip(".").startswith(mine):
                (shm_dir / name).unlink(missing_ok=True)
        shutil.rmtree(spill_dir_for(cluster), ignore_errors=True)
        shutil.rmtree(tmp / f"jf-{cluster}", ignore_errors=True)
        swept.append(cluster)
    if swept:
        log.info("removed leftovers of %d dead cluster(s): %s", len(swept), ", ".join(swept))
    return swept
