"""Reliability under faults: a person typing while runs land, and SIGKILL anywhere."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import HOST, DaemonProcess, git, runs, wait_for, write_note

from vaultsched.adapters.config import load_config
from vaultsched.adapters.git import GitError
from vaultsched.adapters.notes import TEMP_MARK, NoteWriter, Outcome
from vaultsched.adapters.vault import Vault, build_index, read_note
from vaultsched.core.model import Status, Trigger
from vaultsched.core.taskfile import front_matter_text
from vaultsched.core.views import digest_path
from vaultsched.runtime.commit import Committer
from vaultsched.runtime.land import Lander, LandingThread
from vaultsched.runtime.messages import Job
from vaultsched.runtime.oneshot import one_shot
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.restart import sweep_cut_short_writes
from vaultsched.runtime.run import Execution
from vaultsched.runtime.workspace import open_workspace

pytestmark = pytest.mark.integration

# Obsidian saves the whole note in place on each pause in typing; this does the same, fast.
EDITOR = r"""
import sys, time
path, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    at = text.find("%% vaultsched:runs:begin")
    at = len(text) if at < 0 else at
    text = text[:at] + f"typed line {i}\n" + text[at:]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    time.sleep(0.015)
"""


@pytest.mark.parametrize("patience", ["default", "none"])
def test_a_person_typing_loses_nothing_while_hundreds_of_runs_land(
    vault_root: Path, patience: str
) -> None:
    """With the default writer, runs wait for the typing to pause (2 s quiet); with no
    patience at all every landing races the editor's saves, which the re-read, compare and
    late-write checks must win."""
    note = write_note(
        vault_root, "Tasks/Busy.md", "---\ncommand: 'true'\nkeep_runs: 5\n---\nMy notes.\n"
    )
    vault = Vault(vault_root.resolve(), load_config(vault_root), HOST)
    task = read_note(vault, "Tasks/Busy.md").task
    assert task is not None
    # As in the daemon: runs land on their own thread while the next ones start.
    writer = NoteWriter(vault.root) if patience == "default" else NoteWriter(vault.root, 0, 0)
    workspace = open_workspace(vault, writer=writer)
    lander = Lander(workspace, Committer(workspace))
    landing = LandingThread(lander, on_settled=lambda: None)
    execution = Execution(Recorder(workspace, landing.land))
    editor = subprocess.Popen([sys.executable, "-c", EDITOR, str(note), "200"])
    try:
        for _ in range(200):
            execution.run(Job(task, Trigger.SCHEDULE))
    finally:
        assert editor.wait(timeout=120) == 0
    execution.run(Job(task, Trigger.SCHEDULE))  # the next run after the typing stopped
    landing.close()
    lander.commit()

    text = note.read_text(encoding="utf-8")
    typed = [line for line in text.splitlines() if line.startswith("typed line")]
    assert typed == [f"typed line {i}" for i in range(200)], text  # every save, in order
    assert text.startswith("---\ncommand: 'true'\nkeep_runs: 5\n---\nMy notes.\n")
    assert text.count("vaultsched:runs:begin") == 1 and text.count("vaultsched:runs:end") == 1
    done = runs(vault_root)
    assert len(done) == 201 and all(r.status is Status.SUCCESS for r in done)
    newest = sorted(done, key=lambda r: r.started_at)[-5:]
    assert all(r.run_id in text or r.started_at.strftime("%H:%M:%S") in text for r in newest)
    per_day = Counter(r.started_at.astimezone(vault.config.timezone).date() for r in done)
    for day, count in per_day.items():  # the test may straddle midnight
        digest = (vault_root / digest_path(vault, day)).read_text(encoding="utf-8")
        assert f"{count} runs" in digest
    assert git(vault_root, "status", "--porcelain", "--", ".vaultsched/runs") == ""


def _kill_points(seed: int, count: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.2, 2.0) for _ in range(count)]


# Thirteen daemon starts: on a loaded 2-core machine (a Python start alone can take seconds)
# the whole exceeds the suite's 60 s per test, though each step is quick.
@pytest.mark.timeout(240)
def test_sigkill_anywhere_leaves_a_healthy_vault(
    vault_root: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    body = "My own notes.\n\n- [ ] keep me\n"
    for name, command in (("Fast", "echo fast"), ("Slow", "sleep 0.4; echo slow")):
        path = write_note(
            vault_root,
            f"Tasks/{name}.md",
            f"---\nschedule: every 1s\ncommand: {command}\n---\n{body}",
        )
        os.utime(path, (time.time() - 60, time.time() - 60))
    git(vault_root, "add", "-A")
    git(vault_root, "commit", "-qm", "tasks")
    for pause in _kill_points(20261122, 12):
        daemon = daemons(vault_root)  # the fixture kills any a failure leaves behind
        time.sleep(pause)
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=30)
    daemon = daemons(vault_root)
    wait_for(lambda: len(runs(vault_root)) >= 4, timeout=60, what="runs after the last restart")
    time.sleep(1.5)
    assert daemon.stop() == 0, daemon.output()

    done = runs(vault_root)  # reading never fails, torn lines and all
    assert not [r for r in done if r.status is Status.RUNNING]
    fired = Counter((r.task, r.scheduled_for) for r in done if r.scheduled_for)
    assert [key for key, n in fired.items() if n > 1] == []  # nothing fired twice
    for name in ("Fast", "Slow"):
        text = (vault_root / f"Tasks/{name}.md").read_text(encoding="utf-8")
        front = yaml.safe_load(front_matter_text(text) or "")
        assert front["schedule"] == "every 1s"
        assert body in text
        assert text.count("vaultsched:runs:begin") == 1 and text.count("vaultsched:runs:end") == 1
    leftovers = [p for p in vault_root.rglob("*.tmp") if ".git" not in p.parts]
    assert leftovers == []
    fsck = subprocess.run(
        ["git", "fsck", "--no-progress"],
        cwd=vault_root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert not (vault_root / ".git/index.lock").exists()
    assert git(vault_root, "status", "--porcelain") == ""


class _BusyFirst(NoteWriter):
    """A writer that finds `rel` busy (saved over by another program) the first time."""

    def __init__(self, root: Path, rel: str) -> None:
        super().__init__(root)
        self.busy = {rel}

    def update(self, rel: str, transform: Callable[[str], str], *, create: bool = True) -> Outcome:
        if rel in self.busy:
            self.busy.discard(rel)
            return Outcome.BUSY
        return super().update(rel, transform, create=create)


def test_a_view_left_busy_lands_with_the_next_commit(vault_root: Path) -> None:
    """A note that kept changing under its write does not stop the rest of the landing, and
    its block is written (and committed) at the next flush."""
    note = write_note(vault_root, "Tasks/Busy.md", "---\ncommand: echo hi\n---\nMine.\n")
    os.utime(note, (time.time() - 60, time.time() - 60))
    git(vault_root, "add", "-A")
    git(vault_root, "commit", "-qm", "task")
    vault = Vault(vault_root.resolve(), load_config(vault_root), HOST)
    task = read_note(vault, "Tasks/Busy.md").task
    assert task is not None
    shot = one_shot(vault, writer=_BusyFirst(vault.root, "Tasks/Busy.md"))
    run = Execution(shot.recorder).run(Job(task, Trigger.MANUAL))
    assert "vaultsched:runs:begin" not in note.read_text()
    day = run.started_at.astimezone(vault.config.timezone).date()
    digest = vault_root / digest_path(vault, day)
    assert "Tasks/Busy" in digest.read_text()  # the rest of the batch landed
    assert shot.lander.has_pending
    shot.commit_landed()
    assert "vaultsched:runs:begin" in note.read_text()
    assert not shot.lander.has_pending
    assert git(vault_root, "status", "--porcelain") == ""


def test_a_failed_commit_calls_the_daemon_back_with_edits_still_pending(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit git refuses (Obsidian Git holding the index past the wait) keeps its edits; the
    landing thread then tells the daemon, which may be asleep till a fire a day away."""
    write_note(vault.root, "Tasks/T.md", "---\ncommand: 'true'\n---\n")
    git(vault.root, "add", "-A")
    git(vault.root, "commit", "-qm", "task")
    task = read_note(vault, "Tasks/T.md").task
    assert task is not None
    workspace = open_workspace(vault)
    lander = Lander(workspace, Committer(workspace))
    settled: list[bool] = []
    landing = LandingThread(lander, on_settled=lambda: settled.append(lander.has_pending))

    def refused(*_args: object) -> None:
        raise GitError("index.lock is held")

    monkeypatch.setattr(workspace.git, "commit", refused)
    Recorder(workspace, landing.land).record(task, Status.SKIPPED, Trigger.MANUAL, "x")
    assert lander.has_pending  # from the moment it is recorded, before it has landed
    landing.commit_soon()
    landing.close()
    assert settled == [True]
    monkeypatch.undo()
    lander.commit()
    assert not lander.has_pending
    assert git(vault.root, "status", "--porcelain") == ""


def test_start_up_removes_what_killed_writes_left_wherever_vaultsched_writes(
    vault: Vault,
) -> None:
    """A kill between a temp file and its rename leaves the temp file: the next start removes
    it from each place vaultsched writes with a temp file, and nothing else."""
    write_note(vault.root, "Tasks/T.md", "---\ncommand: x\noutput: Briefings/{date}\n---\n")
    notes = [f"Tasks/.T.md{TEMP_MARK}0123abcd.tmp", f"Briefings/.B.md{TEMP_MARK}0123abcd.tmp"]
    state = [
        f"{folder}/.name.0123abcd.tmp"
        for folder in (
            ".vaultsched/state",
            ".vaultsched/state/inputs",
            ".vaultsched/state/writing",  # a note's next text
            ".vaultsched/logs/Tasks/T",
        )
    ]
    for rel in notes + state:
        write_note(vault.root, rel, "cut short")
    kept = write_note(vault.root, ".vaultsched/logs/Tasks/T/20261201T000000-abcdef.out", "x")
    sweep_cut_short_writes(vault, build_index(vault))
    assert [rel for rel in notes + state if (vault.root / rel).exists()] == []
    assert kept.exists()
