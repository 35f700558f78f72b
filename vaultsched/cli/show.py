"""How `list`, `next`, `history` and `status` read to a person.

On a terminal: short times in the vault's zone with how far they are from now (`00:45:00  in
4m`), and the columns that fit the screen, ids and times always whole. Into a pipe or a file:
every column, full ISO 8601 times, each line whole (`--json` is the form for programs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from rich.cells import cell_len
from rich.text import Text

from vaultsched.adapters.console import Column, SafeConsole, cell, print_columns
from vaultsched.adapters.ledger import EARLIEST_YEAR, LATEST_YEAR
from vaultsched.cli.reports import (
    FailingRow,
    FireRow,
    HistoryRow,
    ListRow,
    StatusReport,
    iso,
)
from vaultsched.core.durations import format_duration, format_relative
from vaultsched.core.model import FAILURES, Status
from vaultsched.core.views import counted

_NONE = "-"
_STYLES = {str(s): "red" for s in FAILURES} | {
    str(Status.SUCCESS): "green",
    str(Status.SKIPPED): "yellow",
    str(Status.MISSED): "yellow",
    str(Status.BLOCKED): "red",
    str(Status.LOST): "red",
}


@dataclass(frozen=True)
class Clock:
    """Times as shown: `short` on a terminal (`14:05:09`, `12-03 00:00`, `2027-01-04 09:00`),
    else full ISO 8601; `ago` is how far from `now` (injected, so tests are exact)."""

    now: datetime
    zone: tzinfo
    short: bool

    def at(self, moment: datetime | None) -> str:
        if moment is None:
            return _NONE
        if not self.short:
            return iso(moment) or _NONE
        local = moment.astimezone(self.zone)
        today = self.now.astimezone(self.zone).date()
        if local.date() == today:
            return f"{local:%H:%M:%S}"
        return f"{local:%m-%d %H:%M}" if local.year == today.year else f"{local:%Y-%m-%d %H:%M}"

    def ago(self, moment: datetime | None) -> str:
        return _NONE if moment is None else format_relative(moment.astimezone(self.zone), self.now)

    def both(self, moment: datetime | None) -> str:
        return f"{self.at(moment)} ({self.ago(moment)})" if moment else _NONE


def moment(value: object) -> datetime | None:
    """A time from a row (ISO 8601, as the rows hold them); None for anything else, or for a
    time out of the ledger's bounds (the daemon's lock file is read as it is)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    sane = parsed.tzinfo is not None and EARLIEST_YEAR <= parsed.year <= LATEST_YEAR
    return parsed if sane else None


def show_list(console: SafeConsole, rows: Sequence[ListRow], clock: Clock) -> None:
    nexts = [moment(row["next_run"]) for row in rows]
    lasts = [moment(row["last_run"]) for row in rows]
    columns = [
        Column("TASK", [cell(row["task"]) for row in rows]),
        Column("SCHEDULE", [cell(_starts(row)) for row in rows], rank=5),
        Column("NEXT", [cell(clock.at(at)) for at in nexts], rank=1),
        Column("LEFT", [cell(clock.ago(at)) for at in nexts], rank=2),
        Column("LAST", [cell(clock.at(at)) for at in lasts], rank=4),
        Column("PASSED", [cell(clock.ago(at)) for at in lasts], rank=3),
        Column("STATUS", [_status_cell(row, clock) for row in rows], free=True),
    ]
    print_columns(console, columns)


def _starts(row: ListRow) -> str:
    """What starts a task: its schedules, the tasks it runs after, or a person."""
    if not row["valid"]:  # an invalid note's schedule is unknown, not "manual"
        return _NONE
    starts = [*row["schedule"], *(f"after {name}" for name in row["after"])]
    return ", ".join(starts) or "manual"


def _status_cell(row: ListRow, clock: Clock) -> Text:
    """The last run's status, then what keeps the task from running as planned."""
    if not row["valid"]:
        return cell("INVALID: " + "; ".join(row["errors"]), "red")
    status = row["last_status"]
    parts = [cell(status, _STYLES.get(status, ""))] if status else []
    if not row["enabled"]:
        parts.append(cell("paused", "yellow"))
    if not row["trusted"]:
        parts.append(cell("untrusted", "red"))
    if row["not_run_since"]:
        parts.append(cell(f"not run: due {clock.both(moment(row['not_run_since']))}", "yellow"))
    return Text(", ").join(parts) if parts else cell(_NONE)


