"""What the commands that do something print with `--json`, as plain rows (`list`, `next`,
`history` and `status` have theirs in `reports`). Rows are TypedDicts: plain dicts at run time,
so the JSON is the row as it is. README's "JSON output" lists every shape."""

from __future__ import annotations

from datetime import date
from typing import TypedDict

from vaultsched.adapters.githooks import HookInstalled, HookOutcome, Installed
from vaultsched.adapters.service import ServiceResult
from vaultsched.cli.reports import iso
from vaultsched.cli.scaffold import Created
from vaultsched.core.model import Run, Task
from vaultsched.trust.config import TrustedConfig
from vaultsched.trust.fingerprint import Snapshot


class TrustedTaskRow(TypedDict):
    task: str
    command: str | list[str]  # as the note has it: a shell line or an argument list
    files: list[str]  # the vault files its command reaches, trusted with it
    changes: list[str]  # what changed since it was last trusted (empty with --yes)
    warnings: list[str]


class ConfigKeyRow(TypedDict):
    key: str  # `[notify] command`
    value: object  # as the config sets it


class TrustedConfigRow(TypedDict):
    keys: list[ConfigKeyRow]
    files: dict[str, str]  # {vault file: sha256} the notify command reaches
    changes: list[str]
    first: bool  # the first trust of this vault's config on this machine


class TrustReport(TypedDict):
    tasks: list[TrustedTaskRow]
    config: TrustedConfigRow | None  # None without --config


class TaskRef(TypedDict):
    task: str


class UntrustReport(TypedDict):
    tasks: list[TaskRef]


class RejectedRow(TypedDict):
    task: str
    run_id: str
    scheduled_for: str | None


class EnabledRow(TypedDict):
    task: str
    path: str
    enabled: bool
    changed: bool  # False: the note already said so


class NewTaskRow(TypedDict):
    task: str
    path: str
    schedule: str | None
    command: str


class DigestRow(TypedDict):
    date: str
    path: str


class DashboardRow(TypedDict):
    path: str  # in the vault
    written: bool  # False: it was up to date


class HookRow(TypedDict):
    hook: str
    outcome: HookOutcome
    message: str


class HooksReport(TypedDict):
    hooks_dir: str
    hooks: list[HookRow]


class InitReport(TypedDict):
    root: str
    created: list[str]  # vault-relative, in the order written
    git_initialised: bool
    hooks: list[HookRow]
    notes: list[str]  # what was left undone, and why


class ReindexRow(TypedDict):
    signalled: bool  # False: no daemon runs for this vault on this host
    pid: int | None


class SyncRow(TypedDict):
    remote: str
    pulled: int  # runs that arrived from other hosts


class ServiceRow(TypedDict):
    unit: str | None  # the unit file, if there is one
    active: bool  # enabled and running
    messages: list[str]


def trusted_task_row(task: Task, snapshot: Snapshot, changes: list[str]) -> TrustedTaskRow:
    command = task.command if isinstance(task.command, str) else list(task.command)
    return {
        "task": task.id,
        "command": command,
        "files": sorted(snapshot.files),
        "changes": changes,
        "warnings": list(snapshot.warnings),
    }


def trusted_config_row(trusted: TrustedConfig) -> TrustedConfigRow:
    return {
        "keys": [{"key": label, "value": value} for label, value in trusted.values],
        "files": dict(sorted(trusted.files.items())),
        "changes": list(trusted.changes),
        "first": trusted.first,
    }


def rejected_row(run: Run) -> RejectedRow:
    return {"task": run.task, "run_id": run.run_id, "scheduled_for": iso(run.scheduled_for)}


def digest_row(day: date, path: str) -> DigestRow:
    return {"date": day.isoformat(), "path": path}


def hook_row(hook: HookInstalled) -> HookRow:
    return {"hook": hook.name, "outcome": hook.outcome, "message": hook.message}


def hooks_report(installed: Installed) -> HooksReport:
    return {"hooks_dir": str(installed.hooks_dir), "hooks": [hook_row(h) for h in installed.hooks]}


def init_report(created: Created) -> InitReport:
    return {
        "root": str(created.root),
        "created": list(created.files),
        "git_initialised": created.git_initialised,
        "hooks": [hook_row(h) for h in created.hooks],
        "notes": list(created.notes),
    }


def service_row(result: ServiceResult) -> ServiceRow:
    return {
        "unit": None if result.unit is None else str(result.unit),
        "active": result.enabled,
        "messages": list(result.messages),
    }
