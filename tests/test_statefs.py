"""Symlinks a pull can bring under .vaultsched/ are refused, never followed: nothing is
written outside the vault, the run lands what it safely can, and doctor names the link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Cli, DaemonProcess, git, runs, wait_for, write_note

from vaultsched.adapters import statefs
from vaultsched.core import layout
from vaultsched.core.model import Status

TASK = "---\nschedule: every 1s\ncommand: echo hello-from-the-task\n---\nBody.\n"


def _months() -> list[str]:
    """This month and the next (a run may start just after midnight at the month's end)."""
    now = datetime.now(UTC)
    return [f"{m:%Y-%m}" for m in (now, now.replace(day=1) + timedelta(days=32))]


LINKS = {
    "logs": [".vaultsched/logs"],
    "task log folder": [".vaultsched/logs/Tasks"],
    "ledger month": [f".vaultsched/runs/{m}" for m in _months()],
    "task locks": [".vaultsched/state/running"],
    "state": [".vaultsched/state"],
    "recovered": [".vaultsched/recovered"],
    "the state folder itself": [".vaultsched"],
}


def _link(root: Path, rel: str, outside: Path) -> None:
    target = outside / rel.replace("/", "_")
    target.mkdir(parents=True)
    link = root / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_dir() and not link.is_symlink():  # .vaultsched: move its config along
        for child in link.iterdir():
            child.rename(target / child.name)
        link.rmdir()
    link.symlink_to(target, target_is_directory=True)


def _written_outside(outside: Path) -> list[str]:
    moved = {".gitignore", "config.toml"}  # what the .vaultsched case moved there itself
    return sorted(str(p) for p in outside.rglob("*") if p.is_file() and p.name not in moved)


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(LINKS))
def test_a_link_under_vaultsched_is_refused_never_followed(
    case: str, cli: Cli, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    root, outside = cli.root, tmp_path / "outside"
    write_note(root, "Tasks/Leak.md", TASK)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "task")
    for rel in LINKS[case]:
        _link(root, rel, outside)

    now = cli("run-now", "Tasks/Leak")
    daemon = daemons(root)
    wait_for(  # it keeps firing whatever it can, or (its own lock refused) does not start
        lambda: daemon.proc.poll() is not None or daemon.output().count("Tasks/Leak") >= 2,
        what="fires",
    )
    daemon.stop()
    assert ("symlink" in daemon.output()) == (case != "recovered")  # the one it never needs

    assert _written_outside(outside) == []
    if case == "the state folder itself":  # its config is behind the link: nothing starts
        for result in (now, cli("doctor")):
            assert result.code == 2
            assert "symlink: refused" in result.err and result.err.count("\n") == 1
        assert daemon.proc.returncode == 2 and runs(root) == []
        return
    recorded = case in ("logs", "task log folder", "recovered", "task locks", "state")
    assert bool(runs(root)) == recorded
    if case in ("logs", "task log folder", "recovered"):  # everything but the log lands
        assert now.code == 0, now.err
        assert runs(root)[0].status is Status.SUCCESS
        assert "hello-from-the-task" in (root / "Tasks/Leak.md").read_text()
    else:  # its lock or its ledger is behind the link: not run, and said so
        assert now.code == 1
        assert "symlink" in now.err
        assert all(r.status is Status.ERROR for r in runs(root))
        assert "hello-from-the-task" not in now.out
    if case == "state":
        assert daemon.proc.returncode != 0
        assert "cannot take the daemon lock" in daemon.output()

    result = cli("doctor", "--json")
    found = {c["check"]: c for c in json.loads(result.out)}
    assert result.code == 1
    assert found["state links"]["status"] == "fail"
    shown = LINKS[case][0] if case != "state" else ".vaultsched/state"
    assert shown in found["state links"]["detail"]


def test_the_final_component_and_fifos_are_refused(tmp_path: Path) -> None:
    (tmp_path / ".vaultsched" / "state").mkdir(parents=True)
    secret = tmp_path / "elsewhere.json"
    secret.write_text("outside")
    (tmp_path / ".vaultsched/state/marks.json").symlink_to(secret)
    os.mkfifo(tmp_path / ".vaultsched/state/fifo.json")
    with pytest.raises(statefs.LinkRefused):
        statefs.read_bytes(tmp_path, ".vaultsched/state/marks.json")
    with pytest.raises(statefs.LinkRefused):
        statefs.write_atomic(tmp_path, ".vaultsched/state/marks.json", b"{}")
    with pytest.raises(OSError, match="not a regular file"):
        statefs.read_bytes(tmp_path, ".vaultsched/state/fifo.json")  # and never hangs
    assert secret.read_text() == "outside"
    assert statefs.links(tmp_path) == [".vaultsched/state/marks.json"]
    with pytest.raises(ValueError):
        statefs.read_bytes(tmp_path, ".vaultsched/../notes.md")


def test_a_vault_reached_through_a_link_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / ".vaultsched").mkdir(parents=True)
    (tmp_path / "via").symlink_to(real)
    statefs.write_atomic(tmp_path / "via", ".vaultsched/state/marks.json", b"{}")
    assert (real / ".vaultsched/state/marks.json").read_bytes() == b"{}"


