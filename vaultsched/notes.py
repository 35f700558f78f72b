"""Writing notes without ever losing a person's keystroke.

Each write re-reads the note, applies a pure transform (splice a block, flip one line), writes a
temp file in the same folder, fsyncs, and renames over the note only if the note did not change
since it was read; otherwise it starts again from the new text. A note edited less than
`quiet` seconds ago is left alone until it has been quiet that long (Obsidian autosaves about
every 2 s), at most `max_wait` seconds. vaultsched's own last write of each note is remembered
(by content hash, under `.vaultsched/state/written/`) so it never counts as a person's edit.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from vaultsched.blocks import has_conflict_markers

log = logging.getLogger(__name__)

QUIET_SECONDS = 2.0
MAX_WAIT_SECONDS = 30.0
_MAX_ATTEMPTS = 50
TEMP_MARK = ".vaultsched-"  # in the name of every note temp file, for the start-up sweep


class Outcome(StrEnum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"
    CONFLICTED = "conflicted"  # holds git conflict markers: never written
    UNREADABLE = "unreadable"
    MISSING = "missing"  # moved or deleted: a task note is never re-created by a write
    OUTSIDE = "outside"  # a symlink would carry the write out of the vault: refused


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class NoteWriter:
    root: Path
    quiet: float = QUIET_SECONDS
    max_wait: float = MAX_WAIT_SECONDS
    sleep: Callable[[float], None] = time.sleep
    wall_time: Callable[[], float] = time.time
    _own: dict[str, str] = field(default_factory=dict, repr=False)

    def update(self, rel: str, transform: Callable[[str], str], *, create: bool = True) -> Outcome:
        """Apply `transform` to the note's text and write the result safely."""
        path = self.root / rel
        if not self._inside(path):
            log.warning("%s leads outside the vault (a symlink): not writing it", rel)
            return Outcome.OUTSIDE
        deadline = self.wall_time() + self.max_wait
        # Text a person wrote into the very inode we replaced, in the instant before the rename.
        late: _Read | None = None
        for _ in range(_MAX_ATTEMPTS):
            current = _read(path)
            if current.data is None and not create:
                return Outcome.MISSING
            try:
                if late is not None and current.snapshot == late.snapshot:
                    current.data = late.data  # the person's text, plus our block again
                elif current.data is not None and self._being_edited(
                    rel, path, current.data, deadline
                ):
                    continue
                outcome, late = self._attempt(rel, path, current, transform)
            finally:
                current.close()
            if outcome is not None:
                return outcome
        raise OSError(f"{rel} kept changing while vaultsched tried to write it")

    def _inside(self, path: Path) -> bool:
        """SPEC §1: vaultsched never writes outside the vault, whatever links the vault holds."""
        if path.is_symlink():
            return False
        real = path.parent.resolve()
        return real == self.root.resolve() or real.is_relative_to(self.root.resolve())

    def _attempt(
        self, rel: str, path: Path, current: _Read, transform: Callable[[str], str]
    ) -> tuple[Outcome | None, _Read | None]:
        """One read-transform-replace; (None, late) asks the caller to go round again."""
        try:
            text = "" if current.data is None else current.data.decode("utf-8")
        except UnicodeDecodeError:
            return Outcome.UNREADABLE, None
        if has_conflict_markers(text):
            log.warning("%s holds git conflict markers: not writing it", rel)
            return Outcome.CONFLICTED, None
        new = transform(text)
        if new == text and current.data is not None:
            return Outcome.UNCHANGED, None
        written = self._replace_if_unchanged(path, new.encode("utf-8"), current.snapshot)
        if written is None:
            return None, None
        late = current.written_after_read(written)
        self._remember(rel, new.encode("utf-8"))
        return (Outcome.WRITTEN if late is None else None), late

    def _being_edited(self, rel: str, path: Path, data: bytes, deadline: float) -> bool:
        """Wait (and return True to re-read) while a person's recent edit is still settling."""
        if self.is_own(rel, data):
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
        self, path: Path, data: bytes, before: _Snapshot | None
    ) -> _Snapshot | None:
        """Rename `data` over `path` if it still is as read; the new file's snapshot, or None."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # A dot-prefixed temp name: ignored by our indexer and by Obsidian.
        tmp = path.with_name(f".{path.name}{TEMP_MARK}{secrets.token_hex(4)}.tmp")
        try:
            _write_synced(tmp, data, mode=_mode(path))
            written = _snapshot(tmp)
            if _snapshot(path) != before:
                return None
            if before is None:
                os.link(tmp, path)  # creating: fails rather than clobber a note made meanwhile
            else:
                os.replace(tmp, path)
            _fsync_dir(path.parent)
            return written
        except (FileExistsError, FileNotFoundError):
            # FileNotFoundError: our temp file was swept (a daemon starting) mid-write.
            return None  # go round again
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def is_own(self, rel: str, data: bytes) -> bool:
        """True if `data` is exactly what vaultsched itself last wrote to `rel`."""
        digest = _digest(data)
        if self._own.get(rel) == digest:
            return True
        try:
            return self._own_file(rel).read_text() == digest
        except OSError:
            return False

    def _remember(self, rel: str, data: bytes) -> None:
        digest = _digest(data)
        self._own[rel] = digest
        marker = self._own_file(rel)
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(f".{secrets.token_hex(4)}")
        tmp.write_text(digest)
        os.replace(tmp, marker)

    def _own_file(self, rel: str) -> Path:
        name = hashlib.sha1(rel.encode("utf-8")).hexdigest()
        return self.root / ".vaultsched" / "state" / "written" / name


_Snapshot = tuple[int, int, int]


def _snapshot(path: Path) -> _Snapshot | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class _Read:
    """A note as read, with the inode kept open to notice writes that race our rename."""

    data: bytes | None
    snapshot: _Snapshot | None
    fd: int | None = None

    def written_after_read(self, replaced_by: _Snapshot) -> _Read | None:
        """If someone wrote to the old inode after we read it, its content, to be merged into
        the file that replaced it (whose snapshot is `replaced_by`); else None."""
        if self.fd is None:
            return None
        try:
            st = os.fstat(self.fd)
            if (st.st_ino, st.st_size, st.st_mtime_ns) == self.snapshot:
                return None
            size = st.st_size
            data = os.pread(self.fd, size, 0)
        finally:
            self.close()
        return _Read(data, replaced_by)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read(path: Path) -> _Read:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return _Read(None, None)
    st = os.fstat(fd)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return _Read(b"".join(chunks), (st.st_ino, st.st_size, st.st_mtime_ns), fd)


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o644


def _write_synced(path: Path, data: bytes, *, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


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
