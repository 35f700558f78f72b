"""Following the vault live with watchdog: changed note paths, handed over in batches.

The watchdog thread only records which vault-relative paths changed (and which moved where)
and nudges the daemon; the daemon's own loop re-reads them after a short debounce, so bursts
of events and editors' atomic saves (write a temp file, rename it over the note) collapse into
one re-read per note. Paths vaultsched ignores are dropped here, at no cost.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
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
from watchdog.observers.api import ObservedWatch

DEBOUNCE_SECONDS = 0.05
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
    rescan: bool = False  # a folder moved or vanished: cheaper to rescan than to guess

    def __bool__(self) -> bool:
        return bool(self.paths or self.moves or self.rescan)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: VaultWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        src = self.watcher.relative(event.src_path)
        folder_changed = event.is_directory and event.event_type in ("created", "deleted", "moved")
        if folder_changed and self.watcher.resync_folders():
            self.watcher.record_rescan()  # notes may have landed before the new watch
        if isinstance(event, FileSystemMovedEvent):
            self.watcher.record_move(
                src, self.watcher.relative(event.dest_path), event.is_directory
            )
        elif event.is_directory:
            if event.event_type == "deleted":
                self.watcher.record_rescan()
        elif src is not None:
            self.watcher.record(src)


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
        self._observer = Observer()
        self._handler = _Handler(self)
        self._folders: dict[str, ObservedWatch] = {}
        self._folders_lock = threading.Lock()
        self._observer.schedule(
            self._handler, str(root), recursive=False, event_filter=WANTED_EVENTS
        )
        self.resync_folders()

    def resync_folders(self) -> bool:
        """Watch each top-level folder that can hold notes, recursively, and nothing else.

        A recursive watch on the root would also cover .git (a watch per object folder and a
        burst of events on every commit), .vaultsched's logs and the digests: all churn that
        vaultsched ignores anyway but would pay for in inotify watches and dispatch.
        """
        try:
            names = {
                entry.name
                for entry in os.scandir(self.root)
                # Asked as a note path inside the folder: is anything in there wanted?
                if entry.is_dir(follow_symlinks=False) and self.wanted(f"{entry.name}/_.md")
            }
        except OSError:
            return False
        with self._folders_lock:
            changed = names != set(self._folders)
            for gone in set(self._folders) - names:
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(self._folders.pop(gone))
            for name in sorted(names - set(self._folders)):
                with contextlib.suppress(OSError):  # vanished again already: the rescan sees it
                    self._folders[name] = self._observer.schedule(
                        self._handler,
                        str(self.root / name),
                        recursive=True,
                        event_filter=WANTED_EVENTS,
                    )
        return changed

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

    def record(self, rel: str) -> None:
        if not self.wanted(rel):
            return
        with self._lock:
            self._changes.paths.add(rel)
        self.notify()

    def record_move(self, src: str | None, dest: str | None, is_directory: bool) -> None:
        if is_directory:
            self.record_rescan()
            return
        src_wanted = src is not None and self.wanted(src)
        dest_wanted = dest is not None and self.wanted(dest)
        if src_wanted and dest_wanted:
            with self._lock:
                self._changes.moves.append((src, dest))  # type: ignore[arg-type]
            self.notify()
        else:
            # An atomic save (temp -> note) is a change of the note; a move out is a deletion.
            for rel in (src, dest):
                if rel is not None:
                    self.record(rel)

    def record_rescan(self) -> None:
        with self._lock:
            self._changes.rescan = True
        self.notify()

    def take(self) -> Changes:
        with self._lock:
            changes, self._changes = self._changes, Changes()
        return changes
