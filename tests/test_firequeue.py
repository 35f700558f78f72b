"""The queue of next fire times: a wake-up looks at the tasks due, not at every task loaded, and
an edit, a move, a removal or a retiming takes effect at once. An injected clock, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from vaultsched.core.model import Task, Trigger, Window
from vaultsched.core.planner import Planner
from vaultsched.core.schedules import Schedule, parse_schedule
from vaultsched.runtime.dispatch import LEAD, Dispatcher
from vaultsched.runtime.firequeue import FireQueue
from vaultsched.runtime.messages import Action, Job, Submit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def task(ident: str = "Tasks/T", schedule: str = "every 1m", **options: object) -> Task:
    made = Task(ident, f"{ident}.md", "true", (parse_schedule(schedule),), ZoneInfo("UTC"))
    return replace(made, **options)  # type: ignore[arg-type]


def trusted(_task: Task) -> str | None:
    return None


def loaded(*tasks: Task, at: datetime = T0 - MINUTE) -> Dispatcher:
    """A dispatcher with `tasks` new at `at`, fired on schedule."""
    d = Dispatcher()
    for t in tasks:
        d.retimed(t.id, at)
        d.track(t)
    return d


def submitted(actions: Sequence[Action]) -> list[str]:
    return [a.job.task.id for a in actions if isinstance(a, Submit)]


@dataclass(frozen=True)
class Never(Schedule):
    """A schedule with no fire time left (its calendar ended)."""

    def _next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        return None


def counted(real: Callable[..., object], ids: list[str]) -> Callable[..., object]:
    def call(t: Task, *args: object) -> object:
        ids.append(t.id)
        return real(t, *args)

    return call


def test_a_wake_up_asks_only_the_tasks_due(monkeypatch: pytest.MonkeyPatch) -> None:
    idle = [task(f"Tasks/Idle {n}", "every 1d") for n in range(1000)]
    d = loaded(task("Tasks/A"), *idle, task("Tasks/B"))
    assert d.wake_time() == (T0 - LEAD, [])
    asked: list[str] = []
    worked_out: list[str] = []
    for name, ids in (("check", asked), ("wake_time", worked_out)):
        monkeypatch.setattr(d.planner, name, counted(getattr(d.planner, name), ids))

    assert submitted(d.due(T0 - LEAD, trusted)) == ["Tasks/A", "Tasks/B"]
    assert d.wake_time() == (T0 + MINUTE, [])  # both still running: decided at their time
    assert sorted(asked) == ["Tasks/A", "Tasks/B"]
    assert sorted(set(worked_out)) == ["Tasks/A", "Tasks/B"]


def test_a_due_task_is_decided_with_the_wake_time_the_queue_had_not_worked_out_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = loaded(task("Tasks/A"), task("Tasks/B"))
    assert d.wake_time() == (T0 - LEAD, [])  # both put, with their wake times
    worked_out: list[str] = []
    monkeypatch.setattr(d.planner, "wake_time", counted(d.planner.wake_time, worked_out))

    assert submitted(d.due(T0 - LEAD, trusted)) == ["Tasks/A", "Tasks/B"]
    assert sorted(worked_out) == ["Tasks/A", "Tasks/B"]  # once each: the planner's own check


def test_two_tasks_due_at_one_instant_are_both_decided_at_it() -> None:
    a, b = task("Tasks/A", "0 13 * * *"), task("Tasks/B", "every 1h")
    d = loaded(a, b, task("Tasks/Later", "30 13 * * *"), at=T0)
    assert d.wake_time() == (T0 + HOUR - LEAD, [])
    assert d.due(T0 + HOUR - 2 * LEAD, trusted) == []
    assert d.due(T0 + HOUR - LEAD, trusted) == [
        Submit(Job(a, Trigger.SCHEDULE, T0 + HOUR, start_at=T0 + HOUR)),
        Submit(Job(b, Trigger.SCHEDULE, T0 + HOUR, start_at=T0 + HOUR)),
    ]
    assert d.wake_time() == (T0 + 90 * MINUTE - LEAD, [])


def test_an_edit_that_moves_the_wake_time_either_way_takes_effect_at_once() -> None:
    t = task(window=Window(time(12, 30), time(13)))
    d = loaded(t)
    assert d.wake_time() == (T0 + 30 * MINUTE - LEAD, [])
    d.track(replace(t, window=None))  # earlier: no window now
    assert d.wake_time() == (T0 - LEAD, [])
    d.track(replace(t, window=Window(time(12, 45), time(13))))  # later again
    assert d.wake_time() == (T0 + 45 * MINUTE - LEAD, [])
    assert d.due(T0, trusted) == []


def test_a_task_untracked_or_removed_fires_no_more() -> None:
    a, b = task("Tasks/A"), task("Tasks/B", "every 1h")
    d = loaded(a, b)
    d.untrack(a.id)  # invalid, disabled or another host's: its marks stay
    assert a.id in d.planner.marks
    assert d.wake_time() == (T0 - LEAD, [])  # b's 12:00
    d.removed(b.id)
    assert d.wake_time() == (None, []) and d.due(T0 + HOUR, trusted) == []


def test_a_retimed_task_wakes_from_its_new_start() -> None:
    t = task(schedule="every 1h")
    d = loaded(t, at=T0 + MINUTE)
    assert d.wake_time() == (T0 + HOUR - LEAD, [])
    d.retimed(t.id, T0 - 90 * MINUTE)  # told so by the index: a new start (in a test, earlier)
    assert d.wake_time() == (T0 - HOUR - LEAD, [])


def test_a_moved_task_fires_under_its_new_id_only() -> None:
    t = task("Tasks/Old")
    d = loaded(t)
    d.renamed(t.id, "Tasks/New")
    d.track(replace(t, id="Tasks/New", path="Tasks/New.md"))
    assert submitted(d.due(T0, trusted)) == ["Tasks/New"]


def test_a_decision_moves_the_wake_time_to_the_next_fire() -> None:
    d = loaded(task())
    d.due(T0 - LEAD, trusted)
    d.running.clear()  # its run is over
    assert d.wake_time() == (T0 + MINUTE - LEAD, [])
    assert d.due(T0, trusted) == []  # decided once


def test_a_task_with_no_next_fire_time_waits_for_nothing() -> None:
    never = task("Tasks/Never", schedules=(Never("never"),))
    d = loaded(never, task("Tasks/Hourly", "every 1h", jitter=timedelta(0)))
    assert d.wake_time() == (T0 - LEAD, [])
    assert submitted(d.due(T0 - LEAD, trusted)) == ["Tasks/Hourly"]
    d.running.clear()
    assert d.wake_time() == (T0 + HOUR - LEAD, [])
    assert submitted(d.due(T0 + timedelta(days=400), trusted)) == ["Tasks/Hourly"]


def test_a_task_with_no_mark_yet_is_looked_at_at_once_and_started_afresh() -> None:
    d = Dispatcher(Planner())
    d.track(task())  # no `retimed`: as a task the index had before dispatch knew of it
    at, _ = d.wake_time()
    assert at is not None and at < T0 - HOUR
    assert d.due(T0 - MINUTE, trusted) == []  # started afresh then
    assert d.wake_time() == (T0 - LEAD, [])


def test_the_heap_does_not_grow_with_edits() -> None:
    queue, t = FireQueue(), task()
    queue.track(t)
    for n in range(10_000):
        queue.put(t.id, T0 + n * MINUTE)
        queue.touch(t.id)
    queue.put(t.id, T0)
    assert len(queue._heap) < 100
    assert queue.soonest(LEAD) == [(t, T0)] and queue.due(T0) == [(t, T0)] and t.id in queue.stale


def test_a_burst_asks_at_each_end_only_the_tasks_running_before_the_first_that_may_lead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    burst = [task(f"Tasks/T{n:04}") for n in range(1000)]
    d = loaded(*burst)
    assert len(submitted(d.due(T0 - LEAD, trusted))) == 1000
    assert d.wake_time() == (T0 + MINUTE, [])  # all running: each decided at its time
    walks: list[timedelta] = []
    walk = d.queue._walk

    def counted_walk(within: timedelta) -> list[tuple[Task, datetime]]:
        walks.append(within)
        return walk(within)

    monkeypatch.setattr(d.queue, "_walk", counted_walk)
    asked: list[str] = []
    monkeypatch.setattr(d, "_may_lead", counted(d._may_lead, asked))
    d.running.discard("Tasks/T0000")  # its run ended
    assert d.wake_time() == (T0 + MINUTE - LEAD, [])
    assert asked == ["Tasks/T0000"] and walks == []  # the queue as it was: no walk again
    d.running.add("Tasks/T0000")
    d.running.discard("Tasks/T0999")  # the last in order
    assert d.wake_time() == (T0 + MINUTE - LEAD, [])


def test_the_soonest_tasks_come_in_wake_time_order_and_change_with_the_queue() -> None:
    q = FireQueue()
    a, b, c = task("Tasks/A"), task("Tasks/B"), task("Tasks/C")
    for t, at in ((a, T0 + MINUTE), (b, T0), (c, T0)):
        q.track(t)
        q.put(t.id, at)
    assert q.soonest(LEAD) == [(b, T0), (c, T0)]  # ties: first put, first
    q.touch(b.id)
    assert q.soonest(LEAD) == [(c, T0)]
    q.put(b.id, T0 + MINUTE)
    assert q.soonest(MINUTE) == [(c, T0), (a, T0 + MINUTE), (b, T0 + MINUTE)]
    q.untrack(c.id)
    assert q.soonest(LEAD) == [(a, T0 + MINUTE), (b, T0 + MINUTE)]
