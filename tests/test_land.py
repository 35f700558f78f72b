"""Landing a batch of runs: every note of the batch written (several at once) and committed,
through the real Recorder, Lander, NoteWriter and git on a temp vault."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from conftest import git, write_note

from vaultsched.adapters.ledger import Ledger, new_run_id
from vaultsched.adapters.notes import NoteWriter, Outcome
from vaultsched.adapters.vault import Vault, read_note
from vaultsched.core import blocks, views
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime import land, widening
from vaultsched.runtime.commit import Committer
from vaultsched.runtime.land import Landed, Lander, LandingThread
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.workspace import open_workspace

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
COUNT = 12


@pytest.fixture
def tasks(vault: Vault) -> list[Task]:
    for n in range(COUNT):
        write_note(vault.root, f"Tasks/T{n}.md", f"---\ncommand: echo {n}\n---\nNote {n}.\n")
    git(vault.root, "add", "-A")
    git(vault.root, "commit", "-qm", "tasks")
    found = [read_note(vault, f"Tasks/T{n}.md").task for n in range(COUNT)]
    assert all(found)
    return [t for t in found if t is not None]


@pytest.fixture
def lander(vault: Vault) -> Lander:
    workspace = open_workspace(vault, writer=NoteWriter(vault.root, quiet=0, max_wait=0))
    return Lander(workspace, Committer(workspace))


def recorded(lander: Lander, tasks: list[Task]) -> list[Landed]:
    """One finished run of each task, recorded in the ledger, ready to land as one batch."""
    batch: list[Landed] = []
    for n, task in enumerate(tasks):
        at = T0 + timedelta(seconds=n)
        run = Run(
            run_id=new_run_id(at),
            task=task.id,
            status=Status.SUCCESS,
            trigger=Trigger.MANUAL,
            started_at=at,
            finished_at=at,
            host="testhost",
            exit_code=0,
            output_tail=f"output of run {n}.",
        )
        Recorder(lander.workspace, batch.append).finished(task, run)
    return batch


def block_of(root: Path, rel: str) -> str:
    text = (root / rel).read_text()
    span = blocks.find_block(text, blocks.RUNS)
    assert span is not None
    return text[span[0] : span[1]]


def test_a_batch_writes_each_note_its_own_runs_and_commits_them_together(
    vault: Vault, tasks: list[Task], lander: Lander
) -> None:
    batch = recorded(lander, tasks)

    lander.land(batch)
    lander.commit()

    for n, item in enumerate(batch):
        shown = block_of(vault.root, item.task.path)
        assert [m for m in range(COUNT) if f"output of run {m}." in shown] == [n]
    assert git(vault.root, "status", "--porcelain") == ""
    assert len(git(vault.root, "log", "--format=%s", "--author=vaultsched").splitlines()) == 1


def writing(
    monkeypatch: pytest.MonkeyPatch,
    writer: NoteWriter,
    rel: str,
    instead: Callable[[], Outcome | None],
) -> None:
    """`writer` does `instead` of writing `rel`, while `instead` does not return None."""
    real = writer.update

    def update(path: str, transform: Callable[[str], str], *, create: bool = True) -> Outcome:
        outcome = instead() if path == rel else None
        return real(path, transform, create=create) if outcome is None else outcome

    monkeypatch.setattr(writer, "update", update)


def test_a_note_that_fails_leaves_the_others_written_and_committed(
    vault: Vault, tasks: list[Task], lander: Lander, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Outcome:
        raise OSError("disk on fire")

    writing(monkeypatch, lander.workspace.writer, "Tasks/T3.md", broken)

    with pytest.raises(OSError, match="disk on fire"):
        lander.land(recorded(lander, tasks))
    lander.commit()

    status = git(vault.root, "status", "--porcelain", "--untracked-files=no")
    assert status == ""  # every note written is committed; T3 was never written
    assert blocks.find_block((vault.root / "Tasks/T3.md").read_text(), blocks.RUNS) is None
    assert blocks.find_block((vault.root / "Tasks/T4.md").read_text(), blocks.RUNS) is not None


def test_a_busy_note_is_written_at_the_next_commit(
    vault: Vault, tasks: list[Task], lander: Lander, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = [True]
    writing(
        monkeypatch,
        lander.workspace.writer,
        "Tasks/T5.md",
        lambda: Outcome.BUSY if busy[0] else None,
    )
    lander.land(recorded(lander, tasks))
    assert lander.has_pending
    busy[0] = False

    lander.commit()

    assert blocks.find_block((vault.root / "Tasks/T5.md").read_text(), blocks.RUNS) is not None
    assert git(vault.root, "status", "--porcelain", "--untracked-files=no") == ""


class _Counting:
    """Stands in for the Lander: how many runs each batch landed."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def hold_ledger(self, batch: object) -> None:
        pass

    def land(self, landed: list[Landed], *, digests: bool = True) -> None:
        self.batches.append(len(landed))


def test_runs_ending_close_together_land_as_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(land, "GATHER_GAP", 30.0)  # however slow this machine is today
    monkeypatch.setattr(land, "GATHER_MAX", 60.0)
    counting = _Counting()
    thread = LandingThread(cast(Lander, counting), lambda: None)
    item = Landed(cast(Task, None), cast(Run, None), tmp_path)
    for _ in range(20):  # a burst: a run ends every few milliseconds
        thread.land(item)
        time.sleep(0.005)
    started = time.monotonic()
    thread.close()  # stopping waits for no more

    assert counting.batches == [20]
    assert time.monotonic() - started < 30.0


