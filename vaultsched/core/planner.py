"""When each task is due: pure decisions from schedules, the last fire handled, and `now`.

The daemon keeps, per task, the latest scheduled fire time it has handled (fired, skipped or
coalesced): the *mark*. Everything else follows from the mark and the wall clock, so a restart
(marks rebuilt from the ledger's `scheduled_for`), a suspend, or a stepped clock are all the
same question: which fire times lie in (mark, now]?

- none: nothing is due; the next wake-up is the next fire time after the mark (plus jitter);
- some, the latest within its grace of now: an ordinary, on-time fire (older ones coalesce in);
- some, the latest older than that: they were missed (daemon down, machine asleep, clock
  jumped): `catch_up: true` runs once now, `false` skips them.

A task with a `window` decides only while its window is open: fire times that fall while it is
shut wait for it to open, and are then the latest of them, late (run once, or missed without
catch-up). Nothing about it is kept but the mark, so a restart defers the same way.

A backward clock jump leaves the mark in the future, so nothing is due until the wall clock
passes it again: a run already made is never made again.

The ledger is synced content, so it is read with suspicion (`informs_plan`): a record can only
say a task was already handled, never hold it back. A record from another host's file counts
only for a task that host fires; a record dated in the future counts for nothing. Marks this
daemon decided itself (`own`) are kept apart, so that what is saved across restarts
(marks.json) never holds a mark that came from the ledger.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from vaultsched.core.contain import internal_problem
from vaultsched.core.layout import host_file_stem
from vaultsched.core.model import Problem, Run, Task, Trigger
from vaultsched.core.workflow import in_window, next_window_start

# How late a fire may start and still count as on time rather than missed. Much wider than
# APScheduler's 1 s misfire grace, which silently drops runs on a busy or waking machine.
GRACE = timedelta(seconds=60)
# How far ahead of this host's clock a record may be dated (another host's clock may run a little
# fast) before it is taken for a wrong clock or a forgery and ignored.
SKEW = timedelta(minutes=5)
# Windows, widest last, in which to look for the latest fire time at or before a moment.
_LOOKBACK = (timedelta(minutes=2), timedelta(hours=2), timedelta(days=2), timedelta(days=400))


@dataclass(frozen=True)
class Decision:
    task: str
    scheduled_for: datetime
    trigger: Trigger  # SCHEDULE, or CATCH_UP for missed fire times
    run: bool  # False: missed fire times skipped (catch_up: false)


class Unplannable(Exception):
    """A task whose fire times cannot be computed; `problem` says so on its note."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def task_fires(task: Task, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times of `task` after `after`: the one door from a task to the
    schedule math. Whatever goes wrong inside (a parser's bug, a date past year 9999) comes out
    as Unplannable, that task's problem, so its callers can drop the task and go on."""
    from vaultsched.core.schedules import next_fires  # here: `list` on no task never loads it

    try:
        return next_fires(task.schedules, task.timezone, after, count)
    except Exception as exc:  # the boundary: see `contain`
        raise Unplannable(internal_problem(task.path, "planning", exc)) from exc


def next_fire_after(task: Task, after: datetime) -> datetime | None:
    """The next fire time, in UTC: instants in one zone compare by wall time, ignoring fold,
    so every comparison here is made in UTC."""
    fires = task_fires(task, after, 1)
    return fires[0].astimezone(UTC) if fires else None


def jitter_offset(task: Task, fire: datetime) -> timedelta:
    """A delay in [0, jitter], random but stable for one task and fire time (so recomputing
    the next wake-up does not move it)."""
    if not task.jitter:
        return timedelta(0)
    seeded = random.Random(f"{task.id}|{fire.isoformat()}")
    return timedelta(seconds=seeded.uniform(0, task.jitter.total_seconds()))


def latest_fire(task: Task, at_or_before: datetime, after: datetime) -> datetime | None:
    """The latest fire time in (after, at_or_before], or None."""
    for window in _LOOKBACK:
        start = max(after, at_or_before - window)
        latest = None
        cursor = start
        while True:
            fire = next_fire_after(task, cursor)
            if fire is None or fire > at_or_before:
                break
            latest = cursor = fire
        if latest is not None or start == after:
            return latest
    return None


def future_dated(run: Run, now: datetime) -> bool:
    """Dated beyond SKEW after `now`: a clock far ahead, or a forged record."""
    limit = now + SKEW
    return run.started_at > limit or (run.scheduled_for is not None and run.scheduled_for > limit)


def fired_by(task: Task, host_file: str) -> bool:
    """Whether the host whose ledger file is `host_file` fires `task` on schedule. A task
    pinned with `host:` is fired by the hosts it names only; an unpinned one by every host
    running a daemon on the vault, so their runs tell this host a fire time was handled."""
    return not task.hosts or host_file in {host_file_stem(h) for h in task.hosts}


def informs_plan(run: Run, host_file: str, own_file: str, task: Task, now: datetime) -> bool:
    """Whether a run recorded in the ledger file of `host_file` may move `task`'s mark. This
    host's own file counts fully; any file only up to SKEW past `now`."""
    if run.scheduled_for is None or future_dated(run, now):
        return False
    return host_file == own_file or fired_by(task, host_file)


@dataclass
class Planner:
    marks: dict[str, datetime] = field(default_factory=dict)  # what planning goes by
    own: dict[str, datetime] = field(default_factory=dict)  # what this daemon decided itself
    _next: dict[str, datetime | None] = field(default_factory=dict)
    # Tasks whose fire time came while their window was shut: when it opens next.
    _deferred: dict[str, datetime] = field(default_factory=dict)
    # Tasks whose own mark moved, came or went since `unsaved` was last asked: what to save.
    _unsaved: set[str] = field(default_factory=set)

    @classmethod
    def from_ledger(
        cls,
        runs: Iterable[tuple[str, Run]],
        tasks: Mapping[str, Task],
        own_file: str,
        now: datetime,
    ) -> Planner:
        """Marks from the ledger, as (host file, run): the latest scheduled fire each task has
        already handled, as far as the records that inform planning tell."""
        planner = cls()
        for host_file, run in runs:
            task = tasks.get(run.task)
            if task is not None and informs_plan(run, host_file, own_file, task, now):
                assert run.scheduled_for is not None
                planner.advance(run.task, run.scheduled_for)
        return planner

    def advance(self, task_id: str, fire: datetime) -> None:
        """Move the mark to `fire` if later (what the ledger says; not kept across restarts)."""
        fire = fire.astimezone(UTC)
        if task_id not in self.marks or fire > self.marks[task_id]:
            self.marks[task_id] = fire
            self._next.pop(task_id, None)
            self._deferred.pop(task_id, None)

    def _decided(self, task_id: str, fire: datetime) -> None:
        self.own[task_id] = fire.astimezone(UTC)
        self._unsaved.add(task_id)
        self.advance(task_id, fire)

    def saved(self, now: datetime) -> dict[str, datetime]:
        """What is kept across restarts: this daemon's own marks, none beyond SKEW past now."""
        return {k: v for k, v in self.own.items() if v <= now + SKEW}

    def unsaved(self, now: datetime) -> dict[str, datetime | None]:
        """The own marks that moved since last asked, as `saved` keeps them (None: not kept),
        and from now on taken for saved."""
        moved = {k: self.own.get(k) for k in sorted(self._unsaved)}
        self._unsaved.clear()
        return {k: v if v is not None and v <= now + SKEW else None for k, v in moved.items()}

    def restore(self, saved: Mapping[str, datetime], now: datetime) -> None:
        """Marks `saved` before a restart; one beyond SKEW past now (the clock was set back, or
        the file was not written by us) is dropped, like a future-dated ledger record."""
        for task_id, fire in saved.items():
            if fire <= now + SKEW:
                self._decided(task_id, fire)

    def reset(self, task_id: str, now: datetime) -> None:
        """A new, edited or re-enabled task starts afresh: earlier fire times are not missed."""
        self.marks[task_id] = self.own[task_id] = now.astimezone(UTC)
        self._unsaved.add(task_id)
        self._next.pop(task_id, None)
        self._deferred.pop(task_id, None)

    def rename(self, old: str, new: str) -> None:
        if old in self.own:
            self._unsaved.update((old, new))
        for marks in (self.marks, self.own):
            if old in marks:
                marks[new] = marks.pop(old)
        for cache in (self._next, self._deferred):
            cache.pop(old, None)
            cache.pop(new, None)

    def forget(self, task_id: str) -> None:
        self.marks.pop(task_id, None)
        if self.own.pop(task_id, None) is not None:
            self._unsaved.add(task_id)
        self._next.pop(task_id, None)
        self._deferred.pop(task_id, None)

    def next_fire(self, task: Task) -> datetime | None:
        """The next fire time after the task's mark (cached until the mark moves)."""
        if task.id not in self._next:
            self._next[task.id] = next_fire_after(task, self.marks[task.id])
        return self._next[task.id]

    def wake_time(self, task: Task) -> datetime | None:
        fire = self.next_fire(task)
        if fire is None:
            return None
        wake = fire + jitter_offset(task, fire)
        if task.window is not None and not window_open(task, wake):
            wake = next_window_start(task.window, wake, task.timezone).astimezone(UTC)
        return max(wake, self._deferred.get(task.id, wake))

    def check(self, task: Task, now: datetime) -> Decision | None:
        """What to do for `task` at `now`; moves the mark past whatever it decides."""
        if task.id not in self.marks:
            self.reset(task.id, now)
            return None
        wake = self.wake_time(task)
        if wake is None or wake > now:
            return None
        if task.window is not None and not window_open(task, now):  # late: it shut again
            opens = next_window_start(task.window, now, task.timezone)
            self._deferred[task.id] = opens.astimezone(UTC)
            return None
        latest = latest_fire(task, now, self.marks[task.id])
        assert latest is not None  # the wake time was due, so a fire lies in (mark, now]
        self._decided(task.id, latest)
        following = next_fire_after(task, latest)
        if now - latest <= _grace(task, latest, following):
            return Decision(task.id, latest, Trigger.SCHEDULE, run=True)
        return Decision(task.id, latest, Trigger.CATCH_UP, run=task.catch_up)


def window_open(task: Task, moment: datetime) -> bool:
    assert task.window is not None
    return in_window(task.window, moment.astimezone(task.timezone).time())


def _grace(task: Task, fire: datetime, following: datetime | None) -> timedelta:
    """How late `fire` may start and still be on time: GRACE, but at most half the gap to the
    next fire (an `every 1s` task 0.7 s late has missed its slot), plus the task's jitter."""
    grace = GRACE if following is None else min(GRACE, (following - fire) / 2)
    return grace + task.jitter
