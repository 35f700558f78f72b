"""Two vaultsched processes editing the same notes between commits: the daemon with an edit not
committed yet, and a command (`approve`) that rewrites the note and commits at once. Whatever
order their commits land in, git ends up holding what is on disk."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import HOST, Cli, DaemonProcess, git, wait_for, write_note
from conftest import runs_of as of
from conftest import task_note as note

from vaultsched.adapters import statefs
from vaultsched.adapters.config import load_config
from vaultsched.adapters.git import Edit
from vaultsched.adapters.ledger import Ledger, finish_record
from vaultsched.adapters.notes import NoteWriter, Outcome
from vaultsched.adapters.vault import Vault
from vaultsched.core import blocks, layout, views
from vaultsched.core.model import Run, Status, Trigger
from vaultsched.runtime.commit import Committer, block_edit, enabled_edit
from vaultsched.runtime.workspace import open_workspace

pytestmark = pytest.mark.integration

Start = Callable[..., DaemonProcess]
TASK = "Tasks/Deploy"
RUN_BLOCK_SAYS_WAITING = "Waiting for your approval"


def _due_five_minutes_ago(root: Path) -> None:
    """A daily task whose fire time today passed while no daemon ran (its last run was the
    day before): a daemon starting catches it up at once, and then not again for a day."""
    past = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    front = (
        f"schedule: '{past.minute} {past.hour} * * *'\ntimezone: UTC\n"
        "approval: required\ncommand: echo deployed\n"
    )
    note(root, f"{TASK}.md", front)
    seed = past - timedelta(days=1)
    run = Run("seed", TASK, Status.SUCCESS, Trigger.SCHEDULE, seed, HOST, scheduled_for=seed)
    Ledger(root, HOST).append(finish_record(run, f"{TASK}.md"))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a task, and its run of yesterday")


@contextmanager
def commits_held_back(root: Path) -> Iterator[None]:
    """While a merge is in progress vaultsched commits nothing (its edits stay pending)."""
    merge_head = root / ".git" / "MERGE_HEAD"
    merge_head.write_text(git(root, "rev-parse", "HEAD"))
    try:
        yield
    finally:
        merge_head.unlink(missing_ok=True)


@contextmanager
def frozen(daemon: DaemonProcess) -> Iterator[None]:
    """The daemon stopped (SIGSTOP) at a moment it holds none of vaultsched's locks (git's,
    a ledger file's, a note's), so another process can land a run and commit; it carries on
    from where it was afterwards. On a loaded machine a stop often lands mid-write: try again."""
    pid = daemon.proc.pid
    while True:
        os.kill(pid, signal.SIGSTOP)
        if _all_stopped(pid) and _all_free(daemon.root):
            break
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _all_stopped(pid: int, timeout: float = 10.0) -> bool:
    """Whether every thread of `pid` has stopped within `timeout`: a SIGSTOP stops each thread
    when it next leaves the kernel, not when kill() returns, and a thread still running on the
    other core can take a lock after we looked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_thread_state(stat) in ("T", "t", None) for stat in _thread_stats(pid)):
            return True
        time.sleep(0.001)
    return False


def _thread_stats(pid: int) -> list[Path]:
    return list(Path(f"/proc/{pid}/task").glob("*/stat"))


def _thread_state(stat: Path) -> str | None:
    """A thread's state letter (R, S, D, T...); None once the thread is gone."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _all_free(root: Path) -> bool:
    locks = {layout.GIT_LOCK}
    locks |= {p.relative_to(root).as_posix() for p in (root / layout.DIR).rglob("*.lock")}
    for rel in sorted(locks - {layout.INSTANCE_LOCK}):  # held for the daemon's whole life
        with statefs.locked(root, rel, wait=False) as free:
            if not free:
                return False
    return _no_task_lock_held(root)


def _no_task_lock_held(root: Path) -> bool:
    """No byte of the task locks' file is locked (a lock on all of it is granted)."""
    if not statefs.BYTE_LOCKS or not (root / layout.TASK_LOCKS).exists():
        return True
    fd = os.open(root / layout.TASK_LOCKS, os.O_RDWR)
    try:
        whole = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, whole)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)


