"""Run state as task-note properties: the values from the ledger, and the daemon keeping them
current in real notes with one-line edits."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from conftest import git, make_vault, wait_for
from conftest import runs_of as of

from vaultsched.core.model import Run, Status, Task, Trigger, Window
from vaultsched.core.properties import next_run, task_properties
from vaultsched.core.schedules import parse_schedule

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WARSAW = ZoneInfo("Europe/Warsaw")


def task(**options: object) -> Task:
    base = Task("Tasks/T", "Tasks/T.md", "x", (parse_schedule("0 * * * *"),), WARSAW)
    return Task(**{**base.__dict__, **options})


def run(status: Status, minutes: int) -> Run:
    return Run(
        f"r{minutes}", "Tasks/T", status, Trigger.SCHEDULE, T0 + timedelta(minutes=minutes), "h"
    )


def test_values_come_from_the_last_finished_run_in_the_task_zone() -> None:
    runs = [run(Status.FAILED, -90), run(Status.SUCCESS, -30), run(Status.RUNNING, -1)]
    assert task_properties(task(), runs, T0) == {
        "last_run": "2026-03-02T12:30:00",  # 11:30 UTC in Warsaw, no offset
        "last_status": "success",
        "next_run": "2026-03-02T14:00:00",
        "run_count": "2",
    }
    assert task_properties(task(schedules=()), [], T0) == {
        "last_run": "",
        "last_status": "",
        "next_run": "",
        "run_count": "0",
    }


def test_next_run_follows_window_until_and_enabled() -> None:
    shut = task(window=Window(clock(20), clock(22)))
    assert next_run(shut, T0) == datetime(2026, 3, 2, 20, 0, tzinfo=WARSAW)
    ended = task(until=datetime(2026, 3, 2, 13, 30, tzinfo=WARSAW))
    assert next_run(ended, T0) is None
    assert next_run(task(enabled=False), T0) is None


@pytest.mark.integration
def test_the_daemon_keeps_them_current_and_the_rest_byte_for_byte(
    tmp_path: Path, daemons: object
) -> None:
    root = make_vault(tmp_path / "v", config='timezone = "UTC"\n[notes]\nproperties = true\n')
    front = "# the person's comment\r\nschedule: every 1s   # fast\r\ncommand: 'true'\r\n"
    path = root / "Tasks/Tick.md"
    path.parent.mkdir()
    path.write_bytes(f"---\r\n{front}---\r\nMy notes.\r\n".encode())
    old = time.time() - 60
    os.utime(path, (old, old))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "task")
    daemon = daemons(root)  # type: ignore[operator]
    wait_for(lambda: len(of(root, "Tasks/Tick")) >= 3, timeout=90, what="three runs")
    assert daemon.stop() == 0
    text = path.read_bytes().decode()
    assert text.startswith("---\r\n" + front)  # every byte the person wrote, CRLF and all
    props = yaml.safe_load(text.split("---\r\n")[1])
    count = len(of(root, "Tasks/Tick"))
    assert props["run_count"] == count and props["last_status"] == "success"
    last = max(r.started_at for r in of(root, "Tasks/Tick"))
    assert props["last_run"] == last.replace(tzinfo=None, microsecond=0)
    assert props["next_run"] > props["last_run"]
    assert git(root, "status", "--porcelain") == ""  # committed with the runs
