"""Results as notes, through the real Recorder, Lander, NoteWriter and git on a temp vault."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import git, runs, write_note

from vaultsched.adapters import notes
from vaultsched.adapters.ledger import new_run_id
from vaultsched.adapters.notes import NoteWriter, Outcome
from vaultsched.adapters.vault import Vault, read_note
from vaultsched.core import blocks
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime.commit import Committer
from vaultsched.runtime.land import Lander
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.workspace import Workspace, open_workspace

pytestmark = pytest.mark.integration

OUT = "Briefings/latest.md"
TASK_NOTE = "---\ncommand: 'echo hi'\noutput: Briefings/latest\n---\nMy task.\n"


@pytest.fixture
def task(vault: Vault) -> Task:
    write_note(vault.root, "Tasks/Brief.md", TASK_NOTE)
    git(vault.root, "add", "-A")
    git(vault.root, "commit", "-qm", "task")
    found = read_note(vault, "Tasks/Brief.md").task
    assert found is not None and found.output == "Briefings/latest"
    return found


@pytest.fixture
def workspace(vault: Vault) -> Workspace:
    return open_workspace(vault, writer=NoteWriter(vault.root, quiet=0, max_wait=0))


@pytest.fixture
def lander(workspace: Workspace) -> Lander:
    return Lander(workspace, Committer(workspace))


def finish(lander: Lander, task: Task, stdout: str | None, status: Status = Status.SUCCESS) -> Run:
    now = datetime.now(UTC)
    run = Run(
        run_id=new_run_id(now),
        task=task.id,
        status=status,
        trigger=Trigger.MANUAL,
        started_at=now,
        finished_at=now,
        host="testhost",
        exit_code=0 if status is Status.SUCCESS else 1,
        duration_s=0.1,
        output_note=OUT,
    )
    Recorder(lander.workspace, lambda item: lander.land([item])).finished(task, run, stdout=stdout)
    return run


def committed(root: Path, rel: str) -> str:
    return git(root, "show", f"HEAD:{rel}")


def commit_existing(root: Path, text: str) -> Path:
    note = write_note(root, OUT, text)
    git(root, "add", OUT)
    git(root, "commit", "-qm", "mine")
    os.utime(note, (1, 1))  # long quiet: not being typed in
    return note


def test_a_new_output_note_is_committed_with_the_run(
    vault: Vault, task: Task, lander: Lander
) -> None:
    run = finish(lander, task, "# Today\n\nsunny\n")
    lander.commit()
    text = (vault.root / OUT).read_text()
    assert text.startswith(
        f'---\nvaultsched_task: "[[Brief]]"\nvaultsched_run: "{run.run_id}"\n---\n\n'
        f"{blocks.OUTPUT_BEGIN}\n# Today\n\nsunny\n"
    )
    assert committed(vault.root, OUT) == text
    changed = git(vault.root, "show", "--name-only", "--format=", "HEAD").split()
    assert OUT in changed and "Tasks/Brief.md" in changed
    assert "[[Briefings/latest|output]]" in (vault.root / "Tasks/Brief.md").read_text()
    assert runs(vault.root)[0].output_note == OUT
    assert git(vault.root, "status", "--porcelain") == ""


def test_the_next_run_replaces_the_output(vault: Vault, task: Task, lander: Lander) -> None:
    finish(lander, task, "first\n")
    lander.commit()
    first = (vault.root / OUT).read_text()
    finish(lander, task, "second\n")
    lander.commit()
    text = (vault.root / OUT).read_text()
    assert "first" not in text and "second\n" in text
    assert text.count(blocks.OUTPUT_BEGIN) == 1
    assert text[: text.index(blocks.OUTPUT_BEGIN)] == first[: first.index(blocks.OUTPUT_BEGIN)]
    assert committed(vault.root, OUT) == text


def test_two_runs_before_a_commit_still_commit_the_note_vaultsched_made(
    vault: Vault, task: Task, lander: Lander
) -> None:
    finish(lander, task, "first\n")
    finish(lander, task, "second\n")
    lander.commit()
    text = (vault.root / OUT).read_text()
    assert text.startswith("---\nvaultsched_task:") and "second" in text
    assert committed(vault.root, OUT) == text


def test_an_existing_note_keeps_the_rest_and_the_persons_edit_stays_theirs(
    vault: Vault, task: Task, lander: Lander
) -> None:
    commit_existing(vault.root, "---\ntags: [brief]\n---\n# Mine\n\nabove\n")
    note = vault.root / OUT
    note.write_text(note.read_text() + "typed, not committed\n")
    os.utime(note, (1, 1))
    finish(lander, task, "the output\n")
    lander.commit()
    text = note.read_text()
    assert text.startswith("---\ntags: [brief]\n---\n# Mine\n\nabove\ntyped, not committed\n")
    assert "vaultsched_task" not in text and "the output\n" in text
    in_git = committed(vault.root, OUT)
    assert "typed, not committed" not in in_git and "the output\n" in in_git
    assert git(vault.root, "status", "--porcelain") == f" M {OUT}\n"


def test_a_note_not_in_git_is_written_and_left_for_the_person_to_commit(
    vault: Vault, task: Task, lander: Lander
) -> None:
    note = write_note(vault.root, OUT, "mine, never committed\n")
    os.utime(note, (1, 1))
    finish(lander, task, "the output\n")
    lander.commit()
    assert note.read_text().startswith("mine, never committed\n\n" + blocks.OUTPUT_BEGIN)
    assert git(vault.root, "status", "--porcelain") == "?? Briefings/\n"
    assert runs(vault.root)[0].status is Status.SUCCESS  # the run itself is committed
    assert git(vault.root, "status", "--porcelain", "--", ".vaultsched", "Tasks") == ""


@pytest.mark.parametrize("status", [Status.FAILED, Status.TIMEOUT, Status.SKIPPED])
def test_only_a_successful_run_writes_its_output(
    vault: Vault, task: Task, lander: Lander, status: Status
) -> None:
    note = commit_existing(vault.root, "kept as it was\n")
    finish(lander, task, "partial output\n", status)
    lander.commit()
    assert note.read_text() == "kept as it was\n"
    assert "[[Briefings/latest|output]]" not in (vault.root / "Tasks/Brief.md").read_text()


def test_no_stdout_handed_over_writes_nothing(vault: Vault, task: Task, lander: Lander) -> None:
    finish(lander, task, None)
    lander.commit()
    assert not (vault.root / OUT).exists()


def _refuse_with_a_symlink(root: Path, outside: Path) -> None:
    (root / "Briefings").mkdir()
    (root / OUT).symlink_to(outside)


def _refuse_with_a_folder(root: Path, outside: Path) -> None:
    (root / OUT).mkdir(parents=True)


def _refuse_with_a_linked_folder(root: Path, outside: Path) -> None:
    (root / "Briefings").symlink_to(outside.parent)


@pytest.fixture(
    params=[_refuse_with_a_symlink, _refuse_with_a_folder, _refuse_with_a_linked_folder]
)
def refuse(request: pytest.FixtureRequest) -> object:
    return request.param


def test_a_refused_write_is_a_warning_and_the_run_still_lands(
    vault: Vault, task: Task, lander: Lander, caplog: pytest.LogCaptureFixture, refuse: object
) -> None:
    outside = vault.root.parent / "elsewhere" / "secret.md"
    outside.parent.mkdir()
    outside.write_text("not the vault's\n")
    refuse(vault.root, outside)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING):
        finish(lander, task, "the output\n")
        lander.commit()
    assert outside.read_text() == "not the vault's\n"
    assert not list(outside.parent.glob("latest*"))
    assert OUT in caplog.text
    assert runs(vault.root)[0].status is Status.SUCCESS
    assert "· success" in (vault.root / "Tasks/Brief.md").read_text()
    assert "vaultsched: success Tasks/Brief" in git(vault.root, "log", "-1", "--format=%s")


def test_a_save_racing_the_write_is_merged_not_lost(
    vault: Vault, task: Task, lander: Lander, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person's editor saving the output note in the instant before our rename."""
    note = commit_existing(vault.root, "# Mine\n")
    real_replace = os.replace
    raced: list[str] = []

    def racing_replace(src: str | Path, dst: str | Path, **dir_fds: int | None) -> None:
        if "dst_dir_fd" not in dir_fds and str(dst).endswith(OUT) and not raced:
            with Path(dst).open("a") as handle:
                handle.write("typed in the gap\n")
            raced.append(str(dst))
        real_replace(src, dst, **dir_fds)

    monkeypatch.setattr(notes.os, "replace", racing_replace)
    finish(lander, task, "the output\n")
    lander.commit()
    text = note.read_text()
    assert raced and "typed in the gap\n" in text and "the output\n" in text
    assert text.startswith("# Mine\n") and text.count(blocks.OUTPUT_BEGIN) == 1
    assert "typed in the gap" not in committed(vault.root, OUT)


