"""Following the vault: the index of tasks, kept current from the watcher's batches of file
changes, with moves told apart from a removal plus a new task."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from vaultsched.adapters.vault import (
    Index,
    NoteRead,
    Vault,
    build_index,
    is_ignored,
    reread_note,
)
from vaultsched.adapters.watcher import Changes, VaultWatcher
from vaultsched.core.model import Problem, Run, Task
from vaultsched.runtime.dispatch import chain_of
from vaultsched.runtime.messages import IndexDelta

log = logging.getLogger(__name__)

MOVE_WINDOW = 3.0  # seconds a new task may be matched to a vanished one as its move

FileId = tuple[int, int]  # (device, inode)


def timing(task: Task) -> tuple[object, ...]:
    """What, when changed, makes a task start afresh (no catch-up for its old schedule)."""
    return (task.schedules, task.timezone, task.enabled, task.hosts)


def match_moves(
    before: Mapping[str, Task],
    after: Mapping[str, Task],
    reported: Sequence[tuple[str, str]],
    *,
    recent: set[str],
    file_id: Callable[[str], FileId | None],
    files: Mapping[str, FileId],
) -> list[tuple[str, str]]:
    """Tasks whose note moved, as (old id, new id).

    Besides the moves the watcher reported: a task that vanished while the same task appeared
    in this batch or `recent`ly. inotify reports a move into a folder made a moment earlier as
    a creation, and the deletion only later; sync tools delete and create. "The same" is the
    same file (`files` before, `file_id` now) or, failing that (atomic writes change the
    inode), the only candidate with the same definition.
    """
    gone = set(before) - set(after)
    pairs = [(old, new) for old, new in reported if old in gone and new in after]
    taken = {new for _, new in pairs}
    fresh = [t for i, t in after.items() if i not in taken and (i not in before or i in recent)]
    for old in sorted(gone - {old for old, _ in pairs}):
        new = _same_task(before[old], fresh, files.get(old), file_id)
        if new is not None:
            pairs.append((old, new.id))
            fresh.remove(new)
    return pairs


def _same_task(
    old: Task, fresh: list[Task], was: FileId | None, file_id: Callable[[str], FileId | None]
) -> Task | None:
    if was is not None:
        for task in fresh:
            if file_id(task.path) == was:
                return task
    alike = [t for t in fresh if replace(old, id=t.id, path=t.path) == t]
    return alike[0] if len(alike) == 1 else None


def delta(before: Mapping[str, Task], after: Index, moved: list[tuple[str, str]]) -> IndexDelta:
    """What a batch did, once its moves are known."""
    renamed = dict(before)
    for old, new in moved:
        task = renamed.pop(old)
        renamed.setdefault(new, task)  # appeared a moment ago: it has its own marks already
    added = [i for i in after.tasks if i not in renamed]
    retimed = [  # a task the batch left as it was is the very same object: not compared
        i
        for i, t in after.tasks.items()
        if (was := renamed.get(i)) is not None and was is not t and timing(was) != timing(t)
    ]
    removed = [i for i in renamed if i not in after.tasks and i not in after.invalid]
    changed = sorted(
        i
        for i in before.keys() | after.tasks.keys()
        if (was := before.get(i)) is not (now := after.tasks.get(i)) and was != now
    )
    return IndexDelta(tuple(moved), tuple(added), tuple(retimed), tuple(removed), tuple(changed))


@dataclass
class Follower:
    vault: Vault
    index: Index = field(default_factory=Index)
    watcher: VaultWatcher | None = None
    _rescan: bool = False
    _files: dict[str, FileId] = field(default_factory=dict)
    _appeared: dict[str, float] = field(default_factory=dict)  # task id -> monotonic time
    # What each note the index holds something of said when last read (see `_reread`).
    _reads: dict[str, NoteRead] = field(default_factory=dict)

    def load(self) -> Index:
        self._build()
        self._remember_files(None)
        return self.index

    def _build(self) -> None:
        self._reads = {}
        self.index = build_index(self.vault, self._reads)

    def watch(self, wake: Callable[[], None]) -> None:
        watcher = VaultWatcher(self.vault.root, self._wanted, wake)
        watcher.start()
        self.watcher = watcher  # only a started watcher is ever stopped

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def request_rescan(self) -> None:
        self._rescan = True

    def settle_in(self) -> float | None:
        """Seconds until the current burst of file events is taken, if there is one."""
        return None if self.watcher is None else self.watcher.due_in()

    def take(self) -> IndexDelta | None:
        """Apply what changed since the last call, if anything is ready."""
        if self._rescan:
            self._rescan = False
            log.info("re-reading the vault")
            return self.apply(Changes(rescan=True))
        wait = self.settle_in()
        if self.watcher is None or wait is None or wait > 0:
            return None
        return self.apply(self.watcher.take())

    def apply(self, changes: Changes) -> IndexDelta:
        before = dict(self.index.tasks)
        if changes.rescan:
            self._build()
        for old, new in changes.moves:
            self._forget(old)
            self._reread(new)
        for rel in sorted(changes.paths):
            self._reread(rel)
        self._moved_in(before)
        self.index.link()  # only if a note changed what the index holds
        recent = time.monotonic() - MOVE_WINDOW
        self._appeared = {i: t for i, t in self._appeared.items() if t > recent}
        reported = [(o.removesuffix(".md"), n.removesuffix(".md")) for o, n in changes.moves]
        touched = {rel.removesuffix(".md") for rel in changes.paths}
        touched |= {new for _, new in reported}
        if not changes.rescan and not changes.moves and self.index.tasks == before:
            # Notes saved with the same front matter (the daemon's own run blocks, most
            # often): no task changed, none moved. Only their files are new (a write
            # replaces the file). No task left the index: nothing to prune.
            self._remember_files(touched, prune=False)
            return IndexDelta((), (), (), ())
        moved = match_moves(
            before,
            self.index.tasks,
            reported,
            recent=set(self._appeared),
            file_id=self._file_id,
            files=self._files,
        )
        found = delta(before, self.index, moved)
        self._appeared.update((ident, time.monotonic()) for ident in found.added)
        self._remember_files(None if changes.rescan else touched)
        return found

    def invalidate(self, task_id: str, problem: Problem) -> None:
        self.index.invalidate(task_id, problem)

    def downstream(self, run: Run) -> list[str]:
        """The `after` tasks `run` starts, as the index has them now (from the run's thread)."""
        index = self.index
        return chain_of(run, index.tasks, index.downstream, self.vault.firing_host)

    def _wanted(self, rel: str) -> bool:
        return not is_ignored(rel, self.vault.config.digest.folder)

    def _remember_files(self, idents: set[str] | None, *, prune: bool = True) -> None:
        """Which file each task lives in, to recognise it after a move; only `idents` are
        looked at again (a stat per task after every batch would cost a large vault dearly),
        and the tasks gone dropped (`prune`: some may have gone; a pass over every task)."""
        tasks = self.index.tasks
        if idents is None:
            self._files = {}
            idents = set(tasks)
        elif prune:
            self._files = {i: f for i, f in self._files.items() if i in tasks}
        for ident in idents:
            task = tasks.get(ident)
            found = None if task is None else self._file_id(task.path)
            if found is None:
                self._files.pop(ident, None)
            else:
                self._files[ident] = found

    def _moved_in(self, before: Mapping[str, Task]) -> None:
        """A note moved into a folder made a moment before is reported as created at once
        (the new folder's watch came after the move), and its old path's deletion only later
        (watchdog holds that half of the move back for half a second). Until then the task
        would be in the index under both names and fire under both: so a new task that is
        the very file a known task was read from has that task's path read again now (gone
        from there: out of the index, and `match_moves` pairs the two by file)."""
        new = [ident for ident in self.index.tasks if ident not in before]
        if not new or not self._files:
            return
        owner = {file: ident for ident, file in self._files.items()}
        for ident in new:
            old = owner.get(self._file_id(self.index.tasks[ident].path) or (-1, -1))
            if old is not None and old != ident and old in self.index.tasks:
                self._reread(f"{old}.md")  # still there (a hard link): it stays

    def _file_id(self, rel: str) -> FileId | None:
        try:
            stat = (self.vault.root / rel).stat()
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def _forget(self, rel: str) -> None:
        self.index.discard(rel.removesuffix(".md"))
        self._reads.pop(rel, None)

    def _reread(self, rel: str) -> None:
        ident = rel.removesuffix(".md")
        # Never raises, never blocks: a gone note is no task. The same front matter as last
        # time is the last read again, unparsed: exact, whatever else in the note changed.
        read = reread_note(self.vault, rel, self._reads.get(rel))
        parsed = read.parsed
        if parsed.is_task or parsed.problems:
            self._reads[rel] = read
        else:
            self._reads.pop(rel, None)
        if self.index.holds(ident, parsed):  # the daemon's own run block, most often
            return
        self.index.add(rel, parsed)
        if parsed.is_task and parsed.task is None and parsed.errors:
            log.warning("%s is invalid and will not run: %s", ident, parsed.errors[0])
        elif not parsed.is_task:
            for problem in parsed.problems:
                if problem.severity == "warning":
                    log.warning("%s", problem)
