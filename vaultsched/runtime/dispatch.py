"""Dispatch: what to do with each due fire time, finished run and retry. No I/O, no threads.

Takes the planner's decisions and turns them into actions for the daemon to carry out: submit a
job, record a run that will not execute (refused, skipped), ask for approval, or mark a task
invalid when planning it raised. Decides, in this order: trust refusals (the first refused fire
of each version of a task is recorded, later ones only skipped, so an `every 1s` task does not
flood the vault while it waits for a person), approval, overlap with a run in flight (`skip`
records it, `queue` keeps one, the newest), and retries after a failure (doubling delays).
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from vaultsched.core.contain import internal_problem
from vaultsched.core.durations import MAX_DURATION
from vaultsched.core.model import RETRYABLE, Run, Status, Task, Trigger
from vaultsched.core.planner import Decision, Planner, Unplannable
from vaultsched.runtime.approval import needs_approval
from vaultsched.runtime.messages import (
    OVERLAP_SKIPPED,
    Action,
    AwaitApproval,
    Invalid,
    Job,
    Missed,
    Record,
    Refuse,
    Retrying,
    Submit,
)

# A task's untrusted version (its fingerprint), or None if it may run.
Untrusted = Callable[[Task], str | None]


@dataclass(order=True)
class _Retry:
    at: datetime
    task: str = field(compare=False)
    attempt: int = field(compare=False)
    scheduled_for: datetime | None = field(compare=False)


def schedulable(tasks: Iterable[Task], host: str) -> list[Task]:
    """The tasks this host fires on schedule."""
    return [t for t in tasks if t.schedules and t.enabled and (not t.hosts or host in t.hosts)]


def retry_delay(task: Task, attempt: int) -> timedelta:
    """Doubling from retry_delay, capped at the longest duration a note may say (100 years):
    `retries: 500` must not overflow the clock arithmetic on the 60th attempt."""
    seconds = task.retry_delay.total_seconds() * 2.0 ** min(attempt - 1, 64)
    return timedelta(seconds=min(seconds, MAX_DURATION.total_seconds()))


@dataclass
class Dispatcher:
    planner: Planner = field(default_factory=Planner)
    running: set[str] = field(default_factory=set)
    queued: dict[str, Decision] = field(default_factory=dict)
    retries: list[_Retry] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # task id -> version recorded
    stopping: bool = False
    decisions: int = 0  # fire times decided so far: the planner's marks moved (save them)

    def due(self, tasks: Iterable[Task], now: datetime, untrusted: Untrusted) -> list[Action]:
        actions: list[Action] = []
        for task in tasks:
            with self._contained(task, "planning", actions):
                actions += self._check(task, now, untrusted)
        return actions

    def _check(self, task: Task, now: datetime, untrusted: Untrusted) -> list[Action]:
        decision = self.planner.check(task, now)
        if decision is None:
            return []
        self.decisions += 1
        if not decision.run:
            return [Missed(task.id)]
        return self._decided(task, decision, untrusted(task))

    def _decided(self, task: Task, decision: Decision, version: str | None) -> list[Action]:
        trigger, when = decision.trigger, decision.scheduled_for
        if version is not None:
            if self.refused.get(task.id) == version:
                return []
            self.refused[task.id] = version
            return [Refuse(task, trigger, when)]
        self.refused.pop(task.id, None)
        if needs_approval(task, trigger):
            return [AwaitApproval(task, trigger, when)]
        if task.id not in self.running:
            return [self._submit(Job(task, trigger, when))]
        if task.overlap == "queue":
            self.queued[task.id] = decision  # one queued run; a newer due time replaces it
            return []
        return [Record(task, Status.SKIPPED, trigger, OVERLAP_SKIPPED, when)]

    def _submit(self, job: Job) -> Submit:
        self.running.add(job.task.id)
        return Submit(job)

    def done(self, job: Job, run: Run | None, now: datetime, current: Task | None) -> list[Action]:
        """A job is over; `current` is its task as the index has it now (None: gone)."""
        self.running.discard(job.task.id)
        actions: list[Action] = []
        if run is not None:
            with self._contained(job.task, "planning a retry of", actions):
                actions += self._retry(job, run, now)
        queued = self.queued.pop(job.task.id, None)
        if queued is not None and not self.stopping:
            task = current or job.task
            actions.append(self._submit(Job(task, queued.trigger, queued.scheduled_for)))
        return actions

    def _retry(self, job: Job, run: Run, now: datetime) -> list[Action]:
        task = job.task
        if run.status not in RETRYABLE or run.attempt > task.retries or self.stopping:
            return []
        delay = retry_delay(task, run.attempt)
        heapq.heappush(
            self.retries, _Retry(now + delay, task.id, run.attempt + 1, run.scheduled_for)
        )
        return [Retrying(task.id, run.attempt, task.retries, delay)]

    def retries_due(self, tasks: Mapping[str, Task], now: datetime) -> list[Submit]:
        actions: list[Submit] = []
        while self.retries and self.retries[0].at <= now:
            retry = heapq.heappop(self.retries)
            task = tasks.get(retry.task)
            if task is None or retry.task in self.running:
                continue
            job = Job(task, Trigger.RETRY, retry.scheduled_for, retry.attempt)
            actions.append(self._submit(job))
        return actions

    def wake_time(self, tasks: Iterable[Task]) -> tuple[datetime | None, list[Action]]:
        """The next fire or retry time, and the tasks found unplannable on the way."""
        times = [self.retries[0].at] if self.retries else []
        invalid: list[Action] = []
        for task in tasks:
            with self._contained(task, "planning", invalid):
                at = self.planner.wake_time(task)
                times += [] if at is None else [at]
        return min(times, default=None), invalid

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
            actions.append(Invalid(task.id, problem))

    # -- the index changed -------------------------------------------------------------------

    def renamed(self, old: str, new: str) -> None:
        if new in self.planner.marks:  # it appeared a moment ago and has its own marks already
            self.planner.forget(old)
        else:
            self.planner.rename(old, new)
        if old in self.queued:
            self.queued[new] = replace(self.queued.pop(old), task=new)

    def retimed(self, task_id: str, now: datetime) -> None:
        self.planner.reset(task_id, now)

    def removed(self, task_id: str) -> None:
        self.planner.forget(task_id)
