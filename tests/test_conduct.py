"""The Conductor asks a task what is due only once its next fire time has come, and works its
wake time out again only once it changed: an injected clock, a dry-run daemon (nothing is
executed), no watcher."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import task_note

from vaultsched.adapters.vault import Vault
from vaultsched.adapters.watcher import Changes
from vaultsched.core.model import Task
from vaultsched.core.planner import Planner
from vaultsched.runtime.daemon import Daemon
from vaultsched.runtime.dispatch import LEAD, _Retry

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
S = timedelta(seconds=1)
HOURLY = "command: 'true'\nschedule: every 1h\n"


@pytest.fixture
def clock() -> list[datetime]:
    return [T0]


@pytest.fixture
def daemon(vault: Vault, clock: list[datetime]) -> Iterator[Daemon]:
    task_note(vault.root, "Tasks/Hourly.md", HOURLY)
    task_note(vault.root, "Tasks/Daily.md", "command: 'true'\nschedule: every 1d\n")
    daemon = Daemon(vault, clock=lambda: clock[0], dry_run=True)
    daemon.conductor.restore(daemon.follower.load())
    yield daemon
    daemon.landing.close()


@pytest.fixture
def asked(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> list[tuple[datetime, str]]:
    """The moments a task was asked what is due, and which."""
    moments: list[tuple[datetime, str]] = []
    real = Planner.check

    def check(self: Planner, task: Task, now: datetime) -> object:
        moments.append((now, task.id))
        return real(self, task, now)

    monkeypatch.setattr(Planner, "check", check)
    return moments


def tick(daemon: Daemon, now: datetime) -> datetime | None:
    """What the daemon's loop does about fire times at `now`; the next wake-up."""
    daemon.conductor.collect()  # the jobs done since (a dry run's are done at once)
    daemon.conductor.fire(now)
    return daemon.conductor.wake_time()


def test_nothing_is_asked_until_its_next_fire_time(
    daemon: Daemon, asked: list[tuple[datetime, str]]
) -> None:
    wake = tick(daemon, T0)
    assert wake == datetime(2026, 3, 1, 13, 0, tzinfo=UTC) - LEAD  # decided ahead, see dispatch

    for seconds in range(1, 50):  # a job done, a file event: the loop comes round
        assert tick(daemon, T0 + seconds * S) == wake
    assert asked == []

    decided = daemon.conductor.dispatcher.decisions
    # Its run goes on: the next fire is not to be decided ahead, until the run is over.
    assert tick(daemon, wake) == datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
    assert tick(daemon, wake + S) == datetime(2026, 3, 1, 14, 0, tzinfo=UTC) - LEAD
    assert asked == [(wake + LEAD, "Tasks/Hourly")]  # at `wake`, decided as of its time
    assert daemon.conductor.dispatcher.decisions == decided + 1


def test_a_task_changed_in_a_way_that_moves_no_mark_is_asked_again(
    daemon: Daemon, asked: list[tuple[datetime, str]], clock: list[datetime]
) -> None:
    """`jitter` changes no schedule (no new start for the task) but when it wakes: every task
    whose entry in the index changed is looked at again, not only the retimed ones."""
    tick(daemon, T0)
    task_note(daemon.vault.root, "Tasks/Hourly.md", HOURLY + "jitter: 10m\n")
    daemon.conductor.index_changed(daemon.follower.apply(Changes(paths={"Tasks/Hourly.md"})))

    wake = tick(daemon, T0 + S)

    assert asked == []
    assert wake is not None and wake > datetime(2026, 3, 1, 13, 0, tzinfo=UTC)


def test_a_retry_wakes_the_loop_without_asking_the_tasks(
    daemon: Daemon, asked: list[tuple[datetime, str]]
) -> None:
    tick(daemon, T0)
    dispatcher = daemon.conductor.dispatcher
    dispatcher.retries.append(_Retry(T0 + 5 * S, "Tasks/Daily", 2, None))  # a run failed

    assert tick(daemon, T0 + S) == T0 + 5 * S
    assert asked == []


def test_the_tasks_due_within_ten_minutes_are_handed_over_to_be_prepared(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, clock: list[datetime]
) -> None:
    """A new task's first run would make its folders on its way to the start: a burst of new
    tasks made them all at once."""
    task_note(daemon.vault.root, "Tasks/Soon.md", "command: 'true'\nschedule: every 5m\n")
    daemon.conductor.index_changed(daemon.follower.apply(Changes(paths={"Tasks/Soon.md"})))
    handed: list[list[str]] = []
    monkeypatch.setattr(daemon.actor, "prepare", lambda tasks: handed.append([t.id for t in tasks]))

    tick(daemon, T0)  # the hourly and daily ones are further off
    assert handed == [["Tasks/Soon"]]
    for seconds in range(1, 20):  # its wake time stands: not handed over again
        tick(daemon, T0 + seconds * S)
    assert handed == [["Tasks/Soon"]]
    clock[0] = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    tick(daemon, clock[0])  # fired (a dry run: done at once); its next fire is worked out
    tick(daemon, clock[0] + S)
    assert handed == [["Tasks/Soon"], ["Tasks/Soon"]]
