"""The note writer: atomic, never clobbering a concurrent edit, patient with a person typing."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from vaultsched.adapters import notes, statefs
from vaultsched.adapters.notes import NoteWriter, Outcome
from vaultsched.core import blocks, layout


class FakeTime:
    """Wall time that only moves when the writer sleeps."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _append(text: str, line: str) -> str:
    return text + line


def test_creates_and_updates(tmp_path: Path) -> None:
    writer = NoteWriter(tmp_path)
    assert writer.update("A/new.md", lambda t: t + "hello\n") is Outcome.WRITTEN
    assert (tmp_path / "A/new.md").read_text() == "hello\n"
    assert writer.update("A/new.md", lambda t: t) is Outcome.UNCHANGED
    assert not [p for p in (tmp_path / "A").iterdir() if p.name.startswith(".")]


def _xattrs_here(folder: Path) -> bool:
    probe = folder / ".probe"
    probe.write_text("")
    try:
        os.setxattr(probe, notes.WRITTEN_ATTR, b"x")
    except (OSError, AttributeError):
        return False
    finally:
        probe.unlink()
    return True


def test_a_write_marks_the_file_it_writes_and_creates_no_other(tmp_path: Path) -> None:
    """vaultsched's mark of its own write is on the note: one file made per write (a file
    creation was most of a burst's landing), and another process knows the write as its own."""
    if not _xattrs_here(tmp_path):
        pytest.skip("this file system keeps no extended attributes")
    note = tmp_path / "Tasks/n.md"
    note.parent.mkdir()
    note.write_text("Mine.\n")
    assert NoteWriter(tmp_path).update("Tasks/n.md", _append_block) is Outcome.WRITTEN
    assert not (tmp_path / layout.WRITTEN_DIR).exists()
    data = note.read_bytes()
    other = NoteWriter(tmp_path)  # another vaultsched process: nothing remembered in memory
    assert other.is_own("Tasks/n.md", data)
    assert not other.is_own("Tasks/n.md", data + b"typed\n")
    note.write_bytes(data + b"typed\n")  # saved in place: the mark stays, the text moved on
    assert not other.is_own("Tasks/n.md", note.read_bytes())
    replaced = note.with_name("new.md")
    replaced.write_bytes(data)  # saved by a rename: a file no vaultsched wrote
    replaced.replace(note)
    assert not other.is_own("Tasks/n.md", data)


def _temp_folders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folder of each note temp file written from now on."""
    folders: list[str] = []
    real = notes._write_synced

    def recorded(path: Path | str, data: bytes, **how: Any) -> notes._Written:
        fd = how.get("dir_fd")
        where = Path(f"/proc/self/fd/{fd}").readlink() if fd else Path(path).parent
        folders.append(str(where))
        return real(path, data, **how)

    monkeypatch.setattr(notes, "_write_synced", recorded)
    return folders


def test_a_note_s_next_text_is_written_beside_vaultsched_s_state_and_renamed_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note's folder sees only the rename: every file made there (a temp file's create,
    write, mark, close and move) is an event the watcher parses, and a sync tool may copy."""
    folders = _temp_folders(monkeypatch)
    note = tmp_path / "Tasks/n.md"
    note.parent.mkdir()
    note.write_text("Mine.\n")
    writer = NoteWriter(tmp_path)
    assert writer.update("Tasks/n.md", _append_block) is Outcome.WRITTEN
    assert writer.update("Tasks/new.md", lambda text: "New.\n") is Outcome.WRITTEN  # created
    assert folders == [str(tmp_path / layout.NOTE_TEMPS_DIR)] * 2
    assert sorted(p.name for p in note.parent.iterdir()) == ["n.md", "new.md"]
    assert list((tmp_path / layout.NOTE_TEMPS_DIR).iterdir()) == []
    assert note.read_text().startswith("Mine.\n") and writer.is_own("Tasks/n.md", note.read_bytes())