def test_while_runs_wait_for_a_worker_landing_waits_then_lands_them_in_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(land, "HOLD_MAX", 60.0)  # however slow this machine is today
    monkeypatch.setattr(land, "LANDING_BATCH", 10)
    waiting = threading.Event()
    waiting.set()  # a burst: more runs due than workers
    counting = _Counting()
    thread = LandingThread(cast(Lander, counting), lambda: None, waiting.is_set)
    item = Landed(cast(Task, None), cast(Run, None), tmp_path)
    for _ in range(30):
        thread.land(item)
    time.sleep(0.2)
    assert counting.batches == []  # held while runs wait to start
    waiting.clear()  # the last run started
    deadline = time.monotonic() + 30.0
    while not counting.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counting.batches == [30]  # past LANDING_BATCH: what came while it waited

    waiting.set()
    thread.land(item)
    started = time.monotonic()
    thread.close()  # stopping waits for no run to start
    assert counting.batches == [30, 1]
    assert time.monotonic() - started < 30.0


def test_a_digest_is_put_off_while_more_runs_wait_to_land_and_never_left_out(
    vault: Vault, tasks: list[Task], lander: Lander
) -> None:
    batch = recorded(lander, tasks)
    day = T0.astimezone(vault.config.timezone).date()
    digest = vault.root / views.digest_path(vault, day)

    lander.land(batch[:6], digests=False)  # the rest is queued behind it
    assert not digest.exists()
    lander.land(batch[6:])
    assert f"{COUNT} runs" in digest.read_text()

    lander.land(recorded(lander, tasks[:1]), digests=False)
    lander.commit()  # the commit rebuilds what was put off
    assert f"{COUNT + 1} runs" in digest.read_text()
    assert git(vault.root, "status", "--porcelain") == ""


def test_a_slow_digest_waits_for_later_batches_and_the_commit_brings_it_up_to_date(
    vault: Vault, tasks: list[Task], lander: Lander, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long day's digest is not rebuilt for every batch of a burst (each rebuild is the
    whole day): the task notes land at once, the digest at the commit at the latest."""
    monkeypatch.setattr(land, "DIGEST_SLOW", 0.0)  # every rebuild counts as slow...
    monkeypatch.setattr(land, "DIGEST_SLACK", 3600.0)  # ...and puts the next off for good
    day = T0.astimezone(vault.config.timezone).date()
    digest = vault.root / views.digest_path(vault, day)

    lander.land(recorded(lander, tasks[:6]))
    assert "6 runs" in digest.read_text()
    lander.land(recorded(lander, tasks[6:]))
    assert "6 runs" in digest.read_text()  # put off
    assert "output of run 5." in block_of(vault.root, tasks[11].path)  # the notes are not
    lander.commit()
    assert f"{COUNT} runs" in digest.read_text()
    assert git(vault.root, "status", "--porcelain") == ""


def test_the_finish_records_of_a_batch_are_durable_before_any_note_shows_them(
    vault: Vault, tasks: list[Task], lander: Lander, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = recorded(lander, tasks)  # finish records written, not yet fsync'ed
    order: list[str] = []
    for owner, name in ((Ledger, "sync"), (NoteWriter, "update")):
        real = getattr(owner, name)

        def spy(self: object, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            order.append(_name)
            return _real(self, *args, **kw)

        monkeypatch.setattr(owner, name, spy)
    lander.land(batch)
    assert order[0] == "sync" and "update" in order


def test_a_commit_splices_no_note_again_that_landing_wrote(
    vault: Vault, tasks: list[Task], lander: Lander, spliced: list[str]
) -> None:
    """The commit asks whether each note still shows its edit, then applies the edit to the
    committed text: both are the texts the write saw, and a splice parses the whole note."""
    lander.land(recorded(lander, tasks))
    written = len(spliced)
    lander.commit()
    assert written >= COUNT and len(spliced) == written
    assert git(vault.root, "status", "--porcelain") == ""


def test_a_batch_s_notes_are_written_by_more_threads_on_a_disk_slow_to_sync(
    vault: Vault, tasks: list[Task], lander: Lander, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers to begin with (where an fsync returns at once, more only hand the
    interpreter over: `test_widening.py`); eight once each fsync takes milliseconds, so the
    notes do not queue behind the disk."""
    writers: set[str] = set()
    real_update, real_fsync = lander.workspace.writer.update, os.fsync

    def update(path: str, transform: Callable[[str], str], *, create: bool = True) -> Outcome:
        if path.startswith("Tasks/"):  # not the digest, written by the landing thread
            writers.add(threading.current_thread().name)
        return real_update(path, transform, create=create)

    def fsync(fd: int) -> None:
        time.sleep(0.05)
        real_fsync(fd)

    monkeypatch.setattr(lander.workspace.writer, "update", update)
    monkeypatch.setattr(os, "fsync", fsync)
    for name, value in (("STUCK", 60.0), ("SLOW_ITEM", 60.0), ("LOOK_EVERY", 0.01)):
        monkeypatch.setattr(widening, name, value)  # the disk's speed alone decides here
    lander.land(recorded(lander, tasks))
    assert len(writers) > land.NOTE_WRITERS_AT_FIRST, writers
    for item in tasks:
        assert blocks.find_block((vault.root / item.path).read_text(), blocks.RUNS) is not None
