"""How `list`, `next`, `history` and `status` read: at 80 columns on a terminal, ids and times
whole; into a pipe, every column and full times, never wrapped (pure: an injected clock)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vaultsched.adapters.console import SafeConsole
from vaultsched.cli.reports import (
    FireRow,
    HistoryRow,
    ListRow,
    StatusReport,
    failing_rows,
    history_row,
    iso,
)
from vaultsched.cli.show import Clock, show_history, show_list, show_next, show_status
from vaultsched.core.model import Run, Status, Trigger

NOW = datetime(2026, 3, 10, 9, 0, 0, tzinfo=UTC)
VACUUM = "Tasks/Maintenance/Weekly database vacuum"  # 40 columns
BACKUP = "Projects/Home automation/Check backups"


def render(
    show: Callable[..., None], data: Any, *, terminal: bool = True, zone: str = "UTC"
) -> str:
    """What the CLI prints: a SafeConsole 80 columns wide on a terminal, or into a pipe."""
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=80, force_terminal=terminal, color_system=None)
    show(console, data, Clock(NOW, ZoneInfo(zone), short=console.on_terminal))
    return buffer.getvalue()


def fits(text: str) -> bool:
    return all(len(line) <= 80 for line in text.splitlines())


def list_row(
    task: str, next_run: datetime | None, last_run: datetime | None, **extra: Any
) -> ListRow:
    row: ListRow = {
        "task": task,
        "path": f"{task}.md",
        "schedule": ["*/5 * * * *"],
        "after": [],
        "enabled": True,
        "trusted": True,
        "valid": True,
        "errors": [],
        "next_run": iso(next_run),
        "last_run": iso(last_run),
        "last_status": "success" if last_run else None,
        "not_run_since": None,
    }
    return {**row, **extra}  # type: ignore[typeddict-item]


def a_run(task: str, at: datetime, status: Status = Status.FAILED, **extra: Any) -> Run:
    run = Run(f"r-{at:%H%M%S}", task, status, Trigger.SCHEDULE, at, "laptop", exit_code=1)
    return Run(**{**run.__dict__, "finished_at": at, "duration_s": 0.4, **extra})


def test_list_at_80_columns_keeps_ids_and_times_whole() -> None:
    rows = [
        list_row(VACUUM, NOW + timedelta(minutes=5), NOW - timedelta(minutes=3)),
        list_row(BACKUP, NOW + timedelta(hours=18), None, trusted=False),
    ]
    text = render(show_list, rows)
    assert fits(text)
    lines = text.splitlines()
    assert lines[0].split() == ["TASK", "NEXT", "LEFT", "PASSED", "STATUS"]  # what fits
    assert lines[1].split() == [*VACUUM.split(), "09:05:00", "in", "5m", "3m", "ago", "success"]
    assert lines[2].split() == [*BACKUP.split(), "03-11", "03:00", "in", "18h", "-", "untrusted"]
    assert "…" not in text
    # A wider time leaves less room: columns go, by rank; no time is ever cut.
    paused = list_row("Tasks/Yearly", datetime(2027, 1, 4, 9, 0, tzinfo=UTC), None, enabled=False)
    text = render(show_list, [*rows, paused])
    assert fits(text)
    assert text.splitlines()[0].split() == ["TASK", "NEXT", "STATUS"]
    assert text.splitlines()[3].split() == ["Tasks/Yearly", "2027-01-04", "09:00", "paused"]


def test_list_with_room_or_in_a_pipe_has_every_column() -> None:
    rows = [list_row("Tasks/A", NOW + timedelta(minutes=5), NOW - timedelta(minutes=3))]
    short = render(show_list, rows)
    assert short.splitlines()[0].split() == [
        *("TASK", "SCHEDULE", "NEXT", "LEFT", "LAST", "PASSED", "STATUS")
    ]
    assert "09:05:00  in 5m" in short and "08:57:00  3m ago" in short
    piped = render(show_list, [*rows, list_row(VACUUM * 3, None, None)], terminal=False)
    assert "2026-03-10T09:05:00+00:00  in 5m" in piped
    assert VACUUM * 3 in piped and "*/5 * * * *" in piped
    assert len(piped.splitlines()) == 3  # never wrapped, however long


def test_next_at_80_columns() -> None:
    fires: list[FireRow] = [
        {"task": VACUUM, "at": iso(NOW + timedelta(seconds=12))},
        {"task": BACKUP, "at": iso(NOW + timedelta(days=2, hours=3))},
    ]
    text = render(show_next, fires)
    assert fits(text)
    assert text.splitlines() == [
        "NEXT         LEFT       TASK",
        f"09:00:12     in 12s     {VACUUM}",
        f"03-12 12:00  in 2 days  {BACKUP}",
    ]
    piped = render(show_next, fires, terminal=False).splitlines()
    assert piped[1] == f"2026-03-10T09:00:12+00:00  in 12s     {VACUUM}"


def test_history_at_80_columns_in_the_vaults_zone() -> None:
    rows: list[HistoryRow] = [
        history_row(a_run(VACUUM, NOW - timedelta(days=1, minutes=1), message="disk full")),
        history_row(
            a_run(VACUUM, NOW - timedelta(minutes=3), Status.SUCCESS, output_note="Out/x.md")
        ),
    ]
    text = render(show_history, rows, zone="Europe/Warsaw")  # UTC+1 in March
    assert fits(text)
    lines = text.splitlines()
    assert lines[0].split() == [
        *("STARTED", "PASSED", "STATUS", "EXIT", "TOOK", "TRIGGER", "HOST", "MESSAGE")
    ]
    assert lines[1].split() == [
        *("03-09", "09:59", "yesterday", "failed", "1", "0.4s", "schedule", "laptop"),
        *("disk", "full"),
    ]
    assert lines[2].split()[:3] == ["09:57:00", "3m", "ago"]
    assert lines[2].endswith("-> Out/x.md")


def status_report(failures: list[Run]) -> StatusReport:
    return {
        "daemon": {"running": True, "pid": 41, "host": "laptop", "since": iso(NOW)},
        "running": [history_row(a_run(BACKUP, NOW - timedelta(seconds=30), Status.RUNNING))],
        "stuck": [],
        "last_fire": history_row(a_run(BACKUP, NOW - timedelta(seconds=30))),
        "overdue": [{"task": VACUUM, "due": iso(NOW - timedelta(hours=2))}],
        "today": "12 runs · 11 failed",
        "failures_today": [history_row(r) for r in failures],
        "failing_today": failing_rows(failures),
        "attention": [],
        "untrusted": [{"task": VACUUM, "why": "it is new", "fix": f'vaultsched trust "{VACUUM}"'}],
        "awaiting_approval": [],
        "invalid": [],
        "digest": "/home/me/Notes/Digests/2026-03-10.md",
        "config": {"detail": "nothing needs trust", "fix": None},  # type: ignore[typeddict-item]
    }


def test_status_groups_failures_per_task_and_never_splits_a_command() -> None:
    failures = [a_run(VACUUM, NOW - timedelta(seconds=240 - 20 * i)) for i in range(11)]
    failures.insert(3, a_run(BACKUP, NOW - timedelta(hours=1), Status.TIMEOUT))
    report = status_report(failures)
    text = render(show_status, report)
    assert fits(text)
    lines = text.splitlines()
    assert "daemon: running (pid 41 on laptop since 09:00:00 (now))" in lines
    assert f"running: {BACKUP} since 08:59:30 (30s ago)" in lines
    assert f"last fire: {BACKUP} at 08:59:30 (30s ago)" in lines
    assert f"not run: {VACUUM} was due 07:00:00 (2h ago)" in lines
    start = lines.index("failures today: 12 (2 tasks)")
    assert [line.split() for line in lines[start + 1 : start + 3]] == [
        [*BACKUP.split(), "1×", "08:00:00", "1h", "ago", "timeout"],
        [*VACUUM.split(), "11×", "08:59:20", "40s", "ago", "failed"],
    ]
    assert lines[start + 3] == f"untrusted: {VACUUM} (it is new)"
    assert lines[start + 4] == f'    ->  vaultsched trust "{VACUUM}"'  # whole, on its own line
    piped = render(show_status, report, terminal=False)
    assert f'untrusted: {VACUUM} (it is new)  ->  vaultsched trust "{VACUUM}"' in piped
    assert "last fire: " + BACKUP + " at 2026-03-10T08:59:30+00:00 (30s ago)" in piped


@pytest.mark.parametrize("terminal", [True, False])
def test_vault_text_is_escaped_in_every_cell(terminal: bool) -> None:
    hostile = "Tasks/E\x1b]0;owned\x07\nx"
    text = render(show_list, [list_row(hostile, None, None)], terminal=terminal)
    assert "\x1b" not in text and "\x07" not in text
    assert "Tasks/E\\x1b]0;owned\\x07\\x0ax" in text


def test_a_daemon_lock_with_a_time_out_of_bounds_is_shown_as_written() -> None:
    report = status_report([])
    report["daemon"]["since"] = "9999-12-31T23:59:59-14:00"  # converting it would overflow
    text = render(show_status, report)
    assert "since 9999-12-31T23:59:59-14:00)" in text and "failures today: 0\n" in text
