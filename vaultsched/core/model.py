"""The data that crosses module boundaries: tasks, runs, problems. Frozen and free of I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal, get_args
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # the schedule math is imported by what plans (`planner`), not with the data
    from vaultsched.core.schedules import Schedule


class Status(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    UNTRUSTED = "untrusted"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    BLOCKED = "blocked"  # the task's `check` failed, timed out or could not run: fail closed
    MISSED = "missed"  # a fire time that did not run (catch_up off, outside the window, skip)
    LOST = "lost"  # a run that started and was never heard of again


# Statuses a person should look at; the digest lists them under "Needs attention".
ATTENTION = frozenset(
    {
        Status.FAILED,
        Status.TIMEOUT,
        Status.ERROR,
        Status.INTERRUPTED,
        Status.UNTRUSTED,
        Status.AWAITING_APPROVAL,
        Status.BLOCKED,
        Status.LOST,
    }
)
# Statuses counted as failed (digest counts, commit messages, `status`).
FAILURES = frozenset({Status.FAILED, Status.TIMEOUT, Status.ERROR, Status.INTERRUPTED})
# Statuses after which `retries` makes another attempt.
RETRYABLE = frozenset({Status.FAILED, Status.TIMEOUT, Status.LOST})


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    CATCH_UP = "catch-up"
    MANUAL = "manual"
    RETRY = "retry"
    APPROVED = "approved"
    AFTER = "after"  # an upstream task's run ended with the outcome this task waits for


@dataclass(frozen=True)
class Run:
    """One run of a task, folded from its ledger records."""

    run_id: str
    task: str
    status: Status
    trigger: Trigger
    started_at: datetime
    host: str
    attempt: int = 1
    scheduled_for: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    output_tail: str = ""
    message: str = ""
    log: str = ""
    upstream_run: str = ""  # for an `after` run: the run id that triggered it
    # The tasks this run, once over, starts (`after`): in its finish record, so a daemon that
    # stops before starting them finds them in the ledger when it starts again.
    chain: tuple[str, ...] = ()
    # The note the task's `output` names for this run (vault-relative, with `.md`); it holds
    # the run's stdout only if the run succeeded and the write was not refused.
    output_note: str = ""
    # A run handed to the worker pool: the queue it went to and when. Its records stay in the
    # ledger file of that moment, wherever and whenever a worker started it.
    queue: str = ""
    dispatched_at: datetime | None = None

    @property
    def note_name(self) -> str:
        return PurePosixPath(self.task).name


# A task's options, each with the values its note may set. Plain strings (`task.overlap ==
# "queue"` reads as written), listed once: taskfile and config check against these tuples.
Overlap = Literal["skip", "queue"]  # a fire while the last run is still going
# `body`: the note's body is piped to the command; `upstream`: the stdout of the run that
# started this one (`after`)
Stdin = Literal["none", "body", "upstream"]
Approval = Literal["none", "required"]  # `required`: each fire waits for `vaultsched approve`
NotifyOn = Literal["failure", "always", "never"]  # a task's `notify`, the config's [notify] on
AfterOn = Literal["success", "failure", "always"]  # which upstream outcome starts an `after` run
OVERLAPS: tuple[Overlap, ...] = get_args(Overlap)
STDINS: tuple[Stdin, ...] = get_args(Stdin)
APPROVALS: tuple[Approval, ...] = get_args(Approval)
# `local`: always on the daemon's host; `pool`: on the worker pool when `[executor]` has one.
ExecutorChoice = Literal["pool", "local"]
EXECUTORS: tuple[ExecutorChoice, ...] = get_args(ExecutorChoice)
NOTIFY_ON: tuple[NotifyOn, ...] = get_args(NotifyOn)
AFTER_ON: tuple[AfterOn, ...] = get_args(AfterOn)
Severity = Literal["error", "warning", "note"]  # of a Problem; only errors keep a task out


@dataclass(frozen=True)
class Window:
    """The hours of the day a task's scheduled fires may start, in the task's zone: from
    `start` (included) to `end` (excluded). `end` before `start` crosses midnight."""

    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Task:
    """A validated task note. `id` is the vault-relative path without `.md`."""

    id: str
    path: str
    command: str | tuple[str, ...]
    schedules: tuple[Schedule, ...]
    timezone: ZoneInfo
    enabled: bool = True
    timeout: timedelta = timedelta(hours=1)
    retries: int = 0
    retry_delay: timedelta = timedelta(seconds=30)
    catch_up: bool = True
    overlap: Overlap = "skip"
    jitter: timedelta = timedelta(0)
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: Stdin = "none"
    hosts: tuple[str, ...] = ()
    notify: NotifyOn = "failure"
    keep_runs: int = 10
    approval: Approval = "none"
    # None (unset) as "pool", so a note without the key keeps the fingerprint it had.
    executor: ExecutorChoice | None = None
    # Workflows. Every default leaves a note without these keys behaving as before, and the
    # trust fingerprint reads an absent `check` as None, as it always has.
    check: str | tuple[str, ...] | None = None  # run first; decides whether the run goes ahead
    if_changed: tuple[str, ...] = ()  # vault-relative globs; run only if one of them changed
    after: tuple[str, ...] = ()  # references to upstream tasks, as written (less the [[ ]])
    on: AfterOn = "success"
    output: str | None = None  # the path template of the note a run's stdout is written to
    group: str | None = None
    max_runs: int | None = None
    # Aware, in the task's zone. A bare date stands for the whole of that day: no fire after
    # its last instant (23:59:59.999999 local), since "until Friday" includes Friday.
    until: datetime | None = None
    window: Window | None = None
    # A URL whose healthchecks.io-style check each run pings (`/start`, then success or `/fail`).
    ping: str | None = None
    # The line each key's value starts on, for problems found later, across notes (an `after`
    # target that is missing); not part of what the task is, so equality ignores it.
    key_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        tail = self.id.rpartition("/")[2]  # asked at every run's start and end: no pathlib
        return tail if tail not in ("", ".") else PurePosixPath(self.id).name

    @property
    def manual(self) -> bool:
        return not self.schedules


@dataclass(frozen=True)
class Problem:
    """A finding of `validate`: printed as `path:line: message`."""

    path: str
    line: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.path}:{self.line}: {prefix}{self.message}"