def test_a_linked_temp_folder_is_never_followed_the_note_s_own_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = _temp_folders(monkeypatch)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / layout.STATE_DIR).mkdir(parents=True)
    (tmp_path / layout.NOTE_TEMPS_DIR).symlink_to(outside)  # a sync put a link there
    note = tmp_path / "Tasks/n.md"
    note.parent.mkdir()
    note.write_text("Mine.\n")
    assert NoteWriter(tmp_path).update("Tasks/n.md", _append_block) is Outcome.WRITTEN
    assert folders == [str(note.parent)]
    assert list(outside.iterdir()) == [] and sorted(p.name for p in note.parent.iterdir()) == [
        "n.md"
    ]


def test_without_extended_attributes_the_mark_is_a_file_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object, **kwargs: object) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", unsupported)
    monkeypatch.setattr(os, "getxattr", unsupported)
    writer = NoteWriter(tmp_path)
    assert writer.update("n.md", _append_block) is Outcome.WRITTEN
    assert (tmp_path / layout.written_mark("n.md")).exists()
    assert NoteWriter(tmp_path).is_own("n.md", (tmp_path / "n.md").read_bytes())


def _append_block(text: str) -> str:
    return blocks.splice_block(text, blocks.RUNS, "## Runs\n")


def test_a_moved_task_note_is_not_recreated(tmp_path: Path) -> None:
    writer = NoteWriter(tmp_path)
    assert writer.update("gone.md", lambda t: t + "block\n", create=False) is Outcome.MISSING
    assert not (tmp_path / "gone.md").exists()


