"""Notes held open while git replaces them (a sync moving the vault to its result).

git checks that a note is as committed, then unlinks it and writes the new version. An editor
that opened the note between the two (Obsidian saves in place: open with truncation, write)
writes its save into the file git unlinked, and the save is gone with it. Held open from before
the move, that file can still be read afterwards: a save found in it is handed back, to be
merged into the note as the move left it (vaultsched.runtime.sync).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from vaultsched.adapters.notefile import link_on_path, open_note

# A sync that changes more notes than this holds only the first ones: each is a descriptor
# open for the move's few milliseconds, and a process has a thousand or so.
MAX_HELD = 256
MAX_BYTES = 4 * 1024 * 1024  # a note larger than this is not held (it is read when held)


@dataclass(frozen=True)
class LateSave:
    rel: str
    before: bytes  # the note when it was held: as committed, or git would not have moved it
    saved: bytes  # what a save left in the file git replaced


@dataclass
class _Held:
    rel: str
    fd: int
    stamp: tuple[int, int]  # size, mtime_ns
    data: bytes


class HeldNotes:
    """Open the notes at `rels` (vault-relative) for the time of a move; `late_saves` says
    which of them were saved into after git replaced them."""

    def __init__(self, root: Path, rels: list[str]) -> None:
        self.root = root
        self._held: list[_Held] = []
        for rel in rels[:MAX_HELD]:
            with contextlib.suppress(OSError):  # gone, not a file, unreadable: nothing to lose
                self._hold(rel)

    def _hold(self, rel: str) -> None:
        if link_on_path(self.root, rel):
            return
        fd = open_note(f"{self.root}/{rel}")
        try:
            st = os.fstat(fd)
            data = os.pread(fd, st.st_size + 1, 0) if st.st_size <= MAX_BYTES else None
        except OSError:
            os.close(fd)
            raise
        if data is None:
            os.close(fd)
            return
        self._held.append(_Held(rel, fd, (st.st_size, st.st_mtime_ns), data))

    def late_saves(self) -> list[LateSave]:
        """The held notes a program wrote into after they were held, and that are no longer
        the note at their path (git replaced or removed them): their saves would be lost."""
        found = []
        for held in self._held:
            with contextlib.suppress(OSError):
                st = os.fstat(held.fd)
                if (st.st_size, st.st_mtime_ns) == held.stamp or self._still_there(held, st):
                    continue
                saved = os.pread(held.fd, st.st_size + 1, 0)
                if saved != held.data:
                    found.append(LateSave(held.rel, held.data, saved))
        return found

    def _still_there(self, held: _Held, st: os.stat_result) -> bool:
        """The held file is still the note (a save after the move, into the new file's place:
        an edit like any other, in the note itself)."""
        try:
            now = os.lstat(self.root / held.rel)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)

    def close(self) -> None:
        for held in self._held:
            os.close(held.fd)
        self._held = []

    def __enter__(self) -> HeldNotes:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