def test_a_busy_note_is_written_at_the_next_commit(
    vault: Vault, task: Task, lander: Lander, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = lander.workspace.writer
    real_update = writer.update
    calls: list[str] = []

    def busy_once(rel: str, *args: object, **kwargs: object) -> Outcome:
        calls.append(rel)
        if rel == OUT and calls.count(OUT) == 1:
            return Outcome.BUSY
        return real_update(rel, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "update", busy_once)
    finish(lander, task, "late\n")
    assert not (vault.root / OUT).exists() and lander.has_pending
    lander.commit()
    assert "late\n" in committed(vault.root, OUT)
    assert not lander.has_pending


def test_only_the_newest_output_of_a_batch_is_written(
    vault: Vault, task: Task, workspace: Workspace
) -> None:
    landed: list[object] = []
    lander = Lander(workspace, Committer(workspace))
    recorder = Recorder(workspace, landed.append)
    now = datetime.now(UTC)
    for text in ("old\n", "new\n"):
        run = Run(new_run_id(now), task.id, Status.SUCCESS, Trigger.MANUAL, now, "testhost")
        recorder.finished(task, replace(run, output_note=OUT), stdout=text)
    lander.land(landed)  # type: ignore[arg-type]
    lander.commit()
    text = (vault.root / OUT).read_text()
    assert "new\n" in text and "old" not in text
