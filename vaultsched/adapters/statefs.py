"""Files under `.vaultsched/`, reached without ever following a symlink.

A pull or a sync can put a symlink anywhere in the vault, `.vaultsched/` included. Followed, one
would carry the full (unredacted) run logs, the ledger or a lock file outside the vault, or feed
a file from outside into the ledger. So every file vaultsched keeps there is reached through
this module: the path is walked one folder at a time from the vault root, each opened relative
to the one before (`openat` with `O_NOFOLLOW`), and a symlink at any step is refused with
`LinkRefused`. Nothing is checked and then opened by name, so a link swapped in meanwhile is
refused too. The vault root itself may be reached through a link: `open_vault` resolves it once.
The daemon keeps the folders so opened for a while (`keep_folders`): see `_Kept`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vaultsched.core import layout

log = logging.getLogger(__name__)

_Folder = contextlib.AbstractContextManager[int]  # `with` it: the folder's descriptor

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A file: never through a link, and non-blocking until it is known to be a regular file (a
# FIFO put there cannot hang the daemon).
_FILE = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class LinkRefused(OSError):
    """A path under `.vaultsched/` is a symlink or lies under one."""

    def __init__(self, rel: str) -> None:
        super().__init__(f"{rel} is a symlink: refused (nothing under {layout.DIR}/ is followed)")
        self.rel = rel


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file", "dir", "link" or "other" (FIFO, socket, device)


_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_refused(exc: OSError, what: str) -> None:
    """Log a refusal once per path and process: an `every 1s` task must not flood the log."""
    key = getattr(exc, "rel", str(exc))
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("%s: %s", what, exc)


def _parts(rel: str) -> tuple[str, ...]:
    parts = tuple(rel.split("/"))
    # `in` a tuple, not any() over a generator: a dozen times a run, every run.
    if "" in parts or "." in parts or ".." in parts:  # pathlib's reading, for the unusual
        parts = PurePosixPath(rel).parts
    if not parts or parts[0] != layout.DIR or ".." in parts or "." in parts or "/" in parts:
        raise ValueError(f"not a path under {layout.DIR}/: {rel!r}")
    return parts


def _refusal(exc: OSError, parent_fd: int, name: str, rel: str) -> OSError:
    """ELOOP (or ENOTDIR for O_DIRECTORY) on a link becomes LinkRefused; anything else stays."""
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
            return LinkRefused(rel)
    return exc


def _open_dir(parent_fd: int, name: str, rel: str, create: bool) -> int:
    for attempt in (1, 2):
        try:
            return os.open(name, _DIR, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create or attempt == 2:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent_fd)
        except OSError as exc:
            raise _refusal(exc, parent_fd, name, rel) from None
    raise AssertionError("unreachable")


def _open_root(root: Path) -> int:
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def folder(root: Path, rel: str, *, create: bool = False) -> _Folder:
    """A descriptor of the folder `rel` (vault-relative, under `.vaultsched/`)."""
    parts = _parts(rel)
    kept = _kept.get(str(root))
    if kept is not None:
        return kept.folder(root, parts, create)
    return _walked(root, parts, create)


@contextlib.contextmanager
def _walked(root: Path, parts: tuple[str, ...], create: bool) -> Iterator[int]:
    fd = _open_root(root)
    try:
        for depth, name in enumerate(parts, 1):
            child = _open_dir(fd, name, "/".join(parts[:depth]), create)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


# -- the daemon's kept folders -------------------------------------------------------------------

# `.vaultsched/a/b/...`: the fixed folders, a ledger month, and a task's own log and state
# folders (`logs/Tasks/A/B`, `state/tasks/Tasks/A/B`), which a run reaches several times.
KEEP_DEPTH = 8
KEEP_FOR = 1.0  # s a kept descriptor serves before its path is walked again
KEEP_MAX = 128  # descriptors kept at most (then the one kept longest is let go)


@dataclass
class _Dir:
    """A folder's descriptor, opened by the walk above (so: no link on its path then)."""

    fd: int
    until: float  # monotonic: walked again after this
    users: int = 0
    dropped: bool = False  # no longer handed out; closed once its last user is done