@pytest.mark.parametrize("kind", ["link", "fifo", "huge"])
def test_the_vault_config_is_never_read_through_a_link_or_a_fifo(
    cli: Cli, tmp_path: Path, kind: str
) -> None:
    """A synced `.vaultsched/config.toml` that is a symlink (to any file on this machine), a
    FIFO (a read would hang) or a huge file is refused with one line, never read."""
    config = cli.root / ".vaultsched/config.toml"
    config.unlink()
    if kind == "link":
        secret = tmp_path / "elsewhere.toml"
        secret.write_text('timezone = "Europe/Warsaw"\n')
        config.symlink_to(secret)
    elif kind == "fifo":
        os.mkfifo(config)
    else:
        config.write_text("# padding\n" * 200_000)
    result = cli("list", timeout=30)
    assert result.code == 2
    assert result.err.count("\n") == 1 and ".vaultsched/config.toml" in result.err


def test_a_listing_is_kept_while_its_folder_is_unchanged_and_read_again_once_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".vaultsched/runs"
    folder.mkdir(parents=True)
    (folder / "a").write_text("")
    later = time.time_ns() + 10 * statefs.RACY_NS  # the folder's last change is long past
    monkeypatch.setattr(statefs.time, "time_ns", lambda: later)
    first = statefs.listing(tmp_path, ".vaultsched/runs")
    assert statefs.listing(tmp_path, ".vaultsched/runs", first) is first  # not read again
    (folder / "b").write_text("")
    assert [e.name for e in statefs.listing(tmp_path, ".vaultsched/runs", first).entries] == [
        "a",
        "b",
    ]


FINE, COARSE = 1_764_000_000_123_456_789, 1_764_000_000_000_000_000


@pytest.mark.parametrize(
    ("mtime", "ctime", "after_ms", "kept"),
    [
        (FINE, FINE, 10, False),  # nanoseconds: within some clock ticks
        (FINE, FINE, 199, False),
        (FINE, FINE, 200, True),  # past them
        (COARSE, FINE, 200, True),  # one time with nanoseconds tells the file system's
        (COARSE, COARSE, 200, False),  # whole seconds: within two (FAT's)
        (COARSE, COARSE, 2_999, False),
        (COARSE, COARSE, 3_000, True),
        (FINE - 456_789, FINE - 456_789, 200, False),  # whole milliseconds: taken as coarse
        (FINE, FINE, -5_000, False),  # a time ahead of this clock
    ],
)
def test_a_folder_s_listing_is_kept_once_past_its_file_system_s_time_granularity(
    mtime: int, ctime: int, after_ms: int, kept: bool
) -> None:
    now = max(mtime, ctime) + after_ms * 1_000_000
    assert statefs.settled(mtime, ctime, now) is kept


