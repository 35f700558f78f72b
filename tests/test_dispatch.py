"""Dispatch policy, without threads or files: trust refusals, approval, overlap, retries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from vaultsched.core.model import Problem, Run, Status, Task, Trigger, Window
from vaultsched.core.planner import Unplannable
from vaultsched.core.schedules import parse_schedule
from vaultsched.runtime.dispatch import LEAD, Dispatcher, schedulable
from vaultsched.runtime.groups import Groups
from vaultsched.runtime.messages import (
    NOT_CAUGHT_UP,
    OVERLAP_SKIPPED,
    AwaitApproval,
    Invalid,
    Job,
    Record,
    Refuse,
    Retrying,
    Submit,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def task(**options: object) -> Task:
    made = Task(
        id="Tasks/T",
        path="Tasks/T.md",
        command="true",
        schedules=(parse_schedule("every 1m"),),
        timezone=ZoneInfo("UTC"),
    )
    return replace(made, **options)  # type: ignore[arg-type]


def trusted(_task: Task) -> str | None:
    return None


def fresh(dispatcher: Dispatcher, *tasks: Task, at: datetime = T0 - MINUTE) -> None:
    """The tasks new to the dispatcher at `at`: started afresh, fired on schedule."""
    for t in tasks:
        dispatcher.retimed(t.id, at)
        dispatcher.track(t)


def started(dispatcher: Dispatcher, t: Task, at: datetime = T0) -> list[object]:
    """The dispatcher's actions at `at`, the task having been started afresh a minute before."""
    fresh(dispatcher, t, at=at - MINUTE)
    return list(dispatcher.due(at, trusted))


def run_of(job: Job, status: Status, attempt: int = 1) -> Run:
    return Run("r", job.task.id, status, job.trigger, T0, "h", attempt, job.scheduled_for)


def test_a_due_task_is_submitted_and_counted_as_running() -> None:
    d, t = Dispatcher(), task()
    (action,) = started(d, t)
    assert action == Submit(Job(t, Trigger.SCHEDULE, T0))
    assert d.running == {t.id}
    assert d.due(T0 + timedelta(seconds=30), trusted) == []  # nothing more is due yet


def test_an_untrusted_version_is_recorded_once_then_only_skipped() -> None:
    d, t = Dispatcher(), task()
    fresh(d, t)
    assert d.due(T0, lambda _: "v1") == [Refuse(t, Trigger.SCHEDULE, T0)]
    assert d.due(T0 + MINUTE, lambda _: "v1") == []
    assert d.due(T0 + 2 * MINUTE, lambda _: "v2") == [Refuse(t, Trigger.SCHEDULE, T0 + 2 * MINUTE)]
    (submitted,) = d.due(T0 + 3 * MINUTE, trusted)
    assert isinstance(submitted, Submit) and t.id not in d.refused


def test_approval_required_asks_instead_of_running() -> None:
    d, t = Dispatcher(), task(approval="required")
    assert started(d, t) == [AwaitApproval(t, Trigger.SCHEDULE, T0)]
    assert not d.running


def test_overlap_skip_records_the_fire_that_met_a_run_in_flight() -> None:
    d, t = Dispatcher(), task()
    started(d, t)
    assert d.due(T0 + MINUTE, trusted) == [
        Record(t, Status.MISSED, Trigger.SCHEDULE, OVERLAP_SKIPPED, T0 + MINUTE)
    ]


def test_overlap_queue_keeps_the_newest_fire_and_submits_it_when_the_run_ends() -> None:
    d, t = Dispatcher(), task(overlap="queue")
    (first,) = started(d, t)
    assert d.due(T0 + MINUTE, trusted) == []
    assert d.due(T0 + 2 * MINUTE, trusted) == []
    assert isinstance(first, Submit)
    after = d.done(
        first.job, run_of(first.job, Status.SUCCESS), T0 + 2 * MINUTE, {t.id: t}, trusted
    )
    assert after == [Submit(Job(t, Trigger.SCHEDULE, T0 + 2 * MINUTE))]
    assert d.running == {t.id}


def test_a_queued_fire_is_dropped_when_stopping() -> None:
    d, t = Dispatcher(), task(overlap="queue")
    (first,) = started(d, t)
    d.due(T0 + MINUTE, trusted)
    d.stopping = True
    assert isinstance(first, Submit)
    assert (
        d.done(first.job, run_of(first.job, Status.SUCCESS), T0 + MINUTE, {t.id: t}, trusted) == []
    )
    assert not d.running


