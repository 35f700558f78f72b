"""The whole vault as one recursive inotify watch that leaves out the folders vaultsched ignores.

watchdog gives each watch an emitter thread of its own, and its recursive watch puts an inotify
watch on every subfolder, .git's hundreds of object folders included. This is watchdog's own
inotify machinery (one thread reads the inotify descriptor, one emitter turns what it reads
into events) with one change: a folder `Folders.watches` refuses gets no inotify watch, nor does
any folder below it, whether it is there at the start, created later or moved in. Its events are
then never read at all.

It builds on watchdog 7's `InotifyWatchGroup` (`_add_all_callbacks`, `_move_watches`); with a
watchdog that has no such methods this module fails to import and the watcher falls back to
watchdog's `Observer`, whose events in ignored folders its handler drops.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from typing import Any, Protocol

from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyFD

_OVERRIDDEN = (
    *("_add_all_callbacks", "_add_callback", "_move_watches", "_remove_callbacks"),
    "_remove_watch_internally",
)
if not all(hasattr(InotifyWatchGroup, name) for name in (*_OVERRIDDEN, "on_queue_overflow")):
    raise ImportError("this watchdog's inotify watch groups are not the ones pruned here")

log = logging.getLogger(__name__)


class Folders(Protocol):
    def watches(self, path: bytes) -> bool:
        """Whether the folder at the absolute `path` (below the watched root) gets a watch."""
        ...

    def record_rescan(self) -> None:
        """Events were lost: what changed must be found by reading the vault again."""
        ...


class _PrunedGroup(InotifyWatchGroup):
    def __init__(self, folders: Folders, *args: Any, **kwargs: Any) -> None:
        # First: the base class adds the watches as it is made.
        self._folders = folders
        self._inodes: dict[int, int] = {}  # watch descriptor -> the inode watched
        self._limit_warned = False  # the watch limit was reached, and said so in the log
        super().__init__(*args, **kwargs)

    def _add_all_callbacks(self, path: bytes) -> None:
        """The base class's (a watch on `path` and, recursive, on each folder below it), but a
        folder refused is neither watched nor walked into, and symlinks are never followed.
        Each folder is watched before it is listed: a subfolder made after the listing is
        reported by that watch. A folder's creation is handled after the event is read: a
        link put in its place meanwhile is not a folder, and is never listed through."""
        if self._watching(path) or (path != self.path and not self._folders.watches(path)):
            return
        if path != self.path and not _is_folder(path):
            return
        self._add_callback(path)
        if self.is_recursive:
            self._watch_below(path, rewalk=False)

    def _watch_below(self, path: bytes, *, rewalk: bool) -> None:
        """Watch each folder below `path` that is not watched yet; `rewalk`: list the folders
        watched already too (after lost events, one may hold a folder made meanwhile)."""
        pending = [path]
        while pending:
            try:
                with os.scandir(pending.pop()) as listing:
                    found = [e.path for e in listing if e.is_dir(follow_symlinks=False)]
            except OSError:  # a file, or gone already (its deletion is an event)
                continue
            for folder in found:
                if self._watching(folder):
                    if rewalk:
                        pending.append(folder)
                elif self._folders.watches(folder):
                    self._add_callback(folder)
                    pending.append(folder)

    def _add_callback(self, path: bytes) -> None:
        """The base class's, but a folder left unwatched for want of inotify watches is said
        (the base class passes over any failure below the root: a folder gone meanwhile)."""
        try:
            wd = self._inotify_fd.add_callback(path, self.event_mask, self._callback, self._id)
        except OSError as exc:
            if path == self.path:
                raise
            if exc.errno == errno.ENOSPC and not self._limit_warned:
                self._limit_warned = True
                log.warning(
                    "inotify watch limit reached (fs.inotify.max_user_watches): changes in %r"
                    " and other folders are not seen until vaultsched restarts; raise the limit",
                    os.fsdecode(path),
                )
            return
        self._active_callbacks_by_path[path] = wd
        self._active_callbacks_by_watch[wd] = path
        with contextlib.suppress(OSError):
            self._inodes[wd] = os.lstat(path).st_ino
        watched = self._active_callbacks_by_watch
        if len(self._inodes) > 2 * len(watched) + 64:  # folders made and removed, for months
            self._inodes = {wd: ino for wd, ino in self._inodes.items() if wd in watched}

    def _watching(self, path: bytes) -> bool:
        """Whether the folder at `path` is watched, and so was listed, already: one made with
        its parent (`mkdir -p`) is found by the parent's listing, then its own creation is
        reported. (Watched twice, watchdog warns.) A path whose watch stayed with a folder
        moved out of the vault is another folder now: another inode."""
        wd = self._active_callbacks_by_path.get(path)
        try:
            return wd is not None and self._inodes.get(wd) == os.lstat(path).st_ino
        except OSError:
            return False

    def _move_watches(self, move_src_path: bytes, move_dst_path: bytes) -> bool:
        """A watched folder moved (its watches move with it) into a place that is refused,
        such as a hidden .trash folder: its watches are removed."""
        moved = super()._move_watches(move_src_path, move_dst_path)
        if moved and not self._folders.watches(move_dst_path):
            below = move_dst_path + os.sep.encode()
            self._remove_callbacks(
                [
                    wd
                    for path, wd in self._active_callbacks_by_path.items()
                    if path == move_dst_path or path.startswith(below)
                ]
            )
        return moved

    def _remove_watch_internally(self, wd: int) -> None:
        """The base class's, for a watch not forgotten already. After lost events a watch whose
        folder is gone is removed here, and the kernel's word that it went may still come: the
        base class's KeyError then would end the thread that reads every event."""
        if wd in self._active_callbacks_by_watch:
            super()._remove_watch_internally(wd)  # type: ignore[arg-type]

    def on_queue_overflow(self) -> None:
        """Events were lost: the watches set right, and what the lost events said read again.
        Not as the base class does it (every watch removed, then all made again): each removal
        queues an event, so with more watched folders than the queue holds
        (fs.inotify.max_queued_events, 16,384 by default; a million-note vault has 25,000)
        the removals alone overflowed it again, and again, each time asking for a rescan of
        the whole vault. Only the watches whose folder is gone or moved are removed."""
        with self._lock:
            if not self.is_active:
                return
            self._move_event_grouper.discard_pending_events()
            if self.is_recursive:
                log.warning("inotify queue overflowed: watches checked, the vault read again")
                stale = [
                    wd
                    for path, wd in self._active_callbacks_by_path.items()
                    if path != self.path and not self._watching(path)
                ]
                self._remove_callbacks(stale)
                self._watch_below(self.path, rewalk=True)
        self._folders.record_rescan()