class _Kept:
    """The folders of one vault the daemon keeps open: every file it reaches under
    `.vaultsched/` is otherwise a walk of three to eight `openat` from the vault root, a dozen
    times per run. No less safe: a kept descriptor is the folder that was checked to be no
    link, whatever is renamed or linked in its place later; a folder that is deleted, or
    has been kept for `KEEP_FOR`, is walked (and checked) again. Thread-safe: a descriptor
    is closed only once no thread uses it, so its number is never reused under one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: dict[tuple[str, ...], _Dir] = {}

    def folder(self, root: Path, parts: tuple[str, ...], create: bool) -> _Folder:
        """The folder's kept descriptor, if it is kept: a lease, no walk (most of a run's
        dozen folders a time); else the walk from its deepest kept ancestor."""
        held = self._take(parts) if 0 < len(parts) <= KEEP_DEPTH else None
        if held is not None:
            return _Lease(self, held)
        return self._walk(root, parts, create)

    @contextlib.contextmanager
    def _walk(self, root: Path, parts: tuple[str, ...], create: bool) -> Iterator[int]:
        held, start = None, min(len(parts), KEEP_DEPTH)
        while held is None and start > 0:  # the deepest folder kept, or the vault root
            held = self._take(parts[:start])
            start -= held is None
        held = held or self._take(()) or self._keep((), _open_root(root))
        fd, owned = held.fd, None  # owned: a folder deeper than KEEP_DEPTH, closed here
        try:
            for depth, name in enumerate(parts[start:], start + 1):
                fd = _open_dir(fd, name, "/".join(parts[:depth]), create)
                if owned is not None:
                    os.close(owned)
                    owned = None
                if depth <= KEEP_DEPTH:
                    kept = self._keep(parts[:depth], fd)
                    self._release(held)
                    held = kept
                else:
                    owned = fd
            yield fd
        finally:
            if owned is not None:
                os.close(owned)
            self._release(held)

    def _take(self, key: tuple[str, ...]) -> _Dir | None:
        with self._lock:
            kept = self._dirs.get(key)
            if kept is None:
                return None
            if time.monotonic() > kept.until:
                self._drop(key)
                return None
            kept.users += 1
            self._dirs[key] = self._dirs.pop(key)  # used last: let go last
        # Asked outside the lock (the descriptor is ours meanwhile): a system call lets the
        # interpreter go, and a thread holding the lock then kept every other waiting for it.
        if _deleted(kept.fd):
            with self._lock:
                if self._dirs.get(key) is kept:
                    self._drop(key)
            self._release(kept)
            return None
        return kept

    def _keep(self, key: tuple[str, ...], fd: int) -> _Dir:
        """Keep `fd` (just opened) for `key`, in use by the caller."""
        kept = _Dir(fd, time.monotonic() + KEEP_FOR, users=1)
        with self._lock:
            if key in self._dirs:
                self._drop(key)
            elif len(self._dirs) >= KEEP_MAX:  # a burst of a thousand tasks: the oldest goes
                self._drop(next(iter(self._dirs)))
            self._dirs[key] = kept
        return kept

    def _release(self, kept: _Dir) -> None:
        with self._lock:
            kept.users -= 1
            if kept.dropped and not kept.users:
                os.close(kept.fd)

    def _drop(self, key: tuple[str, ...]) -> None:
        """(Lock held.) Hand `key`'s descriptor out no more; close it if nobody uses it."""
        kept = self._dirs.pop(key)
        kept.dropped = True
        if not kept.users:
            os.close(kept.fd)

    def close(self) -> None:
        with self._lock:
            for key in list(self._dirs):
                self._drop(key)


class _Lease:
    """A kept folder's descriptor, in use until the `with` ends (a class, not a generator:
    this is most of the daemon's folder uses, a dozen a run)."""

    __slots__ = ("_dir", "_kept")

    def __init__(self, kept: _Kept, held: _Dir) -> None:
        self._kept, self._dir = kept, held

    def __enter__(self) -> int:
        return self._dir.fd

    def __exit__(self, *exc: object) -> None:
        self._kept._release(self._dir)


def _deleted(fd: int) -> bool:
    """A folder removed since it was opened (it has no name left: writes there would fail,
    a listing would be empty)."""
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


_kept: dict[str, _Kept] = {}


def keep_folders(root: Path) -> None:
    """Keep the folders under `root`'s `.vaultsched/` open in this process (the daemon),
    until `forget_folders`."""
    _kept.setdefault(str(root), _Kept())


