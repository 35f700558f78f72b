"""Following the vault live with watchdog: changed note paths, handed over in batches.

The watchdog thread only records which vault-relative paths changed (and which moved where)
and nudges the daemon; the daemon's own loop re-reads them after a short debounce, so bursts
of events and editors' atomic saves (write a temp file, rename it over the note) collapse into
one re-read per note. Paths vaultsched ignores are dropped here, at no cost.

How short: a batch is taken `DEBOUNCE_SECONDS` after its first event, or sooner, once its
events have paused for `QUIET_SECONDS`, if each path's last event finished a save: the note was
closed after a write or a file was renamed onto it, and no program holds it open for writing
(a read lease probe, `leases.writers_open`). A note truncated and not yet closed, one gone,
created or changed any other way, a folder event or lost events: the whole debounce, as before.

On Linux the whole vault is one recursive inotify watch, read by one thread, that never
descends into a folder vaultsched ignores (.git, .vaultsched, hidden folders, the digests):
those get no inotify watch at all, so a commit's burst of events in .git never reaches us.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from vaultsched.adapters.leases import writers_open
from vaultsched.adapters.notefile import open_note

DEBOUNCE_SECONDS = 0.05  # the longest a batch waits after its first event
# A batch whose every note was saved whole is taken once its events pause this long: the three
# events of an in-place save (truncate, write, close) come within a millisecond; a burst of
# saves (a sync, a checkout) keeps coming, and is taken in batches as large as before.
QUIET_SECONDS = 0.015
# Every event but a file's open and its close without a write: inotify then never reports the
# daemon's own reads, two events per note it reads (a cold start of 100,000 notes: 200,000).
WANTED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
]


@dataclass
class Changes:
    """What changed since the last batch: paths to re-read and (old, new) renames."""

    paths: set[str] = field(default_factory=set)
    moves: list[tuple[str, str]] = field(default_factory=list)
    rescan: bool = False  # a folder moved or vanished, or events were lost: rescan, not guess

    def __bool__(self) -> bool:
        return bool(self.paths or self.moves or self.rescan)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: VaultWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        watcher = self.watcher
        src = watcher.relative(event.src_path)
        if isinstance(event, FileSystemMovedEvent):
            dest = watcher.relative(event.dest_path)
            if event.is_directory and not (watcher.folder(src) or watcher.folder(dest)):
                return  # an ignored folder renamed: nothing of it was, or is, a note
            watcher.record_move(src, dest, event.is_directory)
        elif event.is_directory:
            # A created folder's notes come as events of their own (watchdog watches it, then
            # reports what it holds already); a vanished one's do not.
            if event.event_type == "deleted" and watcher.folder(src):
                watcher.record_rescan()
        elif src is not None:
            watcher.record(src, saved=event.event_type == EVENT_TYPE_CLOSED)


class VaultWatcher:
    def __init__(
        self,
        root: Path,
        wanted: Callable[[str], bool],
        notify: Callable[[], None],
    ) -> None:
        self.root = root
        self.wanted = wanted
        self.notify = notify
        self._lock = threading.Lock()
        self._changes = Changes()
        self._first: float | None = None  # the batch's first event (monotonic), None: no batch
        self._last = 0.0  # its latest event
        # The batch's paths whose last event may have left them part-saved (see the module).
        self._unfinished: set[str] = set()
        self._observer = _observer(self)
        self._observer.schedule(
            _Handler(self), str(root), recursive=True, event_filter=WANTED_EVENTS
        )

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    def relative(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        try:
            rel = os.path.relpath(text, self.root)
        except ValueError:
            return None
        return None if rel.startswith("..") else rel.replace(os.sep, "/")

    def folder(self, rel: str | None) -> bool:
        """Whether the folder at `rel` (the vault's root: ".") is one notes can be in: asked
        as a note path inside it. A folder that is not never holds one that is, at any depth."""
        if rel is None:
            return False
        return rel == "." or self.wanted(f"{rel}/_.md")

    def watches(self, path: bytes) -> bool:
        """Whether the folder at the absolute `path` gets an inotify watch."""
        return self.folder(self.relative(path))

    def record(self, rel: str, *, saved: bool = False) -> None:
        """`rel` changed; `saved`: by a file closed after a write, or renamed onto it."""
        if not self.wanted(rel):
            return
        whole = saved and self._whole(rel)
        with self._lock:
            self._changes.paths.add(rel)
            wake = self._event(rel, whole)
        if wake:
            self.notify()

    def record_move(self, src: str | None, dest: str | None, is_directory: bool) -> None:
        if is_directory:
            self.record_rescan()
            return
        if src is not None and dest is not None and self.wanted(src) and self.wanted(dest):
            whole = self._whole(dest)
            with self._lock:
                self._changes.moves.append((src, dest))
                self._unfinished.discard(src)  # gone from there: nothing left to finish
                wake = self._event(dest, whole)
            if wake:
                self.notify()
        else:
            # An atomic save (temp -> note) is a change of the note; a move out is a deletion.
            for rel in (src, dest):
                if rel is not None:
                    self.record(rel, saved=rel is dest)

    def record_rescan(self) -> None:
        with self._lock:
            self._changes.rescan = True
            self._event(None, False)
        self.notify()

    def _event(self, rel: str | None, whole: bool) -> bool:
        """Note an event of the batch (under the lock); whether the daemon is to be woken: the
        batch's first event, or the one that leaves it all saved whole (taken sooner now).
        Otherwise the daemon, asleep until the time `due_in` gave it, need not wake."""
        now = time.monotonic()
        first = self._first is None
        if first:
            self._first = now
        self._last = now
        unfinished = bool(self._unfinished)
        if rel is not None and whole:
            self._unfinished.discard(rel)
        else:
            self._unfinished.add(rel or "")  # "": lost events, a folder gone; never finished
        return first or (unfinished and not self._unfinished)

    def _whole(self, rel: str) -> bool:
        """Whether no program holds the note at `rel` open for writing: False too if it is gone,
        not a regular file, or leases cannot tell."""
        try:
            fd = open_note(f"{self.root}/{rel}")
        except OSError:
            return False
        try:
            return writers_open(fd) is False
        finally:
            os.close(fd)

    def due_in(self) -> float | None:
        """Seconds until the changes recorded are to be taken (0: now); None if there are none."""
        with self._lock:
            if self._first is None:
                return None
            due = self._first + DEBOUNCE_SECONDS
            if not self._unfinished:
                due = min(due, self._last + QUIET_SECONDS)
        return max(due - time.monotonic(), 0.0)

    def take(self) -> Changes:
        with self._lock:
            changes, self._changes = self._changes, Changes()
            self._first = None
            self._unfinished = set()
        return changes

    def settled(self) -> bool:
        """Whether every event the kernel queued for the watch has reached `take`; False
        where that cannot be told (watchdog's own observer, off Linux)."""
        if not sys.platform.startswith("linux"):
            return False
        try:
            from vaultsched.adapters.inotifywatch import settled
        except Exception:  # as `_observer`: another libc, another watchdog
            return False
        return settled(self._observer)


def _observer(watcher: VaultWatcher) -> BaseObserver:
    """One inotify reader for the whole vault that skips ignored folders (Linux); elsewhere
    watchdog's own observer, whose events in ignored folders the handler drops."""
    if sys.platform.startswith("linux"):
        try:
            from vaultsched.adapters.inotifywatch import PrunedObserver
        except Exception:  # another libc, another watchdog: watchdog's own observer
            pass
        else:
            return PrunedObserver(watcher)
    return Observer()
