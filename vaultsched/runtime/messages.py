"""The typed messages the runtime's stages hand each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from vaultsched.core.model import Problem, Status, Task, Trigger


@dataclass(frozen=True)
class Job:
    """One run to execute: dispatch hands it to an `Executor`."""

    task: Task
    trigger: Trigger
    scheduled_for: datetime | None = None
    attempt: int = 1
    upstream: Upstream | None = None  # for an `after` run: the run that started it
    # Set when the pool could not be reached and the run goes here after all (`fallback =
    # "local"`): the run keeps the id and dispatch time its `dispatched` record gave it.
    run_id: str = ""
    dispatched_at: datetime | None = None
    # Decided ahead of its time (see dispatch's LEAD): the executor prepares the run at once
    # and starts its process at this instant, not before. None: at once.
    start_at: datetime | None = None


@dataclass(frozen=True)
class Upstream:
    """The run an `after` run follows: its output is the downstream run's input."""

    task: str
    run_id: str


OVERLAP_SKIPPED = "the previous run was still running (overlap: skip)"
# Fire times the daemon did not run (it was down, the machine asleep, the window shut):
# recorded once, for the latest of them, when it finds them.
NOT_CAUGHT_UP = "missed: not run on time, and catch_up is false"


@dataclass(frozen=True)
class Submit:
    job: Job


@dataclass(frozen=True)
class Record:
    """A run that is not executed but must be shown (skipped, refused as untrusted)."""

    task: Task
    status: Status
    trigger: Trigger
    message: str
    scheduled_for: datetime | None
    upstream_run: str = ""


@dataclass(frozen=True)
class Refuse:
    """A due run of a task whose version is not trusted: recorded as refused."""

    task: Task
    trigger: Trigger
    scheduled_for: datetime | None
    upstream_run: str = ""


@dataclass(frozen=True)
class AwaitApproval:
    task: Task
    trigger: Trigger
    scheduled_for: datetime | None
    upstream_run: str = ""


@dataclass(frozen=True)
class Invalid:
    """Planning this task raised: it is invalid until its note changes."""

    task_id: str
    problem: Problem


@dataclass(frozen=True)
class Retrying:
    """A failed run will be tried again after `delay`."""

    task_id: str
    attempt: int  # the attempt that failed
    retries: int
    delay: timedelta


@dataclass(frozen=True)
class Expire:
    """A task past its `until` or its `max_runs`: it disables itself (`enabled: false`)."""

    task: Task
    reason: str


Action = Submit | Record | Refuse | AwaitApproval | Invalid | Retrying | Expire


@dataclass(frozen=True)
class IndexDelta:
    """What one batch of file changes did to the set of tasks."""

    moved: tuple[tuple[str, str], ...] = ()  # (old id, new id)
    added: tuple[str, ...] = ()
    retimed: tuple[str, ...] = ()  # schedule, zone, enabled or hosts changed: start afresh
    removed: tuple[str, ...] = ()
    # Every task whose entry in the index is another since: new, edited in any way, moved (both
    # ids), gone (removed, or invalid now): what dispatch is to look at again, and nothing else.
    changed: tuple[str, ...] = ()
