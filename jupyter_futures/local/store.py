"""The shared-memory object store: one file per object, owned by the process that made it.

::

    producer (worker or kernel)                     any reader on this machine (same user)
    ObjectStore.put(tid, packed)                    map_object(obj_dir, spill_dir, name)
      └─ <shm>/jf-<cluster>/<owner>_<tid>_<n> ─mmap─► copy-on-write view: buffers (numpy
         (0600; past capacity the least recently       arrays) are views of it, with no
          used objects move to <tmp>/jf-<cluster>/      copy; a write copies that page into
          spill/ and are mapped from there)            the reader, never into the store

    free(name) ─► the pool: a big file is renamed <owner>_free<N> and kept, with the
                  owner's writable mapping of it; the next put of a similar size renames
                  it back (under a new name) and copies into that mapping (touched, mapped
                  memory: one memcpy, no page faults, no pwrite)

Every object lives in directories of the cluster's own, made 0700 by the kernel: another
user can neither list nor plant a file there, and every file is opened ``O_NOFOLLOW`` and
read only if ``fstat`` shows it is a regular file of this user, mode 0600. Each put gets a
new name (``n`` counts the store's puts), so a name never comes back for another value: a
stale message naming an old copy can never reach a new one.

The kernel holds ``flock`` on ``<shm>/jf-<cluster>/lock`` for the cluster's life, so
``sweep_dead_clusters`` can tell a dead cluster's leftovers from a live one's, whatever
became of its processes; it touches only directories of this user. Readers keep their
mapping after the owner unlinks a file (POSIX semantics), so freeing never pulls memory
from under a live view. Moving an object between memory and disk writes the new copy before
removing the old, so a reader always finds one of the two; a move that fails (a full disk)
removes its partial copy and keeps the old one.
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
import time
import warnings
from collections import OrderedDict
from collections.abc import Container
from pathlib import Path

from ..errors import ObjectStoreFullError
from .serialize import Packed

log = logging.getLogger("jupyter_futures")

POOL_MIN = 2**20  # objects this large are written into recycled files when one fits
POPULATE_MIN = 2**20
_DIR = re.compile(r"^jf-([0-9a-f]{6,32})$")
_STAGING = re.compile(r"^\.jf-staging-([0-9a-f]{6,32})$")
STAGING_AGE = 60.0  # seconds after which a half-made cluster directory is a leftover
MIN_SHM_FREE = 256 * 2**20
LOCK = "lock"


def private_dir(path: Path) -> Path:
    """Create ``path`` 0700, or accept it only if it is already ours, private and real.

    The names are predictable, so a directory someone else made (or a symlink) must never
    be trusted to hold objects that will be unpickled.
    """
    try:
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    except FileExistsError:
        check_private_dir(path)
    return path


def _ours(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid()


def check_private_dir(path: Path) -> None:
    """Raise PermissionError unless ``path`` is a real directory of this user, 0700."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or not _ours(st) or st.st_mode & 0o077:
        raise PermissionError(f"{path} exists but is not a private directory of this user; remove it")


def open_ours(path: Path, flags: int = os.O_RDONLY) -> int:
    """Open a file only if it is a regular file of this user that nobody else may read or
    write (never through a symlink); PermissionError otherwise. Returns the descriptor."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or not _ours(st) or st.st_mode & 0o077:
        os.close(fd)
        raise PermissionError(f"{path} is not a private file of this user: refusing to read it")
    return fd


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


def segment_name(owner: str, tid: int, n: int) -> str:
    """The name of the ``n``-th object a store put, the value of future ``tid``."""
    return f"{owner}_{tid}_{n}"


def cluster_dir(shm_dir: Path, cluster: str) -> Path:
    """Where a cluster's objects live in memory (made by ``ClusterLock``)."""
    return shm_dir / f"jf-{cluster}"


def private_tmp_dir(cluster: str) -> Path:
    """The cluster's private directory on disk: sockets, worker logs, spilled objects."""
    return Path(tempfile.gettempdir()) / f"jf-{cluster}"


def spill_dir_for(cluster: str) -> Path:
    return private_tmp_dir(cluster) / "spill"


