"""Stuck runs: the rule, and the daemon's watch telling of each once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vaultsched.adapters import notify
from vaultsched.adapters.ledger import finish_record
from vaultsched.adapters.vault import Vault
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.core.stuck import stuck_after
from vaultsched.runtime.stuck import StuckWatch
from vaultsched.runtime.workspace import open_workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TASK = Task("Tasks/T", "Tasks/T.md", "x", (), ZoneInfo("UTC"))


def run(run_id: str, status: Status, seconds: float | None, start: datetime = T0) -> Run:
    return Run(run_id, TASK.id, status, Trigger.MANUAL, start, "h", duration_s=seconds)


def test_three_times_the_median_success_and_never_under_ten_minutes() -> None:
    history = [run(f"r{n}", Status.SUCCESS, s) for n, s in enumerate((300, 400, 2000))]
    assert stuck_after(history) == timedelta(seconds=1200)
    assert stuck_after([run("a", Status.SUCCESS, 5.0)]) == timedelta(minutes=10)
    assert stuck_after([run("a", Status.FAILED, 5000.0)]) is None  # nothing to go by


def test_the_watch_tells_of_a_stuck_run_once_and_forgets_it_when_it_ends(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    told: list[tuple[str, timedelta]] = []
    monkeypatch.setattr(
        notify, "send_stuck", lambda config, task, run, going, **_: told.append((run.run_id, going))
    )
    workspace = open_workspace(vault)
    past = run("past", Status.SUCCESS, 60.0, T0 - timedelta(days=1))
    workspace.ledger.append(finish_record(past, TASK.path))
    watch = StuckWatch(workspace)
    going = {"now": (TASK, run("now", Status.RUNNING, None))}
    assert watch.check(going, T0 + timedelta(minutes=5)) == T0 + timedelta(minutes=10)
    assert told == []
    assert watch.check(going, T0 + timedelta(minutes=11)) is None
    assert watch.check(going, T0 + timedelta(minutes=20)) is None
    assert told == [("now", timedelta(minutes=11))]  # once
    assert watch.check({}, T0 + timedelta(minutes=21)) is None and watch._when == {}
