"""Writing notes without ever losing a person's keystroke.

Each write re-reads the note, applies a pure transform (splice a block, flip one line), writes a
temp file (under `.vaultsched/state/`, or the note's own folder where that cannot serve), fsyncs,
and renames over the note only if the note did not change since it was read; otherwise it starts
again from the new text. A note edited less than
`quiet` seconds ago is left alone until it has been quiet that long (Obsidian autosaves about
every 2 s), at most `max_wait` seconds. vaultsched's own last write of each note is remembered
(by content hash, in an extended attribute of the file it wrote, or where the file system has
none under `.vaultsched/state/written/`) so it never counts as a person's edit.

Editors save in place (truncate, then write), which a rename can race three ways, each closed
here (vaultsched.adapters.leases tells whether a save is under way):
- read mid-save: the note looks empty or cut short. A read counts only once no program holds
  the note open for writing.
- a save lands between our last check and our rename: the check compares content and open
  writers just before renaming, so only a save that opens the note in those microseconds gets
  through. That save goes into the file we replaced, which we keep open.
- that late save: once its writer has closed the replaced file, its text is merged into the
  note as it is by then (vaultsched.core.merging) and written again. It stays pending until a write
  that holds it succeeds.

Two vaultsched processes (the daemon landing a run, `pause` setting a property) rename, not
save in place: the one that checked first could rename over the other's newer file, and that
edit would be gone with no file left to merge it from; so could a write that checked just
before a sync's git replaced the note. So each check-and-rename of a note holds a lock every
vaultsched process on this host takes for the file it read (`_note_lock`), and a sync holds the
locks of the notes it moves (`held_off`). A write never renames while another holds its lock:
it goes round again, and is left BUSY once its contention budget is spent.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from vaultsched.adapters import statefs
from vaultsched.adapters.leases import writers_open
from vaultsched.adapters.notefile import link_on_path, open_note
from vaultsched.core import layout
from vaultsched.core.blocks import has_conflict_markers
from vaultsched.core.merging import merge_back

log = logging.getLogger(__name__)

QUIET_SECONDS = 2.0
MAX_WAIT_SECONDS = 30.0
# The longest wait for another program's in-place save to finish (it takes milliseconds);
# separate from `max_wait`, which is about a person pausing.
SETTLE_SECONDS = 1.0
# How long a write keeps trying while other programs save the note between our read and our
# rename. A person saves every 2 s or so; only a program saving many times a second, on a
# machine slow enough that our read-to-rename takes longer than its pauses, keeps us out that
# long, and then the write is left for the next landing (the ledger holds the run meanwhile).
CONTENTION_SECONDS = 10.0
# Once our rename has displaced a person's save we owe them its return, so the write keeps
# trying this much longer before the save goes to layout.RECOVERED_DIR (the last resort).
RETURN_SECONDS = 60.0
# Where a temp file under .vaultsched/ cannot serve: the note's own folder instead.
_TEMPS_REFUSED = (errno.EXDEV, errno.EACCES, errno.EPERM, errno.EROFS)
TEMP_MARK = ".vaultsched-"  # in the name of every note temp file, for the start-up sweep
# How long a displaced save, once written back, is merged in again at each write of its note
# until one finds it still there: an editor that read the note before our write-back and saves
# that stale text over it would otherwise drop it a second time.
DISPLACED_WATCH_SECONDS = 60.0


# How long a sync waits for the notes it moves to be free of other vaultsched processes' writes.
HOLD_OFF_WITHIN = 10.0


class NotesBusy(Exception):
    """A note's write lock stayed held by another process (see `NoteWriter.held_off`)."""


