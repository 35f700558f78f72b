"""A run's view of earlier runs: files it is pointed at are read only under `.vaultsched/`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import write_note

from vaultsched.adapters import statefs
from vaultsched.adapters.vault import Vault, read_note
from vaultsched.core import layout
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime.context import _existing, _previous_output, save_output, task_logs
from vaultsched.runtime.messages import Job
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.run import Execution
from vaultsched.runtime.workspace import open_workspace


def run(run_id: str) -> Run:
    return Run(
        run_id, "Tasks/A", Status.SUCCESS, Trigger.MANUAL, datetime(2026, 3, 1, tzinfo=UTC), "h"
    )


@pytest.mark.parametrize("run_id", ["../../../../etc/passwd", "x/../../state/marks", "..", ""])
def test_a_forged_upstream_run_id_points_at_nothing(tmp_path: Path, run_id: str) -> None:
    (tmp_path / ".vaultsched/state").mkdir(parents=True)
    (tmp_path / ".vaultsched/state/marks.out").write_text("{}")
    assert _existing(tmp_path, layout.run_output("Tasks/A", run_id)) == ""


def test_the_previous_output_is_the_newest_before_this_run(tmp_path: Path) -> None:
    for run_id in ("20260301T000000-aaaaaa", "20260302T000000-bbbbbb", "20260304T000000-dddddd"):
        save_output(tmp_path, run(run_id), run_id, durable=False)
    found = _previous_output("Tasks/A", "20260303T000000-cccccc", _logs(tmp_path, "Tasks/A"))
    assert found == layout.run_output("Tasks/A", "20260302T000000-bbbbbb")
    assert _previous_output("Tasks/B", "20260303T000000-cccccc", _logs(tmp_path, "Tasks/B")) == ""


def _logs(root: Path, task_id: str) -> list[statefs.Entry]:
    found = task_logs(root, task_id)
    assert found is not None
    return found


def test_a_run_that_wrote_only_stdout_keeps_its_log_as_its_output(vault: Vault) -> None:
    # No second file is made: the output is the log under another name, the same bytes.
    task = _task(vault, "printf 'one\\ntwo\\n'")
    done = Execution(Recorder(open_workspace(vault), land=lambda landed: None)).run(
        Job(task, Trigger.MANUAL)
    )
    log, out = (vault.root / rel for rel in (done.log, layout.run_output(task.id, done.run_id)))
    assert out.read_bytes() == b"one\ntwo\n"
    assert out.stat().st_ino == log.stat().st_ino


def test_a_run_that_wrote_stderr_too_keeps_its_stdout_apart_from_its_log(vault: Vault) -> None:
    task = _task(vault, "echo out; echo err >&2")
    done = Execution(Recorder(open_workspace(vault), land=lambda landed: None)).run(
        Job(task, Trigger.MANUAL)
    )
    log, out = (vault.root / rel for rel in (done.log, layout.run_output(task.id, done.run_id)))
    assert out.read_bytes() == b"out\n" and b"err" in log.read_bytes()
    assert out.stat().st_ino != log.stat().st_ino


def _task(vault: Vault, command: str) -> Task:
    write_note(vault.root, "Tasks/A.md", f"---\ncommand: {command}\n---\n")
    task = read_note(vault, "Tasks/A.md").task
    assert task is not None
    return task
