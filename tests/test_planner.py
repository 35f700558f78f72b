"""Scheduling decisions with an injected clock: on time, missed, jumps, restarts, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from vaultsched.core.model import Run, Status, Task, Trigger, Window
from vaultsched.core.planner import Planner, jitter_offset, latest_fire
from vaultsched.core.schedules import parse_schedule

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def a_task(schedule: str = "every 10s", **changes: object) -> Task:
    fields: dict[str, object] = {
        "id": "Tasks/T",
        "path": "Tasks/T.md",
        "command": "true",
        "schedules": (parse_schedule(schedule),),
        "timezone": ZoneInfo("UTC"),
    }
    fields.update(changes)
    return Task(**fields)  # type: ignore[arg-type]


def drive(planner: Planner, task: Task, start: datetime, end: datetime, step: timedelta) -> list:
    """Check at every `step`, as a daemon waking punctually would."""
    decisions = []
    now = start
    while now <= end:
        decision = planner.check(task, now)
        if decision is not None:
            decisions.append(decision)
        now += step
    return decisions


def test_new_task_is_not_caught_up_and_fires_on_time() -> None:
    task, planner = a_task(), Planner()
    assert planner.check(task, T0 + 5 * S) is None  # first sight: starts afresh
    assert planner.wake_time(task) == T0 + 10 * S
    decisions = drive(planner, task, T0 + 6 * S, T0 + 60 * S, S / 4)
    assert [d.scheduled_for for d in decisions] == [T0 + n * S for n in range(10, 61, 10)]
    assert {d.trigger for d in decisions} == {Trigger.SCHEDULE}


def test_suspend_coalesces_missed_fires_into_one_catch_up() -> None:
    task, planner = a_task(), Planner()
    planner.reset(task.id, T0)
    decision = planner.check(task, T0 + timedelta(hours=3, seconds=7))
    assert decision is not None
    assert (decision.trigger, decision.run) == (Trigger.CATCH_UP, True)
    assert decision.scheduled_for == T0 + timedelta(hours=3)
    assert planner.check(task, T0 + timedelta(hours=3, seconds=8)) is None
    assert planner.wake_time(task) == T0 + timedelta(hours=3, seconds=10)


def test_catch_up_false_skips() -> None:
    task, planner = a_task(catch_up=False), Planner()
    planner.reset(task.id, T0)
    decision = planner.check(task, T0 + timedelta(minutes=5, seconds=7))
    assert decision is not None and decision.run is False


def test_slightly_late_fire_is_on_time_not_missed() -> None:
    task, planner = a_task("0 * * * *"), Planner()
    planner.reset(task.id, T0)
    decision = planner.check(task, T0 + timedelta(hours=1, seconds=30))
    assert decision is not None and decision.trigger is Trigger.SCHEDULE


def test_backward_jump_never_refires() -> None:
    task, planner = a_task(), Planner()
    planner.reset(task.id, T0)
    assert planner.check(task, T0 + 10 * S) is not None
    # The clock is stepped back a minute: nothing is due until it passes the mark again.
    assert drive(planner, task, T0 - 60 * S, T0 + 10 * S, S / 2) == []
    (next_one,) = drive(planner, task, T0 + 10.5 * S, T0 + 20 * S, S / 2)
    assert next_one.scheduled_for == T0 + 20 * S


def test_restart_marks_come_from_the_ledger() -> None:
    task = a_task("every 1h")
    ran = Run("r1", task.id, Status.SUCCESS, Trigger.SCHEDULE, T0, "h", scheduled_for=T0)
    planner = Planner.from_ledger([("h", ran)], {task.id: task}, "h", T0)
    # Restarted 10 minutes later: nothing ran twice, nothing due yet.
    assert planner.check(task, T0 + timedelta(minutes=10)) is None
    assert planner.wake_time(task) == T0 + timedelta(hours=1)
    # Restarted after two missed hours: exactly one catch-up.
    planner = Planner.from_ledger([("h", ran)], {task.id: task}, "h", T0)
    decision = planner.check(task, T0 + timedelta(hours=2, minutes=30))
    assert decision is not None and decision.trigger is Trigger.CATCH_UP
    assert planner.check(task, T0 + timedelta(hours=2, minutes=31)) is None


def test_jitter_is_stable_bounded_and_not_missed() -> None:
    task = a_task("every 1m", jitter=timedelta(seconds=20))
    offsets = {jitter_offset(task, T0 + timedelta(minutes=n)) for n in range(50)}
    assert all(timedelta(0) <= o <= timedelta(seconds=20) for o in offsets)
    assert len(offsets) > 40
    assert jitter_offset(task, T0) == jitter_offset(task, T0)
    planner = Planner()
    planner.reset(task.id, T0)
    wake = planner.wake_time(task)
    assert wake is not None
    assert planner.check(task, wake - S / 10) is None
    decision = planner.check(task, wake)
    assert decision is not None and decision.trigger is Trigger.SCHEDULE


def test_rename_carries_the_mark() -> None:
    task, planner = a_task(), Planner()
    planner.reset(task.id, T0)
    planner.rename(task.id, "Tasks/Renamed")
    renamed = a_task(id="Tasks/Renamed")
    assert planner.marks == {"Tasks/Renamed": T0}
    assert planner.check(renamed, T0 + 5 * S) is None


def test_latest_fire_looks_back_far_enough() -> None:
    task = a_task("0 9 1 1 *")
    mark = datetime(2020, 1, 1, 10, tzinfo=UTC)
    assert latest_fire(task, datetime(2026, 6, 1, tzinfo=UTC), mark) == datetime(
        2026, 1, 1, 9, tzinfo=UTC
    )
    assert (
        latest_fire(task, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
        is None
    )


def test_only_trusted_ledger_records_move_a_mark() -> None:
    """Other hosts' files count only for tasks they fire; nothing counts from the future."""
    unpinned, pinned = a_task("every 1h"), a_task("every 1h", id="Tasks/Pinned", hosts=("me",))
    tasks = {unpinned.id: unpinned, pinned.id: pinned}

    def marks(host_file: str, fire: datetime, started: datetime = T0) -> dict[str, datetime]:
        records = [
            (host_file, Run(f"r{i}", t, Status.SUCCESS, Trigger.SCHEDULE, started, "x", 1, fire))
            for i, t in enumerate(tasks)
        ]
        return Planner.from_ledger(records, tasks, "me", T0).marks

    assert marks("me", T0) == {unpinned.id: T0, pinned.id: T0}
    assert marks("laptop", T0) == {unpinned.id: T0}  # laptop does not fire the pinned task
    assert marks("me", T0 + timedelta(minutes=4)) != {}  # clock skew is tolerated
    assert marks("me", datetime(2099, 1, 1, tzinfo=UTC)) == {}
    assert marks("me", T0, started=T0 + timedelta(minutes=6)) == {}


