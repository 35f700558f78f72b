"""What `list`, `next`, `history` and `status` show, as plain rows (the CLI prints them or
dumps JSON). Rows are TypedDicts: plain dicts at run time, so the JSON is the row as it is."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from vaultsched.adapters.ledger import Ledger
from vaultsched.adapters.vault import Index, Vault
from vaultsched.core.model import FAILURES, Problem, Run, Status, Task, Trigger
from vaultsched.core.planner import GRACE, Unplannable, latest_fire, task_fires
from vaultsched.core.properties import next_run
from vaultsched.core.stuck import stuck_since
from vaultsched.core.views import MESSAGE_SHOWN, clip, counts_line, digest_path, fix_command
from vaultsched.trust.config import VerdictRow, verdict
from vaultsched.trust.store import TrustStore, approve_command, trust_command


class ListRow(TypedDict):
    task: str
    path: str
    schedule: list[str]
    after: list[str]  # the tasks it runs after, as written
    enabled: bool | None  # None for an invalid task: its note says nothing vaultsched can use
    trusted: bool | None
    valid: bool
    errors: list[str]
    next_run: str | None
    last_run: str | None
    last_status: str | None
    not_run_since: str | None  # a fire time that passed with no run (the daemon was down)


class HistoryRow(TypedDict):
    run_id: str
    task: str
    status: str
    exit_code: int | None
    trigger: str
    scheduled_for: str | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    host: str
    attempt: int
    message: str
    log: str
    output_note: str
    queue: str  # the worker pool's queue it went to; "" for a run on the daemon's host
    waiting: bool  # in that queue, no worker has started it yet


class DaemonRow(TypedDict):
    running: bool
    pid: object  # as the lock file says: a value from disk, only ever shown
    host: object
    since: object


class UntrustedRow(TypedDict):
    task: str
    why: str
    fix: str


class AwaitingRow(TypedDict):
    task: str
    since: str | None
    fix: str


class AttentionRow(TypedDict):
    task: str
    status: str
    since: str | None
    why: str
    fix: str


class ConfigTrustRow(VerdictRow):
    detail: str


class OverdueRow(TypedDict):
    task: str
    due: str | None  # the latest fire time that passed without a run


class FailingRow(TypedDict):
    task: str
    count: int  # its failed runs today
    last_failure: str | None
    last_status: str  # of its last failed run


class StatusReport(TypedDict):
    daemon: DaemonRow
    running: list[HistoryRow]
    stuck: list[HistoryRow]  # running far longer than the task usually takes
    last_fire: HistoryRow | None  # the newest run the schedule started, on any host
    overdue: list[OverdueRow]  # fire times past with no run: missed while nothing fired
    today: str
    failures_today: list[HistoryRow]
    failing_today: list[FailingRow]  # the same failures, one row per task
    attention: list[AttentionRow]
    untrusted: list[UntrustedRow]
    awaiting_approval: list[AwaitingRow]
    invalid: list[str]
    digest: str
    config: ConfigTrustRow


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def list_rows(
    index: Index,
    runs: Sequence[Run],
    now: datetime,
    trusted: Callable[[Task], bool],
    fires: Mapping[str, Sequence[datetime]] | None = None,
) -> list[ListRow]:
    """A row per task note. `fires`: the next fire time of tasks worked out already
    (`task_fires(task, now, 1)`, as `drop_unplannable` gives them)."""
    fires = fires or {}
    last: dict[str, Run] = {}
    for run in runs:
        last[run.task] = run
    overdue = {row["task"]: row["due"] for row in overdue_rows(index, runs, now)}
    rows: list[ListRow] = []
    for ident in index.ids:
        task = index.tasks.get(ident)
        errors = [str(p) for p in index.invalid.get(ident, ())]
        previous = last.get(ident)
        rows.append(
            {
                "task": ident,
                "path": task.path if task else f"{ident}.md",
                "schedule": [s.text for s in task.schedules] if task else [],
                "after": list(task.after) if task else [],
                "enabled": task.enabled if task else None,
                "trusted": trusted(task) if task else None,
                "valid": task is not None,
                "errors": errors,
                "next_run": iso(next_run(task, now, fires.get(ident))) if task else None,
                "last_run": iso(previous.started_at.astimezone(task.timezone if task else None))
                if previous
                else None,
                "last_status": str(previous.status) if previous else None,
                "not_run_since": overdue.get(ident),
            }
        )
    return rows


def yes_no(value: bool | None) -> str:
    """A yes/no cell of `list`; `-` where an invalid task has no value."""
    return "-" if value is None else "yes" if value else "no"


class FireRow(TypedDict):
    task: str
    at: str | None


@dataclass(frozen=True)
class Fire:
    task: str
    at: datetime

    def as_row(self) -> FireRow:
        return {"task": self.task, "at": iso(self.at)}


def upcoming(
    tasks: Sequence[Task], after: datetime, count: int
) -> tuple[list[Fire], list[Problem]]:
    """The next `count` fire times across `tasks`, in time order, and the problem of each task
    whose fire times cannot be computed (left out; the others are still shown).

    A naive `after` is read in each task's own zone, as `next --from` promises.
    """
    fires: list[Fire] = []
    problems: list[Problem] = []
    for task in tasks:
        if not task.schedules:
            continue
        try:
            fires += [Fire(task.id, at) for at in task_fires(task, _aware(after, task), count)]
        except Unplannable as exc:
            problems.append(exc.problem)
    # By timestamp: same-zone datetimes compare by wall time and ignore `fold`.
    return sorted(fires, key=lambda f: (f.at.timestamp(), f.task))[:count], problems


def history_rows(ledger: Ledger, task_id: str, limit: int | None) -> list[HistoryRow]:
    runs = ledger.runs_of(task_id)
    if limit is not None:
        runs = runs[-limit:] if limit > 0 else []
    return [history_row(r) for r in runs]


def history_row(run: Run) -> HistoryRow:
    return {
        "run_id": run.run_id,
        "task": run.task,
        "status": str(run.status),
        "exit_code": run.exit_code,
        "trigger": str(run.trigger),
        "scheduled_for": iso(run.scheduled_for),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_s": run.duration_s,
        "host": run.host,
        "attempt": run.attempt,
        "message": clip(run.message, MESSAGE_SHOWN),
        "log": run.log,
        "output_note": run.output_note,
        "queue": run.queue,
        "waiting": bool(run.queue) and run.started_at == run.dispatched_at,
    }


def _aware(moment: datetime, task: Task) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=task.timezone)


def status_report(vault: Vault, index: Index, now: datetime) -> StatusReport:
    """`status --json`: the daemon (from its lock), the ledger's view of today, the index."""
    from vaultsched.adapters.instance import InstanceLock

    holder = InstanceLock(vault.root).holder()
    tz = vault.config.timezone
    day = now.astimezone(tz).date()
    runs = Ledger(vault.root, vault.host).runs()
    latest: dict[str, Run] = {}
    for run in runs:
        latest[run.task] = run
    today = [r for r in runs if r.started_at.astimezone(tz).date() == day]
    failures = [r for r in today if r.status in FAILURES]
    store = TrustStore()
    trusted = store.checker(vault.root)
    return {
        "daemon": {
            "running": holder is not None,
            "pid": (holder or {}).get("pid"),
            "host": (holder or {}).get("host"),
            "since": (holder or {}).get("since"),
        },
        "running": [history_row(r) for r in runs if r.status is Status.RUNNING],
        "stuck": stuck_rows(runs, now),
        "last_fire": last_fire(runs),
        "overdue": overdue_rows(index, runs, now),
        "today": counts_line(today),
        "failures_today": [history_row(r) for r in failures],
        "failing_today": failing_rows(failures),
        "attention": attention_rows(latest.values(), index),
        "untrusted": [
            {
                "task": task.id,
                "why": store.why_untrusted(vault.root, task),
                "fix": trust_command(task.id),
            }
            for task in index.tasks.values()
            if not trusted(task)
        ],
        "awaiting_approval": [
            {"task": r.task, "since": iso(r.started_at), "fix": approve_command(r.task)}
            for r in latest.values()
            if r.status is Status.AWAITING_APPROVAL and r.task in index.ids
        ],
        "invalid": sorted(index.invalid),
        "digest": str(vault.path(digest_path(vault, day))),
        "config": config_trust_row(vault),
    }