class Outcome(StrEnum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"
    CONFLICTED = "conflicted"  # holds git conflict markers: never written
    UNREADABLE = "unreadable"
    MISSING = "missing"  # moved or deleted: a task note is never re-created by a write
    OUTSIDE = "outside"  # a symlink would carry the write out of the vault: refused
    BUSY = "busy"  # other saves kept landing between our read and rename: try again later


# The hash of the text vaultsched wrote, kept on the file itself: a mark beside it (a file
# under `.vaultsched/state/written/`) made every note write create two files, and creating a
# file was most of a burst's landing's CPU on ext4 (a `perf` profile: inode allocation).
WRITTEN_ATTR = "user.vaultsched.written"
_NO_ATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EPERM})


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _attr_mark(path: Path) -> bytes | None:
    """The hash vaultsched put on the file at `path` when it wrote it: b"" if there is none
    (a file a person or another program wrote), None if this file system keeps no such marks."""
    if not hasattr(os, "getxattr"):
        return None
    try:
        return os.getxattr(path, WRITTEN_ATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NO_ATTRS:
            return None
        return b""  # ENODATA: not marked; or gone: nothing to compare with


@dataclass
class SyncTimes:
    """How long the note files' fsyncs took, in all: how fast this disk is (see landing's
    writers, `runtime/widening.py`). Each counts from the call to the return to Python, so the
    wait for the interpreter after it is in: 0.4-1 ms a note on a quick disk in a burst."""

    count: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fsync(self, fd: int) -> None:
        began = time.monotonic()
        os.fsync(fd)
        took = time.monotonic() - began
        with self._lock:
            self.count += 1
            self.seconds += took

    def totals(self) -> tuple[int, float]:
        with self._lock:
            return self.count, self.seconds

    def mean_since(self, count: int, seconds: float, *, at_least: int = 1) -> float | None:
        """The mean of the fsyncs since the totals were (`count`, `seconds`); None: fewer than
        `at_least` since."""
        with self._lock:
            done = self.count - count
            return (self.seconds - seconds) / done if done >= max(at_least, 1) else None


@dataclass
class NoteWriter:
    root: Path
    quiet: float = QUIET_SECONDS
    max_wait: float = MAX_WAIT_SECONDS
    rename_wait: float = SETTLE_SECONDS  # see `_note_lock`
    sleep: Callable[[float], None] = time.sleep
    wall_time: Callable[[], float] = time.time
    _own: dict[str, str] = field(default_factory=dict, repr=False)
    _watched: dict[str, _Pending] = field(default_factory=dict, repr=False)
    _attrs: bool = field(default=hasattr(os, "setxattr"), repr=False)  # see WRITTEN_ATTR
    # Folders whose renames wait for one fsync at the end of a batch (see `batch`).
    _unsynced: set[Path] | None = field(default=None, repr=False)
    syncs: SyncTimes = field(default_factory=SyncTimes, repr=False)
    _unsynced_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Writes made meanwhile (on any thread) sync their folders once, at the end, not once
        per note: a burst's thousand notes live in a few dozen folders, and each folder fsync
        waited on the disk. The note's own bytes are still synced before its rename, so a crash
        leaves each note whole, old or new; only a rename may be lost, which leaves the older
        note and a run the next landing shows again."""
        with self._unsynced_lock:
            outer, self._unsynced = self._unsynced, self._unsynced or set()
        try:
            yield
        finally:
            if outer is None:
                with self._unsynced_lock:
                    folders, self._unsynced = self._unsynced or set(), None
                for folder in folders:
                    with contextlib.suppress(FileNotFoundError):
                        _fsync_dir(folder)

    def _sync_folder(self, folder: Path) -> None:
        with self._unsynced_lock:
            if self._unsynced is not None:
                self._unsynced.add(folder)
                return
        _fsync_dir(folder)

    @functools.cached_property
    def _real_root(self) -> Path:
        """The vault's root, its links resolved once (as the rest of vaultsched reaches it)."""
        return self.root.resolve()

    def update(self, rel: str, transform: Callable[[str], str], *, create: bool = True) -> Outcome:
        """Apply `transform` to the note's text and write the result safely."""
        path = self.root / rel
        if not _inside(self._real_root, self.root, rel):
            log.warning("%s leads outside the vault (a symlink): not writing it", rel)
            return Outcome.OUTSIDE
        pending = self._watched.pop(rel, None)
        if pending is None or self.wall_time() >= pending.until:
            pending = _Pending(None, 0.0)
        try:
            return self._update(rel, path, transform, create, pending)
        finally:
            if pending.late is not None and pending.fresh:  # however update() ends
                recover(self.root, rel, pending.late.saved, self.wall_time())
            elif pending.late is not None:
                self._watched[rel] = pending

    def _update(
        self,
        rel: str,
        path: Path,
        transform: Callable[[str], str],
        create: bool,
        pending: _Pending,
    ) -> Outcome:
        deadline = self.wall_time() + self.max_wait
        wrote = False
        race = _Contention(self.wall_time, self.sleep)
        while True:
            current = self._read_settled(rel, path)
            if current.data is None and not create:
                return Outcome.MISSING
            try:
                # A save this call's rename hid is put back at once, however recent the edit.
                if not pending.fresh and self._being_edited(rel, path, current.data, deadline):
                    continue
                source = self._with_pending(rel, pending, current.data)
                outcome, found = self._attempt(rel, path, current, source, transform)
            finally:
                current.close()
            if outcome is not None:
                if outcome in (Outcome.WRITTEN, Outcome.UNCHANGED):
                    pending.held(self.wall_time())
                # An earlier attempt's rename counts: the note changed and must be committed.
                return Outcome.WRITTEN if wrote and outcome is not Outcome.MISSING else outcome
            wrote = wrote or found is not None
            if found is not None:
                pending.late, pending.fresh = found, True
            if not race.lost(owed=pending.fresh):
                log.warning("%s kept changing: its write waits for the next landing", rel)
                return Outcome.WRITTEN if wrote else Outcome.BUSY

    def _with_pending(self, rel: str, pending: _Pending, current: bytes | None) -> bytes | None:
        """The note's text with a displaced save merged back in, if one is pending."""
        if pending.late is None:
            return current
        merged = pending.late.merged_into(current)
        if merged is None:  # not UTF-8 on one side: nothing to merge line by line
            recover(self.root, rel, pending.late.saved, self.wall_time())
            pending.late = None
        elif merged is current:  # the note holds it: nothing more to watch
            pending.late = None
        return current if merged is None else merged

    def _read_settled(self, rel: str, path: Path) -> _Read:
        """The note as a finished save left it: never the empty or partial file an editor's
        in-place save shows while under way (waiting for that at most SETTLE_SECONDS)."""
        deadline = self.wall_time() + SETTLE_SECONDS
        while True:
            current = _read(path)
            if current.fd is None:
                return current
            if not self._save_finished(rel, current.fd, deadline):
                current.writers_tolerated = True
                return current
            if _fd_snapshot(current.fd) == current.snapshot:  # not saved into while we read
                return current
            current.close()

    def _save_finished(self, rel: str, fd: int, deadline: float) -> bool:
        """Wait until nobody is part-way through saving this file; False (with a warning) if
        somebody still is at `deadline`."""
        if save_finished(fd, deadline, self.wall_time, self.sleep):
            return True
        _held_open(rel)
        return False

    def _attempt(
        self,
        rel: str,
        path: Path,
        current: _Read,
        source: bytes | None,
        transform: Callable[[str], str],
    ) -> tuple[Outcome | None, _Late | None]:
        """One transform-replace of `source` (the note as read, or with a late save merged in);
        (None, late) asks the caller to go round again."""
        try:
            text = "" if source is None else source.decode("utf-8")
        except UnicodeDecodeError:
            return Outcome.UNREADABLE, None
        if has_conflict_markers(text):
            log.warning("%s holds git conflict markers: not writing it", rel)
            return Outcome.CONFLICTED, None
        data = transform(text).encode("utf-8")
        if data == current.data:
            return Outcome.UNCHANGED, None
        written = self._replace_if_unchanged(rel, path, data, current)
        if written is None:
            return None, None
        # A save that opened the note just before our rename: let it finish into the old file.
        late = current.saved_after_read(
            lambda fd: self._save_finished(rel, fd, self.wall_time() + SETTLE_SECONDS)
        )
        self._remember(rel, path, data, written)
        return (Outcome.WRITTEN if late is None else None), late

    def _being_edited(self, rel: str, path: Path, data: bytes | None, deadline: float) -> bool:
        """Wait (and return True to re-read) while a person's recent edit is still settling."""
        if data is None or self.is_own(rel, data):
            return False
        try:
            age = self.wall_time() - path.stat().st_mtime
        except FileNotFoundError:
            return False
        remaining = deadline - self.wall_time()
        if age >= self.quiet or remaining <= 0:
            return False
        self.sleep(min(self.quiet - age, remaining) + 0.01)
        return True

    def _replace_if_unchanged(
        self, rel: str, path: Path, data: bytes, current: _Read
    ) -> _Written | None:
        """Rename `data` over `path` if the note still is as read: the note's new file, or
        None to go round again."""
        if current.snapshot is None:  # else its folder was there when the note was read
            path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            temps = self._temps(stack, path.parent)
            if temps is not None:  # named as statefs.write_atomic names its own (the sweep at
                # start knows them); not after the note: a name near 255 bytes would not fit
                try:
                    return self._renamed(
                        f".note.{secrets.token_hex(4)}.tmp", temps, rel, data, current
                    )
                except OSError as exc:  # a bind mount (same device, no rename across), read-only
                    if exc.errno not in _TEMPS_REFUSED:
                        raise
        # The note's own folder; a dot-prefixed name: ignored by our indexer and by Obsidian.
        own = f"{path.parent}/.{path.name}{TEMP_MARK}{secrets.token_hex(4)}.tmp"
        return self._renamed(own, None, rel, data, current)

    def _temps(self, stack: contextlib.ExitStack, folder: Path) -> int | None:
        """The folder a note's temp file goes to (held open by `stack`): NOTE_TEMPS_DIR, so
        that the note's own folder sees only the rename (each event there is parsed by the
        watcher: a burst's thousand notes made ten thousand), if it is on the note's file
        system; None for the note's own folder."""
        try:
            temps = stack.enter_context(
                statefs.folder(self.root, layout.NOTE_TEMPS_DIR, create=True)
            )
            return temps if os.fstat(temps).st_dev == folder.stat().st_dev else None
        except OSError:  # a link (refused), a file in the way: as before
            return None

    def _renamed(
        self, tmp: str, temps: int | None, rel: str, data: bytes, current: _Read
    ) -> _Written | None:
        """`data` written to `tmp` (in folder `temps`, else a path), then renamed over the
        note if it still is as read: the note's new file, or None to go round again."""
        path, renamed = self.root / rel, False
        try:
            written = _write_synced(
                tmp, data, mode=_mode(path), mark=self._attrs, dir_fd=temps, sync=self.syncs.fsync
            )
            self._attrs = written.marked
            with contextlib.ExitStack() as lock:
                if not self._note_lock(lock, rel, current) or not current.still_at(path):
                    return None
                if current.snapshot is None:  # creating: fails rather than clobber a new note
                    os.link(tmp, path, src_dir_fd=temps)
                else:
                    os.replace(tmp, path, src_dir_fd=temps)
                    renamed = True
            self._sync_folder(path.parent)
            return written
        except (FileExistsError, FileNotFoundError):
            # FileNotFoundError: our temp file was swept (a daemon starting) mid-write, or
            # the note's folder went since the note was read.
            return None
        finally:
            if not renamed:  # a rename took the temp file's name away with it
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=temps)

    def _note_lock(self, stack: contextlib.ExitStack, rel: str, current: _Read) -> bool:
        """The write lock of the file `current` read (by inode: one note reached by two
        names is one file), held by `stack`; False if another holds it over `rename_wait`
        (a sync moving the note, a process stopped or slow): go round again."""
        return self._locks(stack, [_lock_key(rel, current.snapshot)], self.rename_wait)

    @contextlib.contextmanager
    def held_off(self, rels: Iterable[str], within: float = HOLD_OFF_WITHIN) -> Iterator[None]:
        """No vaultsched write renames over the notes `rels` meanwhile (in any process on
        this host): a sync's git replaces them. Waits for writes under way, at most `within`
        seconds; raises NotesBusy if one still holds a note's lock then (a process stopped
        mid-write must not stop the sync for good)."""
        keys = [_lock_key(rel, _snapshot(self.root / rel)) for rel in rels]
        with contextlib.ExitStack() as stack:
            if not self._locks(stack, keys, within):
                raise NotesBusy("another vaultsched process is writing one of its notes")
            yield

    def _locks(self, stack: contextlib.ExitStack, keys: list[str], within: float) -> bool:
        """The note write locks of `keys`, held by `stack`, waited for at most `within`
        seconds; False if one stayed held by another. True, guarding nothing, where the lock
        file is refused or the system has no byte locks."""
        if not statefs.BYTE_LOCKS or not keys:
            return True
        try:
            held = statefs.locked_keys(
                self.root, layout.NOTE_LOCKS, keys, within=within, clock=self.wall_time,
                sleep=self.sleep,
            )  # fmt: skip
            return stack.enter_context(held)
        except OSError as exc:  # a link, a file in the way: refused
            statefs.warn_refused(exc, "note writes not guarded against each other")
            return True

    def is_own(self, rel: str, data: bytes) -> bool:
        """True if `data` is exactly what vaultsched itself last wrote to `rel`."""
        digest = _digest(data)
        if self._own.get(rel) == digest:
            return True
        marked = _attr_mark(self.root / rel)
        if marked is not None:  # a file written before marks were attributes: looks edited once
            return marked == digest.encode()
        try:
            return statefs.read_bytes(self.root, layout.written_mark(rel)) == digest.encode()
        except OSError:
            return False

    def _remember(self, rel: str, path: Path, data: bytes, written: _Written) -> None:
        """Mark `data` as our last write of `rel`: on the file itself where it could be (see
        WRITTEN_ATTR), else in a mark file, if the note still is the file we renamed there.
        Another process (the daemon, `approve`) may have written the note after our rename
        while this one was held up (a loaded machine, a stopped process): its mark is then the
        right one, and ours in its place would make its write look like a person's edit, which
        its next commit would leave out of git. A mark on the file cannot replace another's."""
        digest = _digest(data)
        if written.marked:  # on the file itself, set before its rename: no other write's to race
            self._own[rel] = digest
            return
        try:  # a cache: lost in a crash, the next write of the note looks like an edit once
            with statefs.locked(self.root, layout.WRITTEN_LOCK):
                if not _still_ours(path, written.inode):
                    return
                self._own[rel] = digest
                mark = layout.written_mark(rel)
                statefs.write_atomic(self.root, mark, digest.encode(), durable=False)
        except OSError as exc:
            self._own[rel] = digest
            statefs.warn_refused(exc, "note writes not remembered")


