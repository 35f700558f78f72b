"""The watcher on a real folder: one inotify watch per folder that can hold notes, none in the
folders vaultsched ignores, and new folders followed as they come."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from vaultsched.adapters import watcher as watcher_module
from vaultsched.adapters.inotifywatch import Folders, PrunedObserver
from vaultsched.adapters.vault import is_ignored
from vaultsched.adapters.watcher import DEBOUNCE_SECONDS, QUIET_SECONDS, Changes, VaultWatcher

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")

DIGESTS = "Digests"


def _inotify_fds() -> set[str]:
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if str(fd.readlink()) == "anon_inode:inotify":
                found.add(fd.name)
        except OSError:
            continue
    return found


def _watched_inodes(fds: set[str]) -> set[int]:
    """The inodes the inotify descriptors `fds` hold a watch on (Linux's fdinfo lists them)."""
    inodes = set()
    for fd in fds:
        for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
            if line.startswith("inotify wd:"):
                inodes.add(int(line.split(" ino:")[1].split()[0], 16))
    return inodes


def _inodes(root: Path, *rels: str) -> set[int]:
    return {(root / rel).stat().st_ino for rel in rels}


class Started:
    def __init__(self, root: Path, watcher: VaultWatcher, fds: set[str], asked: list[str]):
        self.root = root
        self.watcher = watcher
        self.fds = fds
        self.asked = asked  # every path the watcher asked `wanted` about

    def watched(self) -> set[int]:
        return _watched_inodes(self.fds)

    def changes_until(self, done: Callable[[Changes], bool], timeout: float = 10.0) -> Changes:
        """What the watcher reported, gathered until `done` says so (or the timeout)."""
        got = Changes()
        deadline = time.monotonic() + timeout
        while not done(got) and time.monotonic() < deadline:
            time.sleep(0.02)
            taken = self.watcher.take()
            got.paths |= taken.paths
            got.moves += taken.moves
            got.rescan |= taken.rescan
        return got


def _tree(root: Path) -> None:
    for rel in ("Notes/A/B", "Notes/.hidden/C", ".git/objects/00", ".git/refs/heads"):
        (root / rel).mkdir(parents=True)
    for rel in (".vaultsched/logs", f"{DIGESTS}/2026", ".trash"):
        (root / rel).mkdir(parents=True)
    (root / "Notes/link").symlink_to(root / "Notes/A")


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    root = tmp_path / "vault"
    _tree(root)
    asked: list[str] = []

    def wanted(rel: str) -> bool:
        asked.append(rel)
        return not is_ignored(rel, DIGESTS)

    before = _inotify_fds()
    watcher = VaultWatcher(root, wanted, lambda: None)
    watcher.start()
    try:
        yield Started(root, watcher, _inotify_fds() - before, asked)
    finally:
        watcher.stop()


def test_only_folders_that_can_hold_notes_are_watched(started: Started) -> None:
    assert started.watched() == _inodes(started.root, ".", "Notes", "Notes/A", "Notes/A/B")


def test_the_whole_vault_is_read_by_a_few_threads(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    for n in range(50):
        (root / f"Folder {n}/Sub").mkdir(parents=True)
    threads = threading.active_count()
    watcher = VaultWatcher(root, lambda rel: not is_ignored(rel, DIGESTS), lambda: None)
    watcher.start()
    try:
        assert threading.active_count() - threads <= 3  # not one per folder
    finally:
        watcher.stop()


def test_a_note_in_a_deep_folder_made_after_the_start_is_seen(started: Started) -> None:
    root = started.root
    (root / "New/B/C").mkdir(parents=True)
    (root / "New/B/C/first.md").write_text("made with its folder\n")
    got = started.changes_until(lambda c: "New/B/C/first.md" in c.paths)
    assert "New/B/C/first.md" in got.paths
    assert _inodes(root, "New", "New/B", "New/B/C") <= started.watched()
    (root / "New/B/C/later.md").write_text("made once the folder is watched\n")
    got = started.changes_until(lambda c: "New/B/C/later.md" in c.paths)
    assert "New/B/C/later.md" in got.paths


def test_events_in_ignored_folders_never_reach_the_handler(started: Started) -> None:
    root = started.root
    inside = [
        ".git/objects/00/object.md",
        ".vaultsched/logs/log.md",
        f"{DIGESTS}/2026/digest.md",
        ".trash/old.md",
        "Notes/.hidden/C/secret.md",
    ]
    for rel in inside:
        (root / rel).write_text("x\n")
    (root / ".made").mkdir()  # an ignored folder made and removed: no rescan
    (root / ".made/x.md").write_text("x\n")
    (root / ".made/x.md").unlink()
    (root / ".made").rmdir()
    (root / "Notes/last.md").write_text("written last\n")
    got = started.changes_until(lambda c: "Notes/last.md" in c.paths)
    time.sleep(0.2)  # anything behind the last note would have come by now
    got.paths |= started.watcher.take().paths
    assert got == Changes(paths={"Notes/last.md"})
    assert not set(inside) & set(started.asked)
    assert started.watched() == _inodes(root, ".", "Notes", "Notes/A", "Notes/A/B")


def test_a_folder_renamed_hidden_loses_its_watches(started: Started) -> None:
    root = started.root
    (root / "Notes/A").rename(root / "Notes/.A")
    assert started.changes_until(lambda c: c.rescan).rescan
    assert started.watched() == _inodes(root, ".", "Notes")
    (root / "Notes/.A").rename(root / "Notes/A")
    assert started.changes_until(lambda c: c.rescan).rescan
    assert started.watched() == _inodes(root, ".", "Notes", "Notes/A", "Notes/A/B")


def test_elsewhere_watchdogs_own_observer_is_used_and_ignored_paths_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vaultsched.adapters.inotifywatch", None)  # import fails
    root = tmp_path / "vault"
    _tree(root)
    watcher = VaultWatcher(root, lambda rel: not is_ignored(rel, DIGESTS), lambda: None)
    assert not isinstance(watcher._observer, PrunedObserver)
    watcher.start()
    try:
        (root / ".git/objects/00/object.md").write_text("x\n")
        (root / "Notes/A/B/note.md").write_text("x\n")
        started = Started(root, watcher, set(), [])
        got = started.changes_until(lambda c: bool(c.paths))
        assert got == Changes(paths={"Notes/A/B/note.md"})
    finally:
        watcher.stop()


class _Lost(Folders):
    def __init__(self) -> None:
        self.rescans = 0

    def watches(self, path: bytes) -> bool:
        return b"/." not in path

    def record_rescan(self) -> None:
        self.rescans += 1


def test_a_queue_overflow_rewatches_and_asks_for_a_rescan(tmp_path: Path) -> None:
    from watchdog.observers.inotify_c import InotifyFD

    from vaultsched.adapters.inotifywatch import _PrunedGroup

    (tmp_path / "A/B").mkdir(parents=True)
    (tmp_path / ".git/objects").mkdir(parents=True)
    fds = _inotify_fds()
    fd = InotifyFD()
    fd.start()
    try:
        folders = _Lost()
        group = _PrunedGroup(folders, fd, os.fsencode(tmp_path), is_recursive=True)
        group.on_queue_overflow()
        assert folders.rescans == 1
        assert _watched_inodes(_inotify_fds() - fds) == _inodes(tmp_path, ".", "A", "A/B")
        group.deactivate()
    finally:
        fd.stop()
        fd.join()


class _Refusing(_Lost):
    def __init__(self, *names: bytes) -> None:
        super().__init__()
        self.refused = set(names)

    def watches(self, path: bytes) -> bool:
        return super().watches(path) and path.rpartition(b"/")[2] not in self.refused


def test_a_queue_overflow_keeps_the_watches_of_folders_still_there(tmp_path: Path) -> None:
    from watchdog.observers.inotify_c import InotifyFD

    from vaultsched.adapters.inotifywatch import _PrunedGroup

    root = tmp_path / "vault"
    for rel in ("A/B", "C", "E"):
        (root / rel).mkdir(parents=True)
    fd = InotifyFD()
    fd.start()
    try:
        folders = _Refusing(b"New")
        group = _PrunedGroup(folders, fd, os.fsencode(root), is_recursive=True)
        wds = dict(group._active_callbacks_by_path)
        (root / "A/B/New").mkdir()  # as if its creation were lost: not watched
        (root / "E").rename(tmp_path / "E")  # moved out: its watch went with it
        folders.refused.clear()
        group.on_queue_overflow()
        assert folders.rescans == 1
        kept = {os.fsencode(root / rel) for rel in ("", "A", "A/B", "C")}
        after = group._active_callbacks_by_path
        # none removed and made again: past the queue's length, that alone overflows it again
        assert {path: after.get(path) for path in kept} == {path: wds[path] for path in kept}
        assert set(after) == kept | {os.fsencode(root / "A/B/New")}
        group.deactivate()
    finally:
        fd.stop()
        fd.join()


def test_a_watch_removed_after_lost_events_may_be_said_gone_again(tmp_path: Path) -> None:
    from watchdog.observers.inotify_c import InotifyFD

    from vaultsched.adapters.inotifywatch import _PrunedGroup

    (tmp_path / "A").mkdir()
    fd = InotifyFD()
    fd.start()
    try:
        group = _PrunedGroup(_Lost(), fd, os.fsencode(tmp_path), is_recursive=True)
        wd = group._active_callbacks_by_path[os.fsencode(tmp_path / "A")]
        group._remove_callbacks([wd])  # gone, found by the check after an overflow
        group.on_watch_deleted(wd)  # then its IN_IGNORED, read from the queue
        assert set(group._active_callbacks_by_path) == {os.fsencode(tmp_path)}
        group.deactivate()
    finally:
        fd.stop()
        fd.join()


def _queue_length() -> int:
    return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())


@pytest.mark.skipif(_queue_length() > 100_000, reason="a queue too long to fill here")
def test_an_overflow_with_more_folders_than_the_queue_holds_asks_one_rescan(
    tmp_path: Path,
) -> None:
    """A million-note vault has 25,000 folders, more than inotify's queue holds (16,384 events
    by default): one overflow, then the watcher's own reaction to it overflowed the queue
    again, for ever, each time asking the daemon to read the whole vault again."""
    from watchdog.observers.inotify_c import DEFAULT_NUM_EVENTS

    root = tmp_path / "vault"
    length = _queue_length()
    root.mkdir()
    for n in range(length + 200):
        if n % 100 == 0:
            (root / f"f{n // 100}").mkdir()
        (root / f"f{n // 100}" / f"g{n}").mkdir()
    watcher = VaultWatcher(root, lambda rel: not is_ignored(rel, DIGESTS), lambda: None)
    watcher.start()
    try:
        (emitter,) = watcher._observer.emitters
        group = emitter._inotify  # type: ignore[attr-defined]
        with group._lock:  # the reader waits on it at its first event: the queue fills
            # a creation and a close each: more than the queue holds, with all the reader may
            # have taken in its one read before it waits
            for n in range((length + DEFAULT_NUM_EVENTS) // 2 + 100):
                os.close(os.open(root / f"n{n}.md", os.O_CREAT | os.O_WRONLY))
        started = Started(root, watcher, set(), [])
        assert started.changes_until(lambda got: got.rescan, timeout=120).rescan
        (root / "after.md").touch()  # heard again once the overflow is dealt with
        later = started.changes_until(
            lambda got: "after.md" in got.paths or got.rescan, timeout=120
        )
        assert "after.md" in later.paths
        assert not later.rescan
    finally:
        watcher.stop()


def test_folders_made_and_removed_for_months_leave_nothing_behind(tmp_path: Path) -> None:
    from watchdog.observers.inotify_c import InotifyFD

    from vaultsched.adapters.inotifywatch import _PrunedGroup

    fd = InotifyFD()
    fd.start()
    try:
        group = _PrunedGroup(_Lost(), fd, os.fsencode(tmp_path), is_recursive=True)
        for n in range(300):
            (tmp_path / f"tmp{n}").mkdir()
            group._add_all_callbacks(os.fsencode(tmp_path / f"tmp{n}"))
            (tmp_path / f"tmp{n}").rmdir()
            deadline = time.monotonic() + 10
            while len(group._active_callbacks_by_watch) > 1 and time.monotonic() < deadline:
                time.sleep(0.001)  # the removed folder's watch goes (inotify says so)
        assert len(group._inodes) < 100
        group.deactivate()
    finally:
        fd.stop()
        fd.join()


def test_a_folder_left_unwatched_at_the_watch_limit_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from watchdog.observers.inotify_c import InotifyFD

    from vaultsched.adapters.inotifywatch import _PrunedGroup

    (tmp_path / "A/B").mkdir(parents=True)
    (tmp_path / "C").mkdir()
    fd = InotifyFD()
    fd.start()
    add = fd.add_callback

    def limited(path: bytes, *args: object) -> object:
        if path != os.fsencode(tmp_path):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return add(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(fd, "add_callback", limited)
    try:
        group = _PrunedGroup(_Lost(), fd, os.fsencode(tmp_path), is_recursive=True)
        warnings = [r for r in caplog.records if "max_user_watches" in r.getMessage()]
        assert len(warnings) == 1  # said once, not once per folder
        group.deactivate()
    finally:
        fd.stop()
        fd.join()


def test_a_folder_made_then_swapped_for_a_link_is_never_watched_through_it(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A folder's creation is handled after the event is read: by then a link may stand in
    its place. Listed and watched through the link, every folder of where it leads (the home
    folder, /) would be watched, and its notes reported as the vault's."""
    from watchdog.observers.inotify_c import InotifyFD

    from vaultsched.adapters.inotifywatch import _PrunedGroup

    outside = tmp_path_factory.mktemp("outside")
    (outside / "sub").mkdir()
    vault = tmp_path / "vault"
    vault.mkdir()
    fds = _inotify_fds()
    fd = InotifyFD()
    fd.start()
    try:
        group = _PrunedGroup(_Lost(), fd, os.fsencode(vault), is_recursive=True)
        (vault / "X").symlink_to(outside, target_is_directory=True)  # was a folder when made
        group._add_all_callbacks(os.fsencode(vault / "X"))  # its creation, handled late
        assert _watched_inodes(_inotify_fds() - fds) == _inodes(vault, ".")
        group.deactivate()
    finally:
        fd.stop()
        fd.join()


# -- how long a batch waits -----------------------------------------------------------------


@pytest.fixture
def still(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultWatcher]:
    """A started watcher on an empty vault whose clock stands still: how long it says a batch
    is to wait tells what it made of the batch's events."""
    monkeypatch.setattr(watcher_module, "time", SimpleNamespace(monotonic=lambda: 1_000.0))
    root = tmp_path / "vault"
    root.mkdir()
    watcher = VaultWatcher(root, lambda rel: not is_ignored(rel, DIGESTS), lambda: None)
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.stop()


def _waits(watcher: VaultWatcher) -> float | None:
    """`due_in` once every event queued so far has been handled (and a moment more: the one
    a thread holds between two queues)."""
    deadline = time.monotonic() + 10
    for _ in range(2):
        while not (watcher.settled() and watcher.due_in() is not None):
            assert time.monotonic() < deadline, "the events never came"
            time.sleep(0.01)
        time.sleep(0.1)
    return watcher.due_in()


def test_a_note_saved_in_place_and_closed_is_taken_after_a_pause(still: VaultWatcher) -> None:
    (still.root / "n.md").write_text("---\nschedule: every 1h\n---\n")
    assert _waits(still) == pytest.approx(QUIET_SECONDS)
    assert still.take() == Changes(paths={"n.md"})
    assert still.due_in() is None


def test_a_note_renamed_onto_is_taken_after_a_pause(still: VaultWatcher) -> None:
    (still.root / "n.md").write_text("v1\n")
    _waits(still)
    still.take()
    temp = still.root / ".n.md.tmp"  # an editor's atomic save
    temp.write_text("v2\n")
    temp.replace(still.root / "n.md")
    assert _waits(still) == pytest.approx(QUIET_SECONDS)
    assert still.take() == Changes(paths={"n.md"})


def test_a_save_under_way_waits_the_whole_debounce(still: VaultWatcher) -> None:
    """Truncated and part-written, not closed: read now, the note would be half of itself."""
    with (still.root / "n.md").open("w") as handle:
        handle.write("---\nsched")
        handle.flush()
        assert _waits(still) == pytest.approx(DEBOUNCE_SECONDS)
        handle.write("ule: every 1h\n---\n")
    assert _waits(still) == pytest.approx(QUIET_SECONDS)


def test_a_note_another_program_holds_open_for_writing_waits(still: VaultWatcher) -> None:
    """One writer closed it, another still has it open: the close finished no save."""
    note = still.root / "n.md"
    note.write_text("v1\n")
    _waits(still)
    still.take()
    with note.open("a") as held:
        note.write_text("v2\n")
        assert _waits(still) == pytest.approx(DEBOUNCE_SECONDS)
        held.write("v3\n")
    assert _waits(still) == pytest.approx(QUIET_SECONDS)


def test_a_batch_with_a_note_gone_waits_the_whole_debounce(still: VaultWatcher) -> None:
    """A deletion may be the first half of a save (moved aside, written anew): never hurried,
    nor is the batch it is in."""
    (still.root / "gone.md").write_text("x\n")
    _waits(still)
    still.take()
    (still.root / "gone.md").unlink()
    (still.root / "saved.md").write_text("y\n")
    assert _waits(still) == pytest.approx(DEBOUNCE_SECONDS)
    assert still.take() == Changes(paths={"gone.md", "saved.md"})