@pytest.mark.parametrize("status", [Status.FAILED, Status.TIMEOUT])
def test_failures_are_retried_with_doubling_delays_then_given_up(status: Status) -> None:
    t = task(retries=2, retry_delay=timedelta(seconds=10))
    d = Dispatcher(running={t.id})
    job = Job(t, Trigger.SCHEDULE, T0)
    assert d.done(job, run_of(job, status), T0, {t.id: t}, trusted) == [
        Retrying(t.id, 1, 2, timedelta(seconds=10))
    ]
    assert d.retries_due({t.id: t}, T0 + timedelta(seconds=9)) == []
    (retry,) = d.retries_due({t.id: t}, T0 + timedelta(seconds=10))
    assert retry == Submit(Job(t, Trigger.RETRY, T0, attempt=2))
    second = run_of(retry.job, status, attempt=2)
    assert d.done(retry.job, second, T0, {t.id: t}, trusted) == [
        Retrying(t.id, 2, 2, timedelta(seconds=20))
    ]
    (last,) = d.retries_due({t.id: t}, T0 + timedelta(seconds=20))
    assert d.done(last.job, run_of(last.job, status, attempt=3), T0, {t.id: t}, trusted) == []
    assert not d.retries and not d.running


@pytest.mark.parametrize("status", [Status.SUCCESS, Status.ERROR, Status.SKIPPED])
def test_only_failures_and_timeouts_are_retried(status: Status) -> None:
    t = task(retries=3)
    d = Dispatcher(running={t.id})
    job = Job(t, Trigger.SCHEDULE, T0)
    assert d.done(job, run_of(job, status), T0, {t.id: t}, trusted) == [] and not d.retries


def test_a_retry_of_a_task_gone_from_the_index_is_dropped() -> None:
    t = task(retries=1)
    d = Dispatcher(running={t.id})
    job = Job(t, Trigger.SCHEDULE, T0)
    d.done(job, run_of(job, Status.FAILED), T0, {t.id: t}, trusted)
    assert d.retries_due({}, T0 + timedelta(days=1)) == [] and not d.retries


def test_missed_fire_times_without_catch_up_are_recorded_once_as_missed() -> None:
    d, t = Dispatcher(), task(catch_up=False)
    fresh(d, t)
    late = T0 + timedelta(hours=1, seconds=40)  # past the last fire time's grace
    latest = T0 + timedelta(hours=1)
    assert d.due(late, trusted) == [
        Record(t, Status.MISSED, Trigger.CATCH_UP, NOT_CAUGHT_UP, latest)
    ]
    assert not d.running and d.due(late, trusted) == []


def test_a_task_whose_planning_raises_becomes_invalid_and_the_rest_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d, bad, good = Dispatcher(), task(id="Tasks/Bad", path="Tasks/Bad.md"), task()
    for t in (bad, good):
        fresh(d, t)
    problem = Problem("Tasks/Bad.md", 1, "no fire time")
    real = d.planner.check

    def check(t: Task, now: datetime) -> object:
        if t.id == bad.id:
            raise Unplannable(problem)
        return real(t, now)

    monkeypatch.setattr(d.planner, "check", check)
    actions = d.due(T0, trusted)
    assert actions == [Invalid(bad.id, problem), Submit(Job(good, Trigger.SCHEDULE, T0))]
    assert bad.id not in d.planner.marks


def test_a_rename_carries_marks_and_the_queued_fire() -> None:
    d, t = Dispatcher(), task(overlap="queue")
    started(d, t)
    d.due(T0 + MINUTE, trusted)
    d.renamed(t.id, "Tasks/Moved")
    assert "Tasks/Moved" in d.queued and t.id not in d.planner.marks
    assert d.queued["Tasks/Moved"].task.id == "Tasks/Moved"


def test_only_enabled_tasks_with_a_schedule_for_this_host_are_schedulable() -> None:
    here, there = task(hosts=("here",)), task(id="b", hosts=("there",))
    off, manual = task(id="c", enabled=False), task(id="d", schedules=())
    assert schedulable([here, there, off, manual, task(id="e")], "here") == [here, task(id="e")]


# -- group ----------------------------------------------------------------------------------------