def _write(path: Path, packed: Packed, create: bool) -> None:
    """Write a packed value to ``path`` (a new file, or a recycled one of ours)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.ftruncate(fd, packed.nbytes)
        packed.write_to_fd(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)  # no partial file stays behind (a full disk, say)
        raise
    os.close(fd)


def _write_recycled(path: Path, packed: Packed, mapping: mmap.mmap | None) -> mmap.mmap:
    """Write a packed value into a recycled file through the owner's shared mapping of it
    (kept from the file's last use, or made now); returns the mapping, to keep.

    The file's pages are reserved first (``posix_fallocate``, a few ms when they already
    exist): a write through a mapping into a page tmpfs cannot supply is a SIGBUS, where
    this is a plain ``ENOSPC``."""
    size = packed.nbytes
    fd = open_ours(path, os.O_RDWR)
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


def map_object(obj_dir: Path, spill_dir: Path, name: str, populate: bool = False) -> memoryview:
    """Map an object copy-on-write from memory, or from the spill directory if it moved.

    Only a private file of this user is read (``open_ours``): anything else is a
    PermissionError, never unpickled.

    The mapping is private: reading shares the store's pages (no copy), and a write
    copies just the page written into this process, so it never reaches the shared copy
    or another reader. Objects unpickled from it are therefore writable, as their types
    expect (a figure redrawn, a DataFrame column changed); ``unpack`` marks a numpy
    array that is the value itself read-only, which is what callers are promised.

    ``populate`` maps every page at once (one call instead of a fault per page), for a
    reader that is about to read all of it. It asks for read faults
    (``MADV_POPULATE_READ``): ``MAP_POPULATE`` on a writable private mapping would copy
    every page."""
    if "/" in name or name.startswith("."):
        raise PermissionError(f"{name!r} is not an object name")
    for directory in (obj_dir, spill_dir, obj_dir):
        try:
            fd = open_ours(directory / name)
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
    """The objects one process produced, with a memory capacity and LRU spilling.

    ``shm_dir`` is where clusters keep objects in memory (``/dev/shm``, or a file-backed
    fallback); this store's files are in the cluster's private directory there, which must
    exist already (the kernel's ``ClusterLock`` made it)."""

    def __init__(self, cluster: str, owner: str, shm_dir: Path, capacity: int) -> None:
        self.cluster = cluster
        self.owner = owner
        self.obj_dir = cluster_dir(shm_dir, cluster)
        check_private_dir(self.obj_dir)
        self.spill_dir = spill_dir_for(cluster)
        self.capacity = capacity
        self.used = 0
        self._mem: OrderedDict[str, int] = OrderedDict()  # name -> bytes, LRU first
        self._disk: dict[str, int] = {}
        self._by_tid: dict[int, str] = {}  # the future's value -> its current name
        self._puts = itertools.count(1)
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
        """Store a packed value under a new name, which it returns.

        A value stored again for the same future (a task run twice on this worker)
        replaces the older copy, which is unlinked, never written over: a reader may still
        map it. Raises ObjectStoreFullError when neither memory nor disk can hold it."""
        with self._lock:
            old = self._by_tid.get(tid)
            if old is not None:
                self._discard(old)
            name = segment_name(self.owner, tid, next(self._puts))
            size = packed.nbytes
            if size > self.capacity or not self._put_in_memory(name, packed):
                self._write_spilled(name, packed)
            self._by_tid[tid] = name
            return name

    def _put_in_memory(self, name: str, packed: Packed) -> bool:
        """Write ``packed`` into shared memory; False when memory is full (ENOSPC)."""
        size = packed.nbytes
        self._make_room(size)
        pooled = self._take_pooled(size)
        try:
            if pooled is None:
                _write(self.obj_dir / name, packed, create=True)
            else:
                pname, mapping = pooled
                os.rename(self.obj_dir / pname, self.obj_dir / name)
                try:
                    self._mappings[name] = _write_recycled(self.obj_dir / name, packed, mapping)
                except BaseException:
                    if mapping is not None:
                        mapping.close()
                    (self.obj_dir / name).unlink(missing_ok=True)
                    raise
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.ENOMEM):
                raise  # EEXIST above all: a file we did not make must never stand in for ours
            log.warning("shared memory full (%s); writing %s to disk", exc, name)
            return False
        self._mem[name] = size
        self.used += size
        return True

    def _spill_dir(self) -> Path:
        """The spill directory, made private (in the cluster's private directory) if new."""
        private_dir(self.spill_dir.parent)
        return private_dir(self.spill_dir)

    def _write_spilled(self, name: str, packed: Packed) -> None:
        try:
            self._spill_dir()
            _write(self.spill_dir / name, packed, create=True)
        except OSError as exc:
            raise ObjectStoreFullError(
                f"an object of {packed.nbytes / 2**20:.1f} MiB fits neither in the store's memory "
                f"({self.capacity / 2**20:.0f} MiB) nor on disk ({self.spill_dir}: {exc.strerror or exc})"
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
        (self.obj_dir / pname).unlink(missing_ok=True)

    def _forget_mapping(self, name: str) -> None:
        mapping = self._mappings.pop(name, None)
        if mapping is not None:
            mapping.close()

    def _make_room(self, size: int) -> None:
        """Spill the least recently used objects until ``size`` more bytes fit.

        A spill that fails (no space on disk) leaves that object where it was, whole, and
        raises ObjectStoreFullError: what was stored is never lost to make room."""
        while self._pool and self.used + self.pool_bytes + size > self.capacity:
            self._drop_pooled(0)
        while self._mem and self.used + size > self.capacity:
            victim, vsize = next(iter(self._mem.items()))
            self._spill(victim, vsize)

    def _copy(self, source: Path, directory: Path, name: str) -> None:
        """Copy an object file into ``directory`` under ``name``, through a private
        temporary file renamed into place; a copy that fails leaves nothing behind."""
        tmp = directory / f".{name}.tmp"
        try:
            src = open_ours(source)
            try:
                dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                try:
                    size = os.fstat(src).st_size
                    os.posix_fallocate(dst, 0, max(size, 1))  # ENOSPC now, not a SIGBUS or a short file
                    left = size
                    while left:
                        left -= os.sendfile(dst, src, None, left) or left
                finally:
                    os.close(dst)
            finally:
                os.close(src)
            os.replace(tmp, directory / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _spill(self, name: str, size: int) -> None:
        try:
            self._spill_dir()
            self._copy(self.obj_dir / name, self.spill_dir, name)
        except OSError as exc:
            raise ObjectStoreFullError(
                f"the object store's memory is full ({self.used / 2**20:.0f} of "
                f"{self.capacity / 2**20:.0f} MiB) and no object can move to disk "
                f"({self.spill_dir}: {exc.strerror or exc}); nothing stored was lost"
            ) from exc
        (self.obj_dir / name).unlink(missing_ok=True)
        self._forget_mapping(name)
        del self._mem[name]
        self.used -= size
        self._disk[name] = size

    def _restore(self, name: str) -> None:
        size = self._disk[name]
        if size > self.capacity:
            return
        try:
            self._make_room(size)
            self._copy(self.spill_dir / name, self.obj_dir, name)
        except (OSError, ObjectStoreFullError) as exc:
            log.info("%s stays on disk: %s", name, exc)  # it is read from there
            return
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
            return map_object(self.obj_dir, self.spill_dir, name)

    def _untrack(self, name: str) -> None:
        tid = _tid_of(name)
        if tid is not None and self._by_tid.get(tid) == name:
            del self._by_tid[tid]

    def free(self, name: str) -> None:
        """Remove an object nobody reads any more (the scheduler's word): a big one's file
        is kept in the pool, to be written over by a later put."""
        with self._lock:
            self._untrack(name)
            size = self._mem.pop(name, None)
            if size is not None:
                self.used -= size
                if size >= POOL_MIN and self.pool_bytes + size <= self.pool_cap:
                    pname = f"{self.owner}_free{next(self._pool_seq)}"
                    os.rename(self.obj_dir / name, self.obj_dir / pname)
                    self._pool.append((size, pname, self._mappings.pop(name, None)))
                    self.pool_bytes += size
                else:
                    self._forget_mapping(name)
                    (self.obj_dir / name).unlink(missing_ok=True)
            elif self._disk.pop(name, None) is not None:
                (self.spill_dir / name).unlink(missing_ok=True)

    def _discard(self, name: str) -> None:
        """Remove an object without recycling its file (someone may still map it)."""
        self._untrack(name)
        size = self._mem.pop(name, None)
        if size is not None:
            self.used -= size
            self._forget_mapping(name)
            (self.obj_dir / name).unlink(missing_ok=True)
        elif self._disk.pop(name, None) is not None:
            (self.spill_dir / name).unlink(missing_ok=True)

    def adopt(self, names: list[str]) -> list[str]:
        """Take over objects another store of this cluster made (a retiring or dead
        worker's), by name: no copy, the files stay where they are and are this store's to
        free now. Returns the names found (a name whose file is gone is skipped)."""
        found: list[str] = []
        with self._lock:
            for name in names:
                for directory, book in ((self.obj_dir, self._mem), (self.spill_dir, self._disk)):
                    try:
                        fd = open_ours(directory / name)
                    except FileNotFoundError:
                        continue
                    size = os.fstat(fd).st_size
                    os.close(fd)
                    book[name] = size
                    if book is self._mem:
                        self.used += size
                    found.append(name)
                    break
            try:
                self._make_room(0)
            except ObjectStoreFullError as exc:
                log.warning("%s", exc)  # over capacity until something is freed
        return found

    def forget(self, names: list[str]) -> None:
        """Stop keeping ``names`` without removing them (another store adopted them)."""
        with self._lock:
            for name in names:
                self._untrack(name)
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


def _tid_of(name: str) -> int | None:
    parts = name.split("_")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def owner_objects(obj_dir: Path, spill_dir: Path, owner: str) -> list[str]:
    """The objects of one owner still there, in memory or on disk: a dead worker's values
    survive it (its files stay where it wrote them), whole, since a value is only known to
    the scheduler once its file was written. Pooled files and partial copies are not
    values."""
    found: list[str] = []
    prefix = f"{owner}_"
    for directory in (obj_dir, spill_dir):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        found += [n for n in names if n.startswith(prefix) and _tid_of(n) is not None]
    return found


def remove_owner_objects(obj_dir: Path, spill_dir: Path, owner: str, keep: Container[str] = ()) -> int:
    """Remove every object of one owner (a dead worker's, for instance), except ``keep``
    (those another store adopted). Only this user's files are touched; a file that cannot
    be removed is logged and skipped, never an error: this runs in housekeeping."""
    prefix = f"{owner}_"
    count = 0
    for directory in (obj_dir, spill_dir):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name in keep or not (name.startswith(prefix) or name.startswith(f".{prefix}")):
                continue
            try:
                (directory / name).unlink()
                count += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s: %s", directory / name, exc)
    return count


class ClusterLock:
    """The cluster's private directory in shared memory, with the lock the kernel holds
    on it for the cluster's life; its absence marks leftovers.

    The directory appears under its name already private and locked (made and locked under
    a staging name, then renamed into place), so a concurrent sweep never sees it
    unlocked."""

    def __init__(self, shm_dir: Path, cluster: str) -> None:
        self.dir = cluster_dir(shm_dir, cluster)
        self.path = self.dir / LOCK
        staging = shm_dir / f".jf-staging-{cluster}"
        private_dir(staging)
        try:
            self._fd = os.open(staging / LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(staging, self.dir)  # fails if the name exists: we never adopt one
            except OSError:
                os.close(self._fd)
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def release(self) -> None:
        """Drop the lock and remove the directory with whatever is left in it."""
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1
            shutil.rmtree(self.dir, ignore_errors=True)


def _lock_state(path: Path) -> bool | None:
    """True if ``path`` is a lock of ours that someone holds, False if it is ours and free,
    None if there is none or it is not ours (someone else's cluster: never touched)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # flock needs no write access
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # another user's, unreadable, or a symlink
        return None
    try:
        if not _ours(os.fstat(fd)):
            return None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _our_dir(path: Path) -> os.stat_result | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st if stat.S_ISDIR(st.st_mode) and _ours(st) else None


def sweep_dead_clusters(shm_dir: Path) -> list[str]:
    """Remove the directories (objects, spill, sockets, logs) of this user's clusters
    whose kernel is gone. Anything of another user, or not made by us, is left alone."""
    tmp = Path(tempfile.gettempdir())
    lock_dirs = tuple(dict.fromkeys((shm_dir, Path("/dev/shm"), fallback_dir())))
    found: dict[str, list[Path]] = {}
    for directory in (*lock_dirs, tmp):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            m = _DIR.match(name)
            if m and _our_dir(directory / name) is not None:
                found.setdefault(m.group(1), []).append(directory / name)
            elif (m := _STAGING.match(name)) and directory in lock_dirs:
                st = _our_dir(directory / name)
                if st is not None and time.time() - st.st_mtime > STAGING_AGE:
                    shutil.rmtree(directory / name, ignore_errors=True)  # a kernel died making it
    swept = []
    for cluster, paths in sorted(found.items()):
        if any(_lock_state(cluster_dir(d, cluster) / LOCK) for d in lock_dirs):
            continue
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
        swept.append(cluster)
    if swept:
        log.info("removed leftovers of %d dead cluster(s): %s", len(swept), ", ".join(swept))
    return swept