def _lock_key(rel: str, snapshot: _Snapshot | None) -> str:
    """The key of a note's write lock: the inode of the file read, or its name if none is
    there yet (two writes that both check the note is as they read it read the same file)."""
    return f"new:{rel}" if snapshot is None else f"inode:{snapshot[0]}"


def _inside(real_root: Path, root: Path, rel: str) -> bool:
    """vaultsched never writes outside the vault (`real_root`, resolved), whatever links the
    vault holds: the note `rel` of the vault at `root` is no link, nor inside one that leads
    out."""
    path = root / rel
    if path.is_symlink():
        return False
    folder = rel.rpartition("/")[0]
    # The common case: one lstat a folder on the way, not the whole absolute path resolved.
    # `..` (never in a path the index gives) could climb out with no link: resolved instead.
    if root == real_root and ".." not in folder.split("/") and not link_on_path(root, folder):
        return True
    real = path.parent.resolve()
    return real == real_root or real.is_relative_to(real_root)


def recover(root: Path, rel: str, saved: bytes, now: float) -> None:
    """Last resort for a save our rename displaced that we never managed to merge back:
    keep it where a person will find it, never drop it."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    kept = layout.recovered_file(rel, stamp, secrets.token_hex(2))
    try:
        statefs.write_atomic(root, kept, saved)
    except OSError:
        log.exception("%s: a save that raced a write was lost: keeping it failed", rel)
        return
    log.error(
        "%s: a save that raced a write could not be merged back; its text is in %s", rel, kept
    )


@dataclass
class _Contention:
    """Backing off after each race lost to another program's save. A fixed retry rhythm can
    stay in step with a program saving at a steady rate; a random pause, growing with each
    loss, lands one of our read-to-rename windows in a gap between its saves."""

    wall_time: Callable[[], float]
    sleep: Callable[[float], None]
    losses: int = 0
    first: float = 0.0

    def lost(self, *, owed: bool) -> bool:
        """Count a lost race and pause; False once the budget is spent: CONTENTION_SECONDS,
        or RETURN_SECONDS while a save we displaced is still `owed` its way back."""
        now = self.wall_time()
        if self.losses == 0:
            self.first = now
        self.losses += 1
        if now - self.first >= (RETURN_SECONDS if owed else CONTENTION_SECONDS):
            return False
        self.sleep(random.uniform(0, min(0.001 * 2**self.losses, 0.05)))
        return True


_Snapshot = tuple[int, int, int]


def _snapshot(path: Path) -> _Snapshot | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _fd_snapshot(fd: int) -> _Snapshot:
    st = os.fstat(fd)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _held_open(rel: str) -> None:
    log.warning(
        "%s: another program has held it open for writing over %.0f s; writing it anyway "
        "(what it writes into the note from now on may not reach the new file)",
        rel,
        SETTLE_SECONDS,
    )


def save_finished(
    fd: int,
    deadline: float,
    wall_time: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until nobody is part-way through saving this file (see `_saving`); False if
    somebody still is at `deadline` (a `wall_time`)."""
    pause = 0.001
    while _saving(fd):
        if wall_time() >= deadline:
            return False
        sleep(pause)
        pause = min(pause * 2, 0.02)  # a save takes a millisecond or two: don't spin
    return True