def folders_kept(root: Path) -> bool:
    """Whether this process keeps `root`'s folders (it is the daemon, see `keep_folders`)."""
    return str(root) in _kept


def forget_folders(root: Path) -> None:
    kept = _kept.pop(str(root), None)
    if kept is not None:
        kept.close()


def _split(rel: str) -> tuple[str, str]:
    parent, _, name = rel.rpartition("/")
    _parts(rel)
    return parent, name


def open_file(root: Path, rel: str, flags: int, mode: int = 0o644) -> int:
    """`os.open` of a regular file under `.vaultsched/`; folders are made when creating.

    Opened non-blocking first, so a FIFO put there cannot hang the daemon, then refused.
    """
    parent, name = _split(rel)
    with folder(root, parent, create=bool(flags & os.O_CREAT)) as dir_fd:
        try:
            fd = os.open(name, flags | _FILE, mode, dir_fd=dir_fd)
        except OSError as exc:
            raise _refusal(exc, dir_fd, name, rel) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{rel} is not a regular file: refused")
    os.set_blocking(fd, True)
    return fd


def read_bytes(root: Path, rel: str, *, limit: int | None = None) -> bytes | None:
    """The file's bytes, or None if it (or its folder) does not exist; a file larger than
    `limit` bytes is refused."""
    try:
        fd = open_file(root, rel, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(-1 if limit is None else limit + 1)
    if limit is not None and len(data) > limit:
        raise OSError(errno.EFBIG, f"{rel} is larger than {limit} bytes: refused")
    return data


def write_atomic(root: Path, rel: str, data: bytes, *, durable: bool = True) -> None:
    """Replace the file: temp file in the same folder, fsync, rename, fsync the folder (the
    fsyncs only if `durable`: a cache that may be lost in a crash need not pay for them)."""
    parent, name = _split(rel)
    with folder(root, parent, create=True) as dir_fd:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                raise LinkRefused(rel)
        import secrets  # here: a command that writes nothing never loads it (nor hashlib)

        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        if durable:
            os.fsync(dir_fd)


def link_open(root: Path, fd: int, rel: str, *, durable: bool = True) -> None:
    """A name `rel` for the open regular file `fd` (a hard link to that very file, whatever
    has its old name now: no file made), through `/proc/self/fd`; `durable`: the file and
    the folder synced. Raises OSError where that cannot be (no /proc, a link refused, `rel`
    taken): the caller writes the file instead."""
    parent, name = _split(rel)
    with folder(root, parent) as dir_fd:
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
        if durable:
            os.fsync(fd)
            os.fsync(dir_fd)


def claim(root: Path, spare: str, rel: str, flags: int) -> int | None:
    """The file `spare` (made ahead, in the same folder) opened with `flags`, renamed to `rel`
    and emptied: used only if it is a regular file of this user's, its only name, writable by
    no one else (`own`), and still the file at `rel` once renamed. None if there is none, or
    what is there is no such file (a sync can put anything at a fixed name: it is never
    renamed, so the run's name stays unknown, and is taken away if it is no folder): the
    caller makes `rel` the plain way. Raises OSError if something else took `rel`'s place
    between the rename and the look after it (then the run writes no file there)."""
    parent, name = _split(rel)
    spare_parent, spare_name = _split(spare)
    if spare_parent != parent:
        raise ValueError(f"{spare} is not beside {rel}")
    try:
        with folder(root, parent) as dir_fd:
            return _claimed(dir_fd, spare_name, name, flags)
    except FileNotFoundError:  # no folder yet: nothing was made ahead
        return None


def _claimed(dir_fd: int, spare: str, name: str, flags: int) -> int | None:
    fd = _own_file(dir_fd, spare, flags)
    if fd is None:
        with contextlib.suppress(OSError):  # none there, or a folder: nothing to take away
            os.unlink(spare, dir_fd=dir_fd)
        return None
    try:
        os.rename(spare, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        moved = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:  # another run of the task took it first: nothing was moved
        os.close(fd)
        return None
    here = os.fstat(fd)
    if (moved.st_dev, moved.st_ino) != (here.st_dev, here.st_ino):
        os.close(fd)
        raise OSError(errno.EEXIST, f"{name}: replaced as it was made: not written")
    try:
        if here.st_size:  # written meanwhile by whoever could: none of it is this run's
            os.ftruncate(fd, 0)
    except OSError:
        os.close(fd)
        raise
    return fd


def own(info: os.stat_result) -> bool:
    """A regular file of this user's, its only name, writable by no one else."""
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_nlink == 1
        and info.st_uid == os.getuid()
        and not writable_by_others(info)
    )


def writable_by_others(info: os.stat_result) -> bool:
    """Group- or world-writable (on a file system that gives every file mode 777, all are)."""
    return bool(info.st_mode & 0o022)


def _own_file(dir_fd: int, name: str, flags: int) -> int | None:
    """`name` opened with `flags` (never through a link, never blocking) if it is `own`."""
    try:
        fd = os.open(name, flags | _FILE, dir_fd=dir_fd)
    except OSError:
        return None
    if not own(os.fstat(fd)):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return fd


_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")  # what write_atomic names its temp files


def sweep_temp(root: Path, rel: str) -> list[str]:
    """Remove the temp files `write_atomic` left in folder `rel` when a kill cut it short
    (before its rename); the names removed. Only at start, when no write can be under way."""
    try:
        found = entries(root, rel)
    except OSError:
        return []
    removed = []
    for entry in found:
        if entry.kind == "file" and _TEMP.match(entry.name):
            with contextlib.suppress(OSError):
                unlink(root, f"{rel}/{entry.name}")
                removed.append(f"{rel}/{entry.name}")
    return removed


def entries(root: Path, rel: str) -> list[Entry]:
    """What the folder holds, links named as links (never followed); [] if it does not exist."""
    try:
        with folder(root, rel) as dir_fd:
            return _listed(dir_fd)
    except FileNotFoundError:
        return []


def _listed(dir_fd: int) -> list[Entry]:
    with os.scandir(dir_fd) as found:
        return sorted((Entry(e.name, _kind(e)) for e in found), key=lambda e: e.name)


# A folder changed within this long of its listing might change again unseen, within the
# granularity of its change time: such a listing is not kept. Linux stamps a change with its
# clock's tick (10 ms at most) where the file system keeps nanoseconds; one that keeps only
# whole seconds (two on FAT) or milliseconds shows it in the times themselves (see `settled`).
RACY_NS = 3_000_000_000  # times in whole milliseconds or coarser (FAT's: two seconds)
# Times finer than a millisecond: twenty ticks at the coarsest (a VM whose timekeeping CPU is
# paused lets the kernel's clock fall five ticks and more behind).
RACY_FINE_NS = 200_000_000


@dataclass(frozen=True)
class Listing:
    """A folder's entries, with what identified the folder as it was then (None: not to be
    taken for current later, see `listing`)."""

    stamp: tuple[int, int, int, int] | None
    entries: list[Entry]


def listing(root: Path, rel: str, known: Listing | None = None) -> Listing:
    """`entries`, or `known` (an earlier listing of `rel`) as it is when the folder is the same
    one and unchanged since (its device, inode, change and modification times): one `fstat`
    instead of a read of the folder."""
    now = time.time_ns()  # before the folder is read: a change during the read is after it
    try:
        with folder(root, rel) as dir_fd:
            info = os.fstat(dir_fd)
            stamp = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
            if known is not None and known.stamp is not None and known.stamp == stamp:
                return known
            listed = _listed(dir_fd)
    except FileNotFoundError:
        return Listing(None, [])
    kept = settled(info.st_mtime_ns, info.st_ctime_ns, now)
    return Listing(stamp if kept else None, listed)


def settled(mtime_ns: int, ctime_ns: int, now_ns: int) -> bool:
    """Whether a folder last changed at these times can change again, from `now_ns` on, only
    with a change to them: past the granularity of its file system's times (the burst's first
    second re-read the ledger's folders at every run's start, under a one-second rule)."""
    fine = mtime_ns % 1_000_000 != 0 or ctime_ns % 1_000_000 != 0
    return now_ns - max(mtime_ns, ctime_ns) >= (RACY_FINE_NS if fine else RACY_NS)


def lstat(root: Path, rel: str) -> os.stat_result:
    """The file `rel` itself (a link as a link, never followed); raises FileNotFoundError."""
    parent, name = _split(rel)
    with folder(root, parent) as dir_fd:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def _kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "link"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    return "file" if entry.is_file(follow_symlinks=False) else "other"


def unlink(root: Path, rel: str) -> None:
    parent, name = _split(rel)
    with folder(root, parent) as dir_fd:
        os.unlink(name, dir_fd=dir_fd)


@contextlib.contextmanager
def locked(root: Path, rel: str, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive flock on the file `rel`, shared by every process on this host (and every
    thread: each call opens the file afresh). Yields False if it is held and `wait` is off."""
    fd = open_file(root, rel, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


# Open-file-description locks (Linux 3.15+): byte-range locks owned by the open file, as
# `flock` is, so two threads or two processes that each open the file exclude each other.
_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_OFD_SETLKW: int | None = getattr(fcntl, "F_OFD_SETLKW", None)
# Where `struct flock` is short, short, off_t, off_t, pid_t with a 64-bit off_t (every 64-bit
# Linux): `locked_key` packs it so.
BYTE_LOCKS = _OFD_SETLK is not None and _OFD_SETLKW is not None and sys.maxsize > 2**32
_FLOCK = "hhqqi4x"


def key_offset(key: str) -> int:
    """The byte of a keyed lock file that stands for `key`: 62 bits of its hash, so two keys
    of one vault never share one in practice (a thousand keys: one chance in 10^13)."""
    from hashlib import blake2b  # imported here: not on every command's start

    return int.from_bytes(blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") >> 2


@contextlib.contextmanager
def locked_key(root: Path, rel: str, key: str, *, wait: bool = True) -> Iterator[bool]:
    """What `locked` is for a file of `key`'s own, on one byte of the file `rel` shared by
    every key (BYTE_LOCKS only): no file made per key. Yields False if it is held and `wait`
    is off. Each call opens the file afresh, so threads of one process exclude each other."""
    fd = open_file(root, rel, os.O_RDWR | os.O_CREAT)
    try:
        yield _lock_byte(fd, key_offset(key), wait=wait)
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def locked_keys(
    root: Path,
    rel: str,
    keys: Iterable[str],
    *,
    within: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[bool]:
    """`locked_key` of every key at once, each waited for until `within` seconds (of `clock`)
    have passed in all; yields False if one was still held by another then. Taken in the
    order of their bytes, so two holders of several never wait for each other in a circle."""
    fd = open_file(root, rel, os.O_RDWR | os.O_CREAT)
    try:
        deadline = clock() + within
        offsets = sorted(set(map(key_offset, keys)))
        yield all(_lock_by(fd, offset, deadline, clock, sleep) for offset in offsets)
    finally:
        os.close(fd)  # releases them all


def _lock_by(
    fd: int,
    offset: int,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> bool:
    pause = 0.001
    while not _lock_byte(fd, offset, wait=False):
        if clock() >= deadline:
            return False
        sleep(pause)
        pause = min(pause * 2, 0.02)  # held for microseconds, as a rule: look again soon
    return True


def _lock_byte(fd: int, offset: int, *, wait: bool) -> bool:
    assert _OFD_SETLK is not None and _OFD_SETLKW is not None
    lock = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
    try:
        fcntl.fcntl(fd, _OFD_SETLKW if wait else _OFD_SETLK, lock)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
    return True


def links(root: Path) -> list[str]:
    """Every symlink under `.vaultsched/` (the folder itself included), vault-relative."""
    top = root / layout.DIR
    if top.is_symlink():
        return [layout.DIR]
    found = []
    for dirpath, dirnames, filenames in os.walk(top):  # os.walk does not follow links
        here = Path(dirpath).relative_to(root).as_posix()
        for name in dirnames + filenames:
            if (Path(dirpath) / name).is_symlink():
                found.append(f"{here}/{name}")
    return sorted(found)


def prepare_state_dir(root: Path) -> None:
    """Make sure `.vaultsched/` has its .gitignore before any state is written under it.

    Only a missing file is written: one the person edited (or another process just wrote)
    is theirs and stays as it is. Never through a link: a refused `.vaultsched` is reported
    by whatever opens state under it next.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = open_file(root, layout.GITIGNORE, flags)
    except (FileExistsError, LinkRefused):
        return
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(layout.GITIGNORE_TEXT)