def test_approve_while_the_daemon_holds_the_waiting_block_uncommitted(
    vault_root: Path, daemons: Start
) -> None:
    root = vault_root
    _due_five_minutes_ago(root)
    vault = Vault(root=root.resolve(), config=load_config(root), host=HOST)
    with commits_held_back(root):
        daemon = daemons(root)
        wait_for(lambda: of(root, TASK, Status.AWAITING_APPROVAL), what="the approval request")
        waiting = of(root, TASK, Status.AWAITING_APPROVAL)[0]
        digest = root / views.digest_path(vault, waiting.started_at.date())
        wait_for(
            lambda: (
                RUN_BLOCK_SAYS_WAITING in (root / f"{TASK}.md").read_text()
                and digest.is_file()
                and views.PENDING_ICON in digest.read_text()
            ),
            what="the waiting run in the note and the digest",
        )
        # The daemon's edits of both are on disk, not in git: approve before it commits them.
        with frozen(daemon):
            assert "Deploy" not in git(root, "log", "--format=%s")
            (root / ".git" / "MERGE_HEAD").unlink()
            approved = Cli(root)("approve", "Deploy")
    assert approved.code == 0, approved.err
    # The daemon's next commit (at the latest when it stops) must not undo the approval's.
    assert daemon.stop() == 0, daemon.output()
    assert git(root, "status", "--porcelain") == ""
    ran = [r.trigger for r in of(root, TASK, Status.SUCCESS)]
    assert ran == [Trigger.SCHEDULE, Trigger.APPROVED]
    committed = git(root, "show", f"HEAD:{TASK}.md")
    assert "· success" in committed and RUN_BLOCK_SAYS_WAITING not in committed


# -- the same, in one process: two committers with a writer each, as two processes have -----

NOTE = "---\ncommand: echo hi\nenabled: true\n---\nBody.\n"


def process(vault: Vault) -> Committer:
    return Committer(open_workspace(vault, writer=NoteWriter(vault.root, quiet=0, max_wait=0)))


def written(committer: Committer, edit: Edit) -> Edit:
    assert edit.apply is not None
    assert committer.workspace.writer.update(edit.path, edit.apply) is Outcome.WRITTEN
    return edit


def runs_block(inner: str) -> Edit:
    return block_edit("Tasks/T.md", blocks.RUNS, f"## Runs\n\n{inner}\n", create=False)


@pytest.fixture
def two(vault: Vault) -> tuple[Committer, Committer]:
    write_note(vault.root, "Tasks/T.md", NOTE)
    git(vault.root, "add", "-A")
    git(vault.root, "commit", "-qm", "task")
    return process(vault), process(vault)


def test_an_edit_another_process_replaced_is_not_committed_over_its_newer_one(
    vault: Vault, two: tuple[Committer, Committer]
) -> None:
    daemon, command = two
    # The daemon: the task done by itself, and its waiting run; both pending.
    daemon.add([written(daemon, enabled_edit("Tasks/T.md", enabled=False))])
    daemon.add([written(daemon, runs_block("waiting"))])
    # A command rewrites the run block on top of that, and commits its own edit at once.
    assert command.commit([written(command, runs_block("approved"))], "approve")
    daemon.commit_pending()
    on_disk = (vault.root / "Tasks/T.md").read_text()
    assert "approved" in on_disk and "enabled: false" in on_disk
    assert git(vault.root, "show", "HEAD:Tasks/T.md") == on_disk
    assert git(vault.root, "status", "--porcelain") == ""


def test_a_persons_edit_since_stays_out_of_the_commit(
    vault: Vault, two: tuple[Committer, Committer]
) -> None:
    daemon, command = two
    daemon.add([written(daemon, runs_block("waiting"))])
    assert command.commit([written(command, runs_block("approved"))], "approve")
    path = vault.root / "Tasks/T.md"
    path.write_text(path.read_text() + "DRAFT\n")
    daemon.commit_pending()
    # The file is the person's now: nothing in it is read into the commit.
    assert "DRAFT" not in git(vault.root, "show", "HEAD:Tasks/T.md")
    assert git(vault.root, "diff", "-U0").count("DRAFT") == 1