def show_next(console: SafeConsole, fires: Sequence[FireRow], clock: Clock) -> None:
    times = [moment(fire["at"]) for fire in fires]
    columns = [
        Column("NEXT", [cell(clock.at(at)) for at in times]),
        Column("LEFT", [cell(clock.ago(at)) for at in times], rank=1),
        Column("TASK", [cell(fire["task"]) for fire in fires]),
    ]
    print_columns(console, columns)


def show_history(console: SafeConsole, rows: Sequence[HistoryRow], clock: Clock) -> None:
    starts = [moment(row["started_at"]) for row in rows]
    columns = [
        Column("STARTED", [cell(clock.at(at)) for at in starts]),
        Column("PASSED", [cell(clock.ago(at)) for at in starts], rank=1),
        Column("STATUS", [cell(r["status"], _STYLES.get(r["status"], "")) for r in rows]),
        Column("EXIT", [cell(_text(row["exit_code"])) for row in rows], rank=2, right=True),
        Column("TOOK", [cell(_took(row["duration_s"])) for row in rows], rank=2, right=True),
        Column("TRIGGER", [cell(row["trigger"]) for row in rows], rank=3),
        Column("HOST", [cell(row["host"]) for row in rows], rank=4),
        Column("MESSAGE", [cell(_said(row)) for row in rows], free=True),
    ]
    print_columns(console, columns)


def _text(value: object) -> str:
    return _NONE if value is None else str(value)


def _took(seconds: float | None) -> str:
    return _NONE if seconds is None else format_duration(seconds)


def _said(row: HistoryRow) -> str:
    wrote = f"-> {row['output_note']}" if row["output_note"] else ""
    return " ".join(part for part in (" ".join(row["message"].split()), wrote) if part)


def show_status(console: SafeConsole, report: StatusReport, clock: Clock) -> None:
    daemon = report["daemon"]
    if daemon["running"]:
        since = moment(daemon["since"])
        shown = clock.both(since) if since else str(daemon["since"])
        _say(console, f"daemon: running (pid {daemon['pid']} on {daemon['host']} since {shown})")
    else:
        _say(console, "daemon: not running (start it with `vaultsched run`)")
    stuck = {run["run_id"] for run in report["stuck"]}
    for run in report["running"]:
        label = "stuck" if run["run_id"] in stuck else "running"
        _say(console, f"{label}: {run['task']} since {clock.both(moment(run['started_at']))}")
    fired = report["last_fire"]
    if fired is not None:
        at = clock.both(moment(fired["started_at"]))
        _say(console, f"last fire: {fired['task']} at {at}")
    for row in report["overdue"]:
        _say(console, f"not run: {row['task']} was due {clock.both(moment(row['due']))}")
    _say(console, f"today: {report['today']}")
    _show_failures(console, report["failing_today"], len(report["failures_today"]), clock)
    waiting = [(i["status"], i["task"], i["why"], i["fix"]) for i in report["attention"]]
    waiting += [("untrusted", i["task"], i["why"], i["fix"]) for i in report["untrusted"]]
    waiting += [("awaiting approval", i["task"], "", i["fix"]) for i in report["awaiting_approval"]]
    for label, task_id, why, fix in waiting:
        shown = f" ({why})" if why else ""
        _say(console, f"{label}: {task_id}{shown}", fix)
    config = report["config"]
    _say(console, f"config: {config['detail']}", config["fix"] or "")
    _say(console, f"digest: {report['digest']}")


def _show_failures(
    console: SafeConsole, failing: Sequence[FailingRow], total: int, clock: Clock
) -> None:
    """One line per failing task, however often it failed: count, last failure, how long ago."""
    tasks = f" ({counted(len(failing), 'task')})" if failing else ""
    _say(console, f"failures today: {total}{tasks}")
    lasts = [moment(row["last_failure"]) for row in failing]
    columns = [
        Column("TASK", [cell(row["task"]) for row in failing]),
        Column("RUNS", [cell(f"{row['count']}×") for row in failing], right=True),
        Column("LAST", [cell(clock.at(at)) for at in lasts]),
        Column("PASSED", [cell(clock.ago(at)) for at in lasts], rank=1),
        Column("STATUS", [cell(r["last_status"], "red") for r in failing], rank=2),
    ]
    print_columns(console, columns, header=False, indent="  ")


def _say(console: SafeConsole, line: str, fix: str = "") -> None:
    """One line of `status`; its fix (a command to copy) after `->`, or on a line of its own
    when both do not fit the terminal: a command is never split."""
    joined = f"{line}  ->  {fix}" if fix else line
    if fix and console.on_terminal and cell_len(joined) > console.width:
        console.print(line, markup=False, soft_wrap=True)
        joined = f"    ->  {fix}"
    console.print(joined, markup=False, soft_wrap=True)
