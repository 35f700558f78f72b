"""Notes held open while git replaces them (a sync moving the vault to its result).

git checks that a note is as committed, then unlinks it and writes the new version. An editor
that opened the note between the two (Obsidian saves in place: open with truncation, write)
writes its save into the file git unlinked, and the save is gone with it. Held open from before
the move, that file can still be read afterwards: a save found in it is handed back, to be
merged into the note as the move left it (vaultsched.runtime.sync).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from vaultsched.adapters.notefile import link_on_path, open_note
from vaultsched.adapters.notes import SETTLE_SECONDS, save_finished

# A sync that changes more notes than these holds only the first ones: each is a descriptor
# (a process has a thousand or so) and its text, kept for the move's few milliseconds.
MAX_HELD = 256
MAX_BYTES = 32 * 1024 * 1024  # all the held notes' text together
MAX_NOTE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class LateSave:
    rel: str
    before: bytes  # the note when it was held: as committed, or git would not have moved it
    saved: bytes  # what a save left in the file git replaced
    whole: bool  # False: a save still under way (or an empty file) when it was read


@dataclass
class _Held:
    rel: str
    fd: int
    data: bytes


class HeldNotes:
    """Open the notes at `rels` (vault-relative) for the time of a move; `late_saves` says
    which of them were saved into after git unlinked them."""

    def __init__(self, root: Path, rels: list[str]) -> None:
        self.root = root
        self._held: list[_Held] = []
        budget = MAX_BYTES
        try:
            for rel in rels[:MAX_HELD]:
                try:
                    budget -= self._hold(rel, min(budget, MAX_NOTE_BYTES))
                except OSError:  # gone, not a file, unreadable: nothing to lose
                    continue
        except BaseException:
            self.close()
            raise

    def _hold(self, rel: str, most: int) -> int:
        """Hold the note if it is no larger than `most` bytes; the bytes held."""
        if link_on_path(self.root, rel):
            return 0
        fd = open_note(f"{self.root}/{rel}")
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, size + 1, 0) if size <= most else None
        except OSError:
            os.close(fd)
            raise
        if data is None or len(data) > most:
            os.close(fd)
            return 0
        self._held.append(_Held(rel, fd, data))
        return len(data)

    def late_saves(self) -> list[LateSave]:
        """The held notes that git unlinked (no name left: not a note a second link still
        names) and that a program wrote into meanwhile: their saves would be lost. Each is
        read once its writer is done (at most SETTLE_SECONDS)."""
        found = []
        for held in self._held:
            try:
                st = os.fstat(held.fd)
                if st.st_nlink or st.st_size > MAX_NOTE_BYTES:
                    continue
                whole = save_finished(held.fd, time.time() + SETTLE_SECONDS)
                saved = os.pread(held.fd, MAX_NOTE_BYTES + 1, 0)
            except OSError:
                continue
            if saved != held.data:
                found.append(LateSave(held.rel, held.data, saved, whole and bool(saved)))
        return found

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