def test_keeps_mode_and_crlf_bytes(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_bytes(b"a\r\nb")
    note.chmod(0o600)
    old = time.time() - 10
    os.utime(note, (old, old))
    NoteWriter(tmp_path).update("n.md", lambda t: t + "\r\nc")
    assert note.read_bytes() == b"a\r\nb\r\nc"
    assert note.stat().st_mode & 0o777 == 0o600


def test_waits_for_a_recent_user_edit_to_settle(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("typed just now\n")
    clock = FakeTime(note.stat().st_mtime + 0.5)
    writer = NoteWriter(tmp_path, sleep=clock.sleep, wall_time=clock.time)
    assert writer.update("n.md", lambda t: t + "run\n") is Outcome.WRITTEN
    assert sum(clock.slept) >= 1.5
    assert note.read_text() == "typed just now\nrun\n"


def test_gives_up_waiting_after_max_wait(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("x\n")
    clock = FakeTime(note.stat().st_mtime)
    writer = NoteWriter(tmp_path, sleep=clock.sleep, wall_time=clock.time, max_wait=1.0, quiet=5.0)
    assert writer.update("n.md", lambda t: t + "y\n") is Outcome.WRITTEN
    assert sum(clock.slept) < 1.1


def test_own_writes_do_not_count_as_edits_even_across_processes(tmp_path: Path) -> None:
    NoteWriter(tmp_path).update("n.md", lambda t: "ours\n")
    clock = FakeTime(time.time())
    fresh = NoteWriter(tmp_path, sleep=clock.sleep, wall_time=clock.time)
    fresh.update("n.md", lambda t: t + "again\n")
    assert clock.slept == []


def test_a_write_held_up_after_its_rename_never_disowns_a_later_process_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon renamed its text over the note and was held up (a stopped process, a loaded
    machine) before marking it as its own; meanwhile `approve` wrote the note and marked its
    text. The daemon's late mark must not replace approve's: the note on disk would then look
    like a person's edit to both, and the daemon's next commit would put its older text in git."""
    note = tmp_path / "n.md"
    note.write_text("v1\n")
    real_fsync_dir = notes._fsync_dir
    daemon, other = NoteWriter(tmp_path), NoteWriter(tmp_path, quiet=0.0)

    def other_writes_meanwhile(folder: Path) -> None:
        real_fsync_dir(folder)
        if "daemon\n" in note.read_text() and "approve" not in note.read_text():
            assert other.update("n.md", lambda t: t + "approve\n") is Outcome.WRITTEN

    monkeypatch.setattr(notes, "_fsync_dir", other_writes_meanwhile)
    assert daemon.update("n.md", lambda t: t + "daemon\n") is Outcome.WRITTEN
    on_disk = note.read_bytes()
    assert on_disk == b"v1\ndaemon\napprove\n"
    assert daemon.is_own("n.md", on_disk)
    assert NoteWriter(tmp_path).is_own("n.md", on_disk)


@pytest.mark.skipif(not statefs.BYTE_LOCKS, reason="no open-file-description locks here")
def test_two_vaultsched_writes_racing_between_check_and_rename_both_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon checked the note was as it read it and, before its rename, `pause` wrote
    the note (a loaded machine preempts a thread anywhere). Both rename rather than save in
    place, so the daemon's rename would leave no trace of pause's line: it waits instead."""
    note = tmp_path / "n.md"
    note.write_text("v1\n")
    daemon = NoteWriter(tmp_path, quiet=0.0)
    other = NoteWriter(tmp_path, quiet=0.0, rename_wait=60.0)  # however loaded the machine
    real_still_at = notes._Read.still_at
    racers: list[threading.Thread] = []

    def pause_writes_in_the_window(read: Any, path: Path) -> bool:
        unchanged = real_still_at(read, path)
        if not racers:  # the daemon's check: pause's write comes now, and takes its time
            racers.append(threading.Thread(target=other.update, args=("n.md", _pause)))
            racers[0].start()
            racers[0].join(0.5)
        return unchanged

    monkeypatch.setattr(notes._Read, "still_at", pause_writes_in_the_window)
    assert daemon.update("n.md", lambda t: t + "daemon\n") is Outcome.WRITTEN
    racers[0].join()
    assert note.read_text() == "v1\ndaemon\npaused\n"


@pytest.mark.skipif(not statefs.BYTE_LOCKS, reason="no open-file-description locks here")
@pytest.mark.parametrize("holder", ["another write", "a sync"])
def test_a_note_whose_write_lock_stays_held_is_left_busy_never_renamed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: str
) -> None:
    """The holder may be slow, not stopped: renaming anyway, once tired of waiting, is the
    very race the lock is there to close. The write is left for later (the daemon's next
    landing, or `pause` saying so); once the lock is free it goes through."""
    monkeypatch.setattr(notes, "CONTENTION_SECONDS", 3.0)
    note = tmp_path / "n.md"
    note.write_text("v1\n")
    clock = FakeTime(time.time())
    writer = NoteWriter(tmp_path, quiet=0.0, sleep=clock.sleep, wall_time=clock.time)
    held: contextlib.AbstractContextManager[object]
    if holder == "a sync":
        held = NoteWriter(tmp_path).held_off(["n.md", "Gone.md"])
    else:
        key = f"inode:{note.stat().st_ino}"
        held = statefs.locked_key(tmp_path, layout.NOTE_LOCKS, key)
    with held:
        assert writer.update("n.md", _pause) is Outcome.BUSY
    assert note.read_text() == "v1\n"
    assert sum(clock.slept) >= notes.CONTENTION_SECONDS
    assert writer.update("n.md", _pause) is Outcome.WRITTEN
    assert note.read_text() == "v1\npaused\n"


@pytest.mark.parametrize("planted", ["link", "fifo", "folder"])
def test_a_write_lock_file_a_sync_replaced_is_refused_and_the_write_goes_ahead(
    tmp_path: Path, planted: str, caplog: pytest.LogCaptureFixture
) -> None:
    note, target = tmp_path / "n.md", tmp_path / "elsewhere.md"
    note.write_text("v1\n")
    target.write_text("not ours\n")
    lock = tmp_path / layout.NOTE_LOCKS
    lock.parent.mkdir(parents=True)
    {"link": lambda: lock.symlink_to(target), "fifo": lambda: os.mkfifo(lock),
     "folder": lock.mkdir}[planted]()  # fmt: skip
    assert NoteWriter(tmp_path, quiet=0.0).update("n.md", _pause) is Outcome.WRITTEN
    assert note.read_text() == "v1\npaused\n"
    assert target.read_text() == "not ours\n"
    assert "not guarded against each other" in caplog.text


@pytest.mark.skipif(not statefs.BYTE_LOCKS, reason="no open-file-description locks here")
def test_a_sync_waits_for_a_note_s_write_lock_a_while_then_gives_up(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("v1\n")
    key = f"inode:{note.stat().st_ino}"
    writer = NoteWriter(tmp_path)
    stopped_write = statefs.locked_key(tmp_path, layout.NOTE_LOCKS, key)
    with stopped_write, pytest.raises(notes.NotesBusy), writer.held_off(["n.md"], within=0.2):
        pass
    other = statefs.locked_key(tmp_path, layout.NOTE_LOCKS, key, wait=False)
    with writer.held_off(["n.md", "new.md"], within=0.2), other as held:
        assert not held  # free again: the sync holds it
    with statefs.locked_key(tmp_path, layout.NOTE_LOCKS, key, wait=False) as held:
        assert held  # and let it go


def _pause(text: str) -> str:
    return text + "paused\n"


def test_redoes_the_splice_when_the_note_changes_underneath(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("v1\n")
    old = time.time() - 10
    os.utime(note, (old, old))
    seen: list[str] = []

    def transform(text: str) -> str:
        seen.append(text)
        if len(seen) == 1:  # a person saves while we are computing
            note.write_text("v2 typed\n")
            os.utime(note, (old + 1, old + 1))
        return text + "[block]\n"

    assert NoteWriter(tmp_path).update("n.md", transform) is Outcome.WRITTEN
    assert seen == ["v1\n", "v2 typed\n"]
    assert note.read_text() == "v2 typed\n[block]\n"


def test_never_writes_a_note_with_conflict_markers(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    text = "a\n<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> other\n"
    note.write_text(text)
    os.utime(note, (1, 1))
    assert NoteWriter(tmp_path).update("n.md", lambda t: t + "x") is Outcome.CONFLICTED
    assert note.read_text() == text


def _racing_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: bytes = b"typed in the gap\n"
) -> tuple[Path, list[str]]:
    """n.md holding "v1", and our first rename racing a save: `line` lands in the file about
    to be replaced. Returns the note and the paths renamed over."""
    note = tmp_path / "n.md"
    note.write_text("v1\n")
    real_replace = os.replace
    calls: list[str] = []

    def racing_replace(src: str | Path, dst: str | Path, **dir_fds: int | None) -> None:
        if "dst_dir_fd" in dir_fds:  # a file under .vaultsched/ (statefs), not the note
            return real_replace(src, dst, **dir_fds)
        if not calls:
            with Path(dst).open("ab") as handle:
                handle.write(line)
        calls.append(str(dst))
        real_replace(src, dst, **dir_fds)  # from the note temp folder

    monkeypatch.setattr(notes.os, "replace", racing_replace)
    return note, calls


def _saves_beating(note: Path, retries: Callable[[int], bool]) -> Callable[[str], str]:
    """A run-block splice during whose n-th call (counting from 1) a save lands in place,
    wherever `retries(n)` holds: the rename that follows loses its race."""
    calls = 0

    def transform(text: str) -> str:
        nonlocal calls
        calls += 1
        if retries(calls):
            with note.open("a") as handle:
                handle.write(f"save during call {calls}\n")
        return _splice_run(text)

    return transform


def test_a_save_racing_the_rename_is_merged_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor writing into the old file in the instant between our check and our rename."""
    note, calls = _racing_note(tmp_path, monkeypatch)
    os.utime(note, (1, 1))
    outcome = NoteWriter(tmp_path).update(
        "n.md", lambda t: t.replace("[block]\n", "") + "[block]\n"
    )
    assert outcome is Outcome.WRITTEN
    assert note.read_text() == "v1\ntyped in the gap\n[block]\n"
    assert len([c for c in calls if c.endswith("n.md")]) == 2  # the merge took one more write


def test_concurrent_appends_and_blocks_all_survive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program appending lines every few ms while 100 runs land: every line it wrote is
    kept, and every run is in the block once the next write gets through. Under load a write
    may lose the race for its whole budget (BUSY); it never fails and never clobbers, and a
    save its rename displaced is merged back or, as the last resort, kept in recovered/.
    Short budgets bound the test's time on a loaded machine, where most writes lose every race
    and give up (BUSY): what races the program are the writes that get through, as many with
    these budgets as with longer ones."""
    monkeypatch.setattr(notes, "CONTENTION_SECONDS", 0.05)  # a few tries: backoffs reach 50 ms
    monkeypatch.setattr(notes, "RETURN_SECONDS", 2.0)
    note = tmp_path / "n.md"
    note.write_text("start\n")
    writer = NoteWriter(tmp_path, quiet=0.0)
    stop = threading.Event()
    appended: list[str] = []
    landed: list[str] = []

    def person() -> None:
        while not stop.is_set():
            line = f"user {len(appended)}\n"
            with note.open("a") as handle:
                handle.write(line)
            appended.append(line)
            time.sleep(0.003)

    def rebuild(text: str) -> str:  # as the engine does: the block from every run so far
        kept = [line for line in text.splitlines(keepends=True) if not line.startswith("run ")]
        return "".join(kept + landed)

    thread = threading.Thread(target=person)
    thread.start()
    try:
        for n in range(100):
            landed.append(f"run {n}\n")
            assert writer.update("n.md", rebuild) in (Outcome.WRITTEN, Outcome.BUSY)
    finally:
        stop.set()
        thread.join()
    assert writer.update("n.md", rebuild) in (Outcome.WRITTEN, Outcome.UNCHANGED)
    final = note.read_text()
    assert final.startswith("start\n")
    recovered = tmp_path / layout.RECOVERED_DIR
    saved = [p.read_text() for p in recovered.iterdir()] if recovered.exists() else []
    kept = final + "".join(saved)
    assert all(line in kept for line in appended)
    assert all(line in final for line in landed)


def test_a_note_that_never_stops_changing_is_left_busy(tmp_path: Path) -> None:
    """Every rename loses the race: the writer backs off, gives up after its budget, and
    leaves the note as the other program wrote it."""
    clock = FakeTime(1_000.0)
    note = tmp_path / "n.md"
    note.write_text("v0\n")
    writer = NoteWriter(tmp_path, quiet=0.0, sleep=clock.sleep, wall_time=clock.time)
    saves = iter(range(1, 10_000))

    def racing(text: str) -> str:  # another program saves between our read and our rename
        note.write_text(f"v{next(saves)}\n")
        return text + "block\n"

    assert writer.update("n.md", racing) is Outcome.BUSY
    assert "block" not in note.read_text()
    assert clock.now - 1_000.0 >= notes.CONTENTION_SECONDS
    assert len(set(clock.slept)) > 1  # random pauses, not a fixed rhythm


# An editor's in-place save, held open half-way: it truncates the note, writes `prefix`, tells
# us, waits, then writes the rest and closes (Obsidian, like most editors, saves in place).
HALF_SAVE = r"""
import sys, time
path, prefix, rest = sys.argv[1:]
with open(path, "w", encoding="utf-8") as handle:
    handle.write(prefix)
    handle.flush()
    print("saving", flush=True)
    time.sleep(0.4)
    handle.write(rest)
"""


@pytest.mark.parametrize("prefix", ["", "v2 "])
def test_a_save_under_way_is_waited_for_never_read_half_done(tmp_path: Path, prefix: str) -> None:
    """Without the wait the writer splices into an empty or partial note and its rename sends
    the editor's text into a file nobody reads again."""
    note = tmp_path / "n.md"
    note.write_text("v1\n")
    editor = subprocess.Popen(
        [sys.executable, "-c", HALF_SAVE, str(note), prefix, "v2 typed\n"[len(prefix) :]],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert editor.stdout is not None and editor.stdout.readline() == "saving\n"
    writer = NoteWriter(tmp_path, quiet=0.0, max_wait=0.0)  # no patience: only the save matters
    assert writer.update("n.md", _splice_run) is Outcome.WRITTEN
    editor.communicate(timeout=10)
    assert editor.returncode == 0
    assert note.read_text() == _splice_run("v2 typed\n")


def _splice_run(text: str) -> str:
    return blocks.splice_block(text, blocks.RUNS, "run")


def test_a_late_save_merges_with_edits_made_on_our_write_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The editor re-read the note after our rename (without its late line) and saved again."""
    note, _ = _racing_note(tmp_path, monkeypatch)
    real_fsync_dir = notes._fsync_dir

    def then_typed_again(folder: Path) -> None:
        real_fsync_dir(folder)
        if "typed after" not in note.read_text():
            with note.open("a") as handle:  # in place, onto our freshly renamed text
                handle.write("typed after\n")

    monkeypatch.setattr(notes, "_fsync_dir", then_typed_again)
    assert NoteWriter(tmp_path, quiet=0.0).update("n.md", _splice_run) is Outcome.WRITTEN
    text = note.read_text()
    assert text.index("typed in the gap") < text.index("typed after")
    assert text.count(blocks.RUNS_BEGIN) == 1 and text.startswith("v1\n")


def test_a_late_save_stays_pending_while_the_retry_races_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note, calls = _racing_note(tmp_path, monkeypatch)
    # Call 2 is the retry that merges the late save: another save beats it too.
    transform = _saves_beating(note, lambda n: n == 2)
    assert NoteWriter(tmp_path, quiet=0.0).update("n.md", transform) is Outcome.WRITTEN
    text = note.read_text()
    assert "typed in the gap" in text and "save during call 2" in text
    assert [c for c in calls if c.endswith("n.md")] == [str(note)] * 2


def test_a_program_holding_the_note_open_delays_a_write_but_cannot_block_it(
    tmp_path: Path,
) -> None:
    note = tmp_path / "n.md"
    note.write_text("v1\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", HALF_SAVE, str(note), "v1\n", ""],  # open, writing nothing more
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "saving\n"
        holder.send_signal(signal.SIGSTOP)  # holds the note open until we let it go
        assert NoteWriter(tmp_path, quiet=0.0).update("n.md", _splice_run) is Outcome.WRITTEN
        assert note.read_text() == _splice_run("v1\n")
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.communicate(timeout=10)


def test_a_late_save_that_cannot_be_merged_back_is_recovered_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program rewriting the note faster than every retry: the displaced save is kept."""
    note, _ = _racing_note(tmp_path, monkeypatch)
    monkeypatch.setattr(notes, "CONTENTION_SECONDS", 0.01)
    monkeypatch.setattr(notes, "RETURN_SECONDS", 0.05)
    transform = _saves_beating(note, lambda n: n > 1)
    # The first rename went through (and is committed); the save it displaced never got back.
    assert NoteWriter(tmp_path, quiet=0.0).update("n.md", transform) is Outcome.WRITTEN
    (recovered,) = (tmp_path / layout.RECOVERED_DIR).iterdir()
    assert recovered.name.startswith("n.md.")
    assert recovered.read_text() == "v1\ntyped in the gap\n"


def test_a_displaced_save_outlasts_the_plain_contention_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain write gives up after CONTENTION_SECONDS; one whose rename displaced a save
    keeps going (RETURN_SECONDS) until the save is back in the note."""
    clock = FakeTime(1_000.0)
    note, _ = _racing_note(tmp_path, monkeypatch)
    monkeypatch.setattr(notes, "CONTENTION_SECONDS", 0.01)
    beaten = 40  # losses whose backoff pauses add up to well over 0.01 s
    transform = _saves_beating(note, lambda n: 1 < n <= beaten)
    writer = NoteWriter(tmp_path, quiet=0.0, sleep=clock.sleep, wall_time=clock.time)
    assert writer.update("n.md", transform) is Outcome.WRITTEN
    assert clock.now - 1_000.0 > notes.CONTENTION_SECONDS
    assert "typed in the gap" in note.read_text()
    assert not (tmp_path / layout.RECOVERED_DIR).exists()


def test_a_late_save_that_is_not_text_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note, _ = _racing_note(tmp_path, monkeypatch, b"\xff\xfe pasted binary\n")
    assert NoteWriter(tmp_path, quiet=0.0).update("n.md", _splice_run) is Outcome.WRITTEN
    assert note.read_text() == _splice_run("v1\n")
    (recovered,) = (tmp_path / layout.RECOVERED_DIR).iterdir()
    assert recovered.read_bytes() == b"v1\n\xff\xfe pasted binary\n"


def _overwritten_with_stale_text(note: Path) -> None:
    """What an editor does that read the note before our write-back: saves over it."""
    note.write_text(_splice_run("v1\n") + "stale save\n")


def test_a_written_back_save_that_a_stale_save_drops_is_written_back_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note, _ = _racing_note(tmp_path, monkeypatch)
    writer = NoteWriter(tmp_path, quiet=0.0)
    assert writer.update("n.md", _splice_run) is Outcome.WRITTEN
    assert "typed in the gap" in note.read_text()
    _overwritten_with_stale_text(note)
    assert writer.update("n.md", _splice_run) is Outcome.WRITTEN
    text = note.read_text()
    assert "typed in the gap" in text and "stale save" in text
    assert writer.update("n.md", _splice_run) is Outcome.UNCHANGED  # seen to stick: watch over
    assert not writer._watched


def test_a_written_back_save_is_watched_for_a_minute_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note, _ = _racing_note(tmp_path, monkeypatch)
    clock = FakeTime(time.time())
    writer = NoteWriter(tmp_path, quiet=0.0, sleep=clock.sleep, wall_time=clock.time)
    assert writer.update("n.md", _splice_run) is Outcome.WRITTEN
    _overwritten_with_stale_text(note)
    clock.now += notes.DISPLACED_WATCH_SECONDS
    writer.update("n.md", _splice_run)
    assert "typed in the gap" not in note.read_text()  # a person's deletion by then, let it be


def test_a_watched_save_in_a_note_without_a_final_newline_is_put_back_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note, _ = _racing_note(tmp_path, monkeypatch, b"\nnew")
    note.write_text("a\nb")
    writer = NoteWriter(tmp_path, quiet=0.0)
    for n in range(4):
        writer.update(
            "n.md", functools.partial(blocks.splice_block, markers=blocks.RUNS, inner=f"{n}")
        )
    lines = note.read_text().splitlines()
    assert lines.count("b") == 1 and lines.count("new") == 1 and not writer._watched


@pytest.mark.parametrize("ending", ["moved", "error"])
def test_a_displaced_save_is_recovered_however_the_write_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    note, _ = _racing_note(tmp_path, monkeypatch)
    calls = 0

    def transform(text: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2 and ending == "error":
            raise ValueError("a transform that fails")
        return _splice_run(text)

    real_fsync_dir = notes._fsync_dir

    def then_moved(folder: Path) -> None:
        real_fsync_dir(folder)
        if ending == "moved" and note.exists():
            note.rename(tmp_path / "Moved.md")  # the person renames the note meanwhile

    monkeypatch.setattr(notes, "_fsync_dir", then_moved)
    writer = NoteWriter(tmp_path, quiet=0.0)
    if ending == "error":
        with pytest.raises(ValueError):
            writer.update("n.md", transform, create=False)
    else:
        assert writer.update("n.md", transform, create=False) is Outcome.MISSING
    (recovered,) = (tmp_path / layout.RECOVERED_DIR).iterdir()
    assert recovered.read_text() == "v1\ntyped in the gap\n"


def test_a_write_through_a_symlink_out_of_the_vault_is_refused(tmp_path: Path) -> None:
    """A sync can replace a folder (or a note) with a link to anywhere on the machine."""
    root, outside = tmp_path / "vault", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "n.md").write_text("theirs\n")
    (root / "Linked").symlink_to(outside)
    (root / "note.md").symlink_to(outside / "n.md")
    writer = NoteWriter(root)
    assert writer.update("Linked/n.md", lambda t: t + "block\n") is Outcome.OUTSIDE
    assert writer.update("Linked/new.md", lambda t: t + "block\n") is Outcome.OUTSIDE
    assert writer.update("note.md", lambda t: t + "block\n") is Outcome.OUTSIDE
    assert sorted(p.name for p in outside.iterdir()) == ["n.md"]
    assert (outside / "n.md").read_text() == "theirs\n"


@pytest.mark.parametrize(
    "via", ["Deep/Er/Linked/n.md", "Deep/Er/Linked/./n.md", "Up/../Linked/n.md"]
)
def test_a_link_deep_in_a_note_s_path_leading_out_is_refused_and_one_within_is_not(
    tmp_path: Path, via: str
) -> None:
    """Each folder on a note's way is looked at: a link three folders down, or one reached
    through a path spelled unusually, is followed only where it stays in the vault."""
    root, outside = tmp_path / "vault", tmp_path / "outside"
    (root / "Deep/Er").mkdir(parents=True)
    (root / "Up").mkdir()
    (root / "Real").mkdir()
    outside.mkdir()
    (outside / "n.md").write_text("theirs\n")
    (root / "Deep/Er/Linked").symlink_to(outside)
    (root / "Linked").symlink_to(outside)
    writer = NoteWriter(root)
    assert writer.update(via, lambda t: t + "block\n") is Outcome.OUTSIDE
    assert (outside / "n.md").read_text() == "theirs\n"
    (root / "Deep/Er/Linked").unlink()
    (root / "Deep/Er/Linked").symlink_to(root / "Real")  # a link within the vault: followed
    assert writer.update("Deep/Er/Linked/n.md", lambda t: "mine\n") is Outcome.WRITTEN
    assert (root / "Real/n.md").read_text() == "mine\n"


def test_a_batch_syncs_each_folder_once_after_its_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst's notes live in a few folders: one folder fsync each, not one per note."""
    spy = mock.Mock(wraps=notes._fsync_dir)  # the real fsync, each call counted
    monkeypatch.setattr(notes, "_fsync_dir", spy)
    writer = NoteWriter(tmp_path)
    rels = [f"{folder}/n{n}.md" for folder in ("A", "B") for n in range(3)]
    for rel in rels:
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("Mine.\n")
    with writer.batch():
        threads = [
            threading.Thread(target=writer.update, args=(rel, _append_block)) for rel in rels
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert spy.call_count == 0  # not yet: once the batch is done
    assert sorted(c.args[0] for c in spy.call_args_list) == [tmp_path / "A", tmp_path / "B"]
    assert all(blocks.RUNS_BEGIN in (tmp_path / rel).read_text() for rel in rels)
    writer.update("A/n0.md", lambda text: text + "more\n")  # outside a batch: at once
    assert spy.call_count == 3 and spy.call_args.args[0] == tmp_path / "A"


def test_a_temp_folder_the_note_cannot_be_renamed_from_falls_back_to_the_note_s_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bind mount: the same device, and still no rename across it (EXDEV)."""
    folders = _temp_folders(monkeypatch)
    real = os.replace

    def across_mounts(src: str, dst: str, **how: int | None) -> None:
        if how.get("src_dir_fd") is not None and "dst_dir_fd" not in how:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst, **how)

    monkeypatch.setattr(notes.os, "replace", across_mounts)
    note = tmp_path / "Tasks/n.md"
    note.parent.mkdir()
    note.write_text("Mine.\n")
    assert NoteWriter(tmp_path).update("Tasks/n.md", _append_block) is Outcome.WRITTEN
    assert folders == [str(tmp_path / layout.NOTE_TEMPS_DIR), str(note.parent)]
    assert note.read_text().startswith("Mine.\n") and len(list(note.parent.iterdir())) == 1


def test_the_note_files_fsyncs_are_timed_for_landing_to_judge_the_disk(tmp_path: Path) -> None:
    from vaultsched.adapters.notes import SyncTimes

    times = SyncTimes()
    before = times.totals()
    assert times.mean_since(*before) is None
    with (tmp_path / "f").open("w") as handle:
        for _ in range(3):
            times.fsync(handle.fileno())
    assert times.count == 3 and times.seconds > 0
    assert times.mean_since(*before, at_least=4) is None  # too few to say
    mean = times.mean_since(*before, at_least=3)
    assert mean is not None and mean == pytest.approx(times.seconds / 3)
    writer = NoteWriter(tmp_path)
    (tmp_path / "n.md").write_text("a\n")
    assert writer.update("n.md", lambda t: t + "b\n") is Outcome.WRITTEN
    assert writer.syncs.count == 1  # the note's own temp file