def test_a_full_group_holds_a_run_until_a_slot_frees_the_newest_fire_per_task() -> None:
    d = Dispatcher(groups=Groups({"api": 1}))
    a, b = task(id="a", group="api"), task(id="b", group="api")
    fresh(d, a, b)
    (first,) = d.due(T0, trusted)
    assert first == Submit(Job(a, Trigger.SCHEDULE, T0)) and d.groups.waiting["api"]["b"]
    later = T0 + MINUTE
    # a's run goes on, b still waits for the slot: the newer fire replaces its waiting one
    assert d.due(later, trusted) == [
        Record(a, Status.MISSED, Trigger.SCHEDULE, OVERLAP_SKIPPED, later)
    ]
    after = d.done(first.job, run_of(first.job, Status.SUCCESS), later, {"a": a, "b": b}, trusted)
    assert after == [Submit(Job(b, Trigger.SCHEDULE, later))] and not d.groups.waiting["api"]


def test_a_run_still_waiting_for_its_group_at_shutdown_is_recorded_missed() -> None:
    d = Dispatcher(groups=Groups({"api": 2}))
    tasks = [task(id=name, group="api") for name in ("a", "b", "c")]
    for t in tasks:
        fresh(d, t)
    assert len(d.due(T0, trusted)) == 2
    d.stopping = True
    (missed,) = d.abandoned()
    assert isinstance(missed, Record) and missed.status is Status.MISSED
    assert missed.task.id == "c" and "group 'api'" in missed.message


# -- decided ahead ----------------------------------------------------------------------------

SOON = T0 - timedelta(milliseconds=100)  # within LEAD of T0


def test_a_fire_due_within_lead_is_decided_ahead_to_start_at_its_time() -> None:
    d, t = Dispatcher(), task()
    fresh(d, t)
    assert d.wake_time() == (T0 - LEAD, [])
    (action,) = d.due(SOON, trusted)
    assert action == Submit(Job(t, Trigger.SCHEDULE, T0, start_at=T0))
    assert d.running == {t.id}
    assert d.due(T0, trusted) == []  # decided once


def test_a_run_in_flight_leaves_the_next_fire_to_its_time() -> None:
    """It may end before then: overlap is judged at the fire time, as ever."""
    d, t = Dispatcher(), task()
    (first,) = started(d, t, T0 - MINUTE)
    assert isinstance(first, Submit)
    assert d.wake_time() == (T0, [])
    assert d.due(SOON, trusted) == []
    d.done(first.job, run_of(first.job, Status.SUCCESS), SOON, {t.id: t}, trusted)
    assert d.wake_time() == (T0 - LEAD, [])  # idle again: ahead it is
    (action,) = d.due(SOON, trusted)
    assert action == Submit(Job(t, Trigger.SCHEDULE, T0, start_at=T0))


def test_an_untrusted_or_approval_fire_is_decided_at_its_time() -> None:
    """Nothing is recorded ahead (a refusal, a request), and the loop is not woken again and
    again in between."""
    d, untrusted, asking = Dispatcher(), task(), task(id="Tasks/Ask", approval="required")
    for t in (untrusted, asking):
        fresh(d, t)
    version = lambda t: "v1" if t is untrusted else None  # noqa: E731
    assert d.due(SOON, version) == []
    assert d.wake_time() == (T0, [])
    assert d.due(T0, version) == [  # one instant: as queued
        AwaitApproval(asking, Trigger.SCHEDULE, T0),
        Refuse(untrusted, Trigger.SCHEDULE, T0),
    ]


def test_the_wake_time_kept_is_asked_again_for_an_edited_task() -> None:
    d, t = Dispatcher(), task()
    fresh(d, t)
    assert d.wake_time() == (T0 - LEAD, [])
    later = replace(t, window=Window(time(12, 30), time(13)))  # no retiming: the wake moves
    d.track(later)
    assert d.wake_time() == (T0 + timedelta(minutes=30) - LEAD, [])
    assert d.due(SOON, trusted) == []


def test_the_wake_times_worked_out_are_told_once_none_for_a_task_new_to_its_marks() -> None:
    d, t, other = Dispatcher(), task(), task(id="Tasks/U", path="Tasks/U.md")
    fresh(d, t)
    assert d.wake_time() == (T0 - LEAD, [])
    assert d.take_requeued() == [(t, T0)]
    assert d.take_requeued() == []
    d.track(other)  # no marks yet: it wakes at once, to start afresh
    assert d.wake_time()[0] is not None and d.take_requeued() == []
    assert d.due(T0 - MINUTE, trusted) == []  # started afresh
    assert d.wake_time() == (T0 - LEAD, [])  # and its first wake time worked out
    assert d.take_requeued() == [(other, T0)]