def test_only_own_marks_are_saved_and_none_from_the_future() -> None:
    task = a_task("every 1h")
    ran = Run("r1", task.id, Status.SUCCESS, Trigger.SCHEDULE, T0, "h", scheduled_for=T0)
    planner = Planner.from_ledger([("h", ran)], {task.id: task}, "h", T0)
    assert planner.saved(T0) == {}  # the ledger's word is not copied into local state
    planner.reset("Tasks/New", T0)
    assert planner.saved(T0) == {"Tasks/New": T0}
    planner.restore({"Tasks/Far": datetime(2099, 1, 1, tzinfo=UTC)}, T0)
    assert "Tasks/Far" not in planner.marks


# -- window -------------------------------------------------------------------------------------

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hour, minutes=minute)


def windowed(schedule: str, **changes: object) -> Task:
    return a_task(schedule, window=Window(time(9), time(17)), **changes)


def test_fires_while_the_window_is_shut_wait_for_it_and_run_once() -> None:
    task, planner = windowed("0 * * * *"), Planner()
    planner.reset(task.id, at(5, 30))
    assert planner.wake_time(task) == at(9)  # 06:00, 07:00, 08:00 wait for the window
    decisions = drive(planner, task, at(5, 30), at(11, 30), timedelta(minutes=5))
    # 09:00 is itself a fire time: on time, the earlier ones coalesced into it.
    assert [(d.scheduled_for, d.trigger) for d in decisions] == [
        (at(9), Trigger.SCHEDULE),
        (at(10), Trigger.SCHEDULE),
        (at(11), Trigger.SCHEDULE),
    ]


def test_a_fire_deferred_to_the_window_is_late_and_missed_without_catch_up() -> None:
    for catch_up in (True, False):
        task, planner = windowed("30 3 * * *", catch_up=catch_up), Planner()
        planner.reset(task.id, at(1))
        assert planner.wake_time(task) == at(9)
        (decision,) = drive(planner, task, at(1), at(20), timedelta(minutes=5))
        assert (decision.scheduled_for, decision.trigger) == (at(3, 30), Trigger.CATCH_UP)
        assert decision.run is catch_up


def test_a_daemon_late_past_the_window_waits_for_the_next_one() -> None:
    task, planner = windowed("0 16 * * *"), Planner()
    planner.reset(task.id, at(15))
    assert planner.check(task, at(17, 30)) is None  # asleep through 16:00; the window shut
    assert planner.wake_time(task) == at(9, days=1)
    decision = planner.check(task, at(9, days=1))
    assert decision is not None and decision.scheduled_for == at(16)
    assert decision.trigger is Trigger.CATCH_UP


def test_a_window_across_midnight_in_the_task_zone() -> None:
    zone = ZoneInfo("Europe/Warsaw")  # UTC+1 in March
    task = a_task("0 * * * *", timezone=zone, window=Window(time(22), time(6)))
    planner = Planner()
    planner.reset(task.id, at(12))
    assert planner.wake_time(task) == at(21)  # 22:00 in Warsaw
    decisions = drive(planner, task, at(12), at(12, days=1), timedelta(minutes=10))
    local = [d.scheduled_for.astimezone(zone).hour for d in decisions]
    assert local == [22, 23, 0, 1, 2, 3, 4, 5]
