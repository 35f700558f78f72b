"""The Conductor asks the tasks what is due only once the next fire time has come, or once they
changed: an injected clock, a dry-run daemon (nothing is executed), no watcher."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import task_note

from vaultsched.adapters.vault import Vault
from vaultsched.adapters.watcher import Changes
from vaultsched.runtime.daemon import Daemon
from vaultsched.runtime.dispatch import LEAD, Dispatcher, _Retry

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
def asked(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The moments the dispatcher was asked what is due."""
    moments: list[datetime] = []
    real = Dispatcher.due

    def due(self: Dispatcher, tasks: object, now: datetime, untrusted: object) -> object:
        moments.append(now)
        return real(self, tasks, now, untrusted)  # type: ignore[arg-type]

    monkeypatch.setattr(Dispatcher, "due", due)
    return moments


def tick(daemon: Daemon, now: datetime) -> datetime | None:
    """What the daemon's loop does about fire times at `now`; the next wake-up."""
    daemon.conductor.collect()  # the jobs done since (a dry run's are done at once)
    daemon.conductor.fire(now)
    return daemon.conductor.wake_time()


def test_nothing_is_asked_again_until_the_next_fire_time(
    daemon: Daemon, asked: list[datetime]
) -> None:
    wake = tick(daemon, T0)
    assert wake == datetime(2026, 3, 1, 13, 0, tzinfo=UTC) - LEAD  # decided ahead, see dispatch

    for seconds in range(1, 50):  # a job done, a file event: the loop comes round
        assert tick(daemon, T0 + seconds * S) == wake
    assert asked == [T0]

    decided = daemon.conductor.dispatcher.decisions
    # Its run goes on: the next fire is not to be decided ahead, until the run is over.
    assert tick(daemon, wake) == datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
    assert tick(daemon, wake + S) == datetime(2026, 3, 1, 14, 0, tzinfo=UTC) - LEAD
    assert asked == [T0, wake] and daemon.conductor.dispatcher.decisions == decided + 1


def test_a_task_changed_in_a_way_that_moves_no_mark_is_asked_again(
    daemon: Daemon, asked: list[datetime], clock: list[datetime]
) -> None:
    """`jitter` changes no schedule (no new start for the task) but when it wakes: the tasks
    are compared by value, whatever the index's delta said."""
    tick(daemon, T0)
    task_note(daemon.vault.root, "Tasks/Hourly.md", HOURLY + "jitter: 10m\n")
    daemon.conductor.index_changed(daemon.follower.apply(Changes(paths={"Tasks/Hourly.md"})))

    wake = tick(daemon, T0 + S)

    assert asked == [T0, T0 + S]
    assert wake is not None and wake > datetime(2026, 3, 1, 13, 0, tzinfo=UTC)


def test_a_retry_wakes_the_loop_without_asking_the_tasks(
    daemon: Daemon, asked: list[datetime]
) -> None:
    tick(daemon, T0)
    dispatcher = daemon.conductor.dispatcher
    dispatcher.retries.append(_Retry(T0 + 5 * S, "Tasks/Daily", 2, None))  # a run failed

    assert tick(daemon, T0 + S) == T0 + 5 * S
    assert asked == [T0]
