"""Dispatch: what to do with each due fire time, finished run and retry. No I/O, no threads.

Takes the planner's decisions and turns them into actions for the daemon to carry out: submit a
job, record a run that will not execute (refused, skipped), ask for approval, or mark a task
invalid when planning it raised. Decides, in this order: trust refusals (the first refused fire
of each version of a task is recorded, later ones only skipped, so an `every 1s` task does not
flood the vault while it waits for a person), approval, overlap with a run in flight (`skip`
records the fire as missed, `queue` keeps one, the newest), retries after a failure (doubling
delays), and the `after` runs a finished run starts, which go through the same steps.

A fire due within `LEAD` is decided that early, as of its own time, when nothing can change the
decision meanwhile: its task is idle, trusted and needs no approval. The `Job` then carries its
`start_at`: the executor prepares the run (slot, trust, the durable start record, the process's
environment) and starts the process at that instant, so a due run starts on time rather than
after its preparation. Any other fire is decided at its time, as ever.

The tasks fired on schedule are kept in a `FireQueue` by when each next wakes, and told to the
dispatcher as they change (`track`, `untrack`): at a wake-up only the tasks due are looked at,
whatever the number loaded.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from vaultsched.core.contain import internal_problem
from vaultsched.core.durations import MAX_DURATION
from vaultsched.core.model import RETRYABLE, Run, Status, Task, Trigger
from vaultsched.core.planner import Planner, Unplannable
from vaultsched.core.workflow import chain_targets, fires_on
from vaultsched.runtime.approval import needs_approval
from vaultsched.runtime.firequeue import FireQueue
from vaultsched.runtime.groups import Groups
from vaultsched.runtime.limits import Limits
from vaultsched.runtime.messages import (
    NOT_CAUGHT_UP,
    OVERLAP_SKIPPED,
    Action,
    AwaitApproval,
    Expire,
    Invalid,
    Job,
    Record,
    Refuse,
    Retrying,
    Submit,
    Upstream,
)

# A task's untrusted version (its fingerprint), or None if it may run.
Untrusted = Callable[[Task], str | None]

# How early a due run is decided and handed over for preparation. It covers a start record's
# fsync on a loaded machine; a run still going this long before its task's next fire time
# leaves that fire to be decided at its time (the run may end first: overlap is unchanged).
LEAD = timedelta(milliseconds=250)
# The wake time of a task with no mark yet: at once, when `check` starts it afresh.
_AT_ONCE = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(order=True)
class _Retry:
    at: datetime
    task: str = field(compare=False)
    attempt: int = field(compare=False)
    scheduled_for: datetime | None = field(compare=False)
    upstream: Upstream | None = field(compare=False, default=None)


def schedulable(tasks: Iterable[Task], host: str | None) -> list[Task]:
    """The tasks this host fires on schedule (`host` None: whichever host they name)."""
    return [t for t in tasks if fired_here(t, host)]


def fired_here(task: Task, host: str | None) -> bool:
    """Whether this host fires `task` on schedule."""
    return bool(task.schedules) and task.enabled and fires_on(task, host)


def chain_of(
    run: Run,
    tasks: Mapping[str, Task],
    downstream: Mapping[str, Iterable[str]],
    host: str | None,
    *,
    retried: bool = True,
) -> list[str]:
    """The `after` tasks `run` starts, as the index (`tasks`, `downstream`) has them now
    (`retried`: a failure may yet be retried). Called from a run's own thread while the index
    changes: each lookup is one dict read."""
    task = tasks.get(run.task)
    if task is None:
        return []
    found = [tasks.get(ident) for ident in downstream.get(run.task, ())]
    return chain_targets(task, run, [t for t in found if t is not None], host, retried=retried)


def retry_delay(task: Task, attempt: int) -> timedelta:
    """Doubling from retry_delay, capped at the longest duration a note may say (100 years):
    `retries: 500` must not overflow the clock arithmetic on the 60th attempt."""
    seconds = task.retry_delay.total_seconds() * 2.0 ** min(attempt - 1, 64)
    return timedelta(seconds=min(seconds, MAX_DURATION.total_seconds()))


@dataclass
class Dispatcher:
    planner: Planner = field(default_factory=Planner)
    running: set[str] = field(default_factory=set)
    queued: dict[str, Job] = field(default_factory=dict)
    retries: list[_Retry] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # task id -> version recorded
    stopping: bool = False
    decisions: int = 0  # fire times decided so far
    groups: Groups = field(default_factory=Groups)
    limits: Limits = field(default_factory=Limits)
    lead: timedelta = LEAD
    # task id -> the wake time it was found untrusted for ahead: decided at that time instead
    _not_ahead: dict[str, datetime] = field(default_factory=dict)
    # The tasks fired on schedule, by wake time: asked of the planner again only once their
    # marks moved or the task changed.
    queue: FireQueue = field(default_factory=FireQueue)
    # Each wake time worked out since `take_requeued` was last asked, with its task.
    _requeued: list[tuple[Task, datetime]] = field(default_factory=list)

    def track(self, task: Task) -> None:
        """Fire `task` on schedule, as it is now (a task new, edited or moved, or retimed)."""
        self.queue.track(task)

    def untrack(self, task_id: str) -> None:
        """Fire it on schedule no more (gone, invalid, disabled, another host's); its marks
        stay (`removed` forgets them)."""
        self.queue.untrack(task_id)

    def due(self, now: datetime, untrusted: Untrusted) -> list[Action]:
        """What to do about the tracked tasks whose fire time is `now` or within `lead`."""
        actions = self._requeue()
        for task, wake in self.queue.due(now + self.lead):
            with self._contained(task, "planning", actions):
                actions += self._check(task, wake, now, untrusted)
        return actions

    def _requeue(self) -> list[Action]:
        """Work out again the wake times gone stale; a task found unplannable is invalid."""
        invalid: list[Action] = []
        for ident in sorted(self.queue.stale):
            task, at = self.queue.tasks[ident], None
            with self._contained(task, "planning", invalid):
                at = self.planner.wake_time(task) if ident in self.planner.marks else _AT_ONCE
            self.queue.put(ident, at)
            if at is not None and at is not _AT_ONCE:
                self._requeued.append((task, at))
        return invalid

    def take_requeued(self) -> list[tuple[Task, datetime]]:
        """The tasks whose wake time was worked out (anew) since the last call, with it."""
        taken, self._requeued = self._requeued, []
        return taken

    def _check(
        self, task: Task, wake: datetime, now: datetime, untrusted: Untrusted
    ) -> list[Action]:
        """`wake`: the task's wake time, as the queue had it (the planner's, or `_AT_ONCE`)."""
        ahead = self._ahead(task, wake, now, untrusted)
        decision = self.planner.check(task, ahead or now)
        if decision is None:
            return []
        self.decisions += 1
        if not decision.run:
            when = decision.scheduled_for
            return [Record(task, Status.MISSED, decision.trigger, NOT_CAUGHT_UP, when)]
        job = Job(task, decision.trigger, decision.scheduled_for, start_at=ahead)
        return self._decided(job, None if ahead else untrusted(task))

    def _ahead(
        self, task: Task, wake: datetime, now: datetime, untrusted: Untrusted
    ) -> datetime | None:
        """`wake` (the task's wake time, as the queue popped it: not worked out again) if it is
        within `lead` and the fire may be decided now (then it is decided as of that time);
        None: it is decided at its time."""
        if task.id not in self.planner.marks:
            return None
        if not now < wake <= now + self.lead or not self._may_lead(task, wake):
            return None
        if untrusted(task) is not None:  # its refusal is recorded at its time, once
            self._not_ahead[task.id] = wake
            return None
        return wake

    def _may_lead(self, task: Task, wake: datetime) -> bool:
        """Whether a fire of `task` at `wake` may be decided `lead` early."""
        return (
            task.id not in self.running
            and not needs_approval(task, Trigger.SCHEDULE)
            and self._not_ahead.get(task.id) != wake
        )

    def _decided(self, job: Job, version: str | None) -> list[Action]:
        task, trigger, when = job.task, job.trigger, job.scheduled_for
        upstream = job.upstream.run_id if job.upstream else ""
        over = self.limits.over(task, when)
        if over:  # the fire is consumed: the task is done, it starts nothing more
            return self._expire(task, over)
        if version is not None:
            if self.refused.get(task.id) == version:
                return []
            self.refused[task.id] = version
            return [Refuse(task, trigger, when, upstream)]
        self.refused.pop(task.id, None)
        if needs_approval(task, trigger):
            return [AwaitApproval(task, trigger, when, upstream)]
        if task.id not in self.running:
            return self._start_or_wait(job)
        if task.overlap == "queue":
            self.queued[task.id] = job  # one queued run; a newer one replaces it
            return []
        return [Record(task, Status.MISSED, trigger, OVERLAP_SKIPPED, when, upstream)]

    def _expire(self, task: Task, reason: str) -> list[Action]:
        return [Expire(task, reason)] if self.limits.expire(task) else []

    def _start_or_wait(self, job: Job) -> list[Action]:
        """Submit `job`, unless its group is full: then it waits for a slot."""
        return [self._submit(job)] if self.groups.admit(job) else []

    def _submit(self, job: Job) -> Submit:
        self.running.add(job.task.id)
        return Submit(job)

    def abandoned(self) -> list[Action]:
        """At shutdown: the runs still waiting for a group slot, recorded as missed."""
        actions: list[Action] = []
        for job in self.groups.abandoned():
            message = (
                f"missed: waiting for a slot in group {job.task.group!r} when vaultsched stopped"
            )
            upstream = job.upstream.run_id if job.upstream else ""
            when = job.scheduled_for
            actions.append(Record(job.task, Status.MISSED, job.trigger, message, when, upstream))
        return actions

    def done(
        self,
        job: Job,
        run: Run | None,
        now: datetime,
        tasks: Mapping[str, Task],
        untrusted: Untrusted,
    ) -> list[Action]:
        """A job is over; `tasks` is the index as it is now (its task may be gone)."""
        self.running.discard(job.task.id)
        actions: list[Action] = []
        ready = self.groups.freed(job.task, self.running)
        if ready is not None and not self.stopping:
            actions += self._start_or_wait(
                replace(ready, task=tasks.get(ready.task.id, ready.task))
            )
        if run is not None:
            task = tasks.get(job.task.id, job.task)
            over = self.limits.count(task, run)
            actions += self._expire(task, over) if over else []
            with self._contained(job.task, "planning a retry of", actions):
                actions += self._retry(job, run, now)
        queued = self.queued.pop(job.task.id, None)
        if queued is not None and not self.stopping:
            task = tasks.get(job.task.id, queued.task)
            actions.append(self._submit(replace(queued, task=task)))
        if run is not None:
            actions += self.chained([run], tasks, untrusted)
        return actions

    def chained(
        self, runs: Iterable[Run], tasks: Mapping[str, Task], untrusted: Untrusted
    ) -> list[Action]:
        """The `after` runs these finished runs start (each names them in its `chain`): each
        through trust, approval and overlap like a fire of its own."""
        actions: list[Action] = []
        if self.stopping:
            return actions
        for run in runs:
            for ident in run.chain:
                task = tasks.get(ident)
                if task is None or not task.enabled:
                    continue  # gone or paused since: it would not have been started
                job = Job(task, Trigger.AFTER, upstream=Upstream(run.task, run.run_id))
                with self._contained(task, "starting after", actions):
                    actions += self._decided(job, untrusted(task))
        return actions

    def _retry(self, job: Job, run: Run, now: datetime) -> list[Action]:
        task = job.task
        if run.status not in RETRYABLE or run.attempt > task.retries or self.stopping:
            return []
        delay = retry_delay(task, run.attempt)
        retry = _Retry(now + delay, task.id, run.attempt + 1, run.scheduled_for, job.upstream)
        heapq.heappush(self.retries, retry)
        return [Retrying(task.id, run.attempt, task.retries, delay)]

    def retries_due(self, tasks: Mapping[str, Task], now: datetime) -> list[Submit]:
        actions: list[Submit] = []
        while self.retries and self.retries[0].at <= now:
            retry = heapq.heappop(self.retries)
            task = tasks.get(retry.task)
            if task is None or retry.task in self.running:
                continue
            job = Job(task, Trigger.RETRY, retry.scheduled_for, retry.attempt, retry.upstream)
            actions.append(self._submit(job))
        return actions

    def wake_time(self) -> tuple[datetime | None, list[Action]]:
        """The next fire or retry time, and the tasks found unplannable on the way. A fire
        that may be decided ahead wakes the loop `lead` early: only the tasks due within
        `lead` of the first are looked at."""
        invalid = self._requeue()
        times = [self.retries[0].at] if self.retries else []
        fire = self._fire_wake()
        times += [fire] if fire is not None else []
        return min(times, default=None), invalid

    def _fire_wake(self) -> datetime | None:
        """The first fire time, or `lead` before a fire within `lead` of it that may be decided
        ahead. Looked at in time order, the first such fire is the earliest, so the walk stops
        there: a burst of a thousand tasks due together asks this at each run's end, when the
        tasks still running come before the first that may lead, and were all looked at."""
        soonest = self.queue.soonest(self.lead)
        if not soonest:
            return None
        first = soonest[0][1]
        for task, at in soonest:
            if at - self.lead >= first:
                break  # neither it nor any after it wakes before the first
            if self._may_lead(task, at):
                return at - self.lead
        return first

    @contextlib.contextmanager
    def _contained(self, task: Task, doing: str, actions: list[Action]) -> Iterator[None]:
        """The boundary around one task's step: whatever it raises makes this task invalid
        until its note changes (an `Invalid` action); every other task goes on."""
        try:
            yield
        except Exception as exc:  # the boundary: see `contain`
            if isinstance(exc, Unplannable):
                problem = exc.problem
            else:
                problem = internal_problem(task.path, doing, exc)
            self.planner.forget(task.id)
            self.queue.untrack(task.id)  # invalid: out of the index until its note changes
            actions.append(Invalid(task.id, problem))

    # -- the index changed -------------------------------------------------------------------

    def renamed(self, old: str, new: str) -> None:
        for ident in (old, new):
            self._not_ahead.pop(ident, None)
        self.queue.untrack(old)
        self.queue.touch(new)
        if new in self.planner.marks:  # it appeared a moment ago and has its own marks already
            self.planner.forget(old)
        else:
            self.planner.rename(old, new)
        if old in self.queued:
            job = self.queued.pop(old)
            self.queued[new] = replace(job, task=replace(job.task, id=new, path=f"{new}.md"))

    def retimed(self, task_id: str, now: datetime) -> None:
        self.planner.reset(task_id, now)
        self.queue.touch(task_id)
        self.limits.expired.discard(task_id)  # edited (re-enabled, say): judged afresh

    def removed(self, task_id: str) -> None:
        self.planner.forget(task_id)
        self.groups.removed(task_id)
        self._not_ahead.pop(task_id, None)
        self.queue.untrack(task_id)