def _saving(fd: int) -> bool:
    """Someone is part-way through saving this file in place. Without leases to ask, a file
    emptied within SETTLE_SECONDS is taken for a save under way (truncated, not yet written)."""
    busy = writers_open(fd)
    if busy is not None:
        return busy
    st = os.fstat(fd)
    return st.st_size == 0 and time.time() - st.st_mtime < SETTLE_SECONDS


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


@dataclass
class _Read:
    """A note as read, with its file kept open: a save into it that races our rename is found
    there afterwards, and not lost with the replaced file."""

    data: bytes | None
    snapshot: _Snapshot | None
    fd: int | None = None
    writers_tolerated: bool = False  # a program held it open past SETTLE_SECONDS: go ahead

    def still_at(self, path: Path) -> bool:
        """The note at `path` is this file, unchanged, and nobody is saving into it. Content
        is compared too: a save of the same size within one mtime tick changes no snapshot."""
        if _snapshot(path) != self.snapshot:
            return False
        if self.fd is None:
            return True
        if not self.writers_tolerated and writers_open(self.fd):
            return False
        return _read_all(self.fd) == self.data

    def saved_after_read(self, settle: Callable[[int], object]) -> _Late | None:
        """A save into this (now replaced) file that came after we read it, to be merged into
        the note that replaced it; else None."""
        if self.fd is None:
            return None
        try:
            settle(self.fd)
            saved = _read_all(self.fd)
        finally:
            self.close()
        if saved == self.data or (self.data and not saved):
            return None  # unchanged, or emptied by a save that never finished writing
        return _Late(self.data or b"", saved)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class _Pending:
    """A displaced save on its way back into its note: `fresh` while this call has not yet
    written it back, then watched until `until` (see DISPLACED_WATCH_SECONDS)."""

    late: _Late | None
    until: float
    fresh: bool = False

    def held(self, now: float) -> None:
        if self.fresh:
            self.fresh, self.until = False, now + DISPLACED_WATCH_SECONDS