def failing_rows(failures: Sequence[Run]) -> list[FailingRow]:
    """One row per task of these failed runs, the task whose last failure is oldest first."""
    count: dict[str, int] = {}
    last: dict[str, Run] = {}
    for run in failures:
        count[run.task] = count.get(run.task, 0) + 1
        if run.task not in last or run.started_at >= last[run.task].started_at:
            last[run.task] = run
    ordered = sorted(last.values(), key=lambda r: (r.started_at, r.task))
    return [
        {
            "task": run.task,
            "count": count[run.task],
            "last_failure": iso(run.started_at),
            "last_status": str(run.status),
        }
        for run in ordered
    ]


def stuck_rows(runs: Sequence[Run], now: datetime) -> list[HistoryRow]:
    """Runs still going past 3 times their task's median duration (at least 10 minutes)."""
    rows = []
    for run in runs:
        if run.status is Status.RUNNING:
            since = stuck_since(run, (r for r in runs if r.task == run.task))
            if since is not None and since <= now:
                rows.append(history_row(run))
    return rows


def last_fire(runs: Sequence[Run]) -> HistoryRow | None:
    fired = [r for r in runs if r.trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP)]
    return history_row(max(fired, key=lambda r: r.started_at)) if fired else None


def overdue_rows(index: Index, runs: Sequence[Run], now: datetime) -> list[OverdueRow]:
    """Scheduled tasks whose latest fire time before `now` (past the on-time grace) has no run
    in the ledger: what did not run while the daemon was down (it runs or records each when it
    starts). Only fire times after the task's last recorded one count."""
    handled: dict[str, datetime] = {}
    for run in runs:
        if run.scheduled_for is not None and run.scheduled_for > handled.get(
            run.task, run.scheduled_for - GRACE
        ):
            handled[run.task] = run.scheduled_for
    rows: list[OverdueRow] = []
    for task in index.tasks.values():
        if task.manual or not task.enabled or task.id not in handled:
            continue
        try:
            due = latest_fire(task, now - GRACE, handled[task.id])
        except Unplannable:
            continue
        if due is not None:
            rows.append({"task": task.id, "due": iso(due)})
    return rows


def attention_rows(latest: Iterable[Run], index: Index) -> list[AttentionRow]:
    """Tasks whose latest run is blocked or lost (the others that need a person have their
    own lines: failures, untrusted, awaiting approval)."""
    return [
        {
            "task": run.task,
            "status": str(run.status),
            "since": iso(run.started_at),
            "why": " ".join(clip(run.message, MESSAGE_SHOWN).splitlines()),
            "fix": fix_command("history", run.task),
        }
        for run in latest
        if run.status in (Status.BLOCKED, Status.LOST) and run.task in index.ids
    ]


def config_trust_row(vault: Vault) -> ConfigTrustRow:
    """The config-trust line: which sensitive keys the vault sets and whether they count."""
    judged = verdict(vault.root)
    return {**judged.as_dict(), "detail": judged.describe()}