def _is_folder(path: bytes) -> bool:
    """A folder itself, not a link to one (nor anything gone)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


class PrunedEmitter(InotifyEmitter):
    """watchdog's inotify emitter, on a pruned watch group."""

    def __init__(self, *args: Any, folders: Folders, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._folders = folders

    def on_thread_start(self) -> None:
        self._inotify = _PrunedGroup(
            self._folders,
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=False,
        )


class PrunedObserver(BaseObserver):
    """watchdog's `InotifyObserver`, with `PrunedEmitter`s."""

    def __init__(self, folders: Folders) -> None:
        self._inotify_fd = InotifyFD()
        self._inotify_fd.start()
        super().__init__(
            PrunedEmitter,
            timeout=DEFAULT_OBSERVER_TIMEOUT,
            inotify_fd=self._inotify_fd,
            folders=folders,
        )

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._inotify_fd.stop()
        self._inotify_fd.join()


def settled(observer: BaseObserver) -> bool:
    """Whether the vault's watch has handed on every event the kernel queued for it: no byte
    left to read on the inotify descriptor, none of watchdog's queues holding an event, no
    watch left out for want of inotify watches. False whenever that cannot be told (another
    observer, another watchdog): the daemon then does not answer, and `list` walks.

    This reads watchdog's (and the pruned watch's) state as it is: there is no public way to
    ask it. An event in the hands of one of its threads between two queues, for the few
    instructions that takes, is not seen."""
    try:
        import fcntl
        import struct
        import termios

        fd = getattr(getattr(observer, "_inotify_fd", None), "_inotify_fd", None)
        if not isinstance(fd, int):
            return False
        unread = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        if unread or not observer.event_queue.empty():
            return False
        emitters = list(observer.emitters)
        for emitter in emitters:
            group = getattr(emitter, "_inotify", None)
            if group is None or getattr(group, "_limit_warned", True):
                return False  # not started yet, or some folders are not watched
            held = group._move_event_grouper._queue._queue  # a move's first half, waiting
            if held:
                return False
        return bool(emitters)
    except Exception:
        return False