@dataclass
class _Late:
    """A person's save that landed in the file our rename replaced."""

    read: bytes  # the text that save was made on (what we read and built our write on)
    saved: bytes

    def merged_into(self, current: bytes | None) -> bytes | None:
        """The note's text to transform again: the late save merged with the note as it is now
        (our write, plus anything saved onto it since), or None if they are not all text;
        `current` itself when it already holds the save. Where both touch the same place the
        late save's lines come first: typed first."""
        if current is None:
            return self.saved
        try:
            base, saved, now = (part.decode("utf-8") for part in (self.read, self.saved, current))
        except UnicodeDecodeError:
            return None
        merged = merge_back(base, saved, now)
        return current if merged is now else merged.encode("utf-8")


def _read(path: Path) -> _Read:
    try:
        fd = open_note(path)  # a FIFO put in a note's place must not hang the write
    except FileNotFoundError:
        return _Read(None, None)
    snapshot = _fd_snapshot(fd)
    return _Read(_read_all(fd), snapshot, fd)


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o644


def _write_synced(
    path: Path | str,
    data: bytes,
    *,
    mode: int,
    mark: bool = False,
    dir_fd: int | None = None,
    sync: Callable[[int], None] = os.fsync,
) -> _Written:
    """Write a new file (`path` in folder `dir_fd`, if given) and make it durable; with
    `mark`, the hash of `data` on it as well (WRITTEN_ATTR), if the file system can keep it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        if mark:
            mark = _set_mark(handle.fileno(), _digest(data))
        sync(handle.fileno())
        return _Written(os.fstat(handle.fileno()).st_ino, mark)


class _Written(NamedTuple):
    inode: int
    marked: bool  # WRITTEN_ATTR is on the file


def _still_ours(path: Path, inode: int) -> bool:
    try:
        return os.lstat(path).st_ino == inode
    except FileNotFoundError:
        return False


def _set_mark(fd: int, digest: str) -> bool:
    try:
        os.setxattr(fd, WRITTEN_ATTR, digest.encode())
    except OSError as exc:
        if exc.errno in _NO_ATTRS:
            return False
        raise
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_temp_files(folders: Iterable[Path]) -> list[Path]:
    """Remove note temp files left by a vaultsched killed mid-write (the rename never came).

    They are dot-files, so neither the index nor Obsidian shows them, but a sync tool or Obsidian
    Git would carry them around. A writer whose temp file goes meanwhile just tries again.
    """
    removed = []
    for folder in folders:
        for leftover in folder.glob(f".*{TEMP_MARK}*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                removed.append(leftover)
    return removed


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace a file vaultsched owns outright (config, state): temp, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_synced(tmp, data, mode=_mode(path) if mode is None else mode)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