def test_the_clock_is_read_before_the_folder_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change during a slow read (the interpreter busy elsewhere) may share the stamp the
    read saw: only the time before the read tells whether that can be."""
    (tmp_path / ".vaultsched/runs").mkdir(parents=True)
    changed = (tmp_path / ".vaultsched/runs").stat().st_ctime_ns
    clock = [changed + 1_000]
    monkeypatch.setattr(statefs.time, "time_ns", lambda: clock[0])
    real = statefs._listed

    def slow_read(dir_fd: int) -> list[statefs.Entry]:
        clock[0] += 10 * statefs.RACY_NS  # the read took long
        return real(dir_fd)

    monkeypatch.setattr(statefs, "_listed", slow_read)
    assert statefs.listing(tmp_path, ".vaultsched/runs").stamp is None


def test_a_listing_made_just_after_its_folder_changed_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another change within the change time's granularity could leave no trace in it.
    (tmp_path / ".vaultsched/runs").mkdir(parents=True)
    changed = (tmp_path / ".vaultsched/runs").stat().st_ctime_ns
    monkeypatch.setattr(statefs.time, "time_ns", lambda: changed + 1000)
    now = statefs.listing(tmp_path, ".vaultsched/runs")
    assert now.stamp is None
    assert statefs.listing(tmp_path, ".vaultsched/runs", now) is not now


@pytest.mark.skipif(not statefs.BYTE_LOCKS, reason="no open-file-description locks here")
def test_a_keyed_lock_is_one_byte_of_one_file_held_against_threads_and_processes(
    tmp_path: Path,
) -> None:
    """A task's lock is one byte of a file shared by every task: its holder excludes another
    open of it in this thread, another thread and another process, never another key; it is
    let go when its holder leaves; one file is made for any number of keys."""
    rel = layout.TASK_LOCKS
    with statefs.locked_key(tmp_path, rel, "Tasks/A") as mine:
        assert mine
        with statefs.locked_key(tmp_path, rel, "Tasks/A", wait=False) as again:
            assert not again
        with statefs.locked_key(tmp_path, rel, "Tasks/B", wait=False) as other:
            assert other
        seen: list[bool] = []

        def elsewhere() -> None:
            with statefs.locked_key(tmp_path, rel, "Tasks/A", wait=False) as held:
                seen.append(held)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert seen == [False]
        assert _in_another_process(tmp_path, rel, "Tasks/A") == "held"
        assert _in_another_process(tmp_path, rel, "Tasks/C") == "free"
    assert _in_another_process(tmp_path, rel, "Tasks/A") == "free"
    assert [p.name for p in (tmp_path / layout.RUNNING_DIR).iterdir()] == ["tasks.lock"]


@pytest.mark.skipif(not statefs.BYTE_LOCKS, reason="no open-file-description locks here")
def test_a_keyed_lock_waited_for_is_taken_once_its_holder_lets_go(tmp_path: Path) -> None:
    order: list[str] = []
    taken = threading.Event()

    def waiter() -> None:
        taken.wait(10)
        with statefs.locked_key(tmp_path, layout.TASK_LOCKS, "Tasks/A") as held:
            order.append(f"waiter {held}")

    thread = threading.Thread(target=waiter)
    with statefs.locked_key(tmp_path, layout.TASK_LOCKS, "Tasks/A"):
        thread.start()
        taken.set()
        time.sleep(0.2)  # the waiter blocks in the kernel meanwhile
        order.append("holder done")
    thread.join(10)
    assert order == ["holder done", "waiter True"]


def test_keys_fall_on_bytes_apart() -> None:
    offsets = {statefs.key_offset(f"Tasks/Plan {n // 50}/Task {n}") for n in range(10_000)}
    assert len(offsets) == 10_000 and all(0 <= o < 2**62 for o in offsets)


def _in_another_process(root: Path, rel: str, key: str) -> str:
    script = (
        "import sys; from pathlib import Path; from vaultsched.adapters import statefs\n"
        "with statefs.locked_key(Path(sys.argv[1]), sys.argv[2], sys.argv[3], wait=False) as f:\n"
        "    print('free' if f else 'held')\n"
    )
    argv = [sys.executable, "-c", script, str(root), rel, key]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


SPARE, CLAIMED = ".vaultsched/logs/T/.spare-log", ".vaultsched/logs/T/run.log"
APPEND = os.O_WRONLY | os.O_APPEND


def test_a_file_made_ahead_becomes_the_file_claimed_emptied_first(tmp_path: Path) -> None:
    logs = tmp_path / ".vaultsched/logs/T"
    logs.mkdir(parents=True)
    assert statefs.claim(tmp_path, SPARE, CLAIMED, APPEND) is None  # none made ahead
    (logs / ".spare-log").write_text("written there by a sync")
    fd = statefs.claim(tmp_path, SPARE, CLAIMED, APPEND)
    assert fd is not None
    os.write(fd, b"the run's own")
    os.close(fd)
    assert (logs / "run.log").read_text() == "the run's own"
    assert not (logs / ".spare-log").exists()


@pytest.mark.parametrize("planted", ["link", "hard link", "fifo", "writable by all", "folder"])
def test_what_a_sync_puts_at_the_spare_s_name_is_never_written(
    tmp_path: Path, planted: str
) -> None:
    logs = tmp_path / ".vaultsched/logs/T"
    logs.mkdir(parents=True)
    victim = tmp_path / "Note.md"
    victim.write_text("a person's note")
    spare = logs / ".spare-log"
    if planted == "link":
        spare.symlink_to(victim)
    elif planted == "hard link":
        os.link(victim, spare)
    elif planted == "fifo":
        os.mkfifo(spare)
    elif planted == "writable by all":
        spare.touch()
        spare.chmod(0o666)
    else:
        spare.mkdir()
    assert statefs.claim(tmp_path, SPARE, CLAIMED, APPEND) is None  # and never hangs
    assert victim.read_text() == "a person's note"
    assert not (logs / "run.log").exists()  # never moved there: the run makes its file
    assert (planted == "folder") == spare.exists()  # taken away, unless a folder


def test_no_file_is_claimed_before_its_folder_exists(tmp_path: Path) -> None:
    assert statefs.claim(tmp_path, SPARE, CLAIMED, APPEND) is None
    assert not (tmp_path / ".vaultsched").exists()


def test_a_spare_swapped_as_it_is_renamed_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / ".vaultsched/logs/T"
    logs.mkdir(parents=True)
    (logs / ".spare-log").touch()
    victim = tmp_path / "Note.md"
    victim.write_text("a person's note")
    real_rename = os.rename

    def swapped(src: str, dst: str, **dirs: int) -> None:  # a racer wins between open and rename
        os.unlink(src, dir_fd=dirs["src_dir_fd"])
        os.link(victim, src, dst_dir_fd=dirs["src_dir_fd"])
        real_rename(src, dst, **dirs)

    monkeypatch.setattr(os, "rename", swapped)
    with pytest.raises(OSError, match="replaced"):
        statefs.claim(tmp_path, SPARE, CLAIMED, APPEND)
    assert victim.read_text() == "a person's note"
